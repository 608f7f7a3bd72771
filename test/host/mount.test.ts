import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { hostFactsPreamble, hostScript, hostScriptDir, shQuote } from "../../components/hostScripts";
import { dockerStub, fstabOptions, hostTestsUnavailable, HostNs, instancePaths, managedLines, PINNED, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();

/** Lower with a file, a dir and a dir to delete. */
function makeLower(ns: HostNs): string {
    const lower = ns.p("disk", "static_cache");
    fs.mkdirSync(path.join(lower, "dir"), { recursive: true });
    fs.mkdirSync(path.join(lower, "deldir", "sub"), { recursive: true });
    fs.writeFileSync(path.join(lower, "a.txt"), "lower-a\n");
    fs.writeFileSync(path.join(lower, "dir", "b.txt"), "lower-b\n");
    fs.writeFileSync(path.join(lower, "deldir", "sub", "c.txt"), "lower-c\n");
    return lower;
}

function mountArgs(lower: string, i: { upper: string; work: string; merged: string }, opts = PINNED, container = "-", manifest = "-") {
    return [lower, i.upper, i.work, i.merged, opts, container, manifest];
}

describe.skipIf(unavailable)("host mount/unmount", () => {
    it("gives real overlay semantics: copy-up to the upper, whiteouts, opaque dirs, separate instances", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i1 = instancePaths(ns.p("disk"), "ttnode1");
            const i2 = instancePaths(ns.p("disk"), "ttnode2");
            for (const i of [i1, i2]) {
                const r = ns.run("mount", mountArgs(lower, i));
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
                expect(r.stdout).toMatch(/^ok mount .*: mounted$/m);
                expect(ns.superOptions(i.merged)?.fstype).toBe("overlay");
            }
            // Lower files show through.
            expect(ns.ok('cat "$1"', [`${i1.merged}/a.txt`])).toBe("lower-a\n");
            expect(ns.ok('cat "$1"', [`${i2.merged}/dir/b.txt`])).toBe("lower-b\n");

            // A write lands in the instance's upper, never in the lower or the other instance.
            ns.ok('echo one > "$1/new.txt" && echo changed >> "$1/dir/b.txt"', [i1.merged]);
            expect(fs.readFileSync(path.join(i1.upper, "new.txt"), "utf8")).toBe("one\n");
            expect(fs.readFileSync(path.join(i1.upper, "dir", "b.txt"), "utf8")).toBe("lower-b\nchanged\n");
            expect(fs.existsSync(path.join(lower, "new.txt"))).toBe(false);
            expect(fs.readFileSync(path.join(lower, "dir", "b.txt"), "utf8")).toBe("lower-b\n");
            expect(ns.sh('test -e "$1/new.txt"', [i2.merged]).status).toBe(1);
            expect(ns.ok('cat "$1/dir/b.txt"', [i2.merged])).toBe("lower-b\n");

            // Deleting a lower file: a 0/0 character device in the upper, the lower untouched.
            ns.ok('rm "$1/a.txt"', [i1.merged]);
            const wo = fs.lstatSync(path.join(i1.upper, "a.txt"));
            expect(wo.isCharacterDevice()).toBe(true);
            expect(wo.rdev).toBe(0);
            expect(fs.readFileSync(path.join(lower, "a.txt"), "utf8")).toBe("lower-a\n");
            expect(ns.sh('test -e "$1/a.txt"', [i1.merged]).status).toBe(1);
            expect(ns.ok('cat "$1/a.txt"', [i2.merged])).toBe("lower-a\n");

            // Deleting and recreating a dir: an opaque dir in the upper hides the lower's content.
            ns.ok('rm -rf "$1/deldir" && mkdir "$1/deldir"', [i1.merged]);
            expect(ns.ok('ls -A "$1/deldir"', [i1.merged])).toBe("");
            const opaque = ns.ok('getfattr --only-values -n trusted.overlay.opaque "$1"', [path.join(i1.upper, "deldir")]);
            expect(opaque).toBe("y");
            expect(fs.readFileSync(path.join(lower, "deldir", "sub", "c.txt"), "utf8")).toBe("lower-c\n");
            expect(ns.ok('cat "$1/deldir/sub/c.txt"', [i2.merged])).toBe("lower-c\n");

            for (const i of [i1, i2]) {
                const r = ns.run("unmount", [i.merged, "keep", i.upper, i.work]);
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
                expect(ns.mountsAt(i.merged)).toEqual([]);
                expect(fs.existsSync(i.merged)).toBe(false);
            }
            // keep: the upper data survives the unmount.
            expect(fs.readFileSync(path.join(i1.upper, "new.txt"), "utf8")).toBe("one\n");
        });
    });

    it("is a no-op when re-run: mount, fstab set, lower, unmount", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            fs.mkdirSync(path.join(lower, ".yfnode", "config"), { recursive: true });
            fs.writeFileSync(path.join(lower, ".yfnode", "config", "id"), "node-id\n");
            const i = instancePaths(ns.p("disk"), "ttnode1");
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, "# static\nUUID=1 / ext4 defaults 0 1\n");

            expect(ns.run("lower", [lower, ".yfnode/config"]).status).toBe(0);
            expect(ns.run("mount", mountArgs(lower, i)).status).toBe(0);
            const setArgs = ["set", fstab, "box1/ttnode1", i.merged, fstabOptions(lower, i.upper, i.work, ns.p("disk"))];
            expect(ns.run("fstab", setArgs).status).toBe(0);

            // A process inside the mount: any attempt to unmount would now fail.
            const busy = ns.spawnBackground('cd "$1" && exec sleep 600', [i.merged]);
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1', [i.merged]);
            const mi = ns.mountinfo();
            const fstabBefore = fs.readFileSync(fstab, "utf8");
            const fstabStat = fs.statSync(fstab);
            const listing = ns.ok('find "$1" -printf "%p %y %s %T@\\n" | sort', [ns.p("disk")]);

            const again = [
                ns.run("lower", [lower, ".yfnode/config"]),
                ns.run("mount", mountArgs(lower, i)),
                ns.run("fstab", setArgs),
            ];
            for (const r of again) {
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
                expect(r.stdout).toMatch(/: unchanged$/m);
            }
            expect(ns.mountinfo()).toBe(mi);
            expect(fs.readFileSync(fstab, "utf8")).toBe(fstabBefore);
            const after = fs.statSync(fstab);
            expect(after.mtimeMs).toBe(fstabStat.mtimeMs);
            expect(after.ino).toBe(fstabStat.ino);
            expect(ns.ok('find "$1" -printf "%p %y %s %T@\\n" | sort', [ns.p("disk")])).toBe(listing);
            busy.stop();
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1', [i.merged]);

            expect(ns.run("unmount", [i.merged, "keep", i.upper, i.work]).status).toBe(0);
            const mi2 = ns.mountinfo();
            const r = ns.run("unmount", [i.merged, "keep", i.upper, i.work]);
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(/unchanged/);
            expect(ns.mountinfo()).toBe(mi2);
            // purge on nothing: no-op as well.
            expect(ns.run("unmount", [ns.p("nothing", "mnts"), "purge", ns.p("nothing", "upper"), ns.p("nothing", "work")]).status).toBe(0);
        });
    });

    it("remounts when options or the lower change, and then is stable again", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instancePaths(ns.p("disk"), "ttnode1");
            expect(ns.run("mount", mountArgs(lower, i)).status).toBe(0);
            expect(ns.superOptions(i.merged)!.superOpts).not.toMatch(/redirect_dir=/);

            const changed = "index=off,nfs_export=off,redirect_dir=nofollow,metacopy=off";
            let r = ns.run("mount", mountArgs(lower, i, changed));
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(/remounted \(.*redirect_dir/);
            const second = ns.superOptions(i.merged)!;
            expect(second.superOpts).toMatch(/(^|,)redirect_dir=nofollow(,|$)/);
            expect(ns.mountsAt(i.merged)).toHaveLength(1); // replaced, not stacked

            // Unchanged now: it does not even try to unmount (a busy mount does not matter).
            const busy = ns.spawnBackground('cd "$1" && exec sleep 600', [i.merged]);
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1', [i.merged]);
            const mi = ns.mountinfo();
            r = ns.run("mount", mountArgs(lower, i, changed));
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(/unchanged/);
            expect(ns.mountinfo()).toBe(mi);
            busy.stop();
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1', [i.merged]);

            r = ns.run("mount", mountArgs(lower, i));
            expect(r.stdout).toMatch(/remounted/);
            expect(ns.superOptions(i.merged)!.superOpts).not.toMatch(/redirect_dir=/);

            // A new lower generation: unmount + mount on it.
            const lower2 = ns.p("disk", "static_cache.2");
            fs.mkdirSync(lower2);
            fs.writeFileSync(path.join(lower2, "gen2"), "2\n");
            r = ns.run("mount", mountArgs(lower2, i));
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(/remounted \(lowerdir is /);
            expect(ns.superOptions(i.merged)!.superOpts).toContain(`lowerdir=${lower2},`);
            expect(ns.ok('cat "$1/gen2"', [i.merged])).toBe("2\n");
            expect(ns.mountsAt(i.merged)).toHaveLength(1);
        });
    });

    it("refuses an upper or work dir that another overlay uses, a dirty bare mountpoint, a foreign mountpoint", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i1 = instancePaths(ns.p("disk"), "ttnode1");
            const i2 = instancePaths(ns.p("disk"), "ttnode2");
            expect(ns.run("mount", mountArgs(lower, i1)).status).toBe(0);

            let r = ns.run("mount", mountArgs(lower, { ...i2, upper: i1.upper }));
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`overlay-fleet: upper dir '${i1.upper}' is the same as the upperdir of another overlay`);
            expect(r.stderr).toContain(i1.merged);
            expect(ns.mountsAt(i2.merged)).toEqual([]);

            r = ns.run("mount", mountArgs(lower, { ...i2, work: i1.work }));
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`work dir '${i1.work}' is the same as the workdir of another overlay`);
            expect(ns.mountsAt(i2.merged)).toEqual([]);

            // Upper of one used as work of the other.
            r = ns.run("mount", mountArgs(lower, { ...i2, work: i1.upper }));
            expect(r.status).toBe(1);
            expect(ns.mountsAt(i2.merged)).toEqual([]);

            // Something wrote into the bare mountpoint.
            fs.mkdirSync(i2.merged, { recursive: true });
            fs.writeFileSync(path.join(i2.merged, "cache.db"), "x");
            r = ns.run("mount", mountArgs(lower, i2));
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/merged dir '.*ttnode2\/mnts' is not mounted but not empty/);
            expect(ns.mountsAt(i2.merged)).toEqual([]);
            fs.rmSync(path.join(i2.merged, "cache.db"));

            // A mountpoint of something else.
            ns.ok('mount -t tmpfs of-test "$1"', [i2.merged]);
            r = ns.run("mount", mountArgs(lower, i2));
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/already a mountpoint of tmpfs/);
            r = ns.run("unmount", [i2.merged, "purge", i2.upper, i2.work]);
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/mountpoint of tmpfs .*not an overlay/);
            expect(ns.superOptions(i2.merged)?.fstype).toBe("tmpfs");

            // A missing lower is not created (the disk may just not be mounted).
            r = ns.run("mount", mountArgs(ns.p("nodisk", "static_cache"), instancePaths(ns.p("disk"), "ttnode3")));
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("nodisk/static_cache' does not exist");
            expect(fs.existsSync(ns.p("nodisk"))).toBe(false);

            // Purge refuses a dir still used by an overlay.
            r = ns.run("unmount", [ns.p("disk", "other", "mnts"), "purge", i1.upper, ns.p("disk", "other", "work")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`refusing to purge '${i1.upper}'`);
            expect(fs.existsSync(i1.upper)).toBe(true);
        });
    });

    it("fails a busy unmount clearly and keeps the fstab line; purge removes upper and work after a good unmount", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instancePaths(ns.p("disk"), "ttnode1");
            const fstab = ns.p("fstab");
            expect(ns.run("mount", mountArgs(lower, i)).status).toBe(0);
            expect(
                ns.run("fstab", ["set", fstab, "box1/ttnode1", i.merged, fstabOptions(lower, i.upper, i.work, ns.p("disk"))]).status,
            ).toBe(0);
            ns.ok('echo data > "$1/file"', [i.merged]);

            const busy = ns.spawnBackground('cd "$1" && exec sleep 600', [i.merged]);
            ns.ok('for n in 1 2 3 4 5 6 7 8 9 10; do fuser -m "$1" >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1', [i.merged]);

            // What the instance component runs on delete: unmount, then drop the fstab line (the two
            // scripts as files: inline, together, they pass the kernel's 128 KiB for one argument).
            for (const name of ["unmount", "fstab"] as const) fs.writeFileSync(ns.p(`${name}.sh`), hostScript(name));
            const teardown = `sh ${shQuote(ns.p("unmount.sh"))} ${[i.merged, "purge", i.upper, i.work].map(shQuote).join(" ")} && sh ${shQuote(ns.p("fstab.sh"))} remove ${shQuote(fstab)} box1/ttnode1`;
            let r = ns.sh(teardown);
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/^overlay-fleet: cannot unmount the overlay at '.*ttnode1\/mnts', it is busy/m);
            expect(r.stderr).toMatch(/sleep/); // fuser names the process
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toHaveLength(1);
            expect(ns.superOptions(i.merged)?.fstype).toBe("overlay");
            expect(fs.existsSync(path.join(i.upper, "file"))).toBe(true); // purge did not run

            // Remount because of an option change: busy, no container named -> clear failure, old mount kept.
            r = ns.run("mount", mountArgs(lower, i, PINNED + ",redirect_dir=nofollow"));
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/must be remounted .* but is busy/);
            expect(ns.superOptions(i.merged)?.superOpts).not.toMatch(/redirect_dir/);

            // A container is named but no docker engine answers.
            r = ns.run("mount", mountArgs(lower, i, PINNED + ",redirect_dir=nofollow", "ttnode1"), {
                env: { DOCKER_HOST: `unix://${ns.p("no-docker.sock")}` },
            });
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/busy.*no reachable docker engine to stop container 'ttnode1'/);

            busy.stop();
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1', [i.merged]);
            r = ns.sh(teardown);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(ns.mountsAt(i.merged)).toEqual([]);
            expect(fs.existsSync(i.upper)).toBe(false);
            expect(fs.existsSync(i.work)).toBe(false);
            expect(fs.existsSync(i.merged)).toBe(false);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toHaveLength(0);
            expect(fs.readdirSync(lower).sort()).toEqual(["a.txt", "deldir", "dir"]);
        });
    });

    it("stops and restarts the named container around a remount (docker CLI stub)", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instancePaths(ns.p("disk"), "ttnode1");
            expect(ns.run("mount", mountArgs(lower, i)).status).toBe(0);
            const busy = ns.spawnBackground('cd "$1" && exec sleep 600', [i.merged]);
            ns.ok('for n in $(seq 50); do fuser -m "$1" >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1', [i.merged]);

            // A docker CLI whose "container" is the busy process.
            const docker = dockerStub(ns, [
                `inspect) if [ -e ${shQuote(ns.p("stopped"))} ]; then echo false; else echo true; fi ;;`,
                // The killed process stays a zombie until the test process reaps it: wait for Z.
                `stop) kill -9 ${busy.pid}; while [ -d /proc/${busy.pid} ] && ! grep -q "^State:.*Z" /proc/${busy.pid}/status; do sleep 0.1; done; touch ${shQuote(ns.p("stopped"))}; echo "$2" ;;`,
                `start) rm -f ${shQuote(ns.p("stopped"))}; echo "$2" ;;`,
            ]);
            const log = docker.log;
            const r = ns.run("mount", mountArgs(lower, i, PINNED + ",redirect_dir=nofollow", "ttnode1"), { path: docker.path });
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(/remounted/);
            const calls = fs.readFileSync(log, "utf8").split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
            expect(calls.filter((c) => c === "stop" || c === "start")).toEqual(["stop", "start"]);
            expect(fs.readFileSync(log, "utf8")).toMatch(/^stop ttnode1$/m);
            expect(ns.superOptions(i.merged)?.superOpts).toMatch(/redirect_dir=nofollow/);
        });
    });

    it("calls drop_folded on the unmounted upper before the mount whenever its manifest's drop is pending (no done-marker), and only then", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const lower2 = ns.p("disk", "static_cache.2");
            fs.mkdirSync(lower2);
            const i = instancePaths(ns.p("disk"), "ttnode1");
            const manifest = ns.p("disk", "fold.manifest");
            fs.writeFileSync(manifest, "x\n");
            const log = ns.p("drop.log");
            // The bundle as hostScript() builds it, with a recording drop_folded defined after
            // lib-fold.sh that leaves the done-marker as the fold helper's drop does.
            const read = (f: string) => fs.readFileSync(path.join(hostScriptDir, f), "utf8");
            const stub =
                "drop_folded() {\n" +
                '  if grep -q " $OF_T_MERGED " /proc/self/mountinfo; then m=mounted; else m=unmounted; fi\n' +
                '  printf "%s|%s|%s\\n" "$1" "$2" "$m" >> "$OF_T_LOG"\n' +
                '  : > "$1.dropped"\n' +
                "}\n";
            const bundle = [
                hostFactsPreamble(),
                read("lib.sh"),
                read("lib-fold.sh"),
                read("lib-mount.sh"),
                stub,
                read("mount.sh"),
            ].join("\n");
            const runMount = (args: string[]) =>
                ns.sh(["sh", "-c", shQuote(bundle), "of-mount", ...args.map(shQuote)].join(" "), [], {
                    env: { OF_T_LOG: log, OF_T_MERGED: i.merged },
                });
            const calls = () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter(Boolean) : []);
            const dropped = `${manifest}|${i.upper}|unmounted`;

            expect(runMount(mountArgs(lower, i, PINNED, "-", manifest)).status).toBe(0); // first mount: pending
            expect(calls()).toEqual([dropped]);
            expect(runMount(mountArgs(lower, i, PINNED + ",redirect_dir=nofollow", "-", manifest)).status).toBe(0);
            expect(calls()).toEqual([dropped]); // options only, the drop done
            expect(runMount(mountArgs(lower2, i, PINNED, "-", "-")).status).toBe(0);
            expect(calls()).toEqual([dropped]); // no manifest
            expect(runMount(mountArgs(lower, i, PINNED, "-", ns.p("missing.manifest"))).status).toBe(0);
            expect(calls()).toEqual([dropped]); // manifest does not exist
            fs.rmSync(`${manifest}.dropped`);
            const r = runMount(mountArgs(lower2, i, PINNED, "-", manifest));
            expect(r.status).toBe(0);
            expect(calls()).toEqual([dropped, dropped]); // a new lower, pending
            expect(ns.superOptions(i.merged)?.superOpts).toContain(`lowerdir=${lower2},`);
            // mounted on the new lower already, the drop pending (say, a boot that mounted it): remounted, dropped
            fs.rmSync(`${manifest}.dropped`);
            expect(runMount(mountArgs(lower2, i, PINNED, "-", manifest)).status).toBe(0);
            expect(calls()).toEqual([dropped, dropped, dropped]);
            expect(runMount(mountArgs(lower2, i, PINNED, "-", manifest)).stdout).toMatch(/unchanged/);
            expect(calls()).toHaveLength(3);
        });
    });

    it("mounts what fstab set wrote: util-linux ignores the x- options", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instancePaths(ns.p("disk"), "ttnode1");
            fs.mkdirSync(i.upper, { recursive: true });
            fs.mkdirSync(i.work, { recursive: true });
            fs.mkdirSync(i.merged, { recursive: true });
            const fstab = ns.p("fstab");
            const set = ns.run("fstab", ["set", fstab, "box1/ttnode1", i.merged, fstabOptions(lower, i.upper, i.work, ns.p("disk"))]);
            expect(set.status).toBe(0);
            const r = ns.sh('mount --fstab "$1" "$2"', [fstab, i.merged]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            const so = ns.superOptions(i.merged)!;
            expect(so.fstype).toBe("overlay");
            expect(so.superOpts).not.toMatch(/x-|nofail/);
            // ...and the mount script recognises it as already done.
            const again = ns.run("mount", mountArgs(lower, i));
            expect(again.stdout).toMatch(/unchanged/);
        });
    });
});

describe.skipIf(unavailable)("host script sanity", () => {
    it("the harness really isolates mounts from the machine", async () => {
        const ns = await HostNs.open();
        try {
            fs.mkdirSync(ns.p("m"));
            ns.ok('mount -t tmpfs of-test-iso "$1"', [ns.p("m")]);
            expect(ns.mountsAt(ns.p("m"))).toHaveLength(1);
            const host = spawnSync("cat", ["/proc/self/mountinfo"]).stdout.toString();
            expect(host).not.toContain(ns.p("m"));
        } finally {
            await ns.close();
        }
    });
});
