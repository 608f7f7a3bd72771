/**
 * Upgrading a stack deployed by the previous overlay-fleet release (per-instance mount commands,
 * a separate library install and lower cache command) to one apply command per box: the first
 * `up` must leave every running instance alone (same mounts, fstab lines and containers), although
 * Pulumi runs the delete commands of the old per-instance resources it drops (mounts, containers).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLabImage, dockerIn, freshLab, inBoxOk, LabBox, labContainerConfig, managedFstabLines, scrubBox, TestProject } from "./engine";

/** The release before one apply command per box (the state it leaves is what users have). */
const previousRelease = "c1c8964";
const repo = path.join(__dirname, "..", "..");
/** The project files the program is made of (as TestProject copies them). */
const programFiles = ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts", "program", "components", "model", "host"];

const history = spawnSync("git", ["-C", repo, "cat-file", "-e", `${previousRelease}^{commit}`]).status === 0;

let boxes: LabBox[];
let project: TestProject;

/** Replaces the program files of the test project with those of `commit` (the stack stays). */
function checkout(commit: string | undefined): void {
    for (const entry of programFiles) fs.rmSync(path.join(project.dir, entry), { recursive: true, force: true });
    if (commit === undefined) {
        for (const entry of programFiles) fs.cpSync(path.join(repo, entry), path.join(project.dir, entry), { recursive: true });
        return;
    }
    const archive = spawnSync("git", ["-C", repo, "archive", commit, ...programFiles], { maxBuffer: 256 << 20 });
    expect(archive.status, String(archive.stderr)).toBe(0);
    const untar = spawnSync("tar", ["-x", "-C", project.dir], { input: archive.stdout });
    expect(untar.status, String(untar.stderr)).toBe(0);
}

/** Each overlay of the box as `<mount id> <mount point>`: a remount gets a new id. */
const mounts = async (box: string) =>
    (await inBoxOk(box, "awk '{ for (i = 7; $i != \"-\"; i++); if ($(i + 1) == \"overlay\" && $5 ~ /^\\/mnt\\/usbdisk\\//) print $1, $5 }' /proc/self/mountinfo | sort")).trim();
const containers = async (box: string) => (await dockerIn(box, "ps --filter label=overlay-fleet.instance --format '{{.Names}} {{.ID}}'")).trim().split("\n").sort();
const boxState = async (box: string) => ({ mounts: await mounts(box), fstab: await managedFstabLines(box), containers: await containers(box) });

beforeAll(async () => {
    if (!history) return;
    boxes = await freshLab();
    project = new TestProject("upgrade");
    await project.init(boxes[0].privateKeyPath);
    const archive = await buildLabImage();
    const { defaults, boxes: declared } = labContainerConfig(boxes, { box1: 3, box2: 2 }, {}, { imageArchive: archive });
    project.configure(defaults, declared);
});

afterAll(async () => {
    if (!history) return;
    await project?.destroyOk().catch(() => undefined);
    await project?.remove();
    for (const box of boxes ?? []) await scrubBox(box.name);
});

describe.skipIf(!history)(`upgrade from ${previousRelease} (needs the git history of the repo)`, () => {
    it("the first up with this version keeps every mount, fstab line and container; the next preview is empty", async () => {
        checkout(previousRelease);
        await project.upOk();
        const before = await Promise.all(["box1", "box2"].map(boxState));
        expect(before[0].mounts.split("\n"), before[0].mounts).toHaveLength(3);
        expect(before[0].containers).toHaveLength(3);

        checkout(undefined);
        const { steps } = await project.preview();
        const changed = steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`);
        for (const box of ["box1", "box2"]) {
            expect(changed).toContain(`create ${box}-apply`);
            expect(changed).toContain(`create ${box}-teardown`);
            expect(changed).toContain(`delete ${box}-host-install`);
            expect(changed).toContain(`delete ${box}-cache-lower`);
        }
        expect(changed.filter((c) => c.endsWith("-mount")).sort()).toEqual(
            ["box1-ttnode1", "box1-ttnode2", "box1-ttnode3", "box2-ttnode1", "box2-ttnode2"].map((n) => `delete ${n}-mount`),
        );
        // The containers move into one command per box; the engine preflight into the apply, the
        // image load into the containers command. The network and the image copy are not touched.
        expect(changed.filter((c) => c.includes("-container") || c.includes("-image") || c.includes("-macvlan")).sort()).toEqual(
            [
                ...["box1", "box2"].flatMap((box) => [`create ${box}-containers`, `create ${box}-containers-run`, `delete ${box}-macvlan-engine`, `delete ${box}-image-load`]),
                ...["box1-ttnode1", "box1-ttnode2", "box1-ttnode3", "box2-ttnode1", "box2-ttnode2"].map((n) => `delete ${n}-container`),
            ].sort(),
        );

        const up = await project.upOk();
        // The old mount and container commands' deletes ran, and kept what the box's plan holds.
        expect(up).toContain("ok unmount: kept, the plan of box box1 holds box1/ttnode1");
        expect(up).toContain("ok container: kept, the plan of box box1 holds box1/ttnode1");
        const after = await Promise.all(["box1", "box2"].map(boxState));
        expect(after).toEqual(before);
        const { steps: again } = await project.preview();
        expect(again.filter((s) => s.op !== "same")).toEqual([]);
    });
});
