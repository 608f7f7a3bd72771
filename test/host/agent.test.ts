/**
 * The box agent (host/agent, `overlay-fleet-host`), built as a box gets it, run as root in a
 * private mount namespace: its operations as the provider calls them, JSON on stdin and stdout.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { fstabOptions, goBuild, hostTestsUnavailable, HostNs, managedLines, Result, withHostNs } from "./harness";

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
