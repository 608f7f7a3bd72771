/**
 * Containers for real: the real Pulumi engine deploys the lab stack WITH containers onto both lab
 * engines (box1: Docker 20.10, API 1.41; box2: a current engine, API >= 1.44). Each instance's
 * container must have exactly its planned IP, MAC and hostname — in the container, in
 * `docker inspect` and on the wire (the machine's neighbour table) — and serve its own cache.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { BoxSummary } from "../../components/box";
import { boxStatus, containersMissing, containersRecovery } from "../../ops/status";
import {
    buildLabImage,
    dockerIn,
    freshLab,
    inBoxOk,
    lab,
    LabBox,
    labContainerConfig,
    labImage,
    overlayMounts,
    repo,
    run,
    scrubBox,
    TestProject,
} from "./engine";

let boxes: LabBox[];
let project: TestProject;
let archive: string;

function configure(counts: Record<string, number>, perBox: Record<string, unknown> = {}, container: Record<string, unknown> = {}) {
    // A DNS server too: a container that matches its plan, DNS list included, must be kept as it is.
    const { defaults, boxes: declared } = labContainerConfig(boxes, counts, perBox, { imageArchive: archive, dns: ["198.18.0.53", "198.18.0.54"], ...container });
    project.configure(defaults, declared);
}

interface Planned {
    box: string;
    name: string;
    ip: string;
    mac: string;
    hostname: string;
}

async function planned(): Promise<Planned[]> {
    const summary = (await project.outputs()).summary as BoxSummary[];
    return summary.flatMap((b) => b.instances.map((i) => ({ box: b.name, name: i.name, ip: i.ip!, mac: i.mac, hostname: i.hostname })));
}

/** GET http://<ip>/<file> from the machine (the macvlan children are reachable from outside their box). */
async function httpGet(ip: string, file: string): Promise<{ status: number; body: string }> {
    const response = await fetch(`http://${ip}/${file}`, { signal: AbortSignal.timeout(5000) });
    return { status: response.status, body: await response.text() };
}

async function containerFacts(box: string, name: string) {
    const [id, mac, ip, hostname, running, startedAt, created] = (
        await dockerIn(
            box,
            `inspect --format '{{.Id}}|{{range .NetworkSettings.Networks}}{{.MacAddress}}|{{.IPAddress}}{{end}}|{{.Config.Hostname}}|{{.State.Running}}|{{.State.StartedAt}}|{{.Created}}' ${name}`,
        )
    )
        .trim()
        .split("|");
    return { id, mac, ip, hostname, running: running === "true", startedAt, created };
}

async function containerIds(box: string): Promise<Record<string, string>> {
    const out = await dockerIn(box, "ps -a --filter label=overlay-fleet.instance --format '{{.Names}} {{.ID}}'");
    return Object.fromEntries(out.split("\n").filter(Boolean).map((l) => l.split(" ")));
}

/** The neighbour table entry the machine has for an address on box<i>'s LAN. */
async function neighbourMac(box: string, ip: string): Promise<string> {
    const out = await run("ip", ["neigh", "show", ip, "dev", `of-h${box.replace("box", "")}`]);
    return /lladdr (\S+)/.exec(out.stdout)?.[1] ?? "";
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check().catch(() => false))) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 200));
    }
}

const serves = async (ip: string) => (await httpGet(ip, "README.txt").catch(() => ({ status: 0, body: "" }))).status === 200;

beforeAll(async () => {
    boxes = await freshLab();
    archive = await buildLabImage();
    project = new TestProject("containers");
    await project.init(boxes[0].privateKeyPath);
});

afterAll(async () => {
    await project?.destroyOk().catch(() => undefined);
    await project?.remove();
    fs.rmSync(path.join(os.tmpdir(), `overlay-fleet-image-${process.pid}.tar`), { force: true });
    for (const box of boxes ?? []) {
        await scrubBox(box.name);
    }
});

describe("containers on both lab engines", () => {
    it("the two boxes run the two engine generations", async () => {
        expect((await dockerIn("box1", "version --format '{{.Server.APIVersion}}'")).trim()).toBe("1.41");
        const api = (await dockerIn("box2", "version --format '{{.Server.APIVersion}}'")).trim().split(".").map(Number);
        expect(api[0] * 1000 + api[1]).toBeGreaterThanOrEqual(1044);
    });

    it("bad container settings fail preview naming the key, and nothing on the boxes changes", async () => {
        configure({ box1: 3, box2: 2 }, { box1: { network: { parent: "of b1" } } }, { image: "Not An Image", dns: ["1.2.3"] });
        const result = await project.pulumi(["preview"]);
        const text = result.stdout + result.stderr;
        expect(result.status).not.toBe(0);
        expect(text).toContain('overlay-fleet:defaults.container.image: "Not An Image" is not a docker image reference');
        expect(text).toContain('overlay-fleet:defaults.container.dns[0]: "1.2.3" is not an IPv4 address');
        expect(text).toContain('overlay-fleet:boxes.box1.network.parent: "of b1" is not a network interface name');
        configure({ box1: 3, box2: 2 }, {}, { imageArchive: "/nonexistent/cache-node.tar" });
        const missing = await project.pulumi(["preview"]);
        expect(missing.stdout + missing.stderr).toContain('overlay-fleet:defaults.container.imageArchive: "/nonexistent/cache-node.tar" does not exist');
        for (const box of boxes) {
            expect(await dockerIn(box.name, "ps -aq")).toBe("");
            expect(await dockerIn(box.name, "network ls --filter driver=macvlan -q")).toBe("");
            expect(await overlayMounts(box.name)).toEqual([]);
        }
    });

    it("a network whose subnet overlaps the planned one is reported by the apply's engine preflight; no network or container is made", async () => {
        await dockerIn("box2", "network create --subnet 198.18.2.128/25 clash >/dev/null");
        try {
            configure({ box2: 2 });
            const up = await project.up();
            expect(up.status).not.toBe(0);
            expect(up.stdout + up.stderr).toContain(
                "docker network clash (198.18.2.128/25) overlaps the planned subnet 198.18.2.0/24, and the engine refuses overlapping networks: remove it or change network.subnet",
            );
            expect(await overlayMounts("box2")).toHaveLength(2);
            expect(await dockerIn("box2", "network ls --filter driver=macvlan -q")).toBe("");
            expect(await dockerIn("box2", "ps -aq")).toBe("");
        } finally {
            await dockerIn("box2", "network rm clash >/dev/null");
        }
    });

    it("a foreign macvlan network on the parent of an old engine is reported, not clobbered", async () => {
        await dockerIn("box1", "network create -d macvlan --subnet 198.18.1.0/24 --gateway 198.18.1.1 -o parent=of-b1 othernet");
        configure({ box1: 3, box2: 2 });
        const up = await project.up();
        expect(up.status).not.toBe(0);
        expect(up.stdout + up.stderr).toContain(
            "docker network 'othernet' already uses 'of-b1' as macvlan parent, and this engine (API 1.41) allows one macvlan network per parent interface",
        );
        expect((await dockerIn("box1", "network ls --filter driver=macvlan --format '{{.Name}}'")).trim()).toBe("othernet");
        expect(await dockerIn("box1", "ps -aq")).toBe("");
        await dockerIn("box1", "network rm othernet");
    });

    it("a container that did not get its planned MAC fails the up, naming planned and actual, and is removed", async () => {
        // A newer docker CLI accepts --mac-address against the API 1.41 engine and silently drops
        // it (measured): the engine gives the container its own MAC. The read-back must catch it.
        const cli = /ENGINE_CLI=(\S+)/.exec((await run("bash", [path.join(__dirname, "..", "..", "tools", "lab-engines.sh"), "env", "docker29"])).stdout)![1].replace(/^'|'$/g, "");
        await inBoxOk("box1", `mount --bind '${cli}' /usr/bin/docker && mount --bind '${cli}' /usr/local/bin/docker`);
        try {
            configure({ box1: 3, box2: 2 });
            const up = await project.up();
            const text = up.stdout + up.stderr;
            expect(up.status).not.toBe(0);
            const reported = /container (ttnode\d) of box1\/\1 does not have its planned identity: planned hostname=box1-\1 ip=198\.18\.1\.10\d mac=(\S+), engine reports hostname=box1-\1 ip=198\.18\.1\.10\d mac=(\S+) \(container removed\)/.exec(text);
            expect(reported, text.slice(-3000)).not.toBeNull();
            expect(reported![3]).not.toBe(reported![2]);
            expect((await dockerIn("box1", "ps -aq --filter label=overlay-fleet.instance")).trim()).toBe("");
        } finally {
            await inBoxOk("box1", "umount /usr/local/bin/docker; umount /usr/bin/docker");
        }
    });

    it("up: every container runs with exactly its planned IP, MAC and hostname, and serves its own cache", async () => {
        configure({ box1: 3, box2: 2 });
        const up = await project.upOk();
        // The box's containers command made the network with the box's own CLI (in the up above,
        // which failed on the MAC), labelled as the box's.
        expect(up).toContain("ok network: macnet as planned (macvlan on of-b1, 198.18.1.0/24 via 198.18.1.1)");
        expect((await dockerIn("box2", "network inspect --format '{{.Driver}} {{.Options.parent}} {{index .Labels \"overlay-fleet.box\"}}' macnet")).trim()).toBe("macvlan of-b2 box2");
        const plan = await planned();
        expect(plan).toHaveLength(5);
        const readme = await inBoxOk("box1", "cat /mnt/usbdisk/static_cache/README.txt");
        for (const p of plan) {
            const facts = await containerFacts(p.box, p.name);
            expect(facts, `${p.box}/${p.name}`).toMatchObject({ mac: p.mac, ip: p.ip, hostname: p.hostname, running: true });
            expect((await dockerIn(p.box, `exec ${p.name} /bin/busybox cat /sys/class/net/eth0/address`)).trim()).toBe(p.mac);
            expect((await dockerIn(p.box, `exec ${p.name} /bin/busybox hostname`)).trim()).toBe(p.hostname);
            const got = await httpGet(p.ip, "README.txt");
            expect(got.status).toBe(200);
            expect(got.body).toBe(p.box === "box1" ? readme : await inBoxOk(p.box, "cat /mnt/usbdisk/static_cache/README.txt"));
            // The machine reached the container at its address, through its planned MAC.
            expect(await neighbourMac(p.box, p.ip)).toBe(p.mac);
        }
        // A file written through instance 1's merged dir is served by instance 1 only.
        await inBoxOk("box1", "echo only-in-1 > /mnt/usbdisk/ttnode1/mnts/mine.txt");
        const [one, two] = plan.filter((p) => p.box === "box1");
        expect(await httpGet(one.ip, "mine.txt")).toEqual({ status: 200, body: "only-in-1\n" });
        expect((await httpGet(two.ip, "mine.txt")).status).toBe(404);
    });

    it("status shows each container running with its planned IP and MAC", async () => {
        const summary = (await project.outputs()).summary as BoxSummary[];
        const key = fs.readFileSync(boxes[0].privateKeyPath, "utf8");
        for (const box of summary) {
            const status = boxStatus(box, key);
            expect(status.reachable, status.error).toBe(true);
            for (const instance of status.instances) {
                const plan = box.instances.find((i) => i.id === instance.instance)!;
                expect(instance.container).toEqual({ state: "running", ip: plan.ip, mac: plan.mac, hostname: plan.hostname, matchesPlan: true });
            }
        }
    });

    it("a second up is a no-op", async () => {
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same")).toEqual([]);
    });

    it("a changed gateway makes the box's network again, and its containers with their IP, MAC and hostname; not while a foreign container uses it", async () => {
        const plan = (await planned()).filter((p) => p.box === "box2");
        const before = await containerIds("box2");
        const gateway = async () => (await dockerIn("box2", "network inspect --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' macnet")).trim();
        await dockerIn("box2", `run -d --name squatter --network macnet --ip 198.18.2.150 ${labImage}`);
        configure({ box1: 3, box2: 2 }, { box2: { network: { gateway: "198.18.2.254" } } });
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`).sort()).toEqual(["update box2-apply", "update box2-containers-run"]);
        const refused = await project.up();
        expect(refused.status).not.toBe(0);
        expect(refused.stdout + refused.stderr).toContain("containers overlay-fleet did not create use it: squatter; no container was changed");
        expect(await containerIds("box2")).toEqual(before);
        expect(await gateway()).toBe("198.18.2.1");
        await dockerIn("box2", "rm -f squatter");
        const up = await project.upOk();
        expect(up).toContain("ok network: macnet removed (it is macvlan|of-b2|198.18.2.0/24 198.18.2.1;|box2, the plan wants macvlan|of-b2|198.18.2.0/24 198.18.2.254;|box2), with its containers");
        expect(await gateway()).toBe("198.18.2.254");
        const after = await containerIds("box2");
        for (const p of plan) {
            expect(after[p.name], p.name).not.toBe(before[p.name]);
            expect(await containerFacts("box2", p.name)).toMatchObject({ mac: p.mac, ip: p.ip, hostname: p.hostname, running: true });
            await waitFor(`${p.name} serving`, () => serves(p.ip));
        }
        configure({ box1: 3, box2: 2 });
        await project.upOk();
        expect(await gateway()).toBe("198.18.2.1");
    });

    it("a renamed network: the containers move to the new one and the old one goes (one macvlan network per parent on box1's engine); not while a foreign container uses it", async () => {
        const plan = await planned();
        const networks = async (box: string) => (await dockerIn(box, "network ls --filter driver=macvlan --format '{{.Name}}'")).trim().split("\n").sort();
        configure({ box1: 3, box2: 2 }, { box1: { network: { name: "macnet2" } }, box2: { network: { name: "macnet2" } } });
        const up = await project.upOk();
        expect(up).toContain("ok network: macnet removed (the plan names macnet2), with its containers");
        for (const p of plan) {
            expect(await networks(p.box), p.box).toEqual(["macnet2"]);
            const networkOf = (await dockerIn(p.box, `inspect --format '{{range $n, $e := .NetworkSettings.Networks}}{{$n}}{{end}}' ${p.name}`)).trim();
            expect(networkOf, `${p.box}/${p.name}`).toBe("macnet2");
            expect(await containerFacts(p.box, p.name)).toMatchObject({ mac: p.mac, ip: p.ip, running: true });
        }
        // Back to macnet: refused on box2 while a container overlay-fleet did not create uses macnet2.
        await dockerIn("box2", `run -d --name squatter --network macnet2 --ip 198.18.2.150 ${labImage}`);
        configure({ box1: 3, box2: 2 });
        const refused = await project.up();
        expect(refused.status).not.toBe(0);
        expect(refused.stdout + refused.stderr).toContain(
            "docker network 'macnet2' must go (the plan names macnet), but containers overlay-fleet did not create use it: squatter; no container was changed",
        );
        expect(await networks("box2")).toEqual(["macnet2"]);
        expect(await networks("box1")).toEqual(["macnet"]);
        await dockerIn("box2", "rm -f squatter");
        expect(await project.upOk()).toContain("ok network: macnet2 removed (the plan names macnet)");
        expect(await networks("box2")).toEqual(["macnet"]);
        for (const p of plan) await waitFor(`${p.name} serving`, () => serves(p.ip));
    });

    it("engine restart: every container comes back by itself with the same MAC", async () => {
        const plan = (await planned()).filter((p) => p.box === "box2");
        await lab("stop-engine", "box2");
        await lab("start-engine", "box2");
        for (const p of plan) {
            await waitFor(`${p.name} serving again`, () => serves(p.ip));
            expect(await containerFacts("box2", p.name)).toMatchObject({ mac: p.mac, ip: p.ip, running: true });
        }
    });

    it("a box that lost its containers: status names the containers command, whose replacement makes them again", async () => {
        const plan = (await planned()).filter((p) => p.box === "box2");
        await dockerIn("box2", "rm -f " + plan.map((p) => p.name).join(" "));
        const summary = ((await project.outputs()).summary as BoxSummary[]).find((b) => b.name === "box2")!;
        const status = boxStatus(summary, fs.readFileSync(boxes[0].privateKeyPath, "utf8"));
        expect(status.instances.map((i) => i.container?.state)).toEqual(plan.map(() => "absent"));
        const recovery = containersRecovery(await project.pulumiOk(["stack", "--show-urns"]), "box2");
        expect(recovery.map((arg) => arg.replace(/.*::/, ""))).toEqual(["--replace", "box2-containers-run"]);
        await project.upOk(recovery);
        for (const p of plan) {
            expect(await containerFacts("box2", p.name)).toMatchObject({ mac: p.mac, ip: p.ip, hostname: p.hostname, running: true });
            await waitFor(`${p.name} serving again`, () => serves(p.ip));
        }
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same")).toEqual([]);
    });

    it("a box that lost some of its containers: status names npm run repair, which makes them again and keeps the others running", async () => {
        const plan = (await planned()).filter((p) => p.box === "box1");
        const [gone, ...kept] = plan;
        const before = await Promise.all(kept.map((p) => containerFacts("box1", p.name)));
        await dockerIn("box1", `rm -f ${gone.name}`);
        const summary = ((await project.outputs()).summary as BoxSummary[]).find((b) => b.name === "box1")!;
        const status = boxStatus(summary, fs.readFileSync(boxes[0].privateKeyPath, "utf8"));
        expect(status.instances.map((i) => i.container?.state)).toEqual(plan.map((p) => (p === gone ? "absent" : "running")));
        expect(containersMissing(status)).toEqual([`box1/${gone.name}`]);

        const operator = (command: string, args: string[]) =>
            run("node", ["-r", "ts-node/register/transpile-only", path.join(repo, "ops", `${command}.ts`), "--stack", project.stack, ...args], { cwd: project.dir, env: project.env });
        const reported = await operator("status", []);
        expect(reported.status).toBe(1);
        expect(reported.stderr).toContain(`the containers of box1/${gone.name} are gone; make them again, keeping the box's others, with:`);
        expect(reported.stderr).toContain(`npm run repair -- --stack '${project.stack}' box1`);
        const repair = (args: string[]) => operator("repair", args);
        // A box the stack does not have is refused by name, before any box is touched.
        const refused = await repair(["box1", "box9"]);
        expect(refused.status).not.toBe(0);
        expect(refused.stderr).toContain('has no box "box9"');
        expect(await containerIds("box1")).not.toHaveProperty(gone.name);

        const repaired = await repair(["box1"]);
        expect(repaired.status, repaired.stderr).toBe(0);
        expect(await containerFacts("box1", gone.name)).toMatchObject({ mac: gone.mac, ip: gone.ip, hostname: gone.hostname, running: true });
        await waitFor(`${gone.name} serving again`, () => serves(gone.ip));
        // The others were kept, not made again.
        for (const [k, p] of kept.entries()) {
            expect(await containerFacts("box1", p.name)).toMatchObject({ id: before[k].id, startedAt: before[k].startedAt });
            expect(await serves(p.ip)).toBe(true);
        }
        expect((await operator("status", [])).status).toBe(0);
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same")).toEqual([]);
    });

    it("reboot drill: engine stopped, overlays unmounted, mount -a, engine started: every container serves its cache", async () => {
        const plan = (await planned()).filter((p) => p.box === "box1");
        await lab("stop-engine", "box1");
        await inBoxOk("box1", "for m in $(findmnt -rn -t overlay -o TARGET | grep ^/mnt/usbdisk/); do umount $m; done");
        expect(await overlayMounts("box1")).toEqual([]);
        await inBoxOk("box1", "mount -a");
        await lab("start-engine", "box1");
        for (const p of plan) {
            await waitFor(`${p.name} serving again`, () => serves(p.ip));
        }
        expect(await httpGet(plan[0].ip, "mine.txt")).toEqual({ status: 200, body: "only-in-1\n" });
    });

    it("scale 3 -> 5 creates two containers and touches no other", async () => {
        const before = await containerIds("box1");
        configure({ box1: 5, box2: 2 });
        const { steps } = await project.preview();
        const changed = steps.filter((s) => s.op !== "same");
        expect(changed.map((s) => `${s.op} ${s.name}`).sort()).toEqual(
            ["update box1-apply", "update box1-containers-run", "create box1-ttnode4", "create box1-ttnode5"].sort(),
        );
        // The image archive loaded by the first up is not loaded again (a load reads all of it).
        expect(await project.upOk()).toMatch(/ok image: overlay-fleet\/cache-node:lab as loaded from \/var\/lib\/overlay-fleet\/images\/[0-9a-f]{16}\.tar/);
        const after = await containerIds("box1");
        expect(Object.keys(after).sort()).toEqual(["ttnode1", "ttnode2", "ttnode3", "ttnode4", "ttnode5"]);
        for (const [name, id] of Object.entries(before)) {
            expect(after[name], name).toBe(id);
        }
        for (const p of (await planned()).filter((p) => p.box === "box1")) {
            expect(await containerFacts("box1", p.name)).toMatchObject({ mac: p.mac, ip: p.ip, running: true });
        }
    });

    it("changing one instance's IP replaces only that container and keeps its MAC and hostname", async () => {
        const before = await containerIds("box1");
        const old = (await planned()).find((p) => p.box === "box1" && p.name === "ttnode2")!;
        configure({ box1: 5, box2: 2 }, { box1: { overrides: { "2": { ip: "198.18.1.150" } } } });
        const { steps } = await project.preview();
        expect(steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`)).toEqual(["update box1-containers-run"]);
        await project.upOk();
        const after = await containerIds("box1");
        expect(after.ttnode2).not.toBe(before.ttnode2);
        for (const name of ["ttnode1", "ttnode3", "ttnode4", "ttnode5"]) {
            expect(after[name], name).toBe(before[name]);
        }
        expect(await containerFacts("box1", "ttnode2")).toMatchObject({ ip: "198.18.1.150", mac: old.mac, hostname: old.hostname, running: true });
        expect(await serves("198.18.1.150")).toBe(true);
    });

    it("a new image replaces the containers one at a time (maxDownPerBox 1)", async () => {
        const second = await buildLabImage(path.join(os.tmpdir(), `overlay-fleet-image-${process.pid}.tar`), labImage, "v2");
        const oldImage = (await dockerIn("box1", `image inspect --format '{{.Id}}' ${labImage}`)).trim();
        archive = second; // from now on the stack ships the new image
        configure({ box1: 5, box2: 2 }, { box1: { overrides: { "2": { ip: "198.18.1.150" } } } });
        const { steps } = await project.preview();
        const changed = steps.filter((s) => s.op !== "same").map((s) => s.name);
        for (const box of ["box1", "box2"]) {
            expect(changed).toContain(`${box}-image-copy`);
            expect(changed).toContain(`${box}-containers-run`);
        }
        await project.upOk();
        const newImage = (await dockerIn("box1", `image inspect --format '{{.Id}}' ${labImage}`)).trim();
        expect(newImage).not.toBe(oldImage);
        const facts = await Promise.all([1, 2, 3, 4, 5].map((i) => containerFacts("box1", `ttnode${i}`)));
        for (const f of facts) {
            expect(f.running).toBe(true);
            expect((await dockerIn("box1", `inspect --format '{{.Image}}' ${f.id}`)).trim()).toBe(newImage);
        }
        // One replacement at a time: each new container was created after the one before it was running.
        const byCreation = [...facts].sort((a, b) => Date.parse(a.created) - Date.parse(b.created));
        for (let i = 1; i < byCreation.length; i++) {
            expect(Date.parse(byCreation[i].created)).toBeGreaterThanOrEqual(Date.parse(byCreation[i - 1].startedAt));
        }
    });

    it("scale 5 -> 3 removes containers 4-5 and their overlays, keeps their data", async () => {
        await inBoxOk("box1", "echo keep-me > /mnt/usbdisk/ttnode5/mnts/data");
        const before = await containerIds("box1");
        configure({ box1: 3, box2: 2 }, { box1: { overrides: { "2": { ip: "198.18.1.150" } } } });
        await project.upOk();
        const after = await containerIds("box1");
        expect(Object.keys(after).sort()).toEqual(["ttnode1", "ttnode2", "ttnode3"]);
        for (const name of ["ttnode1", "ttnode2", "ttnode3"]) {
            expect(after[name], name).toBe(before[name]);
        }
        expect(await overlayMounts("box1")).toEqual([1, 2, 3].map((i) => `/mnt/usbdisk/ttnode${i}/mnts`));
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/ttnode5/upper/data")).toBe("keep-me\n");
    });

    it("a generation switch restarts containers one at a time while the others keep serving", async () => {
        const plan = (await planned()).filter((p) => p.box === "box1");
        configure({ box1: 3, box2: 2 }, { box1: { generation: 2, overrides: { "2": { ip: "198.18.1.150" } } } });
        const child = project.upInBackground();
        child.stdout!.resume();
        const exited = new Promise<number | null>((r) => child.once("exit", r));
        let done = false;
        void exited.then(() => (done = true));
        let mostDown = 0;
        let polls = 0;
        while (!done) {
            const down = (await Promise.all(plan.map((p) => serves(p.ip)))).filter((ok) => !ok).length;
            mostDown = Math.max(mostDown, down);
            polls++;
        }
        expect(await exited).toBe(0);
        expect(polls).toBeGreaterThan(3);
        expect(mostDown).toBeLessThanOrEqual(1);
        expect(await inBoxOk("box1", "findmnt -rn -o OPTIONS /mnt/usbdisk/ttnode1/mnts")).toContain("lowerdir=/mnt/usbdisk/static_cache.g2");
        for (const p of plan) {
            expect(await serves(p.ip), p.name).toBe(true);
        }
        // Instance 1's own file was folded into the new generation and is still served by it.
        expect(await httpGet(plan[0].ip, "mine.txt")).toEqual({ status: 200, body: "only-in-1\n" });
    });

    it("destroy removes the containers and the network and keeps all cache data", async () => {
        const lower = ((await project.outputs()).summary as BoxSummary[]).find((b) => b.name === "box1")!.lower;
        const listing = `cd ${lower} && find . | sort | md5sum`;
        const lowerBefore = await inBoxOk("box1", listing);
        await inBoxOk("box1", "echo after-fold > /mnt/usbdisk/ttnode3/mnts/late.txt");
        await project.destroyOk();
        for (const box of boxes) {
            expect(await dockerIn(box.name, "ps -aq")).toBe("");
            expect(await dockerIn(box.name, "network ls --filter driver=macvlan -q")).toBe("");
            expect(await overlayMounts(box.name)).toEqual([]);
        }
        expect(await inBoxOk("box1", listing)).toBe(lowerBefore);
        expect(await inBoxOk("box1", "cat /mnt/usbdisk/ttnode3/upper/late.txt")).toBe("after-fold\n");
    });
});
