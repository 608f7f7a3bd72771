import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { ConfigError, resolveFleetConfig } from "../../model/config";
import { inspectImageArchive, withDefaultTag } from "../../model/imageArchive";
import { homeConfig, raw } from "./fixtures";
import { writeImageArchive } from "./imageArchives";
import { testTempDir } from "./tempDirs";

const errorsOf = (config: { defaults: any; boxes: any }): string => {
    try {
        resolveFleetConfig(raw(config));
    } catch (error) {
        if (error instanceof ConfigError) return error.message;
        throw error;
    }
    return "";
};

describe("container.imageArchive", () => {
    it("reads the tags of a docker save archive, wherever manifest.json is in the tar", () => {
        const file = writeImageArchive(["overlay-fleet/cache-node:lab"], { "0123/layer.tar": "x".repeat(2000), "0123/json": "{}" });
        const archive = inspectImageArchive(file);
        expect(archive.repoTags).toEqual(["overlay-fleet/cache-node:lab"]);
        expect(archive.sha256).toMatch(/^[0-9a-f]{64}$/);
    });

    it("docker's implied tag", () => {
        expect(withDefaultTag("ericwang2006/ttnode")).toBe("ericwang2006/ttnode:latest");
        expect(withDefaultTag("registry:5000/a/b")).toBe("registry:5000/a/b:latest");
        expect(withDefaultTag("a/b:lab")).toBe("a/b:lab");
    });

    it("a valid archive holding the image is accepted", () => {
        const config = homeConfig();
        config.defaults.container.imageArchive = writeImageArchive(["ericwang2006/ttnode:latest"]);
        expect(errorsOf(config)).toBe("");
    });

    it("a missing file, a file that is no image archive, and an archive without the image fail naming the key", () => {
        const config = homeConfig();
        config.boxes.nas.container = { imageArchive: "/nonexistent/ttnode.tar" };
        expect(errorsOf(config)).toContain('overlay-fleet:boxes.nas.container.imageArchive: "/nonexistent/ttnode.tar" does not exist or cannot be read');

        const text = path.join(testTempDir("overlay-fleet-notes-"), "notes.tar");
        fs.writeFileSync(text, "just some text, not a tar archive\n".repeat(40));
        config.boxes.nas.container = { imageArchive: text };
        expect(errorsOf(config)).toContain(`overlay-fleet:boxes.nas.container.imageArchive: "${text}" is not a docker image archive`);

        const plainTar = writeImageArchive([], {});
        fs.writeFileSync(plainTar, fs.readFileSync(writeImageArchive([], { "etc/hosts": "127.0.0.1 localhost\n" })).subarray(0, 1024));
        config.boxes.nas.container = { imageArchive: plainTar };
        expect(errorsOf(config)).toContain("has no manifest.json");

        const other = writeImageArchive(["busybox:latest"]);
        config.boxes.nas.container = { imageArchive: other };
        expect(errorsOf(config)).toContain(`"${other}" does not hold the image "ericwang2006/ttnode:latest" (it holds "busybox:latest")`);
    });
});
