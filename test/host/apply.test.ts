/**
 * host/apply.sh as a box runs it: from its installed host library (staged here with
 * stageHostLibrary, no fold helper needed), `cd <lib> && sh apply set|remove <fstab> <box> <mode>`
 * with one instanceRecord per instance on stdin.
 *
 * apply records the box's plan in OF_PLAN_DIR (/var/lib/overlay-fleet/plans, a fact of the
 * library, not an argument): every test first covers /var/lib with a tmpfs inside its private
 * mount namespace, so nothing is ever written below the machine's /var/lib.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { beforeAll, describe, expect, it } from "vitest";
import { instanceRecord } from "../../components/overlayInstance";
import { boxPlanDir } from "../../model/constants";
import { InstancePlan } from "../../model/plan";
import { dockerStub, fstabOptions, hostTestsUnavailable, HostNs, instancePaths, managedLines, PINNED, Result, RunOptions, stagedHostLibrary, testInstancePlan, until, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();

/** Foreign fstab content: comments, a blank line, tabs and trailing blanks (kept byte for byte). */
const FOREIGN =
    "# /etc/fstab: static file system information.\n" +
    "UUID=0a1b2c3d-1111-2222-3333-444455556666 /               ext4    errors=remount-ro 0       1\n" +
    "\n" +
    "/dev/sdb1\t/mnt/usbdisk\text4\tdefaults,nofail\t0\t2   \n";

/** The staged host library (absolute), shared by the file's tests. */
const lib = stagedHostLibrary("of-apply-lib-");
beforeAll(() => {
    if (unavailable) return;
    for (const name of ["apply", "mount", "unmount", "fstab"]) {
        expect(fs.existsSync(path.join(lib(), name))).toBe(true);
    }
});

/**
 * Plan records on the machine (read only, never created) that name a path of the test dir: none
 * may, the records of a test stay in its namespace's tmpfs. (Other things on the machine, a lab,
 * may keep records there of their own.)
 */
function machineRecordsNaming(dir: string): string[] {
    if (!fs.existsSync(boxPlanDir)) return [];
    return fs.readdirSync(boxPlanDir).filter((f) => {
        try {
            return fs.readFileSync(path.join(boxPlanDir, f), "utf8").includes(dir);
        } catch {
            return false;
        }
    });
}

/** A test on a fresh box (setUpBox) in its own namespace; afterwards the machine's records are checked. */
async function withBox(fn: (ns: HostNs, box: { disk: string; lower: string; fstab: string }) => void | Promise<void>): Promise<void> {
    let dir = "";
    await withHostNs(async (ns) => {
        dir = ns.dir;
        await fn(ns, setUpBox(ns));
        expect(machineRecordsNaming(dir)).toEqual([]);
    });
    expect(machineRecordsNaming(dir)).toEqual([]);
}

/** A box's disk below the test dir: a lower with content, an fstab with foreign lines, /var/lib private. */
function setUpBox(ns: HostNs): { disk: string; lower: string; fstab: string } {
    ns.ok("mount -t tmpfs -o size=4m,mode=0755 of-test-varlib /var/lib");
    expect(ns.superOptions("/var/lib")?.fstype).toBe("tmpfs");
    const disk = ns.p("disk");
    const lower = path.join(disk, "static_cache");
    fs.mkdirSync(path.join(lower, "dir"), { recursive: true });
    fs.writeFileSync(path.join(lower, "a.txt"), "lower-a\n");
    fs.writeFileSync(path.join(lower, "dir", "b.txt"), "lower-b\n");
    const fstab = ns.p("fstab");
    fs.writeFileSync(fstab, FOREIGN);
    return { disk, lower, fstab };
}

/** An instance plan as model/plan.ts builds one (cache-only: no container, generation 1). */
function plan(ns: HostNs, box: string, name: string, index: number): InstancePlan {
    const disk = ns.p("disk");
    return testInstancePlan({ disk, box, name, index, lower: path.join(disk, "static_cache"), dirName: box === "box1" ? name : `${box}-${name}` });
}

function fstabLine(p: InstancePlan): string {
    return `overlay ${p.merged} overlay ${p.fstabOptions},x-overlay-fleet=${p.id} 0 0`;
}

/** `sh apply <action> <fstab> <box> <mode>` in the library, the records (or raw text) on stdin. */
function apply(ns: HostNs, action: "set" | "remove", fstab: string, records: InstancePlan[] | string, box = "box1", mode = "keep"): Result {
    const input = typeof records === "string" ? records : records.map(instanceRecord).join("");
    return ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), action, fstab, box, mode], { input });
}

/** Another command of the library, called as an older overlay-fleet's per-instance commands are. */
function libCall(ns: HostNs, name: string, args: string[], opts?: RunOptions): Result {
    return ns.sh('cd "$1" && shift && sh "$@"', [lib(), name, ...args], opts);
}

/** Mount points of the overlays below the test dir, sorted. */
function overlays(ns: HostNs): string[] {
    return ns
        .mountinfo()
        .split("\n")
        .filter((l) => l.split(" - ")[1]?.startsWith("overlay ") && l.split(" ")[4].startsWith(ns.dir + "/"))
        .map((l) => l.split(" ")[4])
        .sort();
}

/** Mount id of the overlay on `merged` (fails the test when there is none). */
function mountId(ns: HostNs, merged: string): string {
    const s = ns.superOptions(merged);
    expect(s?.fstype).toBe("overlay");
    return s!.id;
}

function planRecord(ns: HostNs, box = "box1"): string | undefined {
    const r = ns.sh('cat "$1"', [path.join(boxPlanDir, box)]);
    return r.status === 0 ? r.stdout : undefined;
}

function recordOf(...plans: InstancePlan[]): string {
    return plans.map((p) => `${p.id} ${p.containerName ?? "-"} ${p.merged}\n`).join("");
}

/** The fstab without its managed lines: the foreign content, byte for byte. */
function foreignPart(content: string): string {
    return content
        .split("\n")
        .filter((l) => !managedLines(l).length)
        .join("\n");
}

describe.skipIf(unavailable)("host apply", () => {
    it("set mounts every instance with its fstab line and records the plan; a re-run changes nothing", async () => {
        await withBox((ns, { fstab }) => {
            const ps = [1, 2, 3].map((n) => plan(ns, "box1", `ttnode${n}`, n));

            const r = apply(ns, "set", fstab, ps);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(overlays(ns)).toEqual(ps.map((p) => p.merged).sort());
            // Each new mount checked against the mount table (in one read after the batch) and said, in plan order.
            expect(r.stdout.match(/^ok mount .*$/gm)).toEqual(ps.map((p) => `ok mount ${p.merged}: mounted`));
            for (const p of ps) {
                const s = ns.superOptions(p.merged)!;
                expect(s.fstype).toBe("overlay");
                expect(s.superOpts).toContain(`lowerdir=${p.lower}`);
                expect(s.superOpts).toContain(`upperdir=${p.upper}`);
                expect(s.superOpts).toContain(`workdir=${p.work}`);
                expect(ns.ok('cat "$1/a.txt"', [p.merged])).toBe("lower-a\n");
            }
            // The instances are separate overlays: a write lands in its own upper only.
            ns.ok('echo one > "$1/new.txt"', [ps[0].merged]);
            expect(fs.readFileSync(path.join(ps[0].upper, "new.txt"), "utf8")).toBe("one\n");
            expect(fs.existsSync(path.join(ps[1].upper, "new.txt"))).toBe(false);

            const content = fs.readFileSync(fstab, "utf8");
            expect(managedLines(content)).toEqual(ps.map(fstabLine));
            expect(content.startsWith(FOREIGN)).toBe(true);
            expect(foreignPart(content)).toBe(foreignPart(FOREIGN));
            expect(planRecord(ns)).toBe(recordOf(...ps));

            // Again: every step is a no-op, nothing is remounted or rewritten.
            const mi = ns.mountinfo();
            const stat = fs.statSync(fstab);
            const again = apply(ns, "set", fstab, ps);
            expect(again.stderr).toBe("");
            expect(again.status).toBe(0);
            expect(again.stdout).not.toMatch(/: (mounted|remounted|added|replaced|removed)\b/);
            expect(ns.mountinfo()).toBe(mi);
            expect(fs.readFileSync(fstab, "utf8")).toBe(content);
            const after = fs.statSync(fstab);
            expect(after.ino).toBe(stat.ino);
            expect(after.mtimeMs).toBe(stat.mtimeMs);
            expect(planRecord(ns)).toBe(recordOf(...ps));
            expect(ns.ok('cat "$1/new.txt"', [ps[0].merged])).toBe("one\n");

            // The last record without its newline is still a record: instance 3 is not dropped.
            const unterminated = apply(ns, "set", fstab, ps.map(instanceRecord).join("").replace(/\n$/, ""));
            expect(unterminated.stderr).toBe("");
            expect(unterminated.status).toBe(0);
            expect(ns.mountinfo()).toBe(mi);
            expect(fs.readFileSync(fstab, "utf8")).toBe(content);
            expect(planRecord(ns)).toBe(recordOf(...ps));

            // Other pinned options for instance 2: it alone is remounted, and says why.
            const changed = ps.map((p, i) => (i === 1 ? { ...p, mountOptions: `${PINNED},noatime` } : p));
            const remount = apply(ns, "set", fstab, changed);
            expect(remount.stderr).toBe("");
            expect(remount.status).toBe(0);
            expect(remount.stdout.match(/^ok mount .*: (mounted|remounted .*)$/gm)).toEqual([`ok mount ${ps[1].merged}: remounted (noatime not in effect)`]);
            expect(ns.ok('findmnt -n -o OPTIONS "$1"', [ps[1].merged]).split(",")).toContain("noatime");
        });
    });

    it("set takes down an instance the plan dropped: keep leaves its upper, purge deletes upper and work", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2, p3] = [1, 2, 3].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2, p3]).status).toBe(0);
            ns.ok('echo two > "$1/data.txt" && echo one > "$2/data.txt"', [p2.merged, p1.merged]);
            const id1 = mountId(ns, p1.merged);
            const id3 = mountId(ns, p3.merged);

            let r = apply(ns, "set", fstab, [p1, p3]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(ns.mountsAt(p2.merged)).toEqual([]);
            expect(fs.existsSync(p2.merged)).toBe(false);
            expect(fs.readFileSync(path.join(p2.upper, "data.txt"), "utf8")).toBe("two\n");
            expect(fs.existsSync(p2.work)).toBe(true);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([fstabLine(p1), fstabLine(p3)]);
            expect(fs.readFileSync(fstab, "utf8").startsWith(FOREIGN)).toBe(true);
            expect(mountId(ns, p1.merged)).toBe(id1);
            expect(mountId(ns, p3.merged)).toBe(id3);
            expect(planRecord(ns)).toBe(recordOf(p1, p3));

            // Back in the plan: its kept upper shows again.
            expect(apply(ns, "set", fstab, [p1, p2, p3]).status).toBe(0);
            expect(ns.ok('cat "$1/data.txt"', [p2.merged])).toBe("two\n");
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([fstabLine(p1), fstabLine(p3), fstabLine(p2)]);

            // purge: upper and work go too; the others' data stays.
            r = apply(ns, "set", fstab, [p1, p3], "box1", "purge");
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(ns.mountsAt(p2.merged)).toEqual([]);
            expect(fs.existsSync(p2.upper)).toBe(false);
            expect(fs.existsSync(p2.work)).toBe(false);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([fstabLine(p1), fstabLine(p3)]);
            expect(mountId(ns, p1.merged)).toBe(id1);
            expect(mountId(ns, p3.merged)).toBe(id3);
            expect(fs.readFileSync(path.join(p1.upper, "data.txt"), "utf8")).toBe("one\n");
            expect(fs.existsSync(p3.upper)).toBe(true);
            expect(planRecord(ns)).toBe(recordOf(p1, p3));
        });
    });

    it("an instance that moved (a new instanceRoot) has its old overlay taken down, its data kept even with purge", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            ns.ok('echo old > "$1/data.txt"', [p1.merged]);
            const id2 = mountId(ns, p2.merged);
            // The same id under another root.
            const moved = { ...plan(ns, "box1", "ttnode1", 1), ...instancePaths(ns.p("disk", "r2"), "ttnode1"), dir: ns.p("disk", "r2", "ttnode1") };
            moved.fstabOptions = fstabOptions(moved.lower, moved.upper, moved.work, ns.p("disk"));
            const r = apply(ns, "set", fstab, [moved, p2], "box1", "purge");
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(overlays(ns)).toEqual([moved.merged, p2.merged].sort());
            expect(fs.readFileSync(path.join(p1.upper, "data.txt"), "utf8")).toBe("old\n");
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([fstabLine(p2), fstabLine(moved)]);
            expect(mountId(ns, p2.merged)).toBe(id2);
        });
    });

    it("an instance taken down has its running container stopped first (docker CLI stub)", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            const docker = dockerStub(ns, ['ps) printf "c0ffee2 box1/ttnode2\\nc0ffee9 box9/ttnode2\\n" ;;', 'stop) echo "$2" ;;']);
            const r = ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "keep"], {
                input: instanceRecord(p1),
                path: docker.path,
            });
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            const calls = fs.readFileSync(docker.log, "utf8").trim().split("\n");
            // The running managed containers asked once; only the instance's own is stopped.
            expect(calls).toEqual(["info", 'ps --filter label=overlay-fleet.instance --format {{.ID}} {{.Label "overlay-fleet.instance"}}', "stop c0ffee2"]);
            expect(overlays(ns)).toEqual([p1.merged]);
        });
    });

    it("an engine that cannot list its containers: no instance is taken down, saying why (docker CLI stub)", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            const lines = managedLines(fs.readFileSync(fstab, "utf8"));
            const docker = dockerStub(ns, ['ps) echo "Error response from daemon: i/o timeout" >&2; exit 1 ;;']);
            const r = ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "purge"], { input: instanceRecord(p1), path: docker.path });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("cannot list the box's running containers (docker ps: Error response from daemon: i/o timeout)");
            expect(r.stderr).toContain("instance box1/ttnode2 not taken down: its container may still run");
            // Still mounted, its line and its upper kept.
            expect(overlays(ns)).toEqual([p1.merged, p2.merged].sort());
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual(lines);
            expect(fs.existsSync(p2.upper)).toBe(true);
        });
    });

    it("an engine that does not answer docker info: no instance is taken down or purged (docker CLI stub, issue 24.5)", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            const lines = managedLines(fs.readFileSync(fstab, "utf8"));
            // The engine's socket is there (a hung or crashed daemon leaves it), its CLI gets no answer.
            ns.ok(": >/run/docker.sock");
            const docker = dockerStub(ns, ['ps) echo "c0ffee2 box1/ttnode2" ;;'], 'echo "Cannot connect to the Docker daemon: context deadline exceeded" >&2; exit 1');
            const r = ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "purge"], { input: instanceRecord(p1), path: docker.path });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("the box's docker engine does not answer (docker info): no instance is taken down while one may still run");
            expect(r.stderr).toContain("instance box1/ttnode2 not taken down: its container may still run");
            expect(overlays(ns)).toEqual([p1.merged, p2.merged].sort());
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual(lines);
            expect(fs.existsSync(p2.upper)).toBe(true);
            // Without an engine at all (no socket), the same apply takes it down.
            ns.ok("rm /run/docker.sock");
            const gone = ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "purge"], { input: instanceRecord(p1), path: docker.path });
            expect(gone.stderr).toBe("");
            expect(gone.status).toBe(0);
            expect(overlays(ns)).toEqual([p1.merged]);
            expect(fs.existsSync(p2.upper)).toBe(false);
        });
    });

    it("a docker ps that hangs is given up after OF_DOCKER_TIMEOUT: no instance is taken down, the box lock is free again (issue 24.9)", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            const docker = dockerStub(ns, ["ps) exec sleep 6048 ;;"]);
            const r = ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "purge"], {
                input: instanceRecord(p1),
                path: docker.path,
                env: { OF_DOCKER_TIMEOUT: "1" },
            });
            expect(r.status).toBe(1);
            expect(r.stderr, r.stderr).toContain("docker ps --filter: no answer from the engine within 1s (OF_DOCKER_TIMEOUT), given up");
            expect(r.stderr).toContain("instance box1/ttnode2 not taken down: its container may still run");
            expect(overlays(ns)).toEqual([p1.merged, p2.merged].sort());
            expect(fs.existsSync(p2.upper)).toBe(true);
            expect(ns.sh("pgrep -fx 'sleep 6048'").status).toBe(1);
            expect(ns.sh("flock -n /run/overlay-fleet/box.lock true").status).toBe(0);
        });
    });

    it("a full TMPDIR fails the apply before anything changes, never a success that did not converge (issue 24.7)", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            const lines = managedLines(fs.readFileSync(fstab, "utf8"));
            const record = ns.ok('cat "$1"', [`${boxPlanDir}/box1`]);
            const tmp = ns.p("tmp");
            ns.ok('mkdir "$1" && mount -t tmpfs -o size=64k of-test-tmp "$1" && { cat /dev/zero >"$1/fill" 2>/dev/null || :; }', [tmp]);
            const r = ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "keep"], { input: instanceRecord(p1), env: { TMPDIR: tmp } });
            expect(r.status).not.toBe(0);
            expect(r.stderr).toMatch(/overlay-fleet: cannot write .*: nothing taken down/);
            expect(overlays(ns)).toEqual([p1.merged, p2.merged].sort());
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual(lines);
            expect(ns.ok('cat "$1"', [`${boxPlanDir}/box1`])).toBe(record);
        });
    });

    it("temp files of applies killed with -9 are removed by the next apply (issue 24.14)", async () => {
        await withBox(async (ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            const tmp = ns.p("tmp");
            fs.mkdirSync(tmp);
            const env = { TMPDIR: tmp };
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            expect(fs.readdirSync(tmp)).toEqual([]);
            // The box lock held: each apply waits for it with its temp files made; killed there.
            const ready = ns.p("lock-held");
            const holder = ns.spawnBackground('mkdir -p -m 0700 /run/overlay-fleet && exec flock -o /run/overlay-fleet/box.lock sh -c \': >"$1"; exec tail -f /dev/null\' x "$1"', [ready]);
            await until(() => fs.existsSync(ready), "the lock holder");
            for (let k = 0; k < 3; k++) {
                const before = fs.readdirSync(tmp).length;
                const child = spawn("nsenter", ["--target", String(ns.pid), "--mount", "--", "sh", "-c", 'cd "$1" && shift && exec sh apply "$@"', "x", lib(), "set", fstab, "box1", "keep"], {
                    detached: true,
                    stdio: ["pipe", "ignore", "ignore"],
                    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", TMPDIR: tmp, LIBMOUNT_UTAB: ns.p(".utab") },
                });
                child.stdin!.end([p1, p2].map(instanceRecord).join(""));
                const exited = new Promise((resolve) => child.on("exit", resolve));
                await until(() => fs.readdirSync(tmp).length > before, "the apply's temp file");
                process.kill(-child.pid!, "SIGKILL");
                await exited;
            }
            expect(fs.readdirSync(tmp)).toHaveLength(3);
            holder.stop();
            const r = ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "keep"], { input: [p1, p2].map(instanceRecord).join(""), env });
            expect(r.status).toBe(0);
            expect(fs.readdirSync(tmp)).toEqual([]);
        });
    });

    it("the box's locks live in a directory of root alone: another user cannot take them, a symlink or an open directory is refused (issue 24.6)", async () => {
        await withBox((ns, { fstab }) => {
            const p1 = plan(ns, "box1", "ttnode1", 1);
            expect(apply(ns, "set", fstab, [p1]).status).toBe(0);
            expect(ns.ok("stat -c '%u %a' /run/overlay-fleet")).toBe("0 700\n");
            // nobody can neither hold the box lock nor make a file there
            const nobody = ns.sh("setpriv --reuid=nobody --regid=nogroup --clear-groups flock -n /run/overlay-fleet/box.lock true");
            expect(nobody.status).not.toBe(0);
            expect(nobody.stderr).toMatch(/Permission denied/);
            // a lock directory someone else prepared: a symlink (to a file root would create), a world-writable one
            const victim = ns.p("victim");
            for (const prepare of [`rm -rf /run/overlay-fleet && mkdir -p ${victim} && ln -s ${victim} /run/overlay-fleet`, "rm -rf /run/overlay-fleet && mkdir -m 1777 /run/overlay-fleet"]) {
                ns.ok(prepare);
                const r = apply(ns, "set", fstab, [p1]);
                expect(r.status).toBe(1);
                expect(r.stderr).toContain("overlay-fleet: the lock directory '/run/overlay-fleet' must be a directory of root alone");
                expect(fs.readdirSync(victim)).toEqual([]);
            }
        });
    });

    it("lines of instances taken down go in one edit, an id with two lines once; a line without upperdir is named", async () => {
        await withBox((ns, { fstab }) => {
            const ps = [1, 2, 3].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, ps).status).toBe(0);
            // A second line of ttnode3 (an edit by hand), and a managed line that names no upperdir.
            fs.appendFileSync(fstab, `${fstabLine(ps[2])}\n` + `overlay ${ns.p("disk")}/odd/mnts overlay lowerdir=${ps[0].lower},nofail,x-overlay-fleet=box1/odd 0 0\n`);
            const r = apply(ns, "set", fstab, [ps[0]]);
            expect(r.stderr).toBe("overlay-fleet: managed fstab line of 'box1/odd' names no upperdir or workdir; left alone\noverlay-fleet: 1 of the box's instances failed (see above); the others are done\n");
            expect(r.status).toBe(1);
            expect(r.stdout).toContain("ok fstab remove box1/ttnode2 box1/ttnode3: written to");
            expect(overlays(ns)).toEqual([ps[0].merged]);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([fstabLine(ps[0]), expect.stringContaining("x-overlay-fleet=box1/odd")]);
        });
    });

    it("an instance that fails does not stop the others: they are mounted, the status is 1", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2, p3] = [1, 2, 3].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            // Something wrote into instance 2's bare mountpoint: of-mount refuses to cover it.
            fs.mkdirSync(p2.merged, { recursive: true });
            fs.writeFileSync(path.join(p2.merged, "stray.txt"), "stray\n");

            const r = apply(ns, "set", fstab, [p1, p2, p3]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`merged dir '${p2.merged}' is not mounted but not empty`);
            expect(r.stderr).toContain("1 of the box's instances failed");
            expect(overlays(ns)).toEqual([p1.merged, p3.merged].sort());
            expect(ns.mountsAt(p2.merged)).toEqual([]);
            expect(fs.readFileSync(path.join(p2.merged, "stray.txt"), "utf8")).toBe("stray\n");
            const lines = managedLines(fs.readFileSync(fstab, "utf8"));
            expect(lines).toContain(fstabLine(p1));
            expect(lines).toContain(fstabLine(p3));
            // The plan is recorded as planned, the failed instance included.
            expect(planRecord(ns)).toBe(recordOf(p1, p2, p3));

            // Cleared, the next set mounts it.
            fs.rmSync(path.join(p2.merged, "stray.txt"));
            expect(apply(ns, "set", fstab, [p1, p2, p3]).status).toBe(0);
            expect(overlays(ns)).toEqual([p1.merged, p2.merged, p3.merged].sort());

            // A dropped instance that is busy keeps its mount and its line; the others are done.
            const id3 = mountId(ns, p3.merged);
            const busy = ns.spawnBackground('cd "$1" && exec sleep 600', [p3.merged]);
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1', [p3.merged]);
            const p4 = plan(ns, "box1", "ttnode4", 4);
            let again = apply(ns, "set", fstab, [p1, p2, p4]);
            expect(again.status).toBe(1);
            expect(again.stderr).toContain(`cannot unmount the overlay at '${p3.merged}', it is busy`);
            expect(again.stderr).toContain("1 of the box's instances failed");
            expect(mountId(ns, p3.merged)).toBe(id3);
            expect(mountId(ns, p4.merged)).toBeDefined();
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([p1, p2, p3, p4].map(fstabLine));
            expect(planRecord(ns)).toBe(recordOf(p1, p2, p4));
            busy.stop();
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1', [p3.merged]);
            again = apply(ns, "set", fstab, [p1, p2, p4]);
            expect(again.stderr).toBe("");
            expect(again.status).toBe(0);
            expect(overlays(ns)).toEqual([p1.merged, p2.merged, p4.merged].sort());
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([p1, p2, p4].map(fstabLine));
        });
    });

    it("new mounts are made together by one mount -a; one the kernel refuses or whose dirs cannot be made fails alone, named", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2, p3, p4] = [1, 2, 3, 4].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            // Every mount(8) the apply starts, logged, then run.
            const bin = ns.p("bin");
            const log = ns.p("mount.log");
            fs.mkdirSync(bin, { recursive: true });
            fs.writeFileSync(path.join(bin, "mount"), `#!/bin/sh\necho "$*" >> '${log}'\nexec /usr/bin/mount "$@"\n`, { mode: 0o755 });
            const withLog = { path: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` };
            const calls = () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : []);
            const run = (plans: InstancePlan[]) => {
                fs.rmSync(log, { force: true });
                const input = plans.map(instanceRecord).join("");
                return ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "keep"], { ...withLog, input });
            };

            // Instance 2's upper on a filesystem of its own: the kernel refuses an upper and a work
            // dir on two mounts. Instance 3's directory is read-only: its dirs cannot be made.
            fs.mkdirSync(p2.upper, { recursive: true });
            ns.ok('mount -t tmpfs tmpfs "$1"', [p2.upper]);
            fs.mkdirSync(p3.dir, { recursive: true });
            ns.ok('mount --bind -o ro "$1" "$1"', [p3.dir]);
            const r = run([p1, p2, p3, p4]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`cannot create the directories '${p3.upper}', '${p3.work}', '${p3.merged}'`);
            expect(r.stderr).toMatch(new RegExp(`mounting the overlay on '${p2.merged}' with options '[^']*' failed: .*kernel: .*(workdir and upperdir must reside under the same mount|upper fs|same mount)`));
            expect(r.stderr).toContain("2 of the box's instances failed");
            expect(r.stdout).toContain(`ok mount ${p1.merged}: mounted`);
            expect(r.stdout).toContain(`ok mount ${p4.merged}: mounted`);
            expect(overlays(ns)).toEqual([p1.merged, p4.merged].sort());
            // One mount -a of the instances whose dirs were made, then instance 2 alone for its error.
            const c = calls();
            expect(c).toHaveLength(2);
            expect(c[0]).toMatch(/^-a -T /);
            expect(c[1]).toBe(`-t overlay overlay -o lowerdir=${p2.lower},upperdir=${p2.upper},workdir=${p2.work},${PINNED} ${p2.merged}`);

            // Mended, the next set mounts both, again in one mount -a, and leaves the others alone.
            ns.ok('umount "$1" && umount "$2"', [p2.upper, p3.dir]);
            const again = run([p1, p2, p3, p4]);
            expect(again.stderr).toBe("");
            expect(again.status).toBe(0);
            expect(again.stdout).toContain(`ok mount ${p1.merged}: unchanged`);
            expect(again.stdout).toContain(`ok mount ${p3.merged}: mounted`);
            expect(overlays(ns)).toEqual([p1.merged, p2.merged, p3.merged, p4.merged].sort());
            expect(calls()).toHaveLength(1);
            expect(calls()[0]).toMatch(/^-a -T /);
            expect(ns.ok('cat "$1"', [path.join(p2.merged, "a.txt")])).toBe("lower-a\n");
        });
    });

    it("an overlay mounted on a new instance's merged dir by something else during the apply is named, not taken for the instance's", async () => {
        await withBox((ns, { fstab, lower }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            // mount(8) as the apply runs it, but just before its mount -a something else mounts an
            // overlay of its own on instance 2's merged dir (after the apply's one read of the table).
            const bin = ns.p("bin");
            const other = ns.p("other");
            fs.mkdirSync(bin, { recursive: true });
            fs.writeFileSync(
                path.join(bin, "mount"),
                [
                    "#!/bin/sh",
                    `if [ "$1" = -a ]; then mkdir -p '${other}/u' '${other}/w' '${p2.merged}' && /usr/bin/mount -t overlay overlay -o 'lowerdir=${lower},upperdir=${other}/u,workdir=${other}/w' '${p2.merged}' || exit 99; fi`,
                    'exec /usr/bin/mount "$@"',
                    "",
                ].join("\n"),
                { mode: 0o755 },
            );
            const input = [p1, p2].map(instanceRecord).join("");
            const r = ns.sh('cd "$1" && shift && sh apply "$@"', [lib(), "set", fstab, "box1", "keep"], { path: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, input });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`merged dir '${p2.merged}' was mounted while this apply ran (by something else: upperdir is ${other}/u, want ${p2.upper}`);
            expect(r.stderr).toContain("1 of the box's instances failed");
            expect(r.stdout).toContain(`ok mount ${p1.merged}: mounted`);
            expect(r.stdout).not.toContain(`ok mount ${p2.merged}`);
            // Left as it is: nothing mounted over it.
            expect(ns.mountsAt(p2.merged)).toHaveLength(1);
        });
    });

    it("an instance whose overlay has another filesystem mounted over it is refused, naming it; the others are mounted or kept", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2, p3] = [1, 2, 3].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            const [id1, id2] = [mountId(ns, p1.merged), mountId(ns, p2.merged)];
            // By hand: a tmpfs over instance 2's overlay. The apply reads the top-most mount there.
            ns.ok('mount -t tmpfs tmpfs "$1"', [p2.merged]);
            const r = apply(ns, "set", fstab, [p1, p2, p3]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`merged dir '${p2.merged}' is already a mountpoint of tmpfs`);
            expect(r.stderr).toContain("1 of the box's instances failed");
            expect(r.stdout).toContain(`ok mount ${p1.merged}: unchanged`);
            expect(r.stdout).toContain(`ok mount ${p3.merged}: mounted`);
            expect(mountId(ns, p1.merged)).toBe(id1);
            expect(ns.mountsAt(p2.merged).map((m) => m.split(" - ")[1].split(" ")[0])).toEqual(["overlay", "tmpfs"]);
            // Taken away, the next set finds instance 2's overlay as it was.
            ns.ok('umount "$1"', [p2.merged]);
            const again = apply(ns, "set", fstab, [p1, p2, p3]);
            expect(again.status).toBe(0);
            expect(again.stdout).toContain(`ok mount ${p2.merged}: unchanged`);
            expect(mountId(ns, p2.merged)).toBe(id2);
        });
    });

    it("an instance whose upper an overlay outside the plan uses is refused; the others are mounted", async () => {
        await withBox((ns, { fstab, lower }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            // By hand, not by overlay-fleet: an overlay writing into instance 2's upper.
            const foreign = ns.p("foreign");
            ns.ok('mkdir -p "$2" "$3/work" "$3/mnt" && mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3/work" "$3/mnt"', [lower, p2.upper, foreign]);
            const r = apply(ns, "set", fstab, [p1, p2]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`upper dir '${p2.upper}'`);
            expect(r.stderr).toContain(`refusing to mount '${p2.merged}'`);
            expect(overlays(ns)).toEqual([p1.merged, path.join(foreign, "mnt")].sort());
        });
    });

    it("compares each instance with the overlays outside the plan that touch it, however: as of-mount alone refuses it, and mounts the others", async () => {
        await withBox((ns, { fstab, lower, disk }) => {
            const [p1, p2, p3, p4, p5, p6, p7] = [1, 2, 3, 4, 5, 6, 7].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            // Instance 6 has a lower of its own (the others share theirs).
            const lower6 = path.join(disk, "lower6");
            fs.mkdirSync(lower6);
            Object.assign(p6, { lower: lower6, fstabOptions: fstabOptions(lower6, p6.upper, p6.work, disk) });
            // Overlays by hand, not by overlay-fleet, each with its upper, work and mount point in a
            // dir of its own unless said.
            const overlay = (name: string, lowerdir: string, upperdir?: string, workdir?: string) => {
                const d = ns.p(name);
                const [u, w] = [upperdir ?? path.join(d, "upper"), workdir ?? path.join(d, "work")];
                ns.ok('mkdir -p "$2/mnt" "$3" "$4" && mount -t overlay overlay -o "lowerdir=$1,upperdir=$3,workdir=$4" "$2/mnt"', [lowerdir, d, u, w]);
                return path.join(d, "mnt");
            };
            // Apart from all: it shares the instances' lower, as a lower.
            const apart = overlay("f1", lower);
            // Instance 2's upper, by its path.
            overlay("f2", lower, p2.upper);
            // Instance 3's dir is a symlink to an overlay's upper: its own dirs, not there yet, inside.
            overlay("f3", lower);
            fs.symlinkSync(path.join(ns.p("f3"), "upper"), p3.dir);
            // Instance 4's upper, by another path: the disk bound elsewhere.
            const bound = ns.p("bound");
            fs.mkdirSync(p4.upper, { recursive: true });
            ns.ok('mkdir -p "$2" && mount --bind "$1" "$2"', [disk, bound]);
            overlay("f4", lower, path.join(bound, "ttnode4", "upper"), path.join(bound, "f4work"));
            // A generation of a lower named after instance 5's dir: its family holds instance 5's upper.
            fs.mkdirSync(`${p5.dir}.g2`, { recursive: true });
            overlay("f5", `${p5.dir}.g2`);
            // An upper inside instance 6's lower.
            overlay("f6", lower, path.join(lower6, "inner"));
            // Instance 7's dirs in generation 2 of a lower at generation 1 (no suffix).
            const gen1 = path.join(disk, "gen1");
            fs.mkdirSync(gen1);
            overlay("f7", gen1);
            const dir7 = `${gen1}.g2`;
            Object.assign(p7, { upper: path.join(dir7, "upper"), work: path.join(dir7, "work"), merged: path.join(dir7, "mnts") });
            Object.assign(p7, { fstabOptions: fstabOptions(lower, p7.upper, p7.work, disk) });

            const r = apply(ns, "set", fstab, [p1, p2, p3, p4, p5, p6, p7]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("6 of the box's instances failed");
            expect(r.stdout).toContain(`ok mount ${p1.merged}: mounted`);
            expect(overlays(ns).filter((m) => m.startsWith(disk + "/"))).toEqual([p1.merged]);
            expect(overlays(ns)).toContain(apart);
            const refusals = r.stderr.split("\n").filter((l) => l.includes("refusing to mount"));
            expect(refusals).toHaveLength(6);
            // Each refused as of-mount alone (one instance, every overlay compared) refuses it.
            for (const p of [p2, p3, p4, p5, p6, p7]) {
                const alone = libCall(ns, "mount", [p.lower, p.upper, p.work, p.merged, PINNED, "-", "-"]);
                expect(alone.status, alone.stderr).toBe(1);
                const line = alone.stderr.trim();
                expect(line).toContain(`refusing to mount '${p.merged}'`);
                expect(refusals).toContain(line);
            }
            expect(refusals.find((l) => l.includes(p6.merged))).toContain(`lower dir '${lower6}' contains the upperdir`);
            expect(refusals.find((l) => l.includes(p5.merged))).toContain("lowerdir generation");
            expect(refusals.find((l) => l.includes(p7.merged))).toContain(`is inside the lowerdir generation of another overlay`);
        });
    });

    it("refuses a record of another box or a malformed record (exit 2) before it touches anything", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            const other = plan(ns, "box2", "x", 1);

            let r = apply(ns, "set", fstab, [p1, other]);
            expect(r.status).toBe(2);
            expect(r.stderr).toContain("instance 'box2/x' is not on box 'box1'");
            expect(overlays(ns)).toEqual([]);
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN);
            expect(planRecord(ns)).toBeUndefined();

            // With a box already deployed: the refused plan drops nothing either.
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            const mi = ns.mountinfo();
            const content = fs.readFileSync(fstab, "utf8");
            for (const records of [
                instanceRecord(p1) + instanceRecord(other),
                instanceRecord(p1) + instanceRecord(p2).replace(/\t-\n$/, "\n"), // 8 fields
                instanceRecord(p1).replace(/\n$/, "\textra\n"), // 10 fields
                instanceRecord(p1) + instanceRecord(p2).replace(/\t-\t-\n$/, "\t\t-\n"), // an empty field
                // issue 24.12: an id that smuggles another instance's "id=merged" into the plan, a
                // merged dir written with a trailing slash, a relative upper
                instanceRecord({ ...p1, id: `box1/zz box1/ttnode2=${p2.merged} ` }),
                instanceRecord(p1) + instanceRecord({ ...p2, merged: `${p2.merged}/` }),
                instanceRecord(p1) + instanceRecord({ ...p2, upper: "ttnode2/upper" }),
            ]) {
                r = apply(ns, "set", fstab, records);
                expect(r.status).toBe(2);
                if (records.includes("box2/x")) expect(r.stderr).toContain("instance 'box2/x' is not on box 'box1'");
                else if (records.includes("box1/zz ")) expect(r.stderr).toContain("instance id 'box1/zz box1/ttnode2=");
                else if (records.includes("/mnts/\t")) expect(r.stderr).toMatch(/merged dir of box1\/ttnode2 must be written without repeated or trailing slashes, got '.*\/mnts\/'/);
                else if (records.includes("\tttnode2/upper")) expect(r.stderr).toContain("upper dir of box1/ttnode2 must be an absolute path, got 'ttnode2/upper'");
                else expect(r.stderr).toMatch(/plan record must have 9 tab-separated fields, none empty: box1\/ttnode/);
                expect(r.stdout).toBe("");
                expect(ns.mountinfo()).toBe(mi);
                expect(fs.readFileSync(fstab, "utf8")).toBe(content);
                expect(planRecord(ns)).toBe(recordOf(p1, p2));
            }
            r = apply(ns, "remove", fstab, [p1, other]);
            expect(r.status).toBe(2);
            expect(ns.mountinfo()).toBe(mi);
            expect(planRecord(ns)).toBe(recordOf(p1, p2));
        });
    });

    it("legacy per-instance delete commands keep what the plan holds; with OF_APPLY they take it down", async () => {
        await withBox((ns, { fstab }) => {
            const [p1, p2] = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            ns.ok('echo one > "$1/data.txt"', [p1.merged]);
            const id1 = mountId(ns, p1.merged);
            const content = fs.readFileSync(fstab, "utf8");

            for (const mode of ["keep", "purge"]) {
                const r = libCall(ns, "unmount", [p1.merged, mode, p1.upper, p1.work, fstab]);
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
                expect(r.stdout).toBe("ok unmount: kept, the plan of box box1 holds box1/ttnode1\n");
                expect(mountId(ns, p1.merged)).toBe(id1);
                expect(fs.readFileSync(path.join(p1.upper, "data.txt"), "utf8")).toBe("one\n");
            }
            let r = libCall(ns, "fstab", ["remove", fstab, p1.id]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toBe("ok fstab: kept, the plan of box box1 holds box1/ttnode1\n");
            expect(fs.readFileSync(fstab, "utf8")).toBe(content);

            // An instance the plan does not hold is not protected.
            const loose = plan(ns, "box1", "ttnode9", 9);
            expect(libCall(ns, "mount", [loose.lower, loose.upper, loose.work, loose.merged, PINNED, "-", "-"]).status).toBe(0);
            r = libCall(ns, "unmount", [loose.merged, "keep", loose.upper, loose.work, fstab]);
            expect(r.status).toBe(0);
            expect(r.stdout).not.toContain("the plan of box");
            expect(ns.mountsAt(loose.merged)).toEqual([]);

            // of-apply's own calls (OF_APPLY=1) are not legacy ones.
            const env = { OF_APPLY: "1" };
            r = libCall(ns, "unmount", [p1.merged, "keep", p1.upper, p1.work, fstab], { env });
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(ns.mountsAt(p1.merged)).toEqual([]);
            r = libCall(ns, "fstab", ["remove", fstab, p1.id], { env });
            expect(r.status).toBe(0);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([fstabLine(p2)]);
            expect(fs.readFileSync(path.join(p1.upper, "data.txt"), "utf8")).toBe("one\n");
            expect(ns.mountsAt(p2.merged)).toHaveLength(1);
        });
    });

    it("set never touches the managed lines or mounts of another box", async () => {
        await withBox((ns, { fstab }) => {
            const p1 = plan(ns, "box1", "ttnode1", 1);
            const p2 = plan(ns, "box1", "ttnode2", 2);
            // box2's instance, mounted with its line; box10 (a name box1 is a prefix of): a line only.
            const b2 = plan(ns, "box2", "ttnode1", 1);
            const b10 = plan(ns, "box10", "ttnode1", 1);
            expect(libCall(ns, "mount", [b2.lower, b2.upper, b2.work, b2.merged, PINNED, "-", "-"]).status).toBe(0);
            for (const b of [b2, b10]) {
                expect(libCall(ns, "fstab", ["set", fstab, b.id, b.merged, b.fstabOptions]).status).toBe(0);
            }
            const b2Id = mountId(ns, b2.merged);

            expect(apply(ns, "set", fstab, [p1, p2]).status).toBe(0);
            let lines = managedLines(fs.readFileSync(fstab, "utf8"));
            expect(lines).toEqual([fstabLine(b2), fstabLine(b10), fstabLine(p1), fstabLine(p2)]);

            // Dropping all of box1's instances (an empty plan) and purging: box2 and box10 stay.
            const r = apply(ns, "set", fstab, "", "box1", "purge");
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            lines = managedLines(fs.readFileSync(fstab, "utf8"));
            expect(lines).toEqual([fstabLine(b2), fstabLine(b10)]);
            expect(overlays(ns)).toEqual([b2.merged]);
            expect(mountId(ns, b2.merged)).toBe(b2Id);
            expect(fs.existsSync(b2.upper)).toBe(true);
            expect(fs.readFileSync(fstab, "utf8").startsWith(FOREIGN)).toBe(true);
            expect(planRecord(ns)).toBe("");
        });
    });

    it("remove takes down every listed instance and deletes the plan record", async () => {
        await withBox((ns, { fstab }) => {
            const ps = [1, 2, 3].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, ps).status).toBe(0);
            ns.ok('echo two > "$1/data.txt"', [ps[1].merged]);
            expect(planRecord(ns)).toBe(recordOf(...ps));

            const r = apply(ns, "remove", fstab, ps);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(overlays(ns)).toEqual([]);
            for (const p of ps) expect(fs.existsSync(p.merged)).toBe(false);
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN);
            expect(planRecord(ns)).toBeUndefined();
            expect(ns.sh('test -e "$1"', [boxPlanDir]).status).toBe(1);
            // keep: the uppers stay.
            expect(fs.readFileSync(path.join(ps[1].upper, "data.txt"), "utf8")).toBe("two\n");

            // Again: nothing left to do.
            const again = apply(ns, "remove", fstab, ps);
            expect(again.status).toBe(0);
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN);
        });
    });

    it("remove fails on a busy instance, counted once; without records it takes down every managed line of the box", async () => {
        await withBox((ns, { fstab }) => {
            const ps = [1, 2].map((n) => plan(ns, "box1", `ttnode${n}`, n));
            expect(apply(ns, "set", fstab, ps).status).toBe(0);
            const busy = ns.spawnBackground('cd "$1" && exec sleep 600', [ps[0].merged]);
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1', [ps[0].merged]);
            // Listed and managed: walked once, so counted once.
            const r = apply(ns, "remove", fstab, ps);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("1 of the box's instances failed");
            expect(overlays(ns)).toEqual([ps[0].merged]);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([fstabLine(ps[0])]);
            busy.stop();
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1', [ps[0].merged]);
            expect(apply(ns, "remove", fstab, "").status).toBe(0);
            expect(overlays(ns)).toEqual([]);
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN);
        });
    });
});
