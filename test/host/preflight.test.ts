import * as fs from "fs";
import { describe, expect, it } from "vitest";
import { hostTestsUnavailable, HostNs, kernelHasFs, PINNED, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();

/** The preflight leaves nothing behind: no temp dir in the root, no mount below the temp dir. */
function expectClean(ns: HostNs, root: string) {
    const left = ns.ok('ls -A "$1"', [root]).split("\n").filter((f) => f.startsWith(".overlay-fleet-preflight"));
    expect(left).toEqual([]);
    const mounts = ns
        .mountinfo()
        .split("\n")
        .filter((l) => l.includes(".overlay-fleet-preflight"));
    expect(mounts).toEqual([]);
}

describe.skipIf(unavailable)("host preflight", () => {
    it("accepts ext4 and tmpfs and prints one ok line", async () => {
        await withHostNs((ns) => {
            ns.mountImage("ext4", ["mkfs.ext4", "-q", "-F"], ns.p("ext4"));
            const root = ns.p("ext4", "data");
            const r = ns.run("preflight", [root, ns.p("ext4", "static_cache")]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(/^ok preflight .*\/ext4\/data: ext4 can host overlay uppers/);
            expect(r.stdout.trim().split("\n")).toHaveLength(1);
            expectClean(ns, root);
            // Twice: same result, nothing accumulates.
            expect(ns.run("preflight", [root, ns.p("ext4", "static_cache")]).status).toBe(0);
            expectClean(ns, root);

            fs.mkdirSync(ns.p("tmpfs"));
            ns.ok('mount -t tmpfs -o size=16m of-test "$1"', [ns.p("tmpfs")]);
            const t = ns.run("preflight", [ns.p("tmpfs"), ns.p("tmpfs", "static_cache")]);
            expect(t.stderr).toBe("");
            expect(t.status).toBe(0);
            expect(t.stdout).toMatch(/: tmpfs can host overlay uppers/);
            expectClean(ns, ns.p("tmpfs"));
        });
    });

    it.skipIf(!kernelHasFs("vfat"))("refuses an upper on vfat, naming the path and the type", async () => {
        await withHostNs((ns) => {
            ns.mountImage("vfat", ["mkfs.vfat"], ns.p("usb"), 32);
            const root = ns.p("usb", "overlay-fleet");
            const r = ns.run("preflight", [root, ns.p("usb", "static_cache")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/^overlay-fleet: /);
            expect(r.stderr).toContain(`'${root}'`);
            expect(r.stderr).toMatch(/filesystem type (vfat|msdos)/);
            expectClean(ns, root);
        });
    });

    it("refuses an upper on another overlay, naming the path, the type and the kernel's complaint", async () => {
        await withHostNs((ns) => {
            for (const d of ["l", "u", "w", "m"]) fs.mkdirSync(ns.p("ov", d), { recursive: true });
            ns.ok(`mount -t overlay overlay -o lowerdir=$1/l,upperdir=$1/u,workdir=$1/w,${PINNED} "$1/m"`, [ns.p("ov")]);
            const root = ns.p("ov", "m", "instances");
            const r = ns.run("preflight", [root, ns.p("ov", "m", "static_cache")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`instance root '${root}' (filesystem type overlay) cannot host an overlay upper`);
            expect(r.stderr).toMatch(/test mount failed/);
            expect(r.stderr).toMatch(/not supported as upperdir/); // from the kernel log
            expectClean(ns, root);
        });
    });

    it("refuses ramfs: the mount works, but without xattrs whiteouts/opaque dirs cannot be made", async () => {
        await withHostNs((ns) => {
            fs.mkdirSync(ns.p("ram"));
            ns.ok('mount -t ramfs of-test "$1"', [ns.p("ram")]);
            const r = ns.run("preflight", [ns.p("ram"), ns.p("ram", "static_cache")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`'${ns.p("ram")}' (filesystem type ramfs) cannot host an overlay upper`);
            expectClean(ns, ns.p("ram"));
        });
    });

    it("with a record, a pass holds for the boot and the mount: tested once, again on another or remounted mount, a failure never kept", async () => {
        await withHostNs((ns) => {
            // Every mount(8) the preflight starts, logged, then run.
            const bin = ns.p("bin");
            const log = ns.p("mount.log");
            fs.mkdirSync(bin);
            fs.writeFileSync(`${bin}/mount`, `#!/bin/sh\necho "$*" >> '${log}'\nexec /usr/bin/mount "$@"\n`, { mode: 0o755 });
            const mounts = () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : []);
            fs.mkdirSync(ns.p("t"));
            fs.mkdirSync(ns.p("lib"));
            const record = ns.p("lib", "preflight.ok");
            const root = ns.p("t", "data");
            const preflight = () => {
                fs.rmSync(log, { force: true });
                return ns.run("preflight", [root, ns.p("t", "static_cache"), record], { path: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` });
            };
            ns.ok('mount -t tmpfs -o size=16m of-test "$1"', [ns.p("t")]);

            const first = preflight();
            expect(first.stderr).toBe("");
            expect(first.stdout).toMatch(/: tmpfs can host overlay uppers \(whiteouts, opaque dirs/);
            expect(mounts()).toHaveLength(1);
            expect(fs.existsSync(record)).toBe(true);
            // The same boot, root and mount: said, not tested.
            const again = preflight();
            expect(again.status).toBe(0);
            expect(again.stdout).toBe(`ok preflight ${root}: tmpfs can host overlay uppers: passed in this boot on the same mount\n`);
            expect(mounts()).toEqual([]);
            expectClean(ns, root);
            // Remounted with other options: tested again, then kept again.
            ns.ok('mount -o remount,size=32m "$1"', [ns.p("t")]);
            expect(preflight().stdout).toMatch(/\(whiteouts, opaque dirs/);
            expect(mounts()).toHaveLength(1);
            expect(preflight().stdout).toMatch(/passed in this boot on the same mount/);

            // Another filesystem there, one that cannot host uppers: tested, refused, every time.
            ns.ok('umount "$1" && mount -t ramfs of-test "$1"', [ns.p("t")]);
            for (let i = 0; i < 2; i++) {
                const r = preflight();
                expect(r.status).toBe(1);
                expect(r.stderr).toContain("(filesystem type ramfs) cannot host an overlay upper");
                expect(mounts()).toHaveLength(1);
            }
            expectClean(ns, root);
        });
    });

    it("refuses a lower that is not a directory and an instance root that is a file", async () => {
        await withHostNs((ns) => {
            fs.writeFileSync(ns.p("static_cache"), "not a dir");
            let r = ns.run("preflight", [ns.p("data"), ns.p("static_cache")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`lower dir '${ns.p("static_cache")}' exists and is not a directory`);
            fs.writeFileSync(ns.p("datafile"), "x");
            r = ns.run("preflight", [ns.p("datafile"), ns.p("lower")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`instance root '${ns.p("datafile")}' exists and is not a directory`);
            r = ns.run("preflight", ["relative/dir", ns.p("lower")]);
            expect(r.status).toBe(2);
            expect(r.stderr).toContain("'relative/dir'");
        });
    });
});
