/**
 * The real engine end to end: `pulumi preview/up/destroy` through the CLI against the lab's
 * SSH boxes, cache-only (containers: test/e2e/containers.test.ts).
 */
import type { ChildProcess } from "child_process";
import * as fs from "fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BoxSummary } from "../../components/box";
import { boxStatus, claimedByOther } from "../../ops/status";
import {
    freshLab,
    inBox,
    inBoxOk,
    lab,
    LabBox,
    labConfig,
    machineOverlayTargets,
    managedFstabLines,
    overlayMounts,
    scrubBox,
    TestProject,
} from "./engine";

let boxes: LabBox[];
let project: TestProject;
let foreignFstab: Record<string, string>;
let lowerListing: Record<string, string>;

const mountsOf = (n: number) => Array.from({ length: n }, (_, i) => `/mnt/usbdisk/ttnode${i + 1}/mnts`).sort();
/** Listing and content digest of the lower, minus the instance-private part (moved aside by design). */
const lowerTree = async (box: string) =>
    await inBoxOk(box, "cd /mnt/usbdisk/static_cache && find . -path ./.yfnode -prune -o -printf '%p %s %m\\n' | sort && find . -path ./.yfnode -prune -o -type f -print | sort | xargs cat | md5sum");
const foreignLines = async (box: string) => await inBoxOk(box, "grep -v 'x-overlay-fleet=' /etc/fstab || true");

/** The engine events of `pulumi up --json` this test reads. */
interface EngineEvent {
    diagnosticEvent?: { urn?: string; message: string; severity: string; ephemeral?: boolean };
    resOutputsEvent?: { metadata: { op: string; urn: string } };
    summaryEvent?: { result: string };
}

/**
 * The events of a `pulumi up --json` child as they come (this drains its stdout). waitFor resolves
 * with the first event that matches, and fails when the run ends first or after `ms` (a guard
 * against a hang, not a wait); exit resolves with the exit code once all the output is read.
 */
function engineEvents(child: ChildProcess) {
    const events: EngineEvent[] = [];
    const lines: string[] = [];
    const listeners = new Set<() => void>();
    let ended = false;
    let partial = "";
    const take = (text: string) => {
        for (const line of text.split("\n").filter(Boolean)) {
            lines.push(line.length > 600 ? `${line.slice(0, 600)}...` : line);
            try {
                events.push(JSON.parse(line) as EngineEvent);
            } catch {
                // not an event (kept in lines, for the failure message)
            }
        }
        for (const listener of [...listeners]) listener();
    };
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
        const text = partial + chunk;
        const cut = text.lastIndexOf("\n") + 1;
        partial = text.slice(cut);
        take(text.slice(0, cut));
    });
    const exit = new Promise<number | null>((resolve) =>
        child.once("close", (code) => {
            ended = true;
            take(partial);
            resolve(code);
        }),
    );
    const tail = () => lines.slice(-30).join("\n");
    const waitFor = (match: (e: EngineEvent) => boolean, what: string, ms: number) =>
        new Promise<EngineEvent>((resolve, reject) => {
            let timer: NodeJS.Timeout | undefined = undefined;
            const settle = (done: () => void) => {
                clearTimeout(timer);
                listeners.delete(check);
                done();
            };
            const check = () => {
                const found = events.find(match);
                if (found) settle(() => resolve(found));
                else if (ended) settle(() => reject(new Error(`the run ended before ${what}:\n${tail()}`)));
            };
            timer = setTimeout(() => settle(() => reject(new Error(`no ${what} within ${ms / 1000} s:\n${tail()}`))), ms);
            listeners.add(check);
            check();
        });
    return { events, exit, tail, waitFor };
}

function configure(counts: Record<string, number>, perBox: Record<string, unknown> = {}) {
    const { defaults, boxes: declared } = labConfig(boxes, counts, perBox);
    project.configure(defaults, declared);
}

beforeAll(async () => {
    boxes = await freshLab();
    foreignFstab = Object.fromEntries(await Promise.all(boxes.map(async (b) => [b.name, await foreignLines(b.name)])));
    lowerListing = Object.fromEntries(await Promise.all(boxes.map(async (b) => [b.name, await lowerTree(b.name)])));
    project = new TestProject("e2e");
    await project.init(boxes[0].privateKeyPath);
});

afterAll(async () => {
    await project?.remove();
    for (const box of boxes ?? []) {
        await scrubBox(box.name);
    }
});

describe("pulumi against the lab", () => {
    it("bad config fails preview naming the key, and nothing on the boxes changes", async () => {
        configure({ box1: 3, box2: 2 }, { box1: { instanceRoot: "/mnt/usbdisk/a,b" } });
        const result = await project.pulumi(["preview"]);
        expect(result.status).not.toBe(0);
        expect(result.stdout + result.stderr).toContain('overlay-fleet:boxes.box1.instanceRoot: "/mnt/usbdisk/a,b" contains a character');
        configure({ box1: 3, box2: 2 }, { box2: { instancse: 4 } });
        const typo = await project.pulumi(["preview"]);
        expect(typo.stdout + typo.stderr).toContain('overlay-fleet:boxes.box2.instancse: unknown key "instancse" (did you mean "instances"?)');
        const up = await project.up();
        expect(up.status).not.toBe(0);
        for (const box of boxes) {
            expect(await overlayMounts(box.name)).toEqual([]);
            expect(await managedFstabLines(box.name)).toEqual([]);
            expect(await inBoxOk(box.name, "ls /mnt/usbdisk")).not.toContain("ttnode");
        }
    });

    it("preview on an empty stack shows the creates and changes nothing on any box", async () => {
        configure({ box1: 3, box2: 2 });
        const { steps, result } = await project.preview();
        expect(result.status, result.stderr).toBe(0);
        const creates = steps.filter((s) => s.op === "create").map((s) => s.name);
        for (const name of ["box1-ttnode1", "box1-ttnode3", "box2-ttnode2", "box1-cache", "box1-host-copy", "box1-teardown", "box1-apply", "box2-apply"]) {
            expect(creates).toContain(name);
        }
        expect(steps.filter((s) => !["create", "same"].includes(s.op))).toEqual([]);
        for (const box of boxes) {
            expect(await overlayMounts(box.name)).toEqual([]);
            expect(await managedFstabLines(box.name)).toEqual([]);
        }
    });

    it("up mounts every instance in its own box only, one fstab line each, writes stay private", async () => {
        await project.upOk();
        expect(await overlayMounts("box1")).toEqual(mountsOf(3));
        expect(await overlayMounts("box2")).toEqual(mountsOf(2));
        expect((await machineOverlayTargets()).filter((t) => t.includes("ttnode"))).toEqual([]);
        const lines = await managedFstabLines("box1");
        expect(lines).toHaveLength(3);
        for (const i of [1, 2, 3]) {
            expect(lines.filter((l) => l.includes(`x-overlay-fleet=box1/ttnode${i}`))).toHaveLength(1);
        }
        expect(await managedFstabLines("box2")).toHaveLength(2);
        // Shared lower visible everywhere; a write through one merged dir is private to it.
        await inBoxOk("box1", "echo hello > /mnt/usbdisk/ttnode1/mnts/only-in-1 && test -d /mnt/usbdisk/ttnode2/mnts/cache/00");
        expect((await inBox("box1", "test -e /mnt/usbdisk/ttnode2/mnts/only-in-1")).status).not.toBe(0);
        expect((await inBox("box1", "test -e /mnt/usbdisk/static_cache/only-in-1")).status).not.toBe(0);
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/ttnode1/upper/only-in-1")).toBe("hello\n");
        // The instance-private identity was moved out of the shared lower.
        expect((await inBox("box1", "test -e /mnt/usbdisk/static_cache/.yfnode/config")).status).not.toBe(0);
        expect(await foreignLines("box1")).toBe(foreignFstab.box1);
    });

    it("a second up is a no-op", async () => {
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same")).toEqual([]);
    });

    it("reboot drill: after unmounting everything, mount -a from the box's fstab restores every instance", async () => {
        await inBoxOk("box1", "for m in $(findmnt -rn -t overlay -o TARGET | grep ^/mnt/usbdisk/); do umount $m; done");
        expect(await overlayMounts("box1")).toEqual([]);
        await inBoxOk("box1", "mount -a");
        expect(await overlayMounts("box1")).toEqual(mountsOf(3));
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/ttnode1/mnts/only-in-1")).toBe("hello\n");
        const options = await inBoxOk("box1", "findmnt -rn -o OPTIONS /mnt/usbdisk/ttnode2/mnts");
        expect(options).toContain("lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/ttnode2/upper,workdir=/mnt/usbdisk/ttnode2/work");
        // The kernel hides options equal to its defaults; the fstab line pins them explicitly.
        const line = (await managedFstabLines("box1")).find((l) => l.includes("x-overlay-fleet=box1/ttnode2"))!;
        for (const option of ["index=off", "nfs_export=off", "redirect_dir=off", "metacopy=off", "nofail", "x-systemd.before=docker.service"]) {
            expect(line.split(/\s+/)[3].split(",")).toContain(option);
        }
    });

    it("scale 3 -> 5: preview creates only the two new instances, and box1's apply gets their two records", async () => {
        configure({ box1: 5, box2: 2 });
        const { steps } = await project.preview();
        const changed = steps.filter((s) => s.op !== "same");
        expect(changed.map((s) => `${s.op} ${s.name}`).sort()).toEqual(["create box1-ttnode4", "create box1-ttnode5", "update box1-apply"]);
        const diff = await project.pulumiOk(["preview", "--diff"]);
        expect(diff).toMatch(/\+ *box1\/ttnode4\t/);
        expect(diff).toMatch(/\+ *box1\/ttnode5\t/);
        expect(diff).not.toMatch(/[-+] *box1\/ttnode[123]\t/);
        await project.upOk();
        expect(await overlayMounts("box1")).toEqual(mountsOf(5));
        expect(await managedFstabLines("box1")).toHaveLength(5);
    });

    it("a changed mount option on one instance touches only that instance", async () => {
        const before = await inBoxOk("box1", "findmnt -rn -o TARGET,OPTIONS -t overlay | grep ^/mnt/usbdisk/ | sort");
        configure({ box1: 5, box2: 2 }, { box1: { overrides: { "2": { mountOptions: ["uuid=off"] } } } });
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`).sort()).toEqual(["update box1-apply"]);
        await project.upOk();
        const after = await inBoxOk("box1", "findmnt -rn -o TARGET,OPTIONS -t overlay | grep ^/mnt/usbdisk/ | sort");
        const changed = after.split("\n").filter((line) => !before.split("\n").includes(line));
        expect(changed, `before:\n${before}\nafter:\n${after}`).toHaveLength(1);
        expect(changed[0]).toMatch(/^\/mnt\/usbdisk\/ttnode2\/mnts .*uuid=off/);
        expect((await managedFstabLines("box1")).filter((l) => l.includes("uuid=off"))).toHaveLength(1);
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/ttnode1/mnts/only-in-1")).toBe("hello\n");
    });

    it("scale 5 -> 2: instances 3-5 unmounted, fstab lines gone, their upper data kept", async () => {
        await inBoxOk("box1", "echo keep-me > /mnt/usbdisk/ttnode4/mnts/data");
        configure({ box1: 2, box2: 2 }, { box1: { overrides: { "2": { mountOptions: ["uuid=off"] } } } });
        await project.upOk();
        expect(await overlayMounts("box1")).toEqual(mountsOf(2));
        expect((await managedFstabLines("box1")).map((l) => /x-overlay-fleet=(\S+)/.exec(l)![1]).sort()).toEqual(["box1/ttnode1", "box1/ttnode2"]);
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/ttnode4/upper/data")).toBe("keep-me\n");
        expect((await inBox("box1", "test -d /mnt/usbdisk/ttnode4/mnts")).status).not.toBe(0);
    });

    it("an up killed half way, then run again, converges with nothing duplicated", async () => {
        configure({ box1: 6, box2: 4 });
        // Half way for sure: box2's apply waits for the box lock, held here until the CLI is
        // killed, so the run cannot end before (box1's apply is done in well under a second).
        const holder = inBox("box2", "mkdir -p -m 0700 /run/overlay-fleet && exec flock /run/overlay-fleet/box.lock sleep 1171");
        const child = project.upInBackground();
        child.stdout!.resume();
        // Kill the CLI once the new instances have started to appear on the boxes.
        const deadline = Date.now() + 120_000;
        while (Date.now() < deadline && (await managedFstabLines("box1")).length < 3) {
            await new Promise((r) => setTimeout(r, 100));
        }
        expect(child.exitCode).toBe(null);
        child.kill("SIGKILL");
        await new Promise((r) => child.once("exit", r));
        await inBoxOk("box2", "pkill -f 'sleep 117[1]'");
        await holder;
        // A killed CLI leaves the file backend's lock behind; the user clears it, then re-runs.
        expect((await project.up()).stderr).toContain("locked");
        await project.pulumiOk(["cancel", "--yes"]);
        await project.upOk();
        expect(await overlayMounts("box1")).toEqual(mountsOf(6));
        expect(await overlayMounts("box2")).toEqual(mountsOf(4));
        expect(await managedFstabLines("box1")).toHaveLength(6);
        expect(await managedFstabLines("box2")).toHaveLength(4);
        // The upper data kept at scale-down comes back with the instance.
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/ttnode4/mnts/data")).toBe("keep-me\n");
    });

    it("an sshd down when the run connects is retried, and the run converges", async () => {
        configure({ box1: 8, box2: 4 });
        await lab("stop-sshd", "box1");
        const child = project.upInBackground(["--json"]);
        const run = engineEvents(child);
        try {
            // The event: a command of box1 dialled it, was refused (its sshd is down until started
            // below) and reports that it dials again. Only then does sshd come back.
            const retry = await run.waitFor(
                (e) => /^Dial \d+\/\d+ failed: retrying/.test(e.diagnosticEvent?.message ?? "") && /::box1-[^:]+$/.test(e.diagnosticEvent?.urn ?? ""),
                "a refused dial of box1 reported as retried",
                120_000,
            );
            expect(child.exitCode).toBe(null);
            await lab("start-sshd", "box1");
            // This one run succeeds, with no second up: the retried command connected and completed.
            expect(await run.exit, run.tail()).toBe(0);
            expect(run.events.find((e) => e.summaryEvent)?.summaryEvent?.result).toBe("succeeded");
            expect(run.events.some((e) => e.resOutputsEvent?.metadata.urn === retry.diagnosticEvent!.urn), run.tail()).toBe(true);
        } finally {
            if (child.exitCode === null && child.signalCode === null) {
                child.kill("SIGKILL");
                await run.exit;
            }
            await lab("start-sshd", "box1"); // a no-op when it runs
        }
        expect(await overlayMounts("box1")).toEqual(mountsOf(8));
        expect(await managedFstabLines("box1")).toHaveLength(8);
    });

    it("an explicit replace of a box's apply re-runs it and leaves every instance mounted", async () => {
        const ids = async () => await inBoxOk("box1", "awk '$5 ~ /^\\/mnt\\/usbdisk\\/ttnode/ { print $1, $5 }' /proc/self/mountinfo | sort");
        const before = await ids();
        const urn = (await project.pulumiOk(["stack", "--show-urns"])).split("\n").map((l) => /URN: (\S+)/.exec(l)?.[1]).find((u) => u?.endsWith("::box1-apply"))!;
        await project.upOk(["--replace", urn]);
        expect(await ids()).toBe(before);
        expect(await managedFstabLines("box1")).toHaveLength(8);
    });

    it("a second stack that declares box1 is refused there naming the first, and its destroy leaves box1 alone", async () => {
        const mounts = async () => await inBoxOk("box1", "awk '$5 ~ /^\\/mnt\\/usbdisk\\/ttnode/ { print $1, $5 }' /proc/self/mountinfo | sort");
        const owned = async () => await inBoxOk("box1", "readlink /var/lib/overlay-fleet/host && cat /var/lib/overlay-fleet/claim");
        const [before, lines, library] = [await mounts(), await managedFstabLines("box1"), await owned()];
        expect(library).toContain("organization/overlay-fleet/e2e box1\n");
        const other = new TestProject("e2e-other");
        try {
            await other.init(boxes[0].privateKeyPath);
            // A copied stack file: the same box, fewer instances.
            const { defaults, boxes: declared } = labConfig(boxes, { box1: 1 });
            other.configure(defaults, declared);
            const up = await other.up();
            expect(up.status).not.toBe(0);
            expect(up.stdout + up.stderr).toContain(
                "overlay-fleet: this machine is box 'box1' of stack 'organization/overlay-fleet/e2e' (its claim: /var/lib/overlay-fleet/claim), not box 'box1' of stack 'organization/overlay-fleet/e2e-other': one machine belongs to one box of one stack.",
            );
            expect(await mounts()).toBe(before);
            expect(await managedFstabLines("box1")).toEqual(lines);
            expect(await owned()).toBe(library);
            // npm run status of the first stack sees its own claim; of the other's box it would report the machine as another's.
            const summary = ((await project.outputs()).summary as BoxSummary[]).find((b) => b.name === "box1")!;
            expect(summary.claim).toBe("organization/overlay-fleet/e2e box1");
            const status = boxStatus(summary, fs.readFileSync(boxes[0].privateKeyPath, "utf8"));
            expect(status.claim).toBe(summary.claim);
            expect(claimedByOther(summary, status)).toBeUndefined();
            expect(claimedByOther({ claim: "organization/overlay-fleet/e2e-other box1" }, status)).toBe(summary.claim);
            // Its destroy (its teardown names its stack) takes nothing of box1 down, its library neither.
            await other.destroyOk();
            expect(await mounts()).toBe(before);
            expect(await managedFstabLines("box1")).toEqual(lines);
            expect(await owned()).toBe(library);
        } finally {
            await other.remove();
        }
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same")).toEqual([]);
    });

    it("destroy removes mounts and managed lines, keeps foreign fstab lines and the lower data", async () => {
        await project.destroyOk();
        for (const box of boxes) {
            expect(await overlayMounts(box.name)).toEqual([]);
            expect(await managedFstabLines(box.name)).toEqual([]);
            expect(await foreignLines(box.name)).toBe(foreignFstab[box.name]);
            // The lower is intact except the identity moved aside, which is kept in the stash.
            expect(await inBoxOk(box.name, "ls -A /mnt/usbdisk/.overlay-fleet/private/static_cache/.yfnode")).toContain("config");
            // The machine is no stack's any more: another may deploy it.
            expect((await inBox(box.name, "test -e /var/lib/overlay-fleet/claim")).status).not.toBe(0);
        }
        for (const box of boxes) {
            expect(await lowerTree(box.name)).toBe(lowerListing[box.name]);
        }
    });
});
