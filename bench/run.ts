/**
 * Benchmark (prints figures; not a test): wall time of preview, first up, no-op up and destroy
 * through the real engine on the lab, for several shapes, beside the floor — one hand-written
 * SSH script per box doing the same mounts and fstab lines — and the SSH connections each
 * instance costs (TCP passive opens counted in the box's network namespace).
 *
 *   npm run bench              all shapes
 *   npm run bench -- 1x4       one shape
 */
import { spawnSync } from "child_process";
import { lab, LabBox, labBoxes, labConfig, overlayMounts, scrubBox, TestProject } from "../test/e2e/engine";
import { hostInvocation } from "../components/hostScripts";

interface Shape {
    boxes: number;
    instances: number;
}

function passiveOpens(box: number): number {
    const out = spawnSync("ip", ["netns", "exec", `of-box${box}`, "nstat", "-az", "TcpPassiveOpens"], { encoding: "utf8" }).stdout;
    return Number(/TcpPassiveOpens\s+(\d+)/.exec(out)?.[1] ?? 0);
}

async function timed<T>(work: () => Promise<T> | T): Promise<[T, number]> {
    const start = process.hrtime.bigint();
    const result = await work();
    return [result, Number(process.hrtime.bigint() - start) / 1e9];
}

/** The floor: one SSH session per box running every instance's fstab + mount scripts in a row. */
async function handWritten(boxes: LabBox[], shape: Shape, teardown: boolean): Promise<number> {
    const [, seconds] = await timed(() => {
        for (const box of boxes.slice(0, shape.boxes)) {
            const lines: string[] = ["set -e"];
            for (let i = 1; i <= shape.instances; i++) {
                const dir = `/mnt/usbdisk/ttnode${i}`;
                const options = `lowerdir=/mnt/usbdisk/static_cache,upperdir=${dir}/upper,workdir=${dir}/work,index=off,nfs_export=off,redirect_dir=off,metacopy=off,nofail`;
                lines.push(
                    teardown
                        ? `${hostInvocation("unmount", [`${dir}/mnts`, "keep", `${dir}/upper`, `${dir}/work`])} && ${hostInvocation("fstab", ["remove", "/etc/fstab", `${box.name}/ttnode${i}`])}`
                        : `mkdir -p ${dir}/mnts && ${hostInvocation("fstab", ["set", "/etc/fstab", `${box.name}/ttnode${i}`, `${dir}/mnts`, options])} >/dev/null && ${hostInvocation("mount", ["/mnt/usbdisk/static_cache", `${dir}/upper`, `${dir}/work`, `${dir}/mnts`, "index=off,nfs_export=off,redirect_dir=off,metacopy=off", "-", "-"])} >/dev/null`,
                );
            }
            const result = spawnSync(
                "ssh",
                ["-i", box.privateKeyPath, "-o", `UserKnownHostsFile=${box.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", `${box.user}@${box.host}`, "sh -s"],
                { input: lines.join("\n"), encoding: "utf8", maxBuffer: 64 << 20 },
            );
            if (result.status !== 0) {
                throw new Error(`hand-written script failed on ${box.name}: ${result.stderr.split("\n").slice(0, 2).join("\n")}`);
            }
        }
    });
    return seconds;
}

async function runShape(shape: Shape): Promise<void> {
    await lab("up", String(Math.max(2, shape.boxes)));
    const boxes = await labBoxes();
    for (const b of boxes) {
        await scrubBox(b.name);
    }
    const project = new TestProject(`bench-${shape.boxes}x${shape.instances}`);
    try {
        await project.init(boxes[0].privateKeyPath);
        const counts = Object.fromEntries(boxes.slice(0, shape.boxes).map((b) => [b.name, shape.instances]));
        const { defaults, boxes: declared } = labConfig(boxes, counts);
        project.configure(defaults, declared);
        const boxNumbers = boxes.slice(0, shape.boxes).map((b) => Number(b.name.replace("box", "")));
        const opens = () => boxNumbers.reduce((sum, n) => sum + passiveOpens(n), 0);

        const [, preview] = await timed(() => project.pulumiOk(["preview"]));
        const before = opens();
        const [, firstUp] = await timed(() => project.upOk(["--parallel", "16"]));
        const connections = opens() - before;
        const mounted = (await Promise.all(boxes.slice(0, shape.boxes).map((b) => overlayMounts(b.name)))).every((m) => m.length === shape.instances);
        const [, noopUp] = await timed(() => project.upOk(["--parallel", "16"]));
        const [, destroy] = await timed(() => project.destroyOk());
        const floorUp = await handWritten(boxes, shape, false);
        const floorDown = await handWritten(boxes, shape, true);
        const total = shape.boxes * shape.instances;
        const row = [
            `${shape.boxes}x${shape.instances}`.padEnd(6),
            preview.toFixed(1).padStart(8),
            firstUp.toFixed(1).padStart(9),
            noopUp.toFixed(1).padStart(8),
            destroy.toFixed(1).padStart(8),
            floorUp.toFixed(2).padStart(9),
            floorDown.toFixed(2).padStart(10),
            (firstUp / floorUp).toFixed(1).padStart(8),
            (connections / total).toFixed(1).padStart(10),
            mounted ? "ok" : "NOT ALL MOUNTED",
        ];
        console.log(row.join(" "));
    } finally {
        await project.remove();
        for (const b of boxes) {
        await scrubBox(b.name);
    }
    }
}

const shapes: Record<string, Shape> = { "1x4": { boxes: 1, instances: 4 }, "1x16": { boxes: 1, instances: 16 }, "4x4": { boxes: 4, instances: 4 } };
const wanted = process.argv.slice(2).filter((a) => shapes[a]);
console.log("seconds of wall time; floor = one hand-written SSH script per box; ratio = first up / floor up");
console.log("shape   preview  first-up  noop-up  destroy  floor-up  floor-down  ratio  ssh/inst  check");
async function main(): Promise<void> {
    for (const name of wanted.length ? wanted : Object.keys(shapes)) {
        await runShape(shapes[name]);
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
