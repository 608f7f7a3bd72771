/**
 * Benchmark (prints figures; not a test) of deploys through the real engine on the lab, beside
 * the floor: the seed's recipe typed by hand, one SSH session per box running, per instance,
 * `mkdir`, `mount -t overlay`, an fstab append (and, with containers, `docker run`).
 *
 * Per shape: wall time of preview, first up, no-op up and destroy; `(first up - preview) / floor`
 * (the deploy work beyond Pulumi's fixed cost of program, engine and plugins); SSH connections per
 * instance during the first up and connections during the no-op up (TCP passive opens counted in
 * each box's network namespace); state bytes per instance. Then where the time goes, and what a
 * change of the host library previews as.
 *
 *   npm run bench                    all of it
 *   npm run bench -- 1x16 c1x4       some shapes (c = with containers), without bench/fold.sh
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    buildLabImage,
    lab,
    LabBox,
    labBoxes,
    labConfig,
    labContainerConfig,
    overlayMounts,
    run,
    scrubBox,
    TestProject,
} from "../test/e2e/engine";
import { applyCalls, applyInput, applyReadsStdin } from "../components/box";
import { usesFoldTool } from "../components/lowerCache";
import { hostCall, hostLibraryRoot, installAndRun, stageHostLibrary } from "../components/hostLibrary";
import { boxFstab } from "../model/constants";
import { planFleet } from "../model/config";

interface Shape {
    boxes: number;
    instances: number;
    containers: boolean;
}

const parse = (name: string): Shape | undefined => {
    const m = /^(c?)(\d+)x(\d+)$/.exec(name);
    return m ? { containers: m[1] === "c", boxes: Number(m[2]), instances: Number(m[3]) } : undefined;
};
const label = (s: Shape) => `${s.containers ? "c" : ""}${s.boxes}x${s.instances}`;

function passiveOpens(box: string): number {
    const out = spawnSync("ip", ["netns", "exec", `of-${box}`, "nstat", "-az", "TcpPassiveOpens"], { encoding: "utf8" }).stdout;
    return Number(/TcpPassiveOpens\s+(\d+)/.exec(out)?.[1] ?? 0);
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
/**
 * Rounds of each cache-only shape. Its ratio is the difference of two 2-3 s times over a floor of
 * a few tenths: on a shared 2-core machine one round moves it by 0.5 or more, so the median
 * takes nine (each round's ratio is printed too).
 */
const cacheRounds = 9;
/** Rounds of each cache-only shape with the state written once, to price the engine's writes. */
const skipCheckpointRounds = 5;

const clockTicks = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
/** The fields of /proc/<pid>/stat after the command name (the first is the state, field 3). */
function statFields(pid: number | string): string[] {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
}
/** User + system CPU (ms) of the reaped children of a process (cutime, cstime). */
function childrenCpu(pid: number | "self"): number {
    const fields = statFields(pid);
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / clockTicks;
}
/**
 * CPU (ms) the boxes' SSH sessions have used: what their listening sshd reaped (each connection's
 * sshd, and the commands it ran), once it has reaped every session (a client can be done before
 * its sshd is). The lab keeps sshd's pid file beside its key.
 */
async function sessionsCpu(boxes: LabBox[]): Promise<number> {
    const listeners = boxes.map((box) => Number(fs.readFileSync(path.join(path.dirname(box.privateKeyPath), "boxes", box.name, "sshd.pid"), "utf8").trim()));
    const parentOf = (pid: string) => {
        try {
            return Number(statFields(pid)[1]);
        } catch {
            return 0; // gone meanwhile
        }
    };
    for (let waited = 0; ; waited += 20) {
        const sessions = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p) && listeners.includes(parentOf(p)));
        if (sessions.length === 0) break;
        if (waited >= 5000) {
            console.error(`bench: ${sessions.length} SSH session(s) still open after 5 s: the CPU figure misses them`);
            break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return listeners.reduce((sum, pid) => sum + childrenCpu(pid), 0);
}

/** Per shape, where the time of a first up goes (tracedUp), printed after the table. */
const breakdowns: string[] = [];

/** The spans of an OpenTelemetry JSON-lines trace file (pulumi --otel-traces file://...). */
interface Span {
    name: string;
    start: number;
    end: number;
    attributes: Array<{ key: string; value: Record<string, unknown> }>;
}
function readSpans(file: string): Span[] {
    const spans: Span[] = [];
    for (const line of fs.readFileSync(file, "utf8").split("\n").filter(Boolean)) {
        const batch = JSON.parse(line) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }> };
        for (const rs of batch.resourceSpans ?? [])
            for (const ss of rs.scopeSpans ?? [])
                for (const sp of ss.spans ?? []) {
                    spans.push({
                        name: String(sp.name),
                        start: Number(BigInt(String(sp.startTimeUnixNano)) / 1000n) / 1000,
                        end: Number(BigInt(String(sp.endTimeUnixNano)) / 1000n) / 1000,
                        attributes: (sp.attributes ?? []) as Span["attributes"],
                    });
                }
    }
    return spans;
}

/**
 * A first up with Pulumi's trace (`--otel-traces`): how long the whole took, the provider steps
 * that ran on the boxes (Create of each resource, by kind: the median per box), the window from
 * the first such step to the end of the last (the deploy work proper), and the state writes. The
 * rest (CLI, plugins, the program) a preview pays too. The trace holds the gRPC requests, SSH key
 * included: it is written to a private temp dir and deleted once read.
 */
async function tracedUp(project: TestProject): Promise<string> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "of-bench-trace-"));
    try {
        const file = path.join(dir, "trace.json");
        await project.upOk(["--otel-traces", `file://${file}`]);
        const spans = readSpans(file);
        const whole = spans.find((s) => s.name === "pulumi");
        // The provider side of each Create names the resource's URN: the command plugin in its
        // logged request, the docker plugin (a Terraform bridge) in an attribute.
        const attribute = (s: Span, key: string) => String(s.attributes.find((a) => a.key === key)?.value.stringValue ?? "");
        const steps = spans
            .filter((s) => s.name === "/pulumirpc.ResourceProvider/Create" || s.name === "sdkv2.Create")
            .map((s) => {
                const urn = s.name === "sdkv2.Create" ? `${attribute(s, "urn")}\\"` : attribute(s, "Msg");
                const name = /urn:pulumi:[^"\\]*::([^"\\:]+)\\"/.exec(urn)?.[1] ?? "?";
                return { kind: name.replace(/^box\d+-/, ""), ms: s.end - s.start, start: s.start, end: s.end };
            })
            .filter((s) => s.ms >= 1);
        const writes = spans.filter((s) => s.name === "gocloud.dev/blob.NewWriter");
        const kinds = [...new Set(steps.map((s) => s.kind))];
        const perKind = kinds.map((k) => `${k} ${median(steps.filter((s) => s.kind === k).map((s) => s.ms)).toFixed(0)}`).join(", ");
        const window = steps.length ? Math.max(...steps.map((s) => s.end)) - Math.min(...steps.map((s) => s.start)) : 0;
        const total = whole ? whole.end - whole.start : 0;
        return (
            `first up ${(total / 1000).toFixed(2)} s: steps on the boxes ${(window / 1000).toFixed(2)} s from the first to the end of the last ` +
            `(ms per box: ${perKind}); ${writes.length} state writes, ${writes.reduce((sum, w) => sum + w.end - w.start, 0).toFixed(0)} ms; ` +
            `the rest (CLI, plugins, program: what a preview pays too) ${((total - window) / 1000).toFixed(2)} s`
        );
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

async function timed<T>(work: () => Promise<T> | T): Promise<[T, number]> {
    const start = process.hrtime.bigint();
    const result = await work();
    return [result, Number(process.hrtime.bigint() - start) / 1e9];
}

/** `ssh <box> sh -s` with the lab's key and pinned host key: the script comes on stdin. */
const sshArgs = (box: LabBox) => ["-i", box.privateKeyPath, "-o", `UserKnownHostsFile=${box.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", `${box.user}@${box.host}`, "sh -s"];

function ssh(box: LabBox, script: string): { status: number | null; stdout: string; stderr: string } {
    return spawnSync("ssh", sshArgs(box), { input: script, encoding: "utf8", maxBuffer: 64 << 20 });
}

/**
 * overlay-fleet's own box work for the same plan, without Pulumi: per box one SSH session running
 * the very command of its apply (library install, lower, instances), the library copied
 * beforehand (untimed). The rest of work/floor is Pulumi and the library copy's connection.
 */
async function batched(boxes: LabBox[], shape: Shape, teardown: boolean): Promise<number> {
    const { defaults, boxes: declared } = labConfig(boxes, Object.fromEntries(boxes.slice(0, shape.boxes).map((b) => [b.name, shape.instances])));
    const plans = planFleet({ defaults, boxes: declared }).boxes;
    const library = stageHostLibrary(path.join(__dirname, ".."), usesFoldTool(plans[0].settings.generation));
    const target = (name: string) => boxes.find((b) => b.name === name)!;
    if (!teardown) {
        for (const { settings } of plans) {
            const tar = spawnSync("tar", ["-C", path.dirname(path.resolve(library.dir)), "-c", library.hash], { maxBuffer: 256 << 20 });
            const copied = spawnSync("ssh", [...sshArgs(target(settings.name)).slice(0, -1), `mkdir -p ${hostLibraryRoot} && tar -x -C ${hostLibraryRoot}`], { input: tar.stdout });
            if (copied.status !== 0) throw new Error(`copying the host library to ${settings.name} failed: ${copied.stderr}`);
        }
    }
    const [, seconds] = await timed(async () => {
        await Promise.all(
            plans.map(async (plan) => {
                const box = target(plan.settings.name);
                const remote = teardown
                    ? hostCall("apply", ["remove", boxFstab, plan.settings.name, "keep"])
                    : installAndRun(library.hash, ["bench"], { box: plan.settings.name, stack: "organization/overlay-fleet/bench" }, applyCalls(plan), applyReadsStdin);
                const result = await run("ssh", [...sshArgs(box).slice(0, -1), remote], { input: applyInput(plan) });
                if (result.status !== 0) {
                    throw new Error(`the apply failed on ${box.name}: ${result.stderr.split("\n").slice(0, 3).join("\n")}`);
                }
            }),
        );
    });
    return seconds;
}

/** The seed's recipe by hand: one SSH session per box, boxes in parallel as an operator would with N terminals. */
async function floor(boxes: LabBox[], shape: Shape, teardown: boolean): Promise<number> {
    const [, seconds] = await timed(async () => {
        await Promise.all(
            boxes.slice(0, shape.boxes).map(async (box) => {
                const i = box.name.replace("box", "");
                const lines: string[] = ["set -e"];
                if (shape.containers && !teardown) {
                    lines.push(`docker network create -d macvlan --subnet 198.18.${i}.0/24 --gateway 198.18.${i}.1 -o parent=of-b${i} macnet >/dev/null`);
                }
                for (let n = 1; n <= shape.instances; n++) {
                    const dir = `/mnt/usbdisk/ttnode${n}`;
                    const options = `lowerdir=/mnt/usbdisk/static_cache,upperdir=${dir}/upper,workdir=${dir}/work,index=off,nfs_export=off`;
                    const ip = `198.18.${i}.${100 + n}`;
                    const mac = `02:0f:00:00:${i.padStart(2, "0")}:${n.toString(16).padStart(2, "0")}`;
                    if (teardown) {
                        if (shape.containers) lines.push(`docker rm -f ttnode${n} >/dev/null`);
                        lines.push(`umount ${dir}/mnts`, `sed -i '\\#^overlay ${dir}/mnts #d' /etc/fstab`);
                    } else {
                        lines.push(
                            `mkdir -p ${dir}/upper ${dir}/work ${dir}/mnts`,
                            `mount -t overlay overlay -o ${options} ${dir}/mnts`,
                            `echo 'overlay ${dir}/mnts overlay ${options},nofail 0 0' >> /etc/fstab`,
                        );
                        if (shape.containers) {
                            lines.push(
                                `docker run -d --name ttnode${n} --hostname ttnode${n} --net macnet --ip ${ip} --mac-address ${mac} --restart always -v ${dir}/mnts:/mnts overlay-fleet/cache-node:lab >/dev/null`,
                            );
                        }
                    }
                }
                if (shape.containers && teardown) lines.push("docker network rm macnet >/dev/null");
                const result = await run("ssh", sshArgs(box), { input: lines.join("\n") });
                if (result.status !== 0) {
                    throw new Error(`hand-typed recipe failed on ${box.name}: ${result.stderr.split("\n").slice(0, 3).join("\n")}`);
                }
            }),
        );
    });
    return seconds;
}

function stateBytes(project: TestProject): number {
    const dir = path.join(project.dir, "state", ".pulumi", "stacks");
    let total = 0;
    const walk = (d: string) => {
        for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
            const p = path.join(d, entry.name);
            if (entry.isDirectory()) walk(p);
            else if (/\.json$/.test(entry.name) && !entry.name.includes(".bak")) total += fs.statSync(p).size;
        }
    };
    if (fs.existsSync(dir)) walk(dir);
    return total;
}

async function runShape(shape: Shape, archive: string): Promise<void> {
    await lab("up", String(Math.max(2, shape.boxes)));
    const boxes = await labBoxes();
    for (const b of boxes) {
        await scrubBox(b.name);
    }
    const used = boxes.slice(0, shape.boxes);
    const project = new TestProject(`bench-${label(shape)}`);
    try {
        await project.init(boxes[0].privateKeyPath);
        const counts = Object.fromEntries(used.map((b) => [b.name, shape.instances]));
        const { defaults, boxes: declared } = shape.containers ? labContainerConfig(boxes, counts, {}, { imageArchive: archive }) : labConfig(boxes, counts);
        project.configure(defaults, declared);
        const opens = () => used.reduce((sum, b) => sum + passiveOpens(b.name), 0);

        const scrub = async () => {
            for (const b of used) {
                await scrubBox(b.name);
                if (shape.containers) {
                    // The floor's `docker run` needs the image (overlay-fleet loaded it; destroy keeps images).
                    await run("bash", [path.join(__dirname, "..", "tools", "lab.sh"), "exec", b.name, "--", "sh", "-c", "docker image inspect overlay-fleet/cache-node:lab >/dev/null"]);
                }
            }
        };
        // Preview is Pulumi's fixed cost that work/floor subtracts. A first up and the floor take a
        // few tenths of a second beyond it on small shapes, where the noise of a shared machine in
        // a 3-second preview would swing the ratio: each round is a preview right before a first
        // up, the ratio takes the median of the rounds' differences (cache-only shapes: cacheRounds;
        // with containers 1, its preview the median of 3). Connections, state and the no-op up are
        // those of the first round.
        const rounds = shape.containers ? 1 : cacheRounds;
        const previews: number[] = [];
        const firstUps: number[] = [];
        // CPU per round: Pulumi's side (this process's children) in the up beyond its preview, and
        // the boxes' SSH sessions in the up.
        const pulumiCpu: number[] = [];
        const upBoxCpu: number[] = [];
        let connections = 0;
        let state = 0;
        let mounted = false;
        let noopUp = 0;
        let noopConnections = 0;
        let destroy = 0;
        // What the engine's state writes cost: rounds with Pulumi writing the state once, at the
        // end (PULUMI_SKIP_CHECKPOINTS: a crash mid-up would lose what it did to the state), each
        // after a round of the usual kind, so that both see the same machine.
        const unsavedWork: number[] = [];
        const unsavedRound = async () => {
            project.env.PULUMI_SKIP_CHECKPOINTS = "true";
            try {
                const [, p] = await timed(() => project.pulumiOk(["preview"]));
                const [, u] = await timed(() => project.upOk());
                unsavedWork.push(u - p);
                await project.destroyOk();
                await scrub();
            } finally {
                delete project.env.PULUMI_SKIP_CHECKPOINTS;
            }
        };
        for (let k = 0; k < rounds; k++) {
            const samples = shape.containers ? 3 : 1;
            const these: number[] = [];
            const cpu0 = childrenCpu("self");
            for (let j = 0; j < samples; j++) these.push((await timed(() => project.pulumiOk(["preview"])))[1]);
            previews.push(median(these));
            const previewCpu = (childrenCpu("self") - cpu0) / samples;
            const [before, box1] = [opens(), await sessionsCpu(used)];
            const cpu1 = childrenCpu("self");
            firstUps.push((await timed(() => project.upOk()))[1]);
            pulumiCpu.push(childrenCpu("self") - cpu1 - previewCpu);
            upBoxCpu.push((await sessionsCpu(used)) - box1);
            if (k === 0) {
                connections = opens() - before;
                state = stateBytes(project);
                mounted = (await Promise.all(used.map((b) => overlayMounts(b.name)))).every((m) => m.length === shape.instances);
                const beforeNoop = opens();
                noopUp = (await timed(() => project.upOk()))[1];
                noopConnections = opens() - beforeNoop;
                destroy = (await timed(() => project.destroyOk()))[1];
            } else {
                await project.destroyOk();
            }
            await scrub();
            if (!shape.containers && k < skipCheckpointRounds) {
                await unsavedRound();
            }
        }
        // One more first up, traced (not timed): where its time goes.
        const traced = await tracedUp(project);
        await project.destroyOk();
        await scrub();
        const floorUps: number[] = [];
        const floorDowns: number[] = [];
        const floorBoxCpu: number[] = [];
        for (let k = 0; k < rounds; k++) {
            const box0 = await sessionsCpu(used);
            floorUps.push(await floor(boxes, shape, false));
            floorBoxCpu.push((await sessionsCpu(used)) - box0);
            floorDowns.push(await floor(boxes, shape, true));
            await scrub();
        }
        const [preview, medianUp, floorUp, floorDown] = [median(previews), median(firstUps), median(floorUps), median(floorDowns)];
        const work = median(firstUps.map((up, k) => up - previews[k]));
        // Containers need the engine side too: the batched figure is for cache-only shapes.
        let batchUp: number | undefined;
        if (!shape.containers) {
            const batches: number[] = [];
            for (let k = 0; k < rounds; k++) {
                batches.push(await batched(boxes, shape, false));
                await batched(boxes, shape, true);
                await scrub();
            }
            batchUp = median(batches);
        }
        const total = shape.boxes * shape.instances;
        breakdowns.push(
            `${label(shape).padEnd(6)} ${traced}\n${"".padEnd(6)} CPU ms on this 2-core machine (median of the rounds): Pulumi's side, the up beyond its preview ` +
                `${median(pulumiCpu).toFixed(0)}; the boxes' SSH sessions ${median(upBoxCpu).toFixed(0)} in the up, ${median(floorBoxCpu).toFixed(0)} in the floor` +
                (rounds > 1 ? `\n${"".padEnd(6)} work/floor of each round, sorted: ${firstUps.map((up, k) => (up - previews[k]) / floorUp).sort((a, b) => a - b).map((r) => r.toFixed(1)).join(" ")}` : "") +
                (unsavedWork.length
                    ? `\n${"".padEnd(6)} with the state written once (PULUMI_SKIP_CHECKPOINTS=true, median of ${unsavedWork.length}): work/floor ${(median(unsavedWork) / floorUp).toFixed(1)}, ` +
                      `so the engine's state writes cost about ${(work - median(unsavedWork)).toFixed(2)} s of the first up`
                    : ""),
        );
        console.log(
            [
                label(shape).padEnd(6),
                preview.toFixed(1).padStart(8),
                medianUp.toFixed(1).padStart(9),
                noopUp.toFixed(1).padStart(8),
                destroy.toFixed(1).padStart(8),
                floorUp.toFixed(2).padStart(9),
                floorDown.toFixed(2).padStart(10),
                (work / floorUp).toFixed(1).padStart(11),
                (batchUp === undefined ? "-" : (batchUp / floorUp).toFixed(1)).padStart(11),
                (connections / total).toFixed(2).padStart(9),
                String(noopConnections).padStart(9),
                Math.round(state / total).toString().padStart(12),
                mounted ? "ok" : "NOT ALL MOUNTED",
            ].join(" "),
        );
    } finally {
        await project.remove();
        for (const b of boxes) {
            await scrubBox(b.name);
        }
    }
}

/** Where a deploy's time goes: the unit costs, measured on box1. */
async function costs(): Promise<void> {
    await lab("up", "2");
    const [box] = await labBoxes();
    const n = 10;
    const cpu0 = await sessionsCpu([box]);
    const [, handshakes] = await timed(() => {
        for (let i = 0; i < n; i++) ssh(box, "true");
    });
    const loginCpu = ((await sessionsCpu([box])) - cpu0) / n;
    // What one connection per box would cost instead: sessions multiplexed on an open connection.
    const socket = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "of-bench-mux-")), "mux");
    const mux = ["-S", socket, ...sshArgs(box).slice(0, -1)];
    spawnSync("ssh", ["-M", "-f", "-N", ...mux]);
    const [, sessions] = await timed(() => {
        for (let i = 0; i < n; i++) spawnSync("ssh", [...mux, "true"]);
    });
    spawnSync("ssh", ["-O", "exit", ...mux]);
    const [, processes] = await timed(() => ssh(box, `i=0; while [ $i -lt 100 ]; do /bin/true; i=$((i+1)); done`));
    const [, fstab] = await timed(() => ssh(box, "for i in 1 2 3 4 5 6 7 8 9 10; do findmnt --verify --tab-file /etc/fstab >/dev/null 2>&1 || :; done"));
    console.log(
        `unit costs on box1: SSH connection + login ${((handshakes / n) * 1000).toFixed(0)} ms (the box's CPU ${loginCpu.toFixed(0)} ms); ` +
            `a session on an open connection (ssh -S) ${((sessions / n) * 1000).toFixed(0)} ms; ` +
            `process start on the box ${((processes - handshakes / n) * 10).toFixed(1)} ms; ` +
            `findmnt --verify of the box's fstab ${((fstab - handshakes / n) * 100).toFixed(0)} ms`,
    );
}

/** A change of the host library (a comment in host/lib.sh) in a copy of the project: what preview shows. */
async function libraryChange(): Promise<void> {
    await lab("up", "4");
    const boxes = await labBoxes();
    for (const b of boxes) await scrubBox(b.name);
    const project = new TestProject("bench-libchange");
    try {
        await project.init(boxes[0].privateKeyPath);
        const { defaults, boxes: declared } = labConfig(boxes, Object.fromEntries(boxes.slice(0, 4).map((b) => [b.name, 4])));
        project.configure(defaults, declared);
        await project.upOk();
        fs.appendFileSync(path.join(project.dir, "host", "lib.sh"), "\n# a new overlay-fleet version\n");
        const { steps } = await project.preview();
        const changed = steps.filter((s) => s.op !== "same");
        const perBox = new Set(changed.map((s) => s.name.split("-")[0]));
        console.log(
            `host library change, 4x4: preview changes ${changed.length} resources: ${[...new Set(changed.map((s) => `${s.op} <box>-${s.name.split("-").slice(1).join("-")}`))].join(", ")} on ${perBox.size} boxes`,
        );
        await project.destroyOk();
    } finally {
        await project.remove();
        for (const b of boxes) await scrubBox(b.name);
    }
}

const all = ["1x4", "1x16", "4x4", "1x64", "c1x4", "c1x16", "c4x4"];
const wanted = process.argv.slice(2).filter(parse);
async function main(): Promise<void> {
    const archive = await buildLabImage();
    console.log(`seconds of wall time (cache-only shapes: median of ${cacheRounds} rounds of each; with containers one round, preview median of 3); floor = the seed's recipe typed by hand (one SSH session per box); c = with containers`);
    console.log("work/floor = (first up - preview) / floor up, the median of the rounds' differences (each round a preview right before a first up); ssh/inst = SSH connections per instance in the first up");
    console.log("batch/floor = the box's apply command without Pulumi (one SSH session per box, library already copied) / floor up: the box work alone");
    console.log("shape   preview  first-up  noop-up  destroy  floor-up  floor-down  work/floor  batch/floor  ssh/inst  noop-ssh  state/inst B  check");
    for (const name of wanted.length ? wanted : all) {
        await runShape(parse(name)!, archive);
    }
    console.log("where the time of a first up goes (one more first up per shape, with Pulumi's trace):");
    for (const line of breakdowns) console.log(line);
    if (wanted.length === 0) {
        await costs();
        await libraryChange();
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
