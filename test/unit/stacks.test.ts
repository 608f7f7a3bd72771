import * as fs from "fs";
import * as path from "path";
import { load } from "js-yaml";
import { describe, expect, it } from "vitest";
import { resolveFleetConfig } from "../../model/config";
import { planBox } from "../../model/plan";
import { writeImageArchive } from "./imageArchives";

const stacksDir = path.join(__dirname, "..", "..", "stacks");

/**
 * Reads a stack file the way Pulumi hands it to the program: `overlay-fleet:*` keys. An image
 * archive the stack ships (the lab's is built by tools/lab-image.sh) is replaced by a test
 * archive holding the same image, so these pure checks need no build.
 */
function stackConfig(file: string) {
    const doc = load(fs.readFileSync(path.join(stacksDir, file), "utf8")) as { config: Record<string, any> };
    const container = doc.config["overlay-fleet:defaults"]?.container;
    if (container?.imageArchive) {
        container.imageArchive = writeImageArchive([container.image]);
    }
    return {
        defaults: doc.config["overlay-fleet:defaults"],
        boxes: doc.config["overlay-fleet:boxes"],
        presentKeys: Object.keys(doc.config),
    };
}

describe("the stack files in stacks/", () => {
    it("the documented home example is valid and plans the addresses its comments promise", () => {
        const boxes = resolveFleetConfig(stackConfig("Pulumi.home.yaml"));
        const nas = boxes.find((b) => b.name === "nas")!;
        expect(planBox(nas).instances.map((i) => i.ip)).toEqual(["192.168.1.201", "192.168.1.202", "192.168.1.203"]);
        const minipc = boxes.find((b) => b.name === "minipc")!;
        expect(planBox(minipc).instances[1]).toMatchObject({ ip: "192.168.1.220", mac: "02:42:c0:a8:01:dc", hostname: "ttnode-old" });
        expect(nas.privatePaths).toEqual([".yfnode/config"]);
    });

    it("every stack file in stacks/ validates", () => {
        const files = fs.readdirSync(stacksDir).filter((f) => /^Pulumi\..+\.yaml$/.test(f));
        expect(files).toContain("Pulumi.home.yaml");
        for (const file of files) {
            expect(() => resolveFleetConfig(stackConfig(file)), file).not.toThrow();
        }
    });
});
