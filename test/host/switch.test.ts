/**
 * The generation switch as a box runs it, black box: the library's `apply` (from a staged host
 * library) mounts instances on generation 1, the library's `fold` makes generation 2 with a
 * manifest per instance, and `apply` with the generation-2 records switches them (unmount, drop
 * what was folded, mount on the new lower). What an instance sees must not change through it,
 * however the switch is interrupted: killed, refused, failed, followed by a reboot.
 *
 * A reboot is what a box's boot does with its fstab: the overlays unmounted, then
 * `mount -a -T <fstab> -t overlay`.
 */
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { instanceRecord } from "../../components/overlayInstance";
import { foldManifest, foldManifestDir, InstancePlan } from "../../model/plan";
import { foldTool, goBuild, hostTestsUnavailable, HostNs, managedLines, Result, RunOptions, stagedHostLibrary, testInstancePlan, until, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();
const lib = stagedHostLibrary("of-switch-lib-");

interface Box {
    disk: string;
    lower: string;
    g2: string;
    fstab: string;
}

/** A box below the test dir: /var/lib private (the apply's plan records), a lower, an empty fstab. */
function setUpBox(ns: HostNs, disk = ns.p("disk")): Box {
    ns.ok("mount -t tmpfs -o size=4m,mode=0755 of-test-varlib /var/lib");
    const lower = path.join(disk, "static_cache");
    ns.ok('mkdir -p "$1/d/sub" && echo lower >"$1/keep.txt" && echo old >"$1/d/sub/old"', [lower]);
    const fstab = ns.p("fstab");
    fs.writeFileSync(fstab, "");
    return { disk, lower, g2: `${lower}.g2`, fstab };
}

/** Instance `name` of box1 on generation 1, or on generation 2 with its fold manifest. */
function plan(box: Box, name: string, index: number, generation: 1 | 2): InstancePlan {
    return generation === 1
        ? testInstancePlan({ disk: box.disk, box: "box1", name, index, lower: box.lower })
        : testInstancePlan({ disk: box.disk, box: "box1", name, index, lower: box.g2, foldManifest: foldManifest(box.lower, 2, name) });
}

function applySet(ns: HostNs, box: Box, plans: InstancePlan[], opts?: RunOptions): Result {
    return ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", box.fstab, "box1", "keep"], { ...opts, input: plans.map(instanceRecord).join("") });
}

function fold(ns: HostNs, box: Box, plans: InstancePlan[]): void {
    const r = ns.run("fold", [box.lower, "2", foldManifestDir(box.lower, 2), "lowest-index-wins", "-", ...plans.flatMap((p) => [p.name, p.upper])]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
}

/** The lowerdir of the overlay on `merged`, or undefined when nothing is mounted there. */
function mountedLower(ns: HostNs, merged: string): string | undefined {
    const m = ns.superOptions(merged);
    if (m === undefined) return undefined;
    expect(m.fstype).toBe("overlay");
    return /(?:^|,)lowerdir=([^,]*)/.exec(m.superOpts)?.[1];
}

/** The lowerdir of the instance's managed fstab line. */
function lineLower(box: Box, p: InstancePlan): string | undefined {
    const line = managedLines(fs.readFileSync(box.fstab, "utf8")).find((l) => l.includes(`x-overlay-fleet=${p.id}`));
    return line === undefined ? undefined : /(?:\s|,)lowerdir=([^,]*)/.exec(line)?.[1];
}

/** A reboot of the box, as far as its overlays go: all unmounted, then its fstab mounted. */
function reboot(ns: HostNs, box: Box, plans: InstancePlan[]): void {
    for (const p of plans) ns.ok('while mountpoint -q "$1"; do umount "$1"; done', [p.merged]);
    ns.ok('mount -a -T "$1" -t overlay', [box.fstab]);
}

function exists(ns: HostNs, p: string): boolean {
    return ns.sh('test -e "$1"', [p]).status === 0;
}

/**
 * Instance ttnode1 mounted on generation 1 made new.txt, new2.txt and kept.txt, was folded into
 * generation 2, then deleted new.txt and new2.txt (only in its upper: no whiteouts). After its
 * switch it must see neither (the drop gives them whiteouts) and must see kept.txt (the drop removes it from its
 * upper: only generation 2 has it then).
 */
function foldedThenDeleted(ns: HostNs, box: Box) {
    const g1 = plan(box, "ttnode1", 1, 1);
    const g2 = plan(box, "ttnode1", 1, 2);
    const r = applySet(ns, box, [g1]);
    expect(r.stderr).toBe("");
    ns.ok('echo new >"$1/new.txt" && echo new >"$1/new2.txt" && echo kept >"$1/kept.txt"', [g1.merged]);
    fold(ns, box, [g1]);
    ns.ok('rm "$1/new.txt" "$1/new2.txt"', [g1.merged]);
    return { g1, g2 };
}

/** After the switch completed: generation 2 mounted and in the line, new.txt still deleted. */
function expectSwitched(ns: HostNs, box: Box, g2: InstancePlan): void {
    expect(mountedLower(ns, g2.merged)).toBe(box.g2);
    expect(lineLower(box, g2)).toBe(box.g2);
    expect(exists(ns, `${g2.merged}/new.txt`)).toBe(false);
    expect(exists(ns, `${g2.merged}/new2.txt`)).toBe(false);
    expect(ns.ok('cat "$1"', [`${g2.merged}/keep.txt`])).toBe("lower\n");
    expect(ns.ok('cat "$1"', [`${g2.merged}/kept.txt`])).toBe("kept\n");
    // and it stays so through a reboot and another apply
    reboot(ns, box, [g2]);
    expect(applySet(ns, box, [g2]).status).toBe(0);
    expect(exists(ns, `${g2.merged}/new.txt`)).toBe(false);
}

/**
 * Starts `apply set` with a fold helper whose `drop` blocks (it never returns until killed),
 * kills the apply's process group there and resolves. `before`: the apply is killed between the
 * unmount and the drop; `after`: after the drop did all its work on the upper, but before its
 * done-marker (the helper removes the marker the drop wrote).
 */
async function applyKilledInDrop(ns: HostNs, box: Box, plans: InstancePlan[], when: "before" | "after"): Promise<ChildProcess> {
    const started = ns.p("drop-started");
    const fifo = ns.p("drop-blocks");
    const wrapper = ns.p("foldtool-blocking");
    ns.ok('mkfifo "$1"', [fifo]);
    const drop = when === "before" ? "" : `'${foldTool()}' "$@" || exit 1; rm -f "$2.dropped"; `;
    fs.writeFileSync(wrapper, `#!/bin/sh\nif [ "$1" = drop ]; then ${drop}: >'${started}'; read _ <'${fifo}'; fi\nexec '${foldTool()}' "$@"\n`, { mode: 0o755 });
    const child = spawn("nsenter", ["--target", String(ns.pid), "--mount", "--", "sh", "-c", 'cd "$1" && shift && exec sh apply "$@"', "of-test", lib(), "set", box.fstab, "box1", "keep"], {
        detached: true, // its own process group: kill -9 reaches everything it forked
        stdio: ["pipe", "ignore", "ignore"],
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C", LC_ALL: "C", LIBMOUNT_UTAB: ns.p(".utab"), OVERLAY_FLEET_FOLDTOOL: wrapper },
    });
    child.stdin!.end(plans.map(instanceRecord).join(""));
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    await until(() => fs.existsSync(started) || child.exitCode !== null, "the drop to start");
    expect(fs.existsSync(started)).toBe(true);
    process.kill(-child.pid!, "SIGKILL");
    await exited;
    return child;
}

describe.skipIf(unavailable)("generation switch: a pending drop is completed before the new lower is mounted (issue 24.1)", () => {
    it("killed during the drop, the same apply again: the deleted file stays deleted", async () => {
        await withHostNs(async (ns) => {
            const box = setUpBox(ns);
            const { g2 } = foldedThenDeleted(ns, box);
            await applyKilledInDrop(ns, box, [g2], "before");
            // killed before the drop: nothing mounted, neither line nor merged dir (nothing brings it back meanwhile)
            expect(mountedLower(ns, g2.merged)).toBeUndefined();
            expect(lineLower(box, g2)).toBeUndefined();
            expect(exists(ns, g2.merged)).toBe(false);
            const r = applySet(ns, box, [g2]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expectSwitched(ns, box, g2);
        });
    }, 120_000);

    for (const when of ["before", "after"] as const) {
        it(`killed ${when === "before" ? "before the drop" : "after the drop's work, before its done-marker"}, then a reboot: nothing comes back half-dropped, the next apply switches`, async () => {
            await withHostNs(async (ns) => {
                const box = setUpBox(ns);
                const { g2 } = foldedThenDeleted(ns, box);
                await applyKilledInDrop(ns, box, [g2], when);
                reboot(ns, box, [g2]);
                // no generation is mounted on an upper the drop may have changed: neither line nor merged dir
                expect(mountedLower(ns, g2.merged)).toBeUndefined();
                expect(exists(ns, g2.merged)).toBe(false);
                const r = applySet(ns, box, [g2]);
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
                expectSwitched(ns, box, g2);
            });
        }, 120_000);
    }

    it("a drop that fails for a full upper (ENOSPC): left unmounted without a line; with space again the apply switches", async () => {
        await withHostNs(async (ns) => {
            const box = setUpBox(ns);
            // the instance's directories on a filesystem of few inodes
            const dir = path.join(box.disk, "ttnode1");
            ns.ok('mkdir -p "$1" && mount -t tmpfs -o size=4m,nr_inodes=64 of-test-inodes "$1"', [dir]);
            const { g2 } = foldedThenDeleted(ns, box);
            ns.ok('i=0; while true >"$1/fill$i" 2>/dev/null; do i=$((i + 1)); done', [dir]);
            const full = applySet(ns, box, [g2]);
            expect(full.status).toBe(1);
            // (the merged dir removed before the drop frees one inode: the second whiteout finds none)
            expect(full.stderr).toMatch(/cannot create a whiteout at .*new2?\.txt.*no space left on device/i);
            expect(mountedLower(ns, g2.merged)).toBeUndefined();
            expect(lineLower(box, g2)).toBeUndefined();
            expect(exists(ns, g2.merged)).toBe(false);
            ns.ok('rm -f "$1"/fill*', [dir]);
            const r = applySet(ns, box, [g2]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expectSwitched(ns, box, g2);
        });
    }, 120_000);

    it("a remount refused as busy, then a reboot: the line still names generation 1, the next apply switches", async () => {
        await withHostNs(async (ns) => {
            const box = setUpBox(ns);
            const { g2 } = foldedThenDeleted(ns, box);
            const holder = ns.spawnBackground('cd "$1" && exec tail -f /dev/null', [g2.merged]);
            await until(() => {
                try {
                    return fs.readlinkSync(`/proc/${holder.pid}/cwd`) === g2.merged;
                } catch {
                    return false;
                }
            }, "the holder to use the merged dir");
            const busy = applySet(ns, box, [g2]);
            expect(busy.status).toBe(1);
            expect(busy.stderr).toMatch(/busy/);
            expect(mountedLower(ns, g2.merged)).toBe(box.lower);
            expect(lineLower(box, g2)).toBe(box.lower);
            holder.stop();
            reboot(ns, box, [g2]);
            expect(mountedLower(ns, g2.merged)).toBe(box.lower);
            const r = applySet(ns, box, [g2]);
            expect(r.status).toBe(0);
            expectSwitched(ns, box, g2);
        });
    }, 120_000);
});

describe.skipIf(unavailable)("fold: below an opaque directory nothing of the lower shows, at any depth (issue 24.2)", () => {
    it("a directory made again inside a deleted-and-made-again one does not bring the lower's old content back", async () => {
        await withHostNs(async (ns) => {
            const box = setUpBox(ns);
            const g1 = [plan(box, "ttnode1", 1, 1), plan(box, "ttnode2", 2, 1)];
            const g2 = [plan(box, "ttnode1", 1, 2), plan(box, "ttnode2", 2, 2)];
            expect(applySet(ns, box, g1).status).toBe(0);
            ns.ok('cd "$1" && rm -r d && mkdir -p d/sub && echo n >d/sub/new', [g1[0].merged]);
            fold(ns, box, g1);
            expect(exists(ns, `${box.g2}/d/sub/old`)).toBe(false);
            expect(ns.ok('cat "$1"', [`${box.g2}/d/sub/new`])).toBe("n\n");
            const r = applySet(ns, box, g2);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            for (const p of g2) {
                expect(mountedLower(ns, p.merged)).toBe(box.g2);
                expect(ns.ok('cd "$1" && find d | sort', [p.merged])).toBe("d\nd/sub\nd/sub/new\n");
            }
        });
    }, 120_000);
});

/** A process in the namespace that writes `file` only through a shared writable mapping. */
function mmapWriter(ns: HostNs, file: string) {
    const bin = goBuild(path.join(__dirname, "mmapwrite"), "mmapwrite");
    const child = spawn("nsenter", ["--target", String(ns.pid), "--mount", "--", bin, file, "4096"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => (out += d.toString()));
    child.stderr!.on("data", (d) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    let oks = 0;
    return {
        async write(text: string): Promise<void> {
            child.stdin!.write(`${text}\n`);
            oks++;
            await until(() => out.split("ok\n").length - 1 >= oks || child.exitCode !== null, `mmapwrite to write ${text}`);
            expect(err).toBe("");
        },
        async close(): Promise<void> {
            child.stdin!.end();
            expect(await exited).toBe(0);
        },
    };
}

describe.skipIf(unavailable)("generation switch: a file changed through a shared mapping after the fold keeps its change (issue 24.3)", () => {
    for (const upperFs of ["tmpfs", "ext4"] as const) {
        it(`on ${upperFs === "tmpfs" ? "a tmpfs upper" : "an ext4 upper on another filesystem than the lower"}`, async () => {
            await withHostNs(async (ns) => {
                const disk = ns.p("disk");
                ns.mountImage("disk", ["mkfs.ext4", "-q", "-F", "-O", "^has_journal"], disk, 32);
                const box = setUpBox(ns, disk);
                const dir = path.join(disk, "ttnode1");
                if (upperFs === "tmpfs") ns.ok('mkdir -p "$1" && mount -t tmpfs -o size=8m of-test-upper "$1"', [dir]);
                else ns.mountImage("upper", ["mkfs.ext4", "-q", "-F", "-O", "^has_journal"], dir, 16);
                const g1 = plan(box, "ttnode1", 1, 1);
                const g2 = plan(box, "ttnode1", 1, 2);
                expect(applySet(ns, box, [g1]).status).toBe(0);
                const writer = mmapWriter(ns, `${g1.merged}/mapped.dat`);
                await writer.write("version1");
                fold(ns, box, [g1]);
                expect(ns.ok('head -c 8 "$1"', [`${box.g2}/mapped.dat`])).toBe("version1");
                await writer.write("version2");
                await writer.close();
                const r = applySet(ns, box, [g2]);
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
                expect(mountedLower(ns, g2.merged)).toBe(box.g2);
                expect(ns.ok('head -c 8 "$1"', [`${g2.merged}/mapped.dat`])).toBe("version2");
            });
        }, 120_000);
    }
});
