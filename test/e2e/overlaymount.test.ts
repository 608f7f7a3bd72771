/**
 * The overlay-fleet provider's OverlayMount (provider/, built by the toolchain into provider/bin)
 * through the real Pulumi engine, over the lab's real SSH, against the box agent (host/agent) on
 * a lab box: the overlay of each instance mounted, remounted, refreshed, imported and taken down
 * by `overlay-fleet-host overlay-mount`. A program of its own declares one explicit provider for
 * box1 and its mounts through the TypeScript SDK generated from the provider's schema
 * (sdk/nodejs). Modelled on provider.test.ts (FstabEntry).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshLab, inBox, inBoxOk, LabBox, overlayMounts, scrubBox } from "./engine";
import { ProviderProject } from "./providerProject";

const pinned = "index=off,nfs_export=off,redirect_dir=off,metacopy=off";
const lower = "/mnt/usbdisk/static_cache";

const program = `import * as pulumi from "@pulumi/pulumi";
import * as overlayFleet from "./sdk/nodejs";

interface Mount { name: string; merged: string; lower: string; upper: string; work: string; options?: string; purgeOnRemove?: boolean }
const config = new pulumi.Config("test");
const box = config.requireObject<{ host: string; port: number; user: string; hostKey: string }>("box");
const box1 = new overlayFleet.Provider("box1", { ...box, privateKey: config.requireSecret("privateKey") });
for (const m of config.requireObject<Mount[]>("mounts")) {
    const { name, ...args } = m;
    new overlayFleet.OverlayMount(name, args, { provider: box1 });
}
`;

let box: LabBox;
let project: ProviderProject;
const pulumi = (args: string[]) => project.pulumi(args);
const pulumiOk = (args: string[]) => project.pulumiOk(args);
const planned = () => project.planned();

/** Mount `ttnode<n>` of box1 as the product plans it (cache-only, generation 1). */
function mount(n: number, extra: Partial<{ options: string; purgeOnRemove: boolean; merged: string }> = {}) {
    const root = `/mnt/usbdisk/ttnode${n}`;
    return { name: `box1-ttnode${n}-mount`, merged: `${root}/mnts`, lower, upper: `${root}/upper`, work: `${root}/work`, options: pinned, ...extra };
}

async function declare(mounts: ReturnType<typeof mount>[]): Promise<void> {
    await project.set("mounts", mounts);
}

/** The mountinfo lines of the box's instance overlays, and the options of one. */
const mountinfo = () => inBoxOk("box1", "grep ' /mnt/usbdisk/' /proc/self/mountinfo || true");
async function mountOptions(merged: string): Promise<string[]> {
    const line = (await mountinfo()).split("\n").find((l) => l.split(" ")[4] === merged);
    if (!line) throw new Error(`nothing mounted on ${merged}`);
    return line.split(" ")[5].split(",");
}

/** A fingerprint of the lower cache: every entry with type, mode, size, mtime, and the content hashes. */
const lowerPrint = () => inBoxOk("box1", `cd ${lower} && find . -printf "%p %y %m %s %T@ %l\\n" | sort && find . -type f -exec sha256sum {} + | sort`);

async function stateOf(name: string) {
    return (await project.resources()).find((r) => r.urn.endsWith(`::${name}`));
}

beforeAll(async () => {
    [box] = await freshLab();
    project = new ProviderProject("overlaymount-e2e", "overlaymount", program);
    await project.init(box.privateKeyPath);
    await project.set("box", { host: box.host, port: box.port, user: box.user, hostKey: box.hostKey });
}, 600_000);

afterAll(async () => {
    await inBox("box1", "[ -f /run/of-e2e-busy.pid ] && kill $(cat /run/of-e2e-busy.pid); rm -f /run/of-e2e-busy.pid").catch(() => undefined);
    await project?.remove();
    await scrubBox("box1").catch(() => undefined);
});

describe("provider: OverlayMount through the engine, over SSH, by the box agent", () => {
    it("preview mounts nothing; up mounts each instance with the pinned options; a second preview plans nothing", async () => {
        const before = await mountinfo();
        await declare([mount(1), mount(2)]);
        expect((await planned()).sort()).toEqual(["create box1", "create box1-ttnode1-mount", "create box1-ttnode2-mount"]);
        expect(await mountinfo()).toBe(before);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect(await overlayMounts("box1")).toEqual(["/mnt/usbdisk/ttnode1/mnts", "/mnt/usbdisk/ttnode2/mnts"]);
        expect(await planned()).toEqual([]);
        // the outputs are what the box reports; the ID is the merged dir
        const m1 = await stateOf("box1-ttnode1-mount");
        expect(m1?.id).toBe(mount(1).merged);
        expect(m1?.outputs).toMatchObject({ merged: mount(1).merged, mounted: true, lower, upper: mount(1).upper, work: mount(1).work, options: pinned, purgeOnRemove: false });
        // the merged dir shows the lower
        expect(await inBoxOk("box1", `ls -A ${mount(1).merged}`)).toBe(await inBoxOk("box1", `ls -A ${lower}`));
    });

    it("refresh shows an overlay remounted by hand with other options as drift and an unmounted one as gone; up repairs both", async () => {
        const m1 = mount(1);
        await inBoxOk("box1", `umount ${m1.merged} && mount -t overlay overlay -o lowerdir=${lower},upperdir=${m1.upper},workdir=${m1.work},${pinned},noatime ${m1.merged} && umount ${mount(2).merged}`);
        const refresh = await pulumiOk(["refresh", "--yes", "--skip-preview", "--diff"]);
        expect(refresh).toMatch(/~ overlay-fleet:index:OverlayMount: \(update\)\s+\[id=\/mnt\/usbdisk\/ttnode1\/mnts\]/);
        expect(refresh).toMatch(new RegExp(`~ options: "${pinned}" => "${pinned},noatime"`));
        expect(refresh).toMatch(/- overlay-fleet:index:OverlayMount: \(delete\)\s+\[id=\/mnt\/usbdisk\/ttnode2\/mnts\]/);
        expect((await planned()).sort()).toEqual(["create box1-ttnode2-mount", "update box1-ttnode1-mount"]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect(await mountOptions(m1.merged)).not.toContain("noatime");
        expect(await overlayMounts("box1")).toEqual(["/mnt/usbdisk/ttnode1/mnts", "/mnt/usbdisk/ttnode2/mnts"]);
        expect(await planned()).toEqual([]);
    });

    it("changed options remount that instance only; purgeOnRemove alone changes nothing on the box; a changed merged dir replaces", async () => {
        const others = (await mountinfo()).split("\n").filter((l) => !l.includes(" /mnt/usbdisk/ttnode2/mnts "));
        await declare([mount(1), mount(2, { options: `${pinned},noatime` })]);
        expect(await planned()).toEqual(["update box1-ttnode2-mount"]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect(await mountOptions(mount(2).merged)).toContain("noatime");
        expect((await mountinfo()).split("\n").filter((l) => !l.includes(" /mnt/usbdisk/ttnode2/mnts "))).toEqual(others);

        const table = await mountinfo();
        await declare([mount(1, { purgeOnRemove: true }), mount(2, { options: `${pinned},noatime` })]);
        expect(await planned()).toEqual(["update box1-ttnode1-mount"]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect(await mountinfo()).toBe(table);
        expect((await stateOf("box1-ttnode1-mount"))?.outputs).toMatchObject({ purgeOnRemove: true });
        expect(await planned()).toEqual([]);

        await declare([mount(1, { purgeOnRemove: true }), mount(2, { options: `${pinned},noatime`, merged: "/mnt/usbdisk/ttnode2/mnts2" })]);
        expect(await planned()).toEqual(["replace box1-ttnode2-mount"]);
        // the old mount goes first (two overlays never share an upper), then the new one is made
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        const targets = (await mountinfo()).split("\n").map((l) => l.split(" ")[4]);
        expect(targets).toContain("/mnt/usbdisk/ttnode2/mnts2");
        expect(targets).not.toContain("/mnt/usbdisk/ttnode2/mnts");
        await declare([mount(1, { purgeOnRemove: true }), mount(2, { options: `${pinned},noatime` })]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect(await planned()).toEqual([]);
    });

    it("import adopts a mounted overlay by its merged dir, without touching it; the next preview plans nothing", async () => {
        await declare([mount(1), mount(2, { options: `${pinned},noatime` })]);
        expect(await planned()).toEqual(["update box1-ttnode1-mount"]); // purgeOnRemove back to false
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        const table = await mountinfo();
        await pulumiOk(["state", "delete", project.urn("OverlayMount", "box1-ttnode1-mount"), "--yes"]);
        expect(await planned()).toEqual(["create box1-ttnode1-mount"]);
        const providerUrn = project.urn("provider", "box1");
        await pulumiOk(["import", "overlay-fleet:index:OverlayMount", "box1-ttnode1-mount", mount(1).merged, "--provider", `box1=${providerUrn}`, "--yes", "--skip-preview", "--protect=false"]);
        expect(await mountinfo()).toBe(table);
        expect(await planned()).toEqual([]);
    });

    it("a busy destroy fails naming the merged dir and stays mounted; then destroy purges where asked and keeps the lower byte for byte", async () => {
        await declare([mount(1, { purgeOnRemove: true }), mount(2, { options: `${pinned},noatime` })]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        await inBoxOk("box1", `echo data > ${mount(1).merged}/e2e-file && echo data > ${mount(2).merged}/e2e-file`);
        const lowerBefore = await lowerPrint();

        const m1 = mount(1).merged;
        await inBoxOk(
            "box1",
            `setsid sh -c 'cd ${m1} && exec sleep 600' </dev/null >/dev/null 2>&1 & p=$!; echo "$p" > /run/of-e2e-busy.pid
             for n in $(seq 200); do [ "$(readlink /proc/$p/cwd)" = ${m1} ] && exit 0; sleep 0.05; done; exit 1`,
        );
        const target = project.urn("OverlayMount", "box1-ttnode1-mount");
        const busy = await pulumi(["destroy", "--yes", "--skip-preview", "--target", target]);
        expect(busy.status).not.toBe(0);
        expect(busy.stdout + busy.stderr).toMatch(new RegExp(`cannot unmount the overlay at "${m1}", it is busy`));
        expect(await overlayMounts("box1")).toContain(m1);
        expect(await inBoxOk("box1", `cat /mnt/usbdisk/ttnode1/upper/e2e-file`)).toBe("data\n");
        await inBoxOk("box1", "p=$(cat /run/of-e2e-busy.pid); rm -f /run/of-e2e-busy.pid; kill $p; for n in $(seq 200); do [ -e /proc/$p ] || exit 0; sleep 0.05; done; exit 1");

        await pulumiOk(["destroy", "--yes", "--skip-preview"]);
        expect(await overlayMounts("box1")).toEqual([]);
        // ttnode1 purged (purgeOnRemove), ttnode2's data kept
        expect(await inBoxOk("box1", "ls -A /mnt/usbdisk/ttnode1 2>/dev/null || true")).toBe("");
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/ttnode2/upper/e2e-file")).toBe("data\n");
        expect(await lowerPrint()).toBe(lowerBefore);
    });
});
