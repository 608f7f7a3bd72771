/**
 * Upgrading a stack deployed by an earlier overlay-fleet landing to this version: c1c8964 (per-instance
 * mount and container commands, a separate library install and lower cache command), c18e76a
 * (one apply command per box, per-instance container commands) and 522d020 (one containers command
 * per box); all three made the macvlan network with the docker provider. After the README's step
 * (ops/forget-docker-network.sh), the first `up` must leave every running instance alone (same
 * mounts, fstab lines, network and containers), although Pulumi runs the delete commands of the
 * old per-instance resources it drops (mounts, containers).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLabImage, dockerIn, freshLab, inBoxOk, LabBox, labContainerConfig, managedFstabLines, run, scrubBox, TestProject } from "./engine";

/**
 * Earlier landings (the state each leaves is what users have): before one apply per box, before
 * one containers command per box, before the containers command made the network.
 */
const previousReleases = ["c1c8964", "c18e76a", "522d020"];
const repo = path.join(__dirname, "..", "..");
/** The project files the program is made of (as TestProject copies them). */
const programFiles = ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts", "program", "components", "model", "host"];

const history = previousReleases.every((commit) => spawnSync("git", ["-C", repo, "cat-file", "-e", `${commit}^{commit}`]).status === 0);

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
const network = async (box: string) => (await dockerIn(box, "network inspect --format '{{.Id}} {{.Driver}} {{.Options.parent}}' macnet")).trim();
const boxState = async (box: string) => ({ mounts: await mounts(box), fstab: await managedFstabLines(box), containers: await containers(box), network: await network(box) });

let archive = "";
beforeAll(async () => {
    if (!history) return;
    boxes = await freshLab();
    archive = await buildLabImage();
});

afterAll(async () => {
    if (!history) return;
    for (const box of boxes ?? []) await scrubBox(box.name);
});

describe.skipIf(!history).each(previousReleases)("upgrade from %s (needs the git history of the repo)", (previousRelease) => {
    beforeAll(async () => {
        // Each release starts from boxes without containers or networks (a failed run before may leave them).
        for (const box of ["box1", "box2"]) {
            await scrubBox(box);
            await inBoxOk(box, "docker ps -aq | xargs -r docker rm -f >/dev/null; docker network ls -q --filter driver=macvlan | xargs -r docker network rm >/dev/null");
        }
        project = new TestProject(`upgrade-${previousRelease}`);
        await project.init(boxes[0].privateKeyPath);
        const { defaults, boxes: declared } = labContainerConfig(boxes, { box1: 3, box2: 2 }, {}, { imageArchive: archive });
        project.configure(defaults, declared);
    });

    afterAll(async () => {
        await project?.destroyOk().catch(() => undefined);
        await project?.remove();
    });

    it("the first up with this version keeps every mount, fstab line, container and the network; the next preview is empty", async () => {
        checkout(previousRelease);
        await project.upOk();
        const before = await Promise.all(["box1", "box2"].map(boxState));
        expect(before[0].mounts.split("\n"), before[0].mounts).toHaveLength(3);
        expect(before[0].containers).toHaveLength(3);

        checkout(undefined);
        // The README's step: the docker provider and its network leave the state, not the boxes.
        const forget = await run("sh", [path.join(repo, "ops", "forget-docker-network.sh"), "--stack", project.stack, "--non-interactive"], { cwd: project.dir, env: project.env });
        expect(forget.status, forget.stderr).toBe(0);
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.urn.includes("docker:"))).toEqual([]);
        const changed = steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`);
        const instances = ["box1-ttnode1", "box1-ttnode2", "box1-ttnode3", "box2-ttnode1", "box2-ttnode2"];
        if (previousRelease === "c1c8964") {
            for (const box of ["box1", "box2"]) {
                expect(changed).toContain(`create ${box}-apply`);
                expect(changed).toContain(`create ${box}-teardown`);
                expect(changed).toContain(`delete ${box}-host-install`);
                expect(changed).toContain(`delete ${box}-cache-lower`);
            }
            expect(changed.filter((c) => c.endsWith("-mount")).sort()).toEqual(instances.map((n) => `delete ${n}-mount`));
        } else if (previousRelease === "c18e76a") {
            for (const box of ["box1", "box2"]) {
                expect(changed).toContain(`update ${box}-apply`);
                expect(changed).toContain(`update ${box}-teardown`);
            }
        } else {
            // A new library; the containers command left the state with the network it depended on;
            // the teardown's text now names its stack (it runs nothing on an update).
            expect(changed.filter((c) => !c.endsWith("-host-copy")).sort()).toEqual(
                ["box1", "box2"].flatMap((box) => [`update ${box}-apply`, `create ${box}-containers-run`, `update ${box}-teardown`]).sort(),
            );
        }
        // The containers move into one command per box; the engine preflight into the apply, the
        // image load into the containers command, the image copy under it (aliased: not copied
        // again). The old container commands left the state with the network they depended on
        // (their deletes would have kept every container anyway): nothing deletes a container.
        if (previousRelease !== "522d020") expect(changed.filter((c) => c.includes("-container") || c.includes("-image") || c.includes("-macvlan")).sort()).toEqual(
            [
                ...["box1", "box2"].flatMap((box) => [
                    `create ${box}-containers`,
                    `create ${box}-containers-run`,
                    `delete ${box}-macvlan-engine`,
                    `delete ${box}-image`,
                    `delete ${box}-image-load`,
                ]),
            ].sort(),
        );

        const up = await project.upOk();
        // The old per-instance commands' deletes ran, and kept what the box's plan holds; the
        // containers command found the network as the docker provider made it.
        if (previousRelease === "c1c8964") expect(up).toContain("ok unmount: kept, the plan of box box1 holds box1/ttnode1");
        expect(up).toContain("ok network: macnet as planned (macvlan on of-b1, 198.18.1.0/24 via 198.18.1.1)");
        const after = await Promise.all(["box1", "box2"].map(boxState));
        expect(after).toEqual(before);
        // Deployed before claims existed: claimed by this up (host/claim.sh).
        for (const box of ["box1", "box2"]) {
            expect(await inBoxOk(box, "cat /var/lib/overlay-fleet/claim")).toBe(`organization/overlay-fleet/${project.stack} ${box}\n`);
        }
        const { steps: again } = await project.preview();
        expect(again.filter((s) => s.op !== "same")).toEqual([]);
    });
});
