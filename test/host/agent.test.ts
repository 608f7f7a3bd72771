/**
 * The box agent (host/agent, `overlay-fleet-host`), built as a box gets it, run as root in a
 * private mount namespace: its operations as the provider calls them, JSON on stdin and stdout.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { fstabOptions, goBuild, hostTestsUnavailable, HostNs, managedLines, Result, until, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();
const agentDir = path.join(__dirname, "..", "..", "host", "agent");

/** Foreign fstab content: comments, a blank line, tabs and trailing blanks, no final newline. */
const FOREIGN = "# /etc/fstab\nUUID=0a1b /               ext4    errors=remount-ro 0       1\n\n/dev/sdb1\t/mnt/usbdisk\text4\tdefaults,nofail\t0\t2   ";

function agent(ns: HostNs, op: string[], input: object): Result {
    const bin = goBuild(agentDir, "agent", "./cmd/overlay-fleet-host");
    return ns.sh('exec "$@"', [bin, ...op], { input: JSON.stringify(input) });
}

function ok(r: Result): Record<string, unknown> {
    if (r.status !== 0) throw new Error(`agent failed (${r.status}): ${r.stderr}`);
    expect(r.stderr).toBe("");
    return JSON.parse(r.stdout) as Record<string, unknown>;
}

function entry(ns: HostNs, name: string) {
    const disk = ns.p("disk");
    const dir = path.join(disk, name);
    return {
        fstab: ns.p("fstab"),
        id: `box1/${name}`,
        merged: path.join(dir, "mnts"),
        options: fstabOptions(path.join(disk, "static_cache"), path.join(dir, "upper"), path.join(dir, "work"), disk),
    };
}

describe.skipIf(unavailable)("box agent: fstab entries", () => {
    it("create, read, update, delete one managed line; foreign lines kept byte for byte", async () => {
        await withHostNs((ns) => {
            const e = entry(ns, "ttnode1");
            fs.writeFileSync(e.fstab, FOREIGN);
            expect(ok(agent(ns, ["fstab-entry", "read"], { fstab: e.fstab, id: e.id }))).toMatchObject({ present: false });
            const created = ok(agent(ns, ["fstab-entry", "create"], e));
            expect(created).toMatchObject({ present: true, id: e.id, merged: e.merged, options: e.options });
            const text = fs.readFileSync(e.fstab, "utf8");
            expect(text.startsWith(FOREIGN + "\n")).toBe(true);
            expect(managedLines(text)).toEqual([`overlay ${e.merged} overlay ${e.options},x-overlay-fleet=${e.id} 0 0`]);
            expect(created.line).toBe(managedLines(text)[0]);
            // the line is what util-linux mounts (x- options ignored)
            expect(ns.sh('findmnt --verify --tab-file "$1"', [e.fstab]).stdout).not.toMatch(new RegExp(`\\[E\\].*${e.merged}`));
            expect(ok(agent(ns, ["fstab-entry", "read"], { fstab: e.fstab, id: e.id }))).toEqual(created);
            // an update replaces the line in place
            const options = e.options.replace("nofail", "nofail,noatime");
            expect(ok(agent(ns, ["fstab-entry", "update"], { ...e, options }))).toMatchObject({ present: true, options });
            expect(managedLines(fs.readFileSync(e.fstab, "utf8"))).toHaveLength(1);
            // a hand edit is read back as it is
            fs.writeFileSync(e.fstab, fs.readFileSync(e.fstab, "utf8").replace("noatime", "relatime"));
            expect(ok(agent(ns, ["fstab-entry", "read"], { fstab: e.fstab, id: e.id }))).toMatchObject({ present: true, options: e.options.replace("nofail", "nofail,relatime") });
            // delete, twice: the second finds nothing to do
            expect(ok(agent(ns, ["fstab-entry", "delete"], { fstab: e.fstab, id: e.id }))).toMatchObject({ present: false });
            expect(ok(agent(ns, ["fstab-entry", "delete"], { fstab: e.fstab, id: e.id }))).toMatchObject({ present: false });
            expect(fs.readFileSync(e.fstab, "utf8")).toBe(FOREIGN + "\n");
        });
    });

    it("sixteen instances created at once each get their line (the edits are serialised)", async () => {
        await withHostNs(async (ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN + "\n");
            const bin = goBuild(agentDir, "agent", "./cmd/overlay-fleet-host");
            const entries = Array.from({ length: 16 }, (_, i) => entry(ns, `ttnode${i + 1}`));
            const results = await Promise.all(entries.map((e) => ns.shAsync('exec "$@"', [bin, "fstab-entry", "create"], { input: JSON.stringify(e) })));
            for (const r of results) expect(r.status).toBe(0);
            const text = fs.readFileSync(fstab, "utf8");
            expect(text.startsWith(FOREIGN + "\n")).toBe(true);
            expect(managedLines(text).map((l) => l.split("x-overlay-fleet=")[1]).sort()).toEqual(entries.map((e) => `${e.id} 0 0`).sort());
        });
    });

    it("an edit waits for the lock the sh library takes on the same fstab (<fstab>.overlay-fleet.lock), then writes its line", async () => {
        await withHostNs(async (ns) => {
            const e = entry(ns, "ttnode1");
            fs.writeFileSync(e.fstab, FOREIGN + "\n");
            const lockFile = `${e.fstab}.overlay-fleet.lock`;
            // Held as host/lib.sh's of_lock holds it (`exec 9>>"$1"; flock 9`), by one process.
            const holder = ns.spawnBackground('exec 9>>"$1" && flock 9 && exec sleep 600', [lockFile]);
            await until(() => fs.existsSync(lockFile) && flockHeld(lockFile), "the sh's lock to be held");

            const bin = goBuild(agentDir, "agent", "./cmd/overlay-fleet-host");
            let result: Result | undefined;
            const create = ns.shAsync('exec "$@"', [bin, "fstab-entry", "create"], { input: JSON.stringify(e) }).then((r) => (result = r));
            // Either the agent has the lock file open (it waits for it) or it has finished.
            await until(() => result !== undefined || openedBy(lockFile, bin), "the agent to wait for the sh's lock (or to finish)");
            expect(result).toBeUndefined();
            expect(managedLines(fs.readFileSync(e.fstab, "utf8"))).toEqual([]);

            holder.stop();
            await create;
            expect(ok(result!)).toMatchObject({ present: true, id: e.id, merged: e.merged });
            expect(managedLines(fs.readFileSync(e.fstab, "utf8"))).toEqual([`overlay ${e.merged} overlay ${e.options},x-overlay-fleet=${e.id} 0 0`]);
            // the lock file is the sh's: a regular file of root beside the fstab
            const st = fs.lstatSync(lockFile);
            expect(st.isFile() && st.uid === 0).toBe(true);
        });
    });

    it("refuses bad input naming the value, before the fstab changes", async () => {
        await withHostNs((ns) => {
            const e = entry(ns, "ttnode1");
            fs.writeFileSync(e.fstab, FOREIGN);
            const cases: Array<[object, RegExp]> = [
                [{ ...e, id: "box1/tt node" }, /tt node/],
                [{ ...e, merged: "relative/mnts" }, /relative\/mnts/],
                [{ ...e, options: `${e.options},x-overlay-fleet=box1/other` }, /x-overlay-fleet=box1\/other/],
                [{ ...e, options: "lowerdir=/a b" }, /lowerdir=\/a b/],
            ];
            for (const [input, named] of cases) {
                const r = agent(ns, ["fstab-entry", "create"], input);
                expect(r.status).not.toBe(0);
                expect(r.stderr).toMatch(/^overlay-fleet-host: /);
                expect(r.stderr.trim().split("\n")).toHaveLength(1);
                expect(r.stderr).toMatch(named);
            }
            expect(fs.readFileSync(e.fstab, "utf8")).toBe(FOREIGN);
        });
    });
});

/** Whether /proc/locks shows a FLOCK write lock on `file` (its device and inode; held by whichever process). */
function flockHeld(file: string): boolean {
    const { dev, ino } = fs.statSync(file);
    const major = (dev >>> 8) & 0xfff;
    const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
    const id = new RegExp(`^\\d+: FLOCK\\s+ADVISORY\\s+WRITE\\s+\\d+\\s+0*${major.toString(16)}:0*${minor.toString(16)}:${ino}\\s`);
    return fs.readFileSync("/proc/locks", "utf8").split("\n").some((l) => id.test(l));
}

/** Whether a process running the program `exe` has `file` open. */
function openedBy(file: string, exe: string): boolean {
    for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
        try {
            if (fs.readlinkSync(`/proc/${pid}/exe`) !== exe) continue;
            if (fs.readdirSync(`/proc/${pid}/fd`).some((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file)) return true;
        } catch {
            // the process ended meanwhile
        }
    }
    return false;
}
