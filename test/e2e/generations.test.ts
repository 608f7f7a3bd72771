/**
 * Cache generations through the real engine on the lab: bump the generation, the uppers are
 * folded into a new lower, instances switch one at a time and keep seeing their data; a fold
 * killed half way leaves everything working and the next `pulumi up` completes it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshLab, inBox, inBoxOk, LabBox, labConfig, managedFstabLines, overlayMounts, scrubBox, TestProject } from "./engine";

let boxes: LabBox[];
let project: TestProject;
const merged = (i: number) => `/mnt/usbdisk/ttnode${i}/mnts`;

/** What an instance sees: path, type, size and content digest of every entry. */
async function view(i: number): Promise<Map<string, string>> {
    const out = await inBoxOk("box1", `cd ${merged(i)} && find . -mindepth 1 -printf '%p\\t%y\\t%s\\t' -exec sh -c 'if [ -f "$1" ]; then md5sum < "$1" | cut -c1-32; else echo -; fi' _ {} \\; | sort`);
    return new Map(out.split("\n").filter(Boolean).map((line) => [line.split("\t")[0], line.split("\t").slice(1).join(" ")]));
}

async function configure(generation: number) {
    const { defaults, boxes: declared } = labConfig(boxes, { box1: 3 }, { box1: { generation } });
    project.configure(defaults, declared);
}

beforeAll(async () => {
    boxes = await freshLab();
    project = new TestProject("gen");
    await project.init(boxes[0].privateKeyPath);
    await configure(1);
    await project.upOk();
    // Nothing folded yet: no fold report.
    expect((await project.outputs()).foldReports).toEqual({});
    // Each instance changes the cache through its merged dir; 1 and 2 both write cache/00/shared.
    await inBoxOk(
        "box1",
        `set -e
         echo one > ${merged(1)}/own-1; echo first > ${merged(1)}/cache/00/shared; mkdir -p ${merged(1)}/.yfnode; echo id-1 > ${merged(1)}/.yfnode/config
         echo two > ${merged(2)}/own-2; echo second > ${merged(2)}/cache/00/shared; mkdir -p ${merged(2)}/.yfnode; echo id-2 > ${merged(2)}/.yfnode/config
         mkdir -p ${merged(3)}/deep/a/b; echo three > ${merged(3)}/deep/a/b/f; rm -rf ${merged(3)}/cache/02`,
    );
}, 600_000);

afterAll(async () => {
    await project?.remove();
    for (const box of boxes ?? []) {
        await scrubBox(box.name);
    }
});

describe("cache generations", () => {
    let before: Map<string, string>[];

    it("preview of a generation bump shows the box's fold, each instance's switch and the retire", async () => {
        before = await Promise.all([1, 2, 3].map(view));
        await configure(2);
        const { steps, result } = await project.preview();
        expect(result.status, result.stderr).toBe(0);
        const changed = steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`).sort();
        // The box's library gains the fold helper (generation 1 never folds: it ships without).
        expect(changed).toEqual(["replace box1-host-copy", "update box1-apply"]);
        expect(await inBoxOk("box1", "ls /var/lib/overlay-fleet/host/")).not.toContain("foldtool");
        const diff = await project.pulumiOk(["preview", "--diff"]);
        expect(diff).toMatch(/\+ *sh fold '\/mnt\/usbdisk\/static_cache' '2' /);
        expect(diff).toMatch(/\+ *sh gc '\/mnt\/usbdisk\/static_cache' '2' /);
        for (const i of [1, 2, 3]) expect(diff).toMatch(new RegExp(`\\+ *box1/ttnode${i}\\t/mnt/usbdisk/static_cache\\.g2\\t`));
        expect(await inBoxOk("box1", "ls /mnt/usbdisk")).not.toContain("static_cache.g2");
    });

    it("up folds, switches the instances one at a time, and every instance keeps its own data", async () => {
        const up = project.upInBackground();
        let fewestMounted = 3;
        let output = "";
        up.stdout!.on("data", (d) => (output += d));
        while (up.exitCode === null) {
            fewestMounted = Math.min(fewestMounted, (await overlayMounts("box1")).length);
        }
        expect(up.exitCode, output.slice(-4000)).toBe(0);
        expect(fewestMounted).toBeGreaterThanOrEqual(2);
        // The fold unpacked the box's own helper from the new library.
        expect((await inBox("box1", "test -x /var/lib/overlay-fleet/host/foldtool")).status).toBe(0);
        expect(await overlayMounts("box1")).toEqual([1, 2, 3].map(merged));
        for (const line of await managedFstabLines("box1")) {
            expect(line).toContain("lowerdir=/mnt/usbdisk/static_cache.g2,");
        }
        const options = await inBoxOk("box1", `findmnt -rn -o OPTIONS ${merged(2)}`);
        expect(options).toContain("lowerdir=/mnt/usbdisk/static_cache.g2");

        const after = await Promise.all([1, 2, 3].map(view));
        // What each instance changed, it still sees exactly as before.
        for (const [i, own] of [[0, ["./own-1", "./cache/00/shared", "./.yfnode/config"]], [1, ["./own-2", "./cache/00/shared", "./.yfnode/config"]], [2, ["./deep/a/b/f"]]] as const) {
            for (const path of own) {
                expect(after[i].get(path), `ttnode${i + 1} ${path}`).toBe(before[i].get(path));
            }
        }
        expect(after[2].has("./cache/02")).toBe(false);
        // Shared changes are now in the lower for everyone; the conflict went to ttnode1 (lowest index).
        expect(after[1].get("./own-1")).toBe(before[0].get("./own-1"));
        expect(after[2].get("./cache/00/shared")).toBe(before[0].get("./cache/00/shared"));
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/static_cache.g2/cache/00/shared")).toBe("first\n");
        expect(output).toContain("conflict");
        // The stack's foldReports keep the fold's report: the conflict on the shared file, then what was folded.
        const report = ((await project.outputs()).foldReports as Record<string, string>).box1;
        expect(report).toMatch(/^conflict\t.*cache\/00\/shared\twinner=ttnode1\tothers=ttnode2$/m);
        expect(report.split("\n").at(-1)).toMatch(/^folded 2 from 1: files=\d+ /);
        // Private identities never reach the shared lower.
        expect((await inBox("box1", "test -e /mnt/usbdisk/static_cache.g2/.yfnode/config")).status).not.toBe(0);
        // Folded data left the uppers (the instances read it from the new lower).
        expect((await inBox("box1", "test -e /mnt/usbdisk/ttnode1/upper/own-1")).status).not.toBe(0);
        // The old generation is gone: nothing uses it any more. The configured lower now names
        // the current generation (a symlink), so the stack's `lower` never dangles.
        expect(await inBoxOk("box1", "ls /mnt/usbdisk")).not.toMatch(/^static_cache\.g1$/m);
        expect((await inBoxOk("box1", "readlink /mnt/usbdisk/static_cache")).trim()).toBe("static_cache.g2");
    });

    it("a fold killed half way leaves every instance working; the next up completes it", async () => {
        // Enough files that the (fast) fold is still running when the poller below finds it.
        await inBoxOk("box1", `mkdir -p ${merged(1)}/bulk && for n in $(seq 1 300); do mkdir ${merged(1)}/bulk/d$n && echo $n > ${merged(1)}/bulk/d$n/f; done`);
        await inBoxOk("box1", `mkdir -p ${merged(1)}/big && for n in $(seq 1 160); do head -c 1048576 /dev/urandom > ${merged(1)}/big/f$n; done`);
        const views = await Promise.all([1, 2, 3].map(view));
        await configure(3);
        // Kill the fold on the box while it is building the new generation. The killer runs inside
        // the box, started before the up and polling every 10 ms, so even a fast fold is caught: the
        // installed library runs it as `sh fold <lower> ...`, which execs `.../foldtool fold <current generation> ...`.
        await inBoxOk(
            "box1",
            `rm -f /tmp/fold-killed; (n=0; while [ "$n" -lt 30000 ]; do
                if [ -d /mnt/usbdisk/static_cache.g3.partial ] && pkill -9 -f '^(sh fold|[^ ]*/foldtool fold) /mnt/usbdisk/static_cache[ .]'; then
                    echo killed >/tmp/fold-killed; exit 0
                fi
                n=$((n + 1)); sleep 0.01
            done) </dev/null >/dev/null 2>&1 &`,
        );
        const up = project.upInBackground();
        let upOutput = "";
        up.stdout!.on("data", (d) => (upOutput += d));
        await new Promise((r) => (up.exitCode !== null ? r(null) : up.once("exit", r)));
        const killed = (await inBox("box1", "cat /tmp/fold-killed")).stdout.includes("killed");
        expect(killed, upOutput.slice(-3000)).toBe(true);
        expect(up.exitCode).not.toBe(0);
        // Still on generation 2, every instance mounted and seeing what it saw.
        expect(await overlayMounts("box1")).toEqual([1, 2, 3].map(merged));
        expect((await inBox("box1", "test -e /mnt/usbdisk/static_cache.g3")).status).not.toBe(0);
        expect(await Promise.all([1, 2, 3].map(view))).toEqual(views);

        await project.upOk();
        const after = await Promise.all([1, 2, 3].map(view));
        // ttnode1's own data is unchanged, except the path it won at generation 2: ttnode2 kept its
        // losing version in its upper, which is a change against generation 2 and is folded now.
        expect(new Map([...after[0]].filter(([p]) => p !== "./cache/00/shared"))).toEqual(new Map([...views[0]].filter(([p]) => p !== "./cache/00/shared")));
        expect(after[0].get("./cache/00/shared")).toBe(views[1].get("./cache/00/shared"));
        // The others keep everything they saw and now also share ttnode1's bulk files.
        for (const i of [1, 2]) {
            for (const [path, entry] of views[i]) {
                const expected = path === "./cache/00/shared" ? views[1].get(path) : entry;
                expect(after[i].get(path), `ttnode${i + 1} ${path}`).toBe(expected);
            }
            expect(after[i].get("./bulk/d300/f")).toBe(views[0].get("./bulk/d300/f"));
        }
        for (const line of await managedFstabLines("box1")) {
            expect(line).toContain("lowerdir=/mnt/usbdisk/static_cache.g3,");
        }
        expect(await inBoxOk("box1", "ls /mnt/usbdisk/static_cache.g3/bulk | wc -l")).toBe("300\n");
        // Only the new generation is left: older ones and the killed fold's staging are gone.
        expect(await inBoxOk("box1", "find /mnt/usbdisk -maxdepth 1 -type d -name 'static_cache*'")).toBe("/mnt/usbdisk/static_cache.g3\n");
    });
});
