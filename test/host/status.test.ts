import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { fstabOptions, hostTestsUnavailable, instancePaths, PINNED, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();

describe.skipIf(unavailable)("host status", () => {
    it("prints one TSV line per instance and one for the lower, and changes nothing", async () => {
        await withHostNs((ns) => {
            const disk = ns.p("disk");
            const lower = path.join(disk, "static_cache");
            fs.mkdirSync(lower, { recursive: true });
            fs.writeFileSync(path.join(lower, "big"), Buffer.alloc(200 * 1024, 1));
            const i1 = instancePaths(disk, "ttnode1");
            const i2 = instancePaths(disk, "ttnode2");
            const i3 = instancePaths(disk, "ttnode3");
            const fstab = ns.p("fstab");
            expect(ns.run("mount", [lower, i1.upper, i1.work, i1.merged, PINNED, "-", "-"]).status).toBe(0);
            ns.ok('head -c 102400 /dev/urandom > "$1/written"', [i1.merged]);
            expect(ns.run("fstab", ["set", fstab, "box1/ttnode1", i1.merged, fstabOptions(lower, i1.upper, i1.work, disk)]).status).toBe(0);
            // ttnode2: in fstab only (e.g. the mount failed); ttnode3: nothing at all.
            expect(ns.run("fstab", ["set", fstab, "box1/ttnode2", i2.merged, fstabOptions(lower, i2.upper, i2.work, disk)]).status).toBe(0);

            const du = (p: string) => Number(ns.ok('du -skx "$1" | cut -f1', [p]).trim()) * 1024;
            const fstabStat = fs.statSync(fstab);
            const mi = ns.mountinfo();
            const r = ns.run("status", [
                fstab, lower,
                "box1/ttnode1", i1.merged, i1.upper,
                "box1/ttnode2", i2.merged, i2.upper,
                "box1/ttnode3", i3.merged, i3.upper,
            ]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toBe(
                [
                    `instance\tbox1/ttnode1\t1\t1\t${du(i1.upper)}`,
                    `instance\tbox1/ttnode2\t0\t1\t0`,
                    `instance\tbox1/ttnode3\t0\t0\t0`,
                    `lower\t${lower}\t${du(lower)}`,
                    "",
                ].join("\n"),
            );
            expect(du(i1.upper)).toBeGreaterThanOrEqual(100 * 1024);
            expect(du(lower)).toBeGreaterThanOrEqual(200 * 1024);
            // Read-only.
            expect(fs.statSync(fstab).mtimeMs).toBe(fstabStat.mtimeMs);
            expect(ns.mountinfo()).toBe(mi);
            expect(fs.existsSync(i2.upper)).toBe(false);

            // No fstab, no lower, no instances.
            const empty = ns.run("status", [ns.p("nofstab"), ns.p("nolower")]);
            expect(empty.stdout).toBe(`lower\t${ns.p("nolower")}\t0\n`);
            // Arguments must come in threes.
            const bad = ns.run("status", [fstab, lower, "box1/ttnode1", i1.merged]);
            expect(bad.status).toBe(2);
            expect(bad.stdout).toBe("");
        });
    });
});
