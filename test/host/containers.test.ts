/**
 * host/containers.sh's own decisions, run from the staged host library with a docker CLI stub
 * (the containers themselves, on real engines, are test/e2e/containers.test.ts): which managed
 * containers a box's command removes, that a bad record changes nothing, and that a legacy
 * per-instance delete keeps a container the box's plan holds.
 */
import * as fs from "fs";
import { describe, expect, it } from "vitest";
import { boxPlanDir, instanceLabel } from "../../model/constants";
import { dockerStub, hostTestsUnavailable, HostNs, stagedHostLibrary, withHostNs } from "./harness";

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
});
