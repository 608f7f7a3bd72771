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
                    : installAndRun(library.hash, ["bench"], applyCalls(plan), applyReadsStdin);
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

        // Preview is Pulumi's fixed cost that work/floor subtracts: the median of three runs, so one
        // slow run on a shared machine does not swing the ratio.
        const previews: number[] = [];
        for (let k = 0; k < 3; k++) previews.push((await timed(() => project.pulumiOk(["preview"])))[1]);
        const preview = previews.sort((x, y) => x - y)[1];
        const before = opens();
        const [, firstUp] = await timed(() => project.upOk());
        const connections = opens() - before;
        const state = stateBytes(project);
        const mounted = (await Promise.all(used.map((b) => overlayMounts(b.name)))).every((m) => m.length === shape.instances);
        const beforeNoop = opens();
        const [, noopUp] = await timed(() => project.upOk());
        const noopConnections = opens() - beforeNoop;
        const [, destroy] = await timed(() => project.destroyOk());
        const scrub = async () => {
            for (const b of used) {
                await scrubBox(b.name);
                if (shape.containers) {
                    // The floor's `docker run` needs the image (overlay-fleet loaded it; destroy keeps images).
                    await run("bash", [path.join(__dirname, "..", "tools", "lab.sh"), "exec", b.name, "--", "sh", "-c", "docker image inspect overlay-fleet/cache-node:lab >/dev/null"]);
                }
            }
        };
        await scrub();
        // A first up, the floor and the batch take a few tenths of a second on small shapes, where
        // one slow run of a shared machine would swing the ratio: cache-only shapes take the
        // median of three of each (connections and state are those of the first up above).
        const rounds = shape.containers ? 1 : 3;
        const firstUps = [firstUp];
        for (let k = 1; k < rounds; k++) {
            firstUps.push((await timed(() => project.upOk()))[1]);
            await project.destroyOk();
            await scrub();
        }
        const floorUps: number[] = [];
        const floorDowns: number[] = [];
        for (let k = 0; k < rounds; k++) {
            floorUps.push(await floor(boxes, shape, false));
            floorDowns.push(await floor(boxes, shape, true));
            await scrub();
        }
        const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
        const [medianUp, floorUp, floorDown] = [median(firstUps), median(floorUps), median(floorDowns)];
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
        console.log(
            [
                label(shape).padEnd(6),
                preview.toFixed(1).padStart(8),
                medianUp.toFixed(1).padStart(9),
                noopUp.toFixed(1).padStart(8),
                destroy.toFixed(1).padStart(8),
                floorUp.toFixed(2).padStart(9),
                floorDown.toFixed(2).padStart(10),
                ((medianUp - preview) / floorUp).toFixed(1).padStart(11),
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
    const [, handshakes] = await timed(() => {
        for (let i = 0; i < n; i++) ssh(box, "true");
    });
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
        `unit costs on box1: SSH connection + login ${((handshakes / n) * 1000).toFixed(0)} ms; ` +
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
    console.log("seconds of wall time (cache-only shapes: median of 3 runs of each; with containers one run, preview median of 3); floor = the seed's recipe typed by hand (one SSH session per box); c = with containers");
    console.log("work/floor = (first up - preview) / floor up; ssh/inst = SSH connections per instance in the first up");
    console.log("batch/floor = the box's apply command without Pulumi (one SSH session per box, library already copied) / floor up: the box work alone");
    console.log("shape   preview  first-up  noop-up  destroy  floor-up  floor-down  work/floor  batch/floor  ssh/inst  noop-ssh  state/inst B  check");
    for (const name of wanted.length ? wanted : all) {
        await runShape(parse(name)!, archive);
    }
    if (wanted.length === 0) {
        await costs();
        await libraryChange();
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
