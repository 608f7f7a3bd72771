/**
 * The box agent's overlay mounts (host/agent `overlay-fleet-host overlay-mount`), built as a box
 * gets it, run as root in a private mount namespace on real overlayfs: the operations of the
 * provider's OverlayMount resource, JSON on stdin and stdout.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { shQuote } from "../../components/hostScripts";
import { dockerStub, goBuild, hostTestsUnavailable, HostNs, instancePaths, PINNED, Result, RunOptions, until, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();
const agentDir = path.join(__dirname, "..", "..", "host", "agent");

interface Instance {
    merged: string;
    lower: string;
    upper: string;
    work: string;
    options: string;
}

function agent(ns: HostNs, action: string, input: object, opts?: RunOptions): Result {
    const bin = goBuild(agentDir, "agent", "./cmd/overlay-fleet-host");
    return ns.sh('exec "$@"', [bin, "overlay-mount", action], { ...opts, input: JSON.stringify(input) });
}

/**
 * A docker engine (a CLI stub first on PATH) whose containers hold their merged dir as a running
 * container does: `start` runs a process in a mount namespace of its own (`unshare -m`) with a bind
 * of the merged dir as its cwd, `stop` ends it (and with it its copy of the overlay), `container
 * inspect` reports the container with its label and its bind. `stop` and `start` log what is
 * mounted on the merged dir as they find it: `stopped <name> on <type> <mount options>`, `started
 * <name> on ...`.
 */
function containerEngine(ns: HostNs) {
    const state = ns.p("engine");
    fs.mkdirSync(state, { recursive: true });
    const ctl = path.join(state, "ctl");
    const docker = dockerStub(ns, [`container|stop|start) exec sh ${shQuote(ctl)} "$@" ;;`]);
    fs.writeFileSync(
        ctl,
        [
            `E=${shQuote(state)}; LOG=${shQuote(docker.log)}`,
            // the type and mount options of the top-most mount on the merged dir of container $1 ("nothing" for none)
            `at() { awk -v m="$(cat "$E/$1.merged")" '$5 == m { split($0, t, " - "); split(t[2], f, " "); o = f[1] " " $6 } END { print (o == "" ? "nothing" : o) }' /proc/self/mountinfo; }`,
            'case $1 in',
            'container)',
            '  n=$3; [ "$2" = inspect ] && [ -f "$E/$n.merged" ] || { echo "Error: No such container: $n" >&2; exit 1; }',
            '  run=false; st=exited; [ -f "$E/$n.pid" ] && run=true st=running',
            `  l=$(cat "$E/$n.label"); [ -z "$l" ] || l='"overlay-fleet.instance":"'"$l"'"'`,
            `  printf '[{"Id":"c0ffee","Name":"/%s","Image":"","State":{"Status":"%s","Running":%s},"Config":{"Hostname":"%s","Labels":{%s}},"HostConfig":{"Mounts":[{"Type":"bind","Source":"%s","Target":"/mnts"}]}}]\\n' "$n" "$st" "$run" "$n" "$l" "$(cat "$E/$n.merged")" ;;`,
            'stop)',
            '  n=$2; [ -f "$E/$n.pid" ] || { echo "$n"; exit 0; }',
            '  echo "stopped $n on $(at "$n")" >> "$LOG"; pid=$(cat "$E/$n.pid")',
            `  kill "$pid"; while [ -e "/proc/$pid" ] && [ "$(awk '/^State/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" != Z ]; do sleep 0.02; done`,
            '  rm -f "$E/$n.pid"; echo "$n" ;;',
            'start)',
            '  n=$2; [ -f "$E/$n.merged" ] || { echo "Error: No such container: $n" >&2; exit 1; }; [ -f "$E/$n.pid" ] && { echo "$n"; exit 0; }',
            '  echo "started $n on $(at "$n")" >> "$LOG"',
            `  setsid unshare --mount --propagation private -- sh -c 'mkdir -p "$2" && mount --bind "$1" "$2" && cd "$2" && echo $$ > "$3.new" && mv "$3.new" "$3" && exec sleep 600' ctr "$(cat "$E/$n.merged")" "$E/$n.root" "$E/$n.pid" </dev/null >/dev/null 2>&1 &`,
            '  i=0; until [ -f "$E/$n.pid" ] && [ "$(cat "/proc/$(cat "$E/$n.pid")/comm" 2>/dev/null)" = sleep ]; do i=$((i+1)); [ $i -lt 500 ] || exit 1; sleep 0.01; done',
            '  echo "$n" ;;',
            '*) exit 1 ;;',
            'esac',
        ].join("\n") + "\n",
    );
    return {
        ...docker,
        /** Makes container `name` (label `label`, "" for none) bound to `merged`, running. */
        run(name: string, label: string, merged: string) {
            fs.writeFileSync(path.join(state, `${name}.label`), label);
            fs.writeFileSync(path.join(state, `${name}.merged`), merged);
            ns.ok(`sh ${shQuote(ctl)} start "$1"`, [name], { path: docker.path });
            fs.writeFileSync(docker.log, "");
        },
        /** Stops container `name` (as `docker stop` does, unlogged). */
        stop(name: string) {
            ns.ok(`sh ${shQuote(ctl)} stop "$1"`, [name], { path: docker.path });
            fs.writeFileSync(docker.log, "");
        },
        /** The pid of running container `name`'s process, or undefined when it is stopped. */
        pid(name: string): number | undefined {
            const f = path.join(state, `${name}.pid`);
            return fs.existsSync(f) ? Number(fs.readFileSync(f, "utf8")) : undefined;
        },
        /** The stub's log: the docker calls and what stop and start found. */
        calls: () => fs.readFileSync(docker.log, "utf8").trim().split("\n").filter(Boolean),
        /** Ends every container's process (the test's cleanup). */
        stopAll() {
            for (const f of fs.readdirSync(state).filter((f) => f.endsWith(".pid"))) {
                try {
                    process.kill(Number(fs.readFileSync(path.join(state, f), "utf8")), "SIGKILL");
                } catch {
                    // already gone
                }
            }
        },
    };
}

function ok(r: Result): Record<string, unknown> {
    if (r.status !== 0) throw new Error(`agent failed (${r.status}): ${r.stderr}`);
    expect(r.stderr).toBe("");
    return JSON.parse(r.stdout) as Record<string, unknown>;
}

function refused(r: Result, status: number, message: RegExp): void {
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^overlay-fleet-host: /);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(r.status).toBe(status);
}

/** A lower with a file, a dir, a nested file and a symlink. */
function makeLower(ns: HostNs): string {
    const lower = ns.p("disk", "static_cache");
    fs.mkdirSync(path.join(lower, "dir", "sub"), { recursive: true });
    fs.writeFileSync(path.join(lower, "a.txt"), "lower-a\n");
    fs.writeFileSync(path.join(lower, "dir", "sub", "b.txt"), "lower-b\n");
    fs.symlinkSync("a.txt", path.join(lower, "link"));
    return lower;
}

function instance(ns: HostNs, lower: string, name: string, options = PINNED): Instance {
    return { ...instancePaths(ns.p("disk"), name), lower, options };
}

/** Every entry below dir with its type, mode, size, owner, mtime and content hash: a byte-for-byte fingerprint. */
function fingerprint(ns: HostNs, dir: string): string {
    return ns.ok('cd "$1" && find . -printf "%p %y %m %s %U:%G %T@ %l\\n" | sort && find . -type f -exec sha256sum {} + | sort', [dir]);
}

/** The mountinfo lines on `target`. */
const at = (ns: HostNs, target: string) => ns.mountsAt(target);

describe.skipIf(unavailable)("box agent: overlay mounts", () => {
    it("create mounts with the pinned options and is idempotent; read, by the merged dir alone too, reports the layers", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instance(ns, lower, "ttnode1");
            const created = ok(agent(ns, "create", i));
            expect(created).toEqual({ merged: i.merged, mounted: true, lower, upper: i.upper, work: i.work, options: PINNED });
            for (const d of [i.upper, i.work, i.merged]) expect(fs.statSync(d).isDirectory()).toBe(true);
            const so = ns.superOptions(i.merged)!;
            expect(so.fstype).toBe("overlay");
            expect(so.superOpts).toContain(`lowerdir=${lower},upperdir=${i.upper},workdir=${i.work}`);
            // the pinned values are the kernel's defaults here or shown as such, never their opposites
            expect(so.superOpts).not.toMatch(/index=on|nfs_export=on|metacopy=on|redirect_dir=on/);
            expect(ns.ok('cat "$1/a.txt"', [i.merged])).toBe("lower-a\n");

            // again: no change at all (the same mount, the same table)
            const table = ns.mountinfo();
            expect(ok(agent(ns, "create", i))).toEqual(created);
            expect(ok(agent(ns, "update", i))).toEqual(created);
            expect(ns.mountinfo()).toBe(table);

            expect(ok(agent(ns, "read", i))).toEqual(created);
            expect(ok(agent(ns, "read", { merged: i.merged }))).toEqual(created);
        });
    });

    it("refuses a second instance on another instance's upper or work dir, naming it and the overlay using it", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i1 = instance(ns, lower, "ttnode1");
            ok(agent(ns, "create", i1));
            const i2 = instance(ns, lower, "ttnode2");
            for (const [other, label, dir] of [
                [{ ...i2, upper: i1.upper }, "upper", i1.upper],
                [{ ...i2, work: i1.work }, "work", i1.work],
                [{ ...i2, upper: path.join(i1.upper, "nested") }, "upper", path.join(i1.upper, "nested")],
                [{ ...i2, lower: i1.upper }, "lower", i1.upper],
            ] as const) {
                const r = agent(ns, "create", other);
                refused(r, 1, new RegExp(`${label} dir "${dir}" (is the same as|is inside) the (upperdir|workdir) of another overlay on "${i1.merged}"`));
                expect(r.stderr).toContain(`refusing to mount "${i2.merged}"`);
                expect(at(ns, i2.merged)).toEqual([]);
            }
            expect(fs.existsSync(i2.merged)).toBe(false);
            // apart from it: mounts
            expect(ok(agent(ns, "create", i2))).toMatchObject({ mounted: true, upper: i2.upper });
        });
    });

    it("two instances created at once on one upper never both mount (the checks and the mount hold the box lock)", async () => {
        await withHostNs(async (ns) => {
            const lower = makeLower(ns);
            const bin = goBuild(agentDir, "agent", "./cmd/overlay-fleet-host");
            for (let t = 0; t < 10; t++) {
                const a = instance(ns, lower, `a${t}`);
                const b = { ...instance(ns, lower, `b${t}`), upper: t % 2 === 0 ? a.upper : path.join(a.upper, "nested") };
                const rs = await Promise.all([a, b].map((i) => ns.shAsync('exec "$@"', [bin, "overlay-mount", "create"], { input: JSON.stringify(i) })));
                const mounted = [a, b].filter((i) => ns.superOptions(i.merged)?.fstype === "overlay");
                expect(`try ${t}: ${mounted.length} mounted; ${rs.map((r) => `${r.status} ${r.stderr}`).join(" / ")}`).toMatch(new RegExp(`^try ${t}: 1 mounted`));
                expect(rs.map((r) => r.status).sort()).toEqual([0, 1]);
                expect(rs.find((r) => r.status === 1)!.stderr).toMatch(/(is inside|is the same as|contains) the upperdir of another overlay/);
            }
        });
    });

    it("update of the options remounts (unmount + mount, not stacked); the kernel's refusal is reported in its words", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instance(ns, lower, "ttnode1");
            ok(agent(ns, "create", i));
            ns.ok('echo kept > "$1/new.txt"', [i.merged]);
            const before = at(ns, i.merged);
            const options = `${PINNED},noatime,nodev`;
            expect(ok(agent(ns, "update", { ...i, options }))).toMatchObject({ mounted: true, options });
            const after = at(ns, i.merged);
            expect(after).toHaveLength(1);
            expect(after[0]).not.toBe(before[0]);
            expect(after[0].split(" ")[5].split(",")).toEqual(expect.arrayContaining(["nodev", "noatime"]));
            expect(ns.ok('cat "$1/new.txt"', [i.merged])).toBe("kept\n");
            // read with the old options shows what is in effect: drift
            expect(ok(agent(ns, "read", i))).toMatchObject({ mounted: true, options: `${PINNED},nodev,noatime` });
            // and back
            expect(ok(agent(ns, "update", i))).toMatchObject({ options: PINNED });
            expect(at(ns, i.merged)[0].split(" ")[5]).toBe("rw,relatime");

            // a work dir on another filesystem than the upper: the kernel says why
            const other = ns.p("other");
            fs.mkdirSync(other);
            ns.ok('mount -t tmpfs of-test-other "$1"', [other]);
            const i2 = { ...instance(ns, lower, "ttnode2"), work: path.join(other, "work") };
            refused(agent(ns, "create", i2), 1, /mounting the overlay on ".*ttnode2\/mnts" with options ".*" failed: .*invalid argument.*kernel: overlayfs: workdir and upperdir must reside under the same mount/);
            expect(at(ns, i2.merged)).toEqual([]);
        });
    });

    it("a busy delete fails naming the merged dir and the process, and stays mounted; so does a busy remount", async () => {
        await withHostNs(async (ns) => {
            const lower = makeLower(ns);
            const i = instance(ns, lower, "ttnode1");
            ok(agent(ns, "create", i));
            ns.ok('echo data > "$1/file"', [i.merged]);
            const busy = ns.spawnBackground('cd "$1" && exec sleep 600', [i.merged]);
            await until(() => ns.sh('[ "$(readlink "/proc/$1/cwd")" = "$2" ]', [String(busy.pid), i.merged]).status === 0, "the busy process in the merged dir");
            const table = ns.mountinfo();

            let r = agent(ns, "delete", { merged: i.merged, upper: i.upper, work: i.work, purge: true });
            refused(r, 1, new RegExp(`cannot unmount the overlay at "${i.merged}", it is busy: .*busy.*in use by: .*pid ${busy.pid} \\(sleep\\)`));
            r = agent(ns, "update", { ...i, options: `${PINNED},noatime` });
            refused(r, 1, new RegExp(`overlay at "${i.merged}" must be remounted \\(.*noatime.*\\) but cannot be unmounted, it is busy`));
            expect(ns.mountinfo()).toBe(table);
            expect(fs.readFileSync(path.join(i.upper, "file"), "utf8")).toBe("data\n"); // purge did not run

            busy.stop();
            await until(() => ns.sh('[ ! -e "/proc/$1" ]', [String(busy.pid)]).status === 0, "the busy process to end");
            expect(ok(agent(ns, "delete", { merged: i.merged, upper: i.upper, work: i.work }))).toEqual({ merged: i.merged, mounted: false, lower: "", upper: "", work: "", options: "" });
            expect(at(ns, i.merged)).toEqual([]);
            expect(fs.readFileSync(path.join(i.upper, "file"), "utf8")).toBe("data\n"); // kept without purge
        });
    });

    it("a holder in another mount namespace (a cwd there, a bind of the overlay there) refuses delete with purge and a remount, naming the merged dir and the holder; the upper data stays", async () => {
        await withHostNs(async (ns) => {
            const lower = makeLower(ns);
            const i = instance(ns, lower, "ttnode1");
            ok(agent(ns, "create", i));
            ns.ok('echo data > "$1/file"', [i.merged]);
            const table = ns.mountinfo();
            const ownNs = fs.readlinkSync(`/proc/${ns.pid}/ns/mnt`);

            // A process in a mount namespace of its own (a private copy of the box's mounts), its
            // cwd in the merged dir: an unmount on the box is not even busy, the copy lives on.
            // And one that keeps only a bind of the overlay elsewhere (its copy on the merged dir
            // unmounted), as a container does with its volume.
            const holders = [
                {
                    what: "a cwd in the merged dir",
                    start: () => ns.spawnBackground('exec unshare --mount --propagation private -- sh -c \'cd "$1" && exec sleep 600\' of-holder "$1"', [i.merged]),
                    ready: (pid: number) => ns.sh('[ "$(readlink "/proc/$1/cwd")" = "$2" ] && [ "$(cat "/proc/$1/comm")" = sleep ]', [String(pid), i.merged]).status === 0,
                },
                {
                    what: "a bind of the overlay elsewhere",
                    start: () =>
                        ns.spawnBackground(
                            'exec unshare --mount --propagation private -- sh -c \'mkdir -p "$2" && mount --bind "$1" "$2" && umount "$1" && exec sleep 600\' of-holder "$1" "$2"',
                            [i.merged, ns.p("elsewhere")],
                        ),
                    ready: (pid: number) => ns.sh('[ "$(cat "/proc/$1/comm")" = sleep ]', [String(pid)]).status === 0,
                },
            ];
            for (const h of holders) {
                const holder = h.start();
                await until(() => h.ready(holder.pid), `the holder with ${h.what}`);
                const holderNs = fs.readlinkSync(`/proc/${holder.pid}/ns/mnt`);
                expect(holderNs).not.toBe(ownNs);
                const named = `pid ${holder.pid} \\(sleep\\) in mount namespace ${holderNs.replace(/[[\]]/g, "\\$&")}`;

                refused(agent(ns, "delete", { ...i, purge: true }), 1, new RegExp(`cannot unmount the overlay at "${i.merged}".*${named}`));
                refused(agent(ns, "delete", { merged: i.merged }), 1, new RegExp(`cannot unmount the overlay at "${i.merged}".*${named}`));
                refused(agent(ns, "update", { ...i, options: `${PINNED},noatime` }), 1, new RegExp(`overlay at "${i.merged}" must be remounted .*${named}`));
                expect(ns.mountinfo()).toBe(table); // refused before the unmount
                expect(fs.readFileSync(path.join(i.upper, "file"), "utf8")).toBe("data\n"); // and before the purge

                holder.stop();
                await until(() => !fs.existsSync(`/proc/${holder.pid}`), "the holder to end");
            }
            // nothing holds it any more
            expect(ok(agent(ns, "delete", { ...i, purge: true }))).toMatchObject({ merged: i.merged, mounted: false });
            for (const d of [i.upper, i.work, i.merged]) expect(fs.existsSync(d)).toBe(false);
        });
    });

    it("a remount stops the instance's running container before the unmount and starts it again after the mount; a failing mount leaves it stopped, saying so; another's container is refused, untouched", async () => {
        await withHostNs(async (ns) => {
            const lower = makeLower(ns);
            const i = instance(ns, lower, "ttnode1");
            ok(agent(ns, "create", i));
            ns.ok('echo data > "$1/file"', [i.merged]);
            const engine = containerEngine(ns);
            const opts = { path: engine.path };
            try {
                engine.run("ttnode1", "box1/ttnode1", i.merged);
                const relatime = "overlay rw,relatime";
                const noatime = "overlay rw,noatime";
                const held = engine.pid("ttnode1")!;
                // the container holds the overlay where an unmount does not reach: without it named, refused as before
                refused(agent(ns, "update", { ...i, options: `${PINNED},noatime` }, opts), 1, new RegExp(`overlay at "${i.merged}" must be remounted .*pid ${held} \\(sleep\\) in mount namespace`));
                expect(engine.calls()).toEqual([]);

                // named: stopped on the old overlay, remounted, started on the new one
                const updated = ok(agent(ns, "update", { ...i, options: `${PINNED},noatime`, container: "ttnode1" }, opts));
                expect(updated).toMatchObject({ mounted: true, options: `${PINNED},noatime` });
                expect(at(ns, i.merged)).toHaveLength(1);
                expect(at(ns, i.merged)[0].split(" ")[5]).toBe("rw,noatime");
                expect(engine.calls()).toEqual(["container inspect ttnode1", "stop ttnode1", `stopped ttnode1 on ${relatime}`, "start ttnode1", `started ttnode1 on ${noatime}`]);
                // the container's process is a new one, its cwd on the new overlay, which has the data
                const pid = engine.pid("ttnode1")!;
                expect(pid).not.toBe(held);
                expect(fs.existsSync(`/proc/${held}/ns/mnt`)).toBe(false);
                const [ctrDev, ownDev] = ns.ok('stat -L -c %d "/proc/$1/cwd" "$2"', [String(pid), i.merged]).trim().split("\n");
                expect(ctrDev).toBe(ownDev);
                expect(ns.ok('cat "/proc/$1/cwd/file"', [String(pid)])).toBe("data\n");

                // the same again: no remount, the engine not even asked
                fs.writeFileSync(engine.log, "");
                ok(agent(ns, "update", { ...i, options: `${PINNED},noatime`, container: "ttnode1" }, opts));
                expect(engine.calls()).toEqual([]);
                expect(engine.pid("ttnode1")).toBe(pid);

                // a mount the kernel refuses (a work dir on another filesystem): the old overlay is
                // gone, the container left stopped, and the error says so
                const other = ns.p("other");
                fs.mkdirSync(other);
                ns.ok('mount -t tmpfs of-test-other "$1"', [other]);
                const r = agent(ns, "update", { ...i, work: path.join(other, "work"), container: "ttnode1" }, opts);
                refused(r, 1, /mounting the overlay on ".*ttnode1\/mnts" with options ".*" failed: .*invalid argument.*; the overlay it replaced \(.*\) is unmounted; container "ttnode1" left stopped$/m);
                expect(engine.calls()).toEqual(["container inspect ttnode1", "stop ttnode1", `stopped ttnode1 on ${noatime}`]);
                expect(engine.pid("ttnode1")).toBeUndefined();
                expect(at(ns, i.merged)).toEqual([]);

                // the next update mounts; the container stays as it is (stopped)
                fs.writeFileSync(engine.log, "");
                expect(ok(agent(ns, "update", { ...i, container: "ttnode1" }, opts))).toMatchObject({ mounted: true, options: PINNED });
                expect(engine.calls()).toEqual([]);
                expect(engine.pid("ttnode1")).toBeUndefined();
                ns.ok('umount "$1"', [other]);

                // a running container that is not overlay-fleet's, or another instance's: refused, never touched
                for (const [label, merged, named] of [
                    ["", i.merged, /container "web" is not overlay-fleet's \(it has no overlay-fleet\.instance label\): refusing to stop it; nothing was changed/],
                    ["box1/ttnode2", ns.p("disk", "ttnode2", "mnts"), /container "web" \(of box1\/ttnode2\) is not this instance's: its bind mount is of ".*ttnode2\/mnts", not of the merged dir/],
                ] as const) {
                    fs.mkdirSync(merged, { recursive: true });
                    engine.run("web", label, merged);
                    const web = engine.pid("web")!;
                    const table = ns.mountinfo();
                    refused(agent(ns, "update", { ...i, options: `${PINNED},nodev`, container: "web" }, opts), 1, named);
                    expect(engine.calls()).toEqual(["container inspect web"]);
                    expect(engine.pid("web")).toBe(web);
                    expect(ns.mountinfo()).toBe(table);
                    engine.stop("web");
                    expect(fs.existsSync(`/proc/${web}/ns/mnt`)).toBe(false);
                }
            } finally {
                engine.stopAll();
            }
        });
    });

    it("delete with purge removes the upper and work dirs after the unmount; the lower stays byte for byte; absent is success", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instance(ns, lower, "ttnode1");
            ok(agent(ns, "create", i));
            // writes, a whiteout and an opaque dir in the upper; the lower untouched
            ns.ok('cd "$1" && echo new > new.txt && echo more >> dir/sub/b.txt && rm a.txt && rm -r dir && mkdir dir', [i.merged]);
            const lowerBefore = fingerprint(ns, lower);
            expect(fs.readdirSync(i.upper).length).toBeGreaterThan(0);

            // purge of a dir that is not the instance's own is refused before anything changes
            refused(agent(ns, "delete", { merged: i.merged, upper: lower, work: i.work, purge: true }), 2, /refusing to purge ".*static_cache": the upper dir must be ".*ttnode1\/upper"/);
            expect(ns.superOptions(i.merged)?.fstype).toBe("overlay");

            expect(ok(agent(ns, "delete", { ...i, purge: true }))).toMatchObject({ merged: i.merged, mounted: false });
            expect(at(ns, i.merged)).toEqual([]);
            for (const d of [i.upper, i.work, i.merged]) expect(fs.existsSync(d)).toBe(false);
            expect(fingerprint(ns, lower)).toBe(lowerBefore);
            expect(fs.readFileSync(path.join(lower, "a.txt"), "utf8")).toBe("lower-a\n");

            expect(ok(agent(ns, "delete", { ...i, purge: true }))).toMatchObject({ mounted: false });
            expect(ok(agent(ns, "read", { merged: i.merged }))).toEqual({ merged: i.merged, mounted: false, lower: "", upper: "", work: "", options: "" });
            expect(ok(agent(ns, "read", i))).toMatchObject({ mounted: false });
        });
    });

    it("purge refuses an upper that another overlay uses (a view of a dir inside it); a foreign mountpoint or a dirty bare one is refused", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instance(ns, lower, "ttnode1");
            ok(agent(ns, "create", i));
            ns.ok('mkdir -p "$1/sub" && mkdir -p "$3" && mount -t overlay overlay -o "lowerdir=$1/sub:$2" "$3"', [i.upper, lower, ns.p("view")]);
            const table = ns.mountinfo();
            refused(agent(ns, "delete", { ...i, purge: true }), 1, new RegExp(`refusing to purge "${i.upper}": it contains the lowerdir of another overlay on "${ns.p("view")}"`));
            expect(ns.mountinfo()).toBe(table); // refused before the unmount
            ns.ok('umount "$1"', [ns.p("view")]);

            const i2 = instance(ns, lower, "ttnode2");
            fs.mkdirSync(i2.merged, { recursive: true });
            fs.writeFileSync(path.join(i2.merged, "cache.db"), "x");
            refused(agent(ns, "create", i2), 1, /merged dir ".*ttnode2\/mnts" is not mounted but not empty/);
            fs.rmSync(path.join(i2.merged, "cache.db"));
            ns.ok('mount -t tmpfs of-test "$1"', [i2.merged]);
            refused(agent(ns, "create", i2), 1, /merged dir ".*ttnode2\/mnts" is already a mountpoint of tmpfs \(of-test\), not an overlay/);
            refused(agent(ns, "read", { merged: i2.merged }), 1, /is a mountpoint of tmpfs/);
            refused(agent(ns, "delete", { merged: i2.merged }), 1, /mountpoint of tmpfs \(of-test\), not an overlay; refusing to unmount it/);
            expect(ns.superOptions(i2.merged)?.fstype).toBe("tmpfs");
        });
    });

    it("refuses bad requests before anything changes (exit 2), naming the value", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instance(ns, lower, "ttnode1");
            const cases: Array<[object, RegExp]> = [
                [{ ...i, options: `${PINNED},bind` }, /contain "bind", which is not an overlay mount option/],
                [{ ...i, options: "index=on" }, /"index=on" contradicts the pinned index=off/],
                [{ ...i, upper: "relative/upper" }, /upper dir "relative\/upper" must be an absolute path/],
                [{ ...i, work: `${i.work} x` }, /work dir ".* x" contains whitespace/],
                [{ ...i, upper: path.join(lower, "upper") }, /upper dir ".*static_cache\/upper" must not be the same as or inside the lower dir/],
                [{ ...i, lower: `/${"l".repeat(4000)}` }, /mount data is \d+ bytes, more than the 4095/],
            ];
            for (const [input, named] of cases) refused(agent(ns, "create", input), 2, named);
            expect(fs.existsSync(ns.p("disk", "ttnode1"))).toBe(false);
            // a missing lower is not created (the disk may not be mounted)
            refused(agent(ns, "create", { ...i, lower: ns.p("nodisk", "static_cache") }), 1, /lower dir ".*nodisk\/static_cache" does not exist/);
            expect(fs.existsSync(ns.p("nodisk"))).toBe(false);
        });
    });
});
