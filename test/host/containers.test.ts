/**
 * host/containers.sh's own decisions, run from the staged host library with a docker CLI stub
 * (the containers themselves, on real engines, are test/e2e/containers.test.ts): which managed
 * containers a box's command removes, that a bad record changes nothing, and that a legacy
 * per-instance delete keeps a container the box's plan holds.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { boxPlanDir, instanceLabel } from "../../model/constants";
import { shQuote } from "../../components/hostScripts";
import { dockerStub, hostTestsUnavailable, HostNs, stagedHostLibrary, until, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();
const lib = stagedHostLibrary("of-containers-lib-");

/**
 * An engine with containers `name label` (label: the instance id, or "" for a container
 * overlay-fleet did not make): `ps` lists them, `inspect` answers with the label, `rm` is logged.
 */
function engine(ns: HostNs, containers: Array<[string, string]>) {
    const listing = containers.map(([name, label]) => `${name}\\t${label}`).join("\\n");
    // What of-container's one inspect prints: hostname|ip|mac|running|image|label|id|settings.
    const labels = containers.map(([name, label]) => `*" ${name}") echo 'h|||true|sha256:00|${label}|c0ffee|always|false||/m|/mnts|macnet' ;;`).join(" ");
    // `network ls`: no network (the networks themselves: test/e2e/containers.test.ts).
    return dockerStub(ns, [`ps) printf '${listing}\\n' ;;`, `inspect) case "$*" in ${labels} *) exit 1 ;; esac ;;`, "rm) exit 0 ;;", "network) exit 0 ;;"]);
}

const calls = (log: string) => fs.readFileSync(log, "utf8").trim().split("\n").filter((c) => !c.startsWith("info"));

/** How a stateful engine's `docker run` goes wrong, if it does. */
type RunFault = "none" | "exits at once" | "other MAC" | "hangs";

/**
 * A stateful engine: each container is a file `<state>/<name>` holding the line container.sh's
 * one inspect prints (hostname|ip|mac|running|image|label|id|restart|privileged|dns|source|target|network).
 * `run` writes one from its arguments (as `fault` says), `rm -f` removes it, `ps -a` lists them,
 * the network macnet (box1's, as planned) exists, `image inspect` answers `sha256:beef`.
 */
function statefulEngine(ns: HostNs, fault: RunFault) {
    const state = ns.p("engine");
    fs.mkdirSync(state, { recursive: true });
    const st = shQuote(state);
    const running = fault === "exits at once" ? "false" : "true";
    const macOf = fault === "other MAC" ? '"02:00:00:00:00:ff"' : '"$mac"';
    const run = [
        "run)",
        fault === "hangs" ? "exec sleep 6047;" : "",
        'shift; while [ "$#" -gt 1 ]; do case $1 in --name) n=$2;; --hostname) h=$2;; --ip) ip=$2;; --mac-address) mac=$2;; --network) net=$2;; --restart) r=$2;;',
        "--label) l=${2#*=};; --mount) m=${2#*source=}; src=${m%%,*}; t=${m#*target=};; esac; shift; done;",
        `printf '%s|%s|%s|${running}|%s|%s|c0ffee|%s|false||%s|%s|%s\\n' "$h" "$ip" ${macOf} "$1" "$l" "$r" "$src" "$t" "$net" > ${st}/"$n" ;;`,
    ].join(" ");
    return {
        ...dockerStub(ns, [
            'ps) for f in ' + st + '/*; do [ -f "$f" ] || continue; IFS="|" read -r h ip mac run img label rest < "$f"; printf "%s\\t%s\\n" "${f##*/}" "$label"; done ;;',
            'inspect) eval "n=\\${$#}"; [ -f ' + st + '/"$n" ] || exit 1; cat ' + st + '/"$n" ;;',
            'rm) eval "n=\\${$#}"; rm -f ' + st + '/"$n" ;;',
            run,
            'image) echo sha256:beef ;;',
            'network) case $2 in ls) echo "n1d|macnet|box1" ;; inspect) echo "macvlan|eth0|10.0.0.0/24 10.0.0.1;|box1" ;; *) exit 1 ;; esac ;;',
        ]),
        state,
    };
}

/**
 * Box1's containers ttnode1..ttnode<n>, each on its own mounted overlay and running the old image
 * (`sha256:0ld0`) with its planned identity; returns the records of `of-containers set` for them.
 */
function runningContainers(ns: HostNs, state: string, n: number): string {
    let records = "";
    ns.ok('mkdir -p "$1"', [ns.p("lower")]);
    for (let i = 1; i <= n; i++) {
        const [u, w, m] = ["upper", "work", "mnts"].map((d) => ns.p(`ttnode${i}`, d));
        ns.ok('mkdir -p "$2" "$3" "$4" && mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"', [ns.p("lower"), u, w, m]);
        const ip = `10.0.0.${10 + i}`;
        const mac = `02:00:00:00:00:0${i}`;
        fs.writeFileSync(path.join(state, `ttnode${i}`), `ttnode${i}|${ip}|${mac}|true|sha256:0ld0|box1/ttnode${i}|c0ffee|always|false||${m}|/mnts|macnet\n`);
        records += `box1/ttnode${i}\tttnode${i}\tttnode${i}\t${ip}\t${mac}\t${m}\n`;
    }
    return records;
}

/** `of-containers set` of box1 onto the new image, maxDown `maxDown`, 4 jobs at a time. */
const setArgs = (maxDown: number) => ["set", "box1", "macnet", "eth0", "10.0.0.0/24", "10.0.0.1", "img:new", "-", "-", "always", "0", "/mnts", String(maxDown), "4"];

/** The containers the engine has running on image `image`. */
const runningOn = (state: string, image: string) =>
    fs.readdirSync(state).filter((n) => fs.readFileSync(path.join(state, n), "utf8").split("|").slice(3, 5).join("|") === `true|${image}`);

describe.skipIf(unavailable)("of-containers (docker CLI stub)", () => {
    it("remove takes away every managed container of its box, and only those", async () => {
        await withHostNs((ns) => {
            const docker = engine(ns, [["ttnode1", "box1/ttnode1"], ["ttnode2", "box1/ttnode2"], ["web", ""], ["other", "box2/ttnode1"]]);
            const r = ns.sh('cd "$1" && shift && sh containers "$@"', [lib(), "remove", "box1"], { path: docker.path });
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(calls(docker.log).filter((c) => c.startsWith("rm"))).toEqual(["rm -f ttnode1", "rm -f ttnode2"]);
            expect(calls(docker.log)[0]).toMatch(new RegExp(`^ps -a --filter label=${instanceLabel} `));
            expect(r.stdout).toContain("ok: container ttnode1 removed");
            // Then the box's networks (none here).
            expect(calls(docker.log).at(-1)).toBe('network ls --no-trunc --format {{.ID}}|{{.Name}}|{{.Label "overlay-fleet.box"}}');
        });
    });

    it("waits for another containers command of the box (an up's, a repair's) and gives up naming the lock", async () => {
        await withHostNs((ns) => {
            const docker = engine(ns, [["ttnode1", "box1/ttnode1"]]);
            const lock = "/run/overlay-fleet/box-containers.lock";
            // The holder says when it holds the lock (a fifo read blocks until then), and holds it until the command has given up.
            const r = ns.sh(
                'mkdir -p -m 0700 /run/overlay-fleet && f=$(mktemp -u) && mkfifo "$f" || exit 1; flock -o "$2" sh -c \'echo held >"$1"; exec sleep 30\' x "$f" >/dev/null 2>&1 & h=$!; read _ <"$f"; rm -f "$f"; cd "$1" && OF_LOCK_WAIT=1 sh containers remove box1; s=$?; pkill -P "$h"; kill "$h"; exit $s',
                [lib(), lock],
                { path: docker.path },
            );
            expect(r.status).not.toBe(0);
            expect(r.stderr).toContain(`timed out after 1s waiting for lock '${lock}'`);
            expect(fs.existsSync(docker.log)).toBe(false);
            // Once it is free, the command runs.
            const free = ns.sh('cd "$1" && sh containers remove box1', [lib()], { path: docker.path });
            expect(free.status, free.stderr).toBe(0);
        });
    });

    it("a record of another box, or with a missing field, fails naming it before the engine is asked anything", async () => {
        await withHostNs((ns) => {
            const docker = engine(ns, [["ttnode1", "box1/ttnode1"]]);
            const set = ["set", "box1", "macnet", "eth0", "10.0.0.0/24", "10.0.0.1", "img", "-", "-", "always", "0", "/mnts", "1", "4"];
            const other = ns.sh('cd "$1" && shift && sh containers "$@"', [lib(), ...set], { path: docker.path, input: "box2/ttnode1\tttnode1\th\t10.0.0.2\t02:00:00:00:00:01\t/m\n" });
            expect(other.status).toBe(2);
            expect(other.stderr).toContain("instance 'box2/ttnode1' is not on box 'box1'");
            const short = ns.sh('cd "$1" && shift && sh containers "$@"', [lib(), ...set], { path: docker.path, input: "box1/ttnode1\tttnode1\th\n" });
            expect(short.status).toBe(2);
            expect(short.stderr).toContain("container record must have 6 tab-separated fields: box1/ttnode1");
            expect(fs.existsSync(docker.log)).toBe(false);
        });
    });

    it("a plan recorded by the previous version (`<id> <merged>` lines) still keeps its instances and their containers", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=1m,mode=0755 of-test-varlib /var/lib");
            const merged = ns.p("disk", "ttnode1", "mnts");
            ns.ok('mkdir -p "$1" && printf "box1/ttnode1 %s\\n" "$2" > "$1/box1"', [boxPlanDir, merged]);
            const docker = engine(ns, [["ttnode1", "box1/ttnode1"]]);
            const container = ns.sh('cd "$1" && shift && sh container "$@"', [lib(), "remove", "ttnode1", "box1/ttnode1"], { path: docker.path });
            expect(container.stdout).toContain("kept, the plan of box box1 holds box1/ttnode1");
            const unmount = ns.sh('cd "$1" && shift && sh unmount "$@"', [lib(), merged, "purge", ns.p("disk", "ttnode1", "upper"), ns.p("disk", "ttnode1", "work")]);
            expect(unmount.status).toBe(0);
            expect(unmount.stdout).toContain("kept, the plan of box box1 holds box1/ttnode1");
            expect(fs.existsSync(docker.log) ? calls(docker.log).filter((c) => c.startsWith("rm")) : []).toEqual([]);
        });
    });

    it("an image archive is loaded once while the engine keeps the image it gave, again when the engine lost it", async () => {
        await withHostNs((ns) => {
            const archive = ns.p("images", "0123456789abcdef.tar");
            const old = ns.p("images", "fedcba9876543210.tar");
            ns.ok('mkdir -p "$(dirname "$1")" && echo tar > "$1" && echo tar > "$2" && echo sha256:0ld > "$2.loaded"', [archive, old]);
            // The engine's id of the image: what `image inspect` prints, from a file the test changes.
            const idFile = ns.p("engine-id");
            fs.writeFileSync(idFile, "sha256:aaaa\n");
            const docker = dockerStub(ns, ["load) exit 0 ;;", `image) cat ${idFile} ;;`]);
            const load = () => ns.sh('cd "$1" && shift && sh image "$@"', [lib(), "load", archive, "img:1"], { path: docker.path });
            const loads = () => calls(docker.log).filter((c) => c.startsWith("load")).length;
            const first = load();
            expect(first.stdout).toBe("sha256:aaaa\n");
            expect(first.stderr).toBe(`ok image: img:1 loaded from ${archive}\n`);
            expect(loads()).toBe(1);
            // The earlier archive and its record are gone.
            expect(fs.readdirSync(ns.p("images")).sort()).toEqual(["0123456789abcdef.tar", "0123456789abcdef.tar.loaded"]);
            const again = load();
            expect(again.stdout).toBe("sha256:aaaa\n");
            expect(again.stderr).toBe(`ok image: img:1 as loaded from ${archive}\n`);
            expect(loads()).toBe(1);
            // The engine's image is another one now (pruned, re-tagged): loaded again.
            fs.writeFileSync(idFile, "sha256:bbbb\n");
            expect(load().stderr).toBe(`ok image: img:1 loaded from ${archive}\n`);
            expect(loads()).toBe(2);
        });
    });

    it("a legacy per-instance delete keeps a container the box's plan holds; the box's own command removes it", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=1m,mode=0755 of-test-varlib /var/lib");
            ns.ok('mkdir -p "$1" && printf "box1/ttnode1 ttnode1 /m1\\nbox1/ttnode2 - /m2\\n" > "$1/box1"', [boxPlanDir]);
            const docker = engine(ns, [["ttnode1", "box1/ttnode1"], ["ttnode2", "box1/ttnode2"]]);
            const legacy = (name: string, env: Record<string, string> = {}) =>
                ns.sh('cd "$1" && shift && sh container "$@"', [lib(), "remove", name, `box1/${name}`], { path: docker.path, env });
            const kept = legacy("ttnode1");
            expect(kept.status).toBe(0);
            expect(kept.stdout).toContain("kept, the plan of box box1 holds box1/ttnode1");
            // An instance the plan holds without a container (the box became cache-only): removed.
            expect(legacy("ttnode2").stdout).toContain("ok: container ttnode2 removed");
            expect(legacy("ttnode1", { OF_APPLY: "1" }).stdout).toContain("ok: container ttnode1 removed");
            expect(calls(docker.log).filter((c) => c.startsWith("rm"))).toEqual(["rm -f ttnode2", "rm -f ttnode1"]);
        });
    });
    it.each<[RunFault, number]>([
        ["exits at once", 1],
        ["other MAC", 1],
        ["exits at once", 2],
    ])("a replacement that fails (its new container %s) stops the box's other replacements: maxDown %i holds (issue 24.4)", async (fault, maxDown) => {
        await withHostNs((ns) => {
            const docker = statefulEngine(ns, fault);
            const records = runningContainers(ns, docker.state, 4);
            const r = ns.sh('cd "$1" && shift && sh containers "$@"', [lib(), ...setArgs(maxDown)], { path: docker.path, input: records });
            expect(r.status).toBe(1);
            // At most maxDown replacements ran (each at once, each failed); the others were never taken down.
            // (a container made with another identity is removed again: a second `rm -f` of the same name)
            const replaced = [...new Set(calls(docker.log).filter((c) => c.startsWith("rm -f")))];
            expect(replaced.length, r.stderr).toBeGreaterThanOrEqual(1);
            expect(replaced.length).toBeLessThanOrEqual(maxDown);
            expect(runningOn(docker.state, "sha256:0ld0")).toHaveLength(4 - replaced.length);
            expect(r.stderr).toMatch(fault === "other MAC" ? /does not have its planned identity/ : /is not running after start/);
            expect(r.stderr.match(/not replaced: a replacement on this box failed first/g)).toHaveLength(4 - replaced.length);
            expect(r.stderr).toContain("4 of the box's containers failed");
        });
    });

    it("a docker call that does not answer is given up after OF_DOCKER_TIMEOUT, naming it, and the box's locks are free again (issue 24.9)", async () => {
        await withHostNs((ns) => {
            const docker = statefulEngine(ns, "hangs");
            const records = runningContainers(ns, docker.state, 1);
            const r = ns.sh('cd "$1" && shift && sh containers "$@"', [lib(), ...setArgs(1)], {
                path: docker.path,
                input: records,
                env: { OF_DOCKER_TIMEOUT: "1" },
            });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("docker run --detach: no answer from the engine within 1s (OF_DOCKER_TIMEOUT), given up");
            expect(r.stderr).toContain("docker run of container ttnode1 failed");
            // Nothing of the hung call is left running, and no lock is held.
            expect(ns.sh("pgrep -fx 'sleep 6047'").status).toBe(1);
            expect(ns.sh("flock -n /run/overlay-fleet/box.lock true && flock -n /run/overlay-fleet/box-containers.lock true").status).toBe(0);
        });
    });

    it("a container is not started while a remount holds the box lock: it waits for it (issue 24.10)", async () => {
        await withHostNs(async (ns) => {
            const docker = statefulEngine(ns, "none");
            const records = runningContainers(ns, docker.state, 1);
            fs.rmSync(path.join(docker.state, "ttnode1"));
            // A remount's hold of the box lock (as of-apply and of-mount take it), until the fifo is written.
            const release = ns.p("release");
            const held = ns.p("held");
            ns.ok('mkfifo "$1" "$2"', [release, held]);
            const holder = ns.shAsync('mkdir -p -m 0700 /run/overlay-fleet && exec flock /run/overlay-fleet/box.lock sh -c \'echo held > "$1"; read _ < "$2"\' x "$1" "$2"', [held, release]);
            ns.ok('read _ < "$1"', [held]);
            const set = ns.shAsync('cd "$1" && shift && sh containers "$@"', [lib(), ...setArgs(1)], { path: docker.path, input: records });
            // The container's start waits on the lock (the kernel lists the blocked request), not having run.
            const inode = ns.ok("stat -c %i /run/overlay-fleet/box.lock").trim();
            const waiting = new RegExp(`-> FLOCK\\s+ADVISORY\\s+READ\\s+\\d+ [0-9a-f]+:[0-9a-f]+:${inode} `);
            await until(() => waiting.test(ns.ok("cat /proc/locks")), "the container's start to wait for the box lock");
            expect(calls(docker.log).some((c) => c.startsWith("run"))).toBe(false);
            ns.ok('echo go > "$1"', [release]);
            expect((await holder).status).toBe(0);
            const r = await set;
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toContain("ok: container ttnode1 of box1/ttnode1 created");
            expect(runningOn(docker.state, "sha256:beef")).toEqual(["ttnode1"]);
        });
    });
});
