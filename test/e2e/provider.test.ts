/**
 * The overlay-fleet provider (provider/, built by the toolchain into provider/bin) through the
 * real Pulumi engine, over the lab's real SSH, against the box agent (host/agent) on a lab box:
 * its first resource, FstabEntry. A program of its own (not the product's index.ts, which does
 * not use the provider yet) declares one explicit provider for box1 and its entries through the
 * TypeScript SDK generated from the provider's schema (sdk/nodejs).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshLab, inBoxOk, LabBox, managedFstabLines, repo, run, scrubBox } from "./engine";
import { agentDir, ProviderProject, providerBin } from "./providerProject";

const program = `import * as pulumi from "@pulumi/pulumi";
import * as overlayFleet from "./sdk/nodejs";

interface Entry { name: string; instanceId: string; merged: string; options: string }
const config = new pulumi.Config("test");
const box = config.requireObject<{ host: string; port: number; user: string; hostKey: string }>("box");
const box1 = new overlayFleet.Provider("box1", { ...box, privateKey: config.requireSecret("privateKey") });
for (const e of config.requireObject<Entry[]>("entries")) {
    new overlayFleet.FstabEntry(e.name, { instanceId: e.instanceId, merged: e.merged, options: e.options }, { provider: box1 });
}
`;

let box: LabBox;
let project: ProviderProject;
const pulumiOk = (args: string[]) => project.pulumiOk(args);
const planned = () => project.planned();

/** Entry `ttnode<n>` of box1 as the product plans it (cache-only, generation 1). */
function entry(n: number) {
    const root = `/mnt/usbdisk/ttnode${n}`;
    return {
        name: `box1-ttnode${n}-fstab`,
        instanceId: `box1/ttnode${n}`,
        merged: `${root}/mnts`,
        options: `lowerdir=/mnt/usbdisk/static_cache,upperdir=${root}/upper,workdir=${root}/work,index=off,nfs_export=off,redirect_dir=off,metacopy=off,nofail,x-systemd.requires-mounts-for=/mnt/usbdisk,x-systemd.before=docker.service`,
    };
}

async function declare(entries: ReturnType<typeof entry>[]): Promise<void> {
    await project.set("entries", entries);
}

const fstabOf = () => inBoxOk("box1", "cat /etc/fstab");

beforeAll(async () => {
    [box] = await freshLab();
    project = new ProviderProject("provider-e2e", "provider", program);
    await project.init(box.privateKeyPath);
    await project.set("box", { host: box.host, port: box.port, user: box.user, hostKey: box.hostKey });
}, 600_000);

afterAll(async () => {
    await project?.remove();
    await scrubBox("box1").catch(() => undefined);
});

describe("provider: FstabEntry through the engine, over SSH, by the box agent", () => {
    it("sdk/nodejs is what `pulumi package gen-sdk` makes of the built provider's schema", async () => {
        const out = fs.mkdtempSync(path.join(os.tmpdir(), "overlay-fleet-sdk-"));
        try {
            const r = await run("pulumi", ["package", "gen-sdk", providerBin, "--language", "nodejs", "--out", out], { env: project.env });
            expect(r.status).toBe(0);
            const files = (d: string): string[] =>
                fs.readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(d, path.join(e.parentPath, e.name))).sort();
            const fresh = path.join(out, "nodejs");
            const committed = path.join(repo, "sdk", "nodejs");
            expect(files(committed)).toEqual(files(fresh));
            for (const f of files(fresh)) expect([f, fs.readFileSync(path.join(committed, f), "utf8")]).toEqual([f, fs.readFileSync(path.join(fresh, f), "utf8")]);
        } finally {
            fs.rmSync(out, { recursive: true, force: true });
        }
    });

    it("preview changes nothing on the box; up writes each line; a second preview plans nothing", async () => {
        const before = await fstabOf();
        await declare([entry(1), entry(2)]);
        expect((await planned()).sort()).toEqual(["create box1", "create box1-ttnode1-fstab", "create box1-ttnode2-fstab"]);
        expect(await fstabOf()).toBe(before);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        const after = await fstabOf();
        expect(after.startsWith(before.endsWith("\n") ? before : before + "\n")).toBe(true);
        expect((await managedFstabLines("box1")).sort()).toEqual([1, 2].map((n) => `overlay ${entry(n).merged} overlay ${entry(n).options},x-overlay-fleet=box1/ttnode${n} 0 0`));
        expect(await planned()).toEqual([]);
        // the outputs are what the box reports
        const e1 = (await project.resources()).find((r) => r.urn.endsWith("::box1-ttnode1-fstab"))!;
        expect(e1.id).toBe("box1/ttnode1");
        expect(e1.outputs).toMatchObject({ instanceId: "box1/ttnode1", fstab: "/etc/fstab", merged: entry(1).merged, options: entry(1).options });
        expect(await managedFstabLines("box1")).toContain(e1.outputs!.line);
    });

    it("refresh shows a hand-edited line and a deleted one, each on its own resource; up repairs them and touches nothing else", async () => {
        await inBoxOk("box1", "sed -i '/x-overlay-fleet=box1\\/ttnode1 /s/,nofail,/,nofail,noatime,/' /etc/fstab && sed -i '/x-overlay-fleet=box1\\/ttnode2 /d' /etc/fstab");
        const refresh = await pulumiOk(["refresh", "--yes", "--skip-preview", "--diff"]);
        expect(refresh).toMatch(/~ overlay-fleet:index:FstabEntry: \(update\)\s+\[id=box1\/ttnode1\]/);
        expect(refresh).toMatch(/~ options: "[^"]*nofail,x-systemd[^"]*" => "[^"]*nofail,noatime,x-systemd[^"]*"/);
        expect(refresh).toMatch(/- overlay-fleet:index:FstabEntry: \(delete\)\s+\[id=box1\/ttnode2\]/);
        expect(refresh).toMatch(/~ 1 updated\s+- 1 deleted\s+2 changes\. 2 unchanged/);
        expect((await planned()).sort()).toEqual(["create box1-ttnode2-fstab", "update box1-ttnode1-fstab"]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect((await managedFstabLines("box1")).sort()).toEqual([1, 2].map((n) => `overlay ${entry(n).merged} overlay ${entry(n).options},x-overlay-fleet=box1/ttnode${n} 0 0`));
        expect(await planned()).toEqual([]);
    });

    it("a changed option updates that entry only; a changed instance id replaces it", async () => {
        const changed = { ...entry(2), options: entry(2).options.replace("nofail", "nofail,noatime") };
        await declare([entry(1), changed]);
        expect(await planned()).toEqual(["update box1-ttnode2-fstab"]);
        const diff = await pulumiOk(["preview", "--diff"]);
        expect(diff).toMatch(/options *: *"[^"]*nofail,x-systemd[^"]*" => "[^"]*nofail,noatime,x-systemd/);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect((await managedFstabLines("box1")).find((l) => l.includes("x-overlay-fleet=box1/ttnode2 "))).toContain(",nofail,noatime,");
        const renamed = { ...changed, instanceId: "box1/ttnode9" };
        await declare([entry(1), renamed]);
        expect(await planned()).toEqual(["replace box1-ttnode2-fstab"]);
        // the old line goes first (one line per mount point), then the new one is written
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect((await managedFstabLines("box1")).map((l) => l.split("x-overlay-fleet=")[1]).sort()).toEqual(["box1/ttnode1 0 0", "box1/ttnode9 0 0"]);
        await declare([entry(1), changed]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        expect(await planned()).toEqual([]);
    });

    it("import adopts a line that is there, without touching it; the next preview plans nothing", async () => {
        await declare([entry(1), { ...entry(2), options: entry(2).options.replace("nofail", "nofail,noatime") }]);
        expect(await planned()).toEqual([]);
        const lines = await managedFstabLines("box1");
        await pulumiOk(["state", "delete", project.urn("FstabEntry", "box1-ttnode1-fstab"), "--yes"]);
        expect(await planned()).toEqual(["create box1-ttnode1-fstab"]);
        const providerUrn = project.urn("provider", "box1");
        await pulumiOk(["import", "overlay-fleet:index:FstabEntry", "box1-ttnode1-fstab", "box1/ttnode1", "--provider", `box1=${providerUrn}`, "--yes", "--skip-preview", "--protect=false"]);
        expect(await managedFstabLines("box1")).toEqual(lines);
        expect(await planned()).toEqual([]);
    });

    it("--target and destroy --target act on that entry alone; destroy removes the rest and keeps every foreign line", async () => {
        const foreign = (await fstabOf()).split("\n").filter((l) => !l.includes("x-overlay-fleet="));
        await pulumiOk(["destroy", "--yes", "--skip-preview", "--target", project.urn("FstabEntry", "box1-ttnode2-fstab")]);
        expect((await managedFstabLines("box1")).map((l) => l.split("x-overlay-fleet=")[1])).toEqual(["box1/ttnode1 0 0"]);
        await pulumiOk(["destroy", "--yes", "--skip-preview"]);
        expect(await managedFstabLines("box1")).toEqual([]);
        expect((await fstabOf()).split("\n").filter((l) => !l.includes("x-overlay-fleet="))).toEqual(foreign);
    });
    it("installs its own box agent for the box's architecture on first use, once; an agent changed on the box is put back", async () => {
        const shipped = crypto.createHash("sha256").update(zlib.gunzipSync(fs.readFileSync(path.join(repo, "host", "agent", "dist", "bin", "overlay-fleet-host-amd64.gz")))).digest("hex");
        expect((await inBoxOk("box1", "uname -m")).trim()).toBe("x86_64");
        const agent = `${agentDir}/${shipped}/overlay-fleet-host`;
        // What the box has: every file below the agent dir with its sha256 and inode.
        const installed = async () => (await inBoxOk("box1", `cd ${agentDir} && find . -type f -exec sh -c 'printf "%s %s %s\\n" "$1" "$(sha256sum < "$1" | cut -c1-64)" "$(stat -c %i "$1")"' x {} \\;`)).trim().split("\n");
        await inBoxOk("box1", `rm -rf ${agentDir}`);
        await declare([entry(1)]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        const first = await installed();
        expect(first).toEqual([expect.stringMatching(new RegExp(`^\\./${shipped}/overlay-fleet-host ${shipped} \\d+$`))]);
        // The next operation (another provider process) finds it and installs nothing.
        await pulumiOk(["refresh", "--yes", "--skip-preview"]);
        expect(await installed()).toEqual(first);
        // Changed on the box: the next operation puts the shipped one back before it runs it.
        await inBoxOk("box1", `printf x >> ${agent}`);
        await pulumiOk(["refresh", "--yes", "--skip-preview"]);
        const again = await installed();
        expect(again).toHaveLength(1);
        expect(again[0].split(" ").slice(0, 2)).toEqual([`./${shipped}/overlay-fleet-host`, shipped]);
        await pulumiOk(["destroy", "--yes", "--skip-preview"]);
        expect(await managedFstabLines("box1")).toEqual([]);
    });
});
