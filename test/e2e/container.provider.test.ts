/**
 * The overlay-fleet provider's Network and Container through the real Pulumi engine, over the
 * lab's real SSH, against the box agent (host/agent) and the real Docker engines of both lab
 * boxes: box1 runs Docker 20.10 (API 1.41), box2 a current engine (Docker 29, API 1.56). A
 * program of its own declares one explicit provider per box, each box's macvlan network and a
 * container per instance through the TypeScript SDK generated from the provider's schema
 * (sdk/nodejs). Each container must have exactly its IP, MAC and hostname on both engines, as
 * `docker inspect`, the container itself and the stack's outputs all say.
 *
 * The test prepares what other resources will own later: the agent on each box, the lab image
 * loaded with `docker load`, and each instance's overlay mounted by hand on its merged dir (the
 * agent starts no container on a dir without its overlay).
 */
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLabImage, dockerIn, freshLab, inBox, inBoxOk, LabBox, labImage, repo, scrubBox } from "./engine";
import { ProviderProject } from "./providerProject";

const program = `import * as pulumi from "@pulumi/pulumi";
import * as overlayFleet from "./sdk/nodejs";

interface BoxConfig { name: string; host: string; port: number; user: string; hostKey: string; parent: string; subnet: string; gateway: string }
interface ContainerConfig { box: string; name: string; hostname: string; ip: string; mac: string; merged: string }
const config = new pulumi.Config("test");
const image = config.require("image");
const containers = config.requireObject<ContainerConfig[]>("containers");
for (const b of config.requireObject<BoxConfig[]>("boxes")) {
    const provider = new overlayFleet.Provider(b.name, {
        host: b.host, port: b.port, user: b.user, hostKey: b.hostKey, privateKey: config.requireSecret("privateKey"),
    });
    const network = new overlayFleet.Network(\`\${b.name}-network\`, { name: "macnet", parent: b.parent, subnet: b.subnet, gateway: b.gateway, box: b.name }, { provider });
    for (const c of containers.filter((c) => c.box === b.name)) {
        new overlayFleet.Container(\`\${b.name}-\${c.name}\`, {
            name: c.name, instanceId: \`\${b.name}/\${c.name}\`, hostname: c.hostname, network: network.name, ip: c.ip, mac: c.mac,
            image, merged: c.merged, restart: "always", privileged: false, dns: ["198.18.0.53"], env: { NODE_NAME: c.name },
        }, { provider });
    }
}
`;

interface Planned {
    box: string;
    name: string;
    hostname: string;
    ip: string;
    mac: string;
    merged: string;
}

/** Instance `ttnode<n>` of box<i> with its identity. */
function instance(i: number, n: number, ip = `198.18.${i}.${100 + n}`): Planned {
    return { box: `box${i}`, name: `ttnode${n}`, hostname: `box${i}-ttnode${n}`, ip, mac: `02:0f:0${i}:00:00:0${n}`, merged: `/mnt/usbdisk/ttnode${n}/mnts` };
}

const all = (): Planned[] => [instance(1, 1), instance(1, 2), instance(2, 1)];

let boxes: LabBox[];
let project: ProviderProject;
const pulumiOk = (args: string[]) => project.pulumiOk(args);
const planned = () => project.planned();
const resources = () => project.resources();

async function declare(containers: Planned[]): Promise<void> {
    await project.set("containers", containers);
}

const urnOf = (type: string, name: string) => project.urn(type, name);

async function outputsOf(name: string): Promise<Record<string, unknown> | undefined> {
    return (await resources()).find((r) => r.urn === urnOf("Container", name))?.outputs;
}

/** What the box's engine says about a container (absent: undefined). */
async function facts(box: string, name: string) {
    const r = await inBox(
        box,
        `docker inspect --type container --format '{{.Id}}|{{with index .NetworkSettings.Networks "macnet"}}{{.IPAddress}}|{{.MacAddress}}{{end}}|{{.Config.Hostname}}|{{.State.Running}}|{{index .Config.Labels "overlay-fleet.instance"}}' ${name}`,
    );
    if (r.status !== 0) return undefined;
    const [id, ip, mac, hostname, running, label] = r.stdout.trim().split("|");
    return { id, ip, mac, hostname, running: running === "true", label };
}

/** The container has exactly its identity: in `docker inspect`, inside it, and in the stack's outputs. */
async function expectIdentity(p: Planned): Promise<void> {
    const f = await facts(p.box, p.name);
    expect(f, `${p.box}/${p.name}`).toMatchObject({ ip: p.ip, mac: p.mac, hostname: p.hostname, running: true, label: `${p.box}/${p.name}` });
    expect((await dockerIn(p.box, `exec ${p.name} /bin/busybox cat /sys/class/net/eth0/address`)).trim()).toBe(p.mac);
    expect((await dockerIn(p.box, `exec ${p.name} /bin/busybox hostname`)).trim()).toBe(p.hostname);
    expect(await outputsOf(`${p.box}-${p.name}`)).toMatchObject({
        name: p.name, instanceId: `${p.box}/${p.name}`, ip: p.ip, mac: p.mac, hostname: p.hostname, network: "macnet",
        merged: p.merged, target: "/mnts", running: true, containerId: f!.id, image: labImage,
    });
}

const labelled = async (box: string) => (await dockerIn(box, "ps -aq --filter label=overlay-fleet.instance")).trim();
const hasMacnet = async (box: string) => (await dockerIn(box, "network ls --format '{{.Name}}'")).split("\n").includes("macnet");

beforeAll(async () => {
    boxes = await freshLab();
    const archive = await buildLabImage(path.join(repo, ".lab", "cache-node-provider.tar"));
    for (const box of ["box1", "box2"]) {
        await dockerIn(box, `load --input '${archive}' >/dev/null`);
        // Each instance's overlay on its merged dir, as OverlayMount will make it.
        for (const n of [1, 2]) {
            const root = `/mnt/usbdisk/ttnode${n}`;
            await inBoxOk(
                box,
                `mkdir -p ${root}/upper ${root}/work ${root}/mnts && mount -t overlay overlay -o lowerdir=/mnt/usbdisk/static_cache,upperdir=${root}/upper,workdir=${root}/work,index=off,nfs_export=off ${root}/mnts`,
            );
        }
    }
    project = new ProviderProject("container-provider-e2e", "containerprovider", program);
    await project.init(boxes[0].privateKeyPath);
    const boxConfig = boxes.slice(0, 2).map((b, k) => ({
        name: b.name, host: b.host, port: b.port, user: b.user, hostKey: b.hostKey,
        parent: `of-b${k + 1}`, subnet: `198.18.${k + 1}.0/24`, gateway: `198.18.${k + 1}.1`,
    }));
    await project.set("boxes", boxConfig);
    await project.set("image", labImage);
}, 900_000);

afterAll(async () => {
    await project?.remove();
    for (const box of ["box1", "box2"]) {
        await inBox(box, "docker rm -f $(docker ps -aq --filter label=overlay-fleet.instance) 2>/dev/null; docker network rm macnet 2>/dev/null; true").catch(() => undefined);
        await scrubBox(box).catch(() => undefined);
    }
});

describe("provider: Network and Container on both lab engines, through the engine, over SSH, by the box agent", () => {
    it("box1 runs API 1.41 (Docker 20.10), box2 a current engine (API >= 1.44)", async () => {
        expect(boxes.map((b) => b.name).slice(0, 2)).toEqual(["box1", "box2"]);
        expect((await dockerIn("box1", "version --format '{{.Server.APIVersion}}'")).trim()).toBe("1.41");
        const [major, minor] = (await dockerIn("box2", "version --format '{{.Server.APIVersion}}'")).trim().split(".").map(Number);
        expect(major * 1000 + minor).toBeGreaterThanOrEqual(1044);
    });

    it("preview touches no engine; up makes each box's network and containers with exactly their IP, MAC and hostname; a second preview plans nothing", async () => {
        await declare(all());
        expect(await planned()).toEqual(
            ["create box1", "create box1-network", "create box1-ttnode1", "create box1-ttnode2", "create box2", "create box2-network", "create box2-ttnode1"].sort(),
        );
        for (const box of ["box1", "box2"]) {
            expect(await labelled(box)).toBe("");
            expect(await hasMacnet(box)).toBe(false);
        }
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        for (const [i, box] of ["box1", "box2"].entries()) {
            const net = (await dockerIn(box, `network inspect --format '{{.Driver}} {{.Options.parent}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{index .Labels "overlay-fleet.box"}}' macnet`)).trim();
            expect(net).toBe(`macvlan of-b${i + 1} 198.18.${i + 1}.0/24 198.18.${i + 1}.1 ${box}`);
            const state = (await resources()).find((r) => r.urn === urnOf("Network", `${box}-network`))!;
            expect(state.id).toBe("macnet");
            expect(state.outputs).toMatchObject({ name: "macnet", driver: "macvlan", parent: `of-b${i + 1}`, subnet: `198.18.${i + 1}.0/24`, box });
        }
        for (const p of all()) await expectIdentity(p);
        expect((await resources()).find((r) => r.urn === urnOf("Container", "box2-ttnode1"))!.id).toBe("ttnode1");
        expect(await planned()).toEqual([]);
    });

    it("refresh after docker stop shows running false on both engines (not another identity); up starts the same containers again", async () => {
        const stopped = [instance(1, 1), instance(2, 1)];
        const before = await Promise.all(stopped.map((p) => facts(p.box, p.name)));
        for (const p of stopped) await dockerIn(p.box, `stop ${p.name} >/dev/null`);
        const refresh = await pulumiOk(["refresh", "--yes", "--skip-preview", "--diff"]);
        expect(refresh).toMatch(/running\s*: true => false/);
        for (const p of stopped) {
            // A stopped container still reports its identity: the configured IP, and its MAC
            // (on API 1.41 from the engine, from 1.44 on from the agent's label).
            expect(await outputsOf(`${p.box}-${p.name}`)).toMatchObject({ running: false, ip: p.ip, mac: p.mac, hostname: p.hostname });
        }
        expect(await outputsOf("box1-ttnode2")).toMatchObject({ running: true });
        expect(await planned()).toEqual(["update box1-ttnode1", "update box2-ttnode1"]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        for (const [k, p] of stopped.entries()) {
            await expectIdentity(p);
            expect((await facts(p.box, p.name))!.id).toBe(before[k]!.id);
        }
        expect(await planned()).toEqual([]);
    });

    it("refresh after docker rm -f drops the container; up makes it again with its identity", async () => {
        const gone = instance(1, 2);
        await dockerIn("box1", `rm -f ${gone.name} >/dev/null`);
        const refresh = await pulumiOk(["refresh", "--yes", "--skip-preview"]);
        expect(refresh).toMatch(/1 deleted/);
        expect((await resources()).some((r) => r.urn === urnOf("Container", "box1-ttnode2"))).toBe(false);
        expect(await planned()).toEqual(["create box1-ttnode2"]);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        await expectIdentity(gone);
        expect(await planned()).toEqual([]);
    });

    it("a changed IP previews as a replace of that container only; up replaces it keeping its MAC and hostname", async () => {
        const others = [instance(1, 1), instance(1, 2)];
        const before = await Promise.all(others.map((p) => facts(p.box, p.name)));
        const moved = instance(2, 1, "198.18.2.150");
        await declare([...others, moved]);
        expect(await planned()).toEqual(["replace box2-ttnode1"]);
        const diff = await pulumiOk(["preview", "--diff"]);
        expect(diff).toMatch(/ip\s*: "198\.18\.2\.101" => "198\.18\.2\.150"/);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        await expectIdentity(moved);
        for (const [k, p] of others.entries()) expect((await facts(p.box, p.name))!.id).toBe(before[k]!.id);
        expect(await planned()).toEqual([]);
    });

    it("a new image whose containers cannot start takes one instance per box down (maxDownPerBox 1), the rest keep running; the next up with a good image makes it again", async () => {
        await declare(all());
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        // An image whose containers cannot start (its entrypoint is missing), on both engines.
        for (const box of ["box1", "box2"]) {
            await dockerIn(box, `create --name of-mk-broken ${labImage} >/dev/null && docker commit --change 'ENTRYPOINT ["/of-no-such-entrypoint"]' --change 'CMD []' of-mk-broken of-broken:1 >/dev/null && docker rm of-mk-broken >/dev/null`);
        }
        await project.set("image", "of-broken:1");
        const bad = await project.pulumi(["up", "--yes", "--skip-preview"]);
        expect(bad.status).not.toBe(0);
        const out = bad.stdout + bad.stderr;
        expect(out).toMatch(/docker run of container ttnode[12] of box1\/ttnode[12] failed/);
        // On box1 one replacement ran and failed; the other was refused and keeps running as it was.
        expect(out).toMatch(/not taking box1\/ttnode[12] down: the replacement of box1\/ttnode[12] failed in this run/);
        const box1 = await Promise.all(["ttnode1", "ttnode2"].map((n) => facts("box1", n)));
        const up = box1.filter((f) => f?.running);
        expect(up).toHaveLength(1);
        expect(up[0]!.label).toMatch(/^box1\/ttnode[12]$/);
        expect(await dockerIn("box1", `inspect --format '{{.Config.Image}}' ${up[0]!.label.split("/")[1]}`)).toContain(labImage);
        // box2 has one instance: it was the one down.
        expect((await facts("box2", "ttnode1"))?.running ?? false).toBe(false);
        // The image made good again: the next up makes the failed instances again, each with its identity.
        await project.set("image", labImage);
        await pulumiOk(["up", "--yes", "--skip-preview"]);
        for (const p of all()) await expectIdentity(p);
        expect(await planned()).toEqual([]);
    });

    it("destroy removes the containers and the networks of both boxes", async () => {
        await pulumiOk(["destroy", "--yes", "--skip-preview"]);
        for (const box of ["box1", "box2"]) {
            expect(await labelled(box)).toBe("");
            expect(await hasMacnet(box)).toBe(false);
        }
        expect(await resources()).toEqual([]);
    });
});
