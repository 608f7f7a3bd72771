/**
 * The host library is installed once per box and named by its content: a new overlay-fleet
 * version previews as the library update of each box and nothing else, old versions are removed,
 * and a box that lost its library gets it back.
 */
import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BoxSummary } from "../../components/box";
import { boxStatus, libraryRecovery } from "../../ops/status";
import { freshLab, inBox, inBoxOk, LabBox, labConfig, managedFstabLines, overlayMounts, scrubBox, TestProject } from "./engine";

let boxes: LabBox[];
let project: TestProject;
const libraries = async (box: string) => (await inBoxOk(box, "ls /var/lib/overlay-fleet/lib")).split("\n").filter(Boolean);

beforeAll(async () => {
    boxes = await freshLab();
    project = new TestProject("hostlib");
    await project.init(boxes[0].privateKeyPath);
    const { defaults, boxes: declared } = labConfig(boxes, { box1: 2, box2: 1 });
    project.configure(defaults, declared);
    await project.upOk();
});

afterAll(async () => {
    await project?.destroyOk().catch(() => undefined);
    await project?.remove();
    for (const box of boxes ?? []) await scrubBox(box.name);
});

describe("host library", () => {
    it("is installed once per box, and the box's commands are short calls into it", async () => {
        for (const box of ["box1", "box2"]) {
            const [hash] = await libraries(box);
            expect(await libraries(box)).toEqual([hash]);
            expect((await inBoxOk(box, "readlink /var/lib/overlay-fleet/host")).trim()).toBe(`lib/${hash}`);
            expect((await inBox(box, "cd /var/lib/overlay-fleet/host && sha256sum -c --quiet SHA256SUMS")).status).toBe(0);
        }
        const state = JSON.parse(await project.pulumiOk(["stack", "export"])) as { deployment: { resources: Array<{ urn: string; inputs?: { create?: string; stdin?: string } }> } };
        const apply = state.deployment.resources.find((r) => r.urn.endsWith("box1-apply"))!;
        expect(apply.inputs!.create!).toMatch(/\nsh apply 'set' '\/etc\/fstab' 'box1' 'keep'$/);
        expect(apply.inputs!.create!.length).toBeLessThan(2500);
        expect(apply.inputs!.stdin!.split("\n").filter(Boolean)).toHaveLength(2);
    });

    it("a changed host library previews as each box's library update only, and replaces the old version", async () => {
        const before = await libraries("box1");
        fs.appendFileSync(path.join(project.dir, "host", "lib.sh"), "\n# overlay-fleet, a later version\n");
        const { steps } = await project.preview();
        const changed = [...new Set(steps.filter((s) => s.op !== "same").map((s) => s.name))].sort();
        expect(changed).toEqual(["box1-apply", "box1-host-copy", "box2-apply", "box2-host-copy"]);
        // The apply's new text is known at preview, to review: only the library's hash changes in it.
        const diff = await project.pulumiOk(["preview", "--diff"]);
        expect(diff).not.toContain("[unknown]");
        expect(diff).toMatch(/^ *- # overlay-fleet host library [0-9a-f]{16}\n *\+ # overlay-fleet host library [0-9a-f]{16}\n *set -eu$/m);
        await project.upOk();
        const after = await libraries("box1");
        expect(after).toHaveLength(1);
        expect(after).not.toEqual(before);
        // The instances were not touched, and the new library serves the next change.
        expect(await overlayMounts("box1")).toEqual(["/mnt/usbdisk/ttnode1/mnts", "/mnt/usbdisk/ttnode2/mnts"]);
        const { defaults, boxes: declared } = labConfig(boxes, { box1: 3, box2: 1 });
        project.configure(defaults, declared);
        await project.upOk();
        expect(await overlayMounts("box1")).toHaveLength(3);
    });

    it("a wiped box says so, and gets its library, overlays and fstab lines back from a new library copy", async () => {
        await inBoxOk("box1", "rm -rf /var/lib/overlay-fleet/lib /var/lib/overlay-fleet/host");
        const { defaults, boxes: declared } = labConfig(boxes, { box1: 4, box2: 1 });
        project.configure(defaults, declared);
        const failed = await project.up();
        expect(failed.status).not.toBe(0);
        const shown = (await project.pulumiOk(["stack", "--show-urns"])).split("\n").map((l) => /URN: (\S+)/.exec(l)?.[1]);
        const [copyUrn, applyUrn] = ["::box1-host-copy", "::box1-apply"].map((name) => shown.find((u) => u?.endsWith(name)));
        expect(failed.stdout + failed.stderr).toMatch(/overlay-fleet: host library [0-9a-f]{16} is not on this box \(\/var\/lib\/overlay-fleet\/lib\/[0-9a-f]{16}\): copy it again with: pulumi up --replace '/);
        expect(failed.stdout + failed.stderr).toContain(`--replace '${copyUrn}' --replace '${applyUrn}' (README: A wiped box)`);
        // The status command sees it, and names what to replace: the box's library copy and apply.
        const summary = JSON.parse(await project.pulumiOk(["stack", "output", "summary", "--json"])) as BoxSummary[];
        const key = fs.readFileSync(boxes[0].privateKeyPath, "utf8");
        expect(summary.map((box) => [box.name, boxStatus(box, key).library])).toEqual([["box1", false], ["box2", true]]);
        const recovery = libraryRecovery(await project.pulumiOk(["stack", "--show-urns"]), "box1");
        expect(recovery.map((arg) => arg.replace(/.*::/, ""))).toEqual(["--replace", "box1-host-copy", "--replace", "box1-apply"]);
        // A wiped disk lost the mounts and fstab lines too: the apply, run again after the new copy, restores them.
        await inBoxOk("box1", "for m in $(findmnt -rn -t overlay -o TARGET | grep ^/mnt/usbdisk/); do umount $m; done; sed -i '/x-overlay-fleet=/d' /etc/fstab");
        await project.upOk(recovery);
        expect(await libraries("box1")).toHaveLength(1);
        expect(await overlayMounts("box1")).toHaveLength(4);
        expect(await managedFstabLines("box1")).toHaveLength(4);
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same")).toEqual([]);
    });

    it("destroy removes the library once nothing on the box uses it", async () => {
        await project.destroyOk();
        for (const box of ["box1", "box2"]) {
            expect((await inBox(box, "test -e /var/lib/overlay-fleet/host || test -e /var/lib/overlay-fleet/lib")).status).not.toBe(0);
        }
    });
});
