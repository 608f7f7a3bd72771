import { describe, expect, it } from "vitest";
import * as pulumi from "@pulumi/pulumi";
import { byName, drain, installMocks, Registration, secretSignature, settle } from "./mocks";
import { homeConfig, raw } from "./fixtures";
import { planFleet, resolveFleetConfig } from "../../model/config";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { hostScript } from "../../components/hostScripts";
import { hostCall, hostCalls, stageHostLibrary } from "../../components/hostLibrary";
import { planBox } from "../../model/plan";
import { writeImageArchive } from "./imageArchives";
import { fileTempDir } from "./tempDirs";
import { Box } from "../../components/box";
import { instanceRecord } from "../../components/overlayInstance";
import { containerRecord } from "../../components/boxContainers";
import { readFleetConfig } from "../../program/stackConfig";

// One mock monitor for the file: every deploy records into the same list, cleared per deploy.
const registrations: Registration[] = installMocks();

const privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n-----END OPENSSH PRIVATE KEY-----\n";

/**
 * The host library staged from a project without the fold helper's sources: the same scripts,
 * no Go build (that is the program's job, tested end to end), so this tier needs no Go.
 */
const hostLibrary = stageHostLibrary(fileTempDir("overlay-fleet-unit-"));

async function deploy(config: { defaults?: any; boxes?: any }, boxName = "nas") {
    await drain(registrations);
    registrations.length = 0;
    const plan = planFleet(raw(config)).boxes.find((b) => b.settings.name === boxName)!;
    const box = new Box(boxName, { plan, privateKey: pulumi.secret(privateKey), hostLibrary, stack: "acme/overlay-fleet/home" });
    await settle(box.urn);
    await drain(registrations);
    return { box, registrations: [...registrations] };
}

/** The records the box's apply reads on stdin, one line per instance (host/apply.sh). */
const records = (regs: Registration[]) => String(byName(regs, "nas-apply").inputs.stdin).split("\n").filter(Boolean).map((line) => line.split("\t"));
const escapeRe = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** The records the box's containers command reads on stdin, one line per container (host/containers.sh). */
const containerRecords = (regs: Registration[]) => String(byName(regs, "nas-containers-run").inputs.stdin).split("\n").filter(Boolean).map((line) => line.split("\t"));
/** The calls of the box's apply, one per line after the library install (`sh activate`). */
const applyLines = (regs: Registration[]) =>
    String(byName(regs, "nas-apply").inputs.create).split("\n").filter((line) => line.startsWith("sh ") && !line.startsWith("sh activate"));

describe("Box resource graph", () => {
    it("declares host library, cache, one apply, network, image, one containers command and per instance an overlay", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const types = regs.map((r) => `${r.type} ${r.name}`).sort();
        expect(types).toEqual(
            [
                "overlay-fleet:fleet:Box nas",
                "overlay-fleet:host:HostLibrary nas-host",
                "command:remote:CopyToRemote nas-host-copy",
                "overlay-fleet:cache:LowerCache nas-cache",
                "command:remote:Command nas-teardown",
                "command:remote:Command nas-apply",
                "overlay-fleet:network:MacvlanNetwork nas-macvlan",
                "overlay-fleet:container:BoxContainers nas-containers",
                "command:remote:Command nas-containers-run",
                ...[1, 2, 3].map((i) => `overlay-fleet:overlay:OverlayInstance nas-ttnode${i}`),
            ].sort(),
        );
        // Every child hangs under its component, every component under the box.
        const urnOf = (name: string, type: string) => regs.find((r) => r.name === name && r.type === type)!.urn;
        const boxUrn = urnOf("nas", "overlay-fleet:fleet:Box");
        expect(byName(regs, "nas-cache").parent).toBe(boxUrn);
        expect(byName(regs, "nas-apply").parent).toBe(boxUrn);
        expect(urnOf("nas-ttnode2", "overlay-fleet:overlay:OverlayInstance")).toContain("overlay-fleet:fleet:Box$overlay-fleet:overlay:OverlayInstance::nas-ttnode2");
        expect(byName(regs, "nas-containers-run").parent).toBe(urnOf("nas-containers", "overlay-fleet:container:BoxContainers"));
    });

    it("orders library copy, apply (with the engine preflight), then the network and the containers", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const urn = (name: string) => byName(regs, name).urn;
        // After the copy, not beside it: the copy rewrites a library already on the box in place.
        expect(byName(regs, "nas-apply").dependencies).toEqual(expect.arrayContaining([urn("nas-host-copy"), urn("nas-teardown")]));
        // The containers command makes the network and the containers after the apply checked the engine.
        expect(byName(regs, "nas-containers-run").dependencies).toContain(urn("nas-apply"));
        // Generation 1 has nothing to retire.
        expect(applyLines(regs).filter((line) => line.startsWith("sh gc"))).toEqual([]);
    });

    it("keeps the library entry of every command byte for byte (a new text would re-run every command of every stack)", () => {
        expect(hostCalls(["mount", ["a b"]])).toBe(
            `{ cd /var/lib/overlay-fleet/host 2>/dev/null || { echo "overlay-fleet: no host library on this box (/var/lib/overlay-fleet/host): ` +
                `replace the box's HostLibrary, see README: A wiped box" >&2; exit 3; }; } && sh mount 'a b'`,
        );
    });

    it("runs the box in one command: library install, lower, the instances from stdin records, quoted", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const apply = byName(regs, "nas-apply").inputs;
        // Known at preview: it names no output of the copy.
        expect(apply.create.split("\n")[0]).toBe(`# overlay-fleet host library ${hostLibrary.hash}`);
        // The library activates itself (its `activate` checks every file the box uses, claims the
        // machine for the box of this stack, then switches `current`).
        expect(apply.create.split("\n").slice(1, 5)).toEqual([
            "set -eu",
            expect.stringMatching(new RegExp(`^cd '/var/lib/overlay-fleet/lib/${hostLibrary.hash}' 2>/dev/null \\|\\| \\{ printf `)),
            `sh activate '${hostLibrary.hash}' 'nas' 'acme/overlay-fleet/home' </dev/null`,
            "cd '/var/lib/overlay-fleet/host'",
        ]);
        expect(fs.readFileSync(path.join(hostLibrary.dir, "activate"), "utf8")).toContain("SHA256SUMS; } | sha256sum -c --quiet -");
        // A box without the library is told the command that copies it again and re-runs the apply (urns hold `$`: single-quoted).
        const [copyUrn, applyUrn] = [byName(regs, "nas-host-copy").urn, byName(regs, "nas-apply").urn];
        expect(copyUrn).toContain("$");
        expect(apply.create).toContain(`printf '%s\\n' 'overlay-fleet: host library ${hostLibrary.hash} is not on this box`);
        expect(apply.create).toContain(`pulumi up --replace '\\''${copyUrn}'\\'' --replace '\\''${applyUrn}'\\'' (README: A wiped box)' >&2`);
        expect(applyLines(regs)).toEqual([
            "sh preflight '/mnt/usbdisk' '/mnt/usbdisk/static_cache' '/var/lib/overlay-fleet/host/preflight.ok' </dev/null",
            "sh lower '/mnt/usbdisk/static_cache' '.yfnode/config' </dev/null",
            "sh fold '/mnt/usbdisk/static_cache' '1' '/mnt/usbdisk/.overlay-fleet/static_cache.gen1' 'lowest-index-wins' '.yfnode/config' '--fstab' '/etc/fstab' </dev/null",
            "sh apply 'set' '/etc/fstab' 'nas' 'keep'",
            "sh engine 'macnet' 'eth0' '192.168.1.0/24' '192.168.1.1' 'nas' </dev/null",
        ]);
        const fstabOptions =
            "lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/ttnode2/upper,workdir=/mnt/usbdisk/ttnode2/work," +
            "index=off,nfs_export=off,redirect_dir=off,metacopy=off,nofail,x-systemd.requires-mounts-for=/mnt/usbdisk,x-systemd.before=docker.service";
        expect(records(regs)).toHaveLength(3);
        expect(records(regs)[1]).toEqual([
            "nas/ttnode2",
            "/mnt/usbdisk/static_cache",
            "/mnt/usbdisk/ttnode2/upper",
            "/mnt/usbdisk/ttnode2/work",
            "/mnt/usbdisk/ttnode2/mnts",
            "index=off,nfs_export=off,redirect_dir=off,metacopy=off",
            fstabOptions,
            "ttnode2",
            "-",
        ]);
        // The apply has no delete: replacing it never tears the box down.
        expect(apply.delete).toBeUndefined();
        // The teardown runs nothing on create (no connection); its delete takes the instances down
        // (upper data kept), fails the destroy if that fails, then removes the library.
        const teardown = byName(regs, "nas-teardown").inputs;
        expect(teardown.create).toBeUndefined();
        expect(teardown.delete).toMatch(new RegExp(`^export OF_STACK='acme/overlay-fleet/home' && ${escapeRe(hostCalls(["apply", ["remove", "/etc/fstab", "nas", "keep"]]))} && if \\[ -f uninstall \\]; then sh uninstall '/etc/fstab'; else `));
        expect(fs.readFileSync(path.join(hostLibrary.dir, "uninstall"), "utf8")).toContain('rm -rf -- "${root:?}/${target#lib/}"');
        expect(byName(regs, "nas-apply").inputs.addPreviousOutputInEnv).toBe(false);
    });

    it("copies the host library once per box, named by its content hash", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const bundle = hostLibrary;
        const copy = byName(regs, "nas-host-copy").inputs;
        expect(copy.remotePath).toBe("/var/lib/overlay-fleet/lib");
        expect(copy.triggers).toEqual([bundle.hash]);
        // The staged files are the host scripts with their libraries, with a checksum list.
        expect(fs.readFileSync(path.join(bundle.dir, "mount"), "utf8")).toBe(hostScript("mount"));
        expect(fs.readFileSync(path.join(bundle.dir, "apply"), "utf8")).toBe(hostScript("apply"));
        expect(fs.readFileSync(path.join(bundle.dir, "SHA256SUMS"), "utf8")).toMatch(/^[0-9a-f]{64} {2}preflight$/m);
    });

    it("runs the box's containers in one command, each with its fixed identity, merged dir bind-mounted", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const run = byName(regs, "nas-containers-run").inputs;
        const mac = planBox(resolveFleetConfig(raw(homeConfig())).find((b) => b.name === "nas")!).instances[1].mac;
        // The network as planned (name, parent, subnet, gateway): the command makes it before the containers.
        expect(run.create).toBe(hostCall("containers", ["set", "nas", "macnet", "eth0", "192.168.1.0/24", "192.168.1.1", "ericwang2006/ttnode", "-", "192.168.1.1", "always", "1", "/mnts", "1", "4"]));
        expect(containerRecords(regs)).toHaveLength(3);
        expect(containerRecords(regs)[1]).toEqual(["nas/ttnode2", "ttnode2", "nas-ttnode2", "192.168.1.202", mac, "/mnt/usbdisk/ttnode2/mnts"]);
        // Its delete removes the box's containers (only those overlay-fleet made: checked on the box).
        expect(run.delete).toBe(hostCall("containers", ["remove", "nas"]));
        expect(run.addPreviousOutputInEnv).toBe(false);
        // No docker provider: the box's own CLI makes the network, over the command's connection.
        expect(regs.filter((r) => r.type.startsWith("docker:") || r.type === "pulumi:providers:docker")).toEqual([]);
    });

    it("a cache-only box has no docker resources and mounts without a container name", async () => {
        const config = homeConfig();
        config.boxes.nas.cacheOnly = true;
        const { registrations: regs } = await deploy(config);
        expect(regs.filter((r) => r.type.startsWith("docker:") || r.type === "pulumi:providers:docker" || r.name.includes("-containers"))).toEqual([]);
        expect(applyLines(regs).filter((line) => line.startsWith("sh engine"))).toEqual([]);
        expect(records(regs).map((r) => r.slice(7))).toEqual([["-", "-"], ["-", "-"], ["-", "-"]]);
    });

    it("purgeOnRemove makes removal delete the upper data; the default keeps it", async () => {
        const config = homeConfig();
        config.boxes.nas.purgeOnRemove = true;
        const { registrations: regs } = await deploy(config);
        expect(applyLines(regs)).toContain("sh apply 'set' '/etc/fstab' 'nas' 'purge'");
        expect(byName(regs, "nas-teardown").inputs.delete.startsWith(`export OF_STACK='acme/overlay-fleet/home' && ${hostCalls(["apply", ["remove", "/etc/fstab", "nas", "purge"]])} && `)).toBe(true);
    });

    it("refuses a record field that would shift the others on the box", () => {
        const plan = planFleet(raw(homeConfig())).boxes[0].instances[0];
        expect(() => instanceRecord({ ...plan, mountOptions: "index=off\tx" })).toThrow(/holds a tab, newline or NUL/);
        expect(instanceRecord(plan).split("\t")).toHaveLength(9);
        expect(() => containerRecord({ ...plan, hostname: "a\nb" })).toThrow(/holds a tab, newline or NUL/);
        expect(containerRecord(plan).split("\t")).toHaveLength(6);
    });

    it("a generation bump changes the fold and the instances' lowers, then retires, and leaves the containers alone", async () => {
        const before = (await deploy(homeConfig())).registrations;
        const config = homeConfig();
        config.boxes.nas.generation = 2;
        const after = (await deploy(config)).registrations;
        expect(applyLines(after).find((line) => line.startsWith("sh fold"))).toContain("sh fold '/mnt/usbdisk/static_cache' '2' '/mnt/usbdisk/.overlay-fleet/static_cache.gen2'");
        const ttnode1 = records(after)[0];
        expect(ttnode1[1]).toBe("/mnt/usbdisk/static_cache.g2");
        expect(ttnode1[6]).toContain("lowerdir=/mnt/usbdisk/static_cache.g2,");
        expect(ttnode1[8]).toBe("/mnt/usbdisk/.overlay-fleet/static_cache.gen2/ttnode1.manifest");
        // Old generations go after every instance switched (only the engine's check comes after).
        expect(applyLines(after).at(-2)).toBe("sh gc '/mnt/usbdisk/static_cache' '2' '/etc/fstab' </dev/null");
        expect(byName(after, "nas-containers-run").inputs).toEqual(byName(before, "nas-containers-run").inputs);
    });
});

describe("images", () => {
    it("an image archive is copied by content hash and loaded by the containers command; without one the image is pulled", async () => {
        const archive = writeImageArchive(["ericwang2006/ttnode:latest"]);
        const config = homeConfig();
        config.defaults.container.imageArchive = archive;
        const { registrations: regs } = await deploy(config);
        const sha = crypto.createHash("sha256").update(fs.readFileSync(archive)).digest("hex");
        const remote = `/var/lib/overlay-fleet/images/${sha.slice(0, 16)}.tar`;
        expect(byName(regs, "nas-image-copy").inputs).toMatchObject({ remotePath: remote, triggers: [sha] });
        expect(byName(regs, "nas-containers-run").inputs.create).toBe(
            hostCall("containers", ["set", "nas", "macnet", "eth0", "192.168.1.0/24", "192.168.1.1", "ericwang2006/ttnode", remote, "192.168.1.1", "always", "1", "/mnts", "1", "4"]),
        );
        // The copy runs beside the library's; the containers wait for it.
        expect(byName(regs, "nas-image-copy").dependencies).not.toContain(byName(regs, "nas-apply").urn);
        expect(byName(regs, "nas-containers-run").dependencies).toContain(byName(regs, "nas-image-copy").urn);
    });
});

describe("scaling", () => {
    const inputsAt = async (count: number) => {
        const config = homeConfig();
        config.boxes.nas.instances = count;
        const { registrations: regs } = await deploy(config);
        return new Map(regs.map((r) => [r.name, r.inputs]));
    };

    it("3 -> 5 adds two instances and leaves every other resource's inputs identical", async () => {
        const three = await inputsAt(3);
        const five = await inputsAt(5);
        const added = [...five.keys()].filter((name) => !three.has(name)).sort();
        expect(added).toEqual(["nas-ttnode4", "nas-ttnode5"]);
        // The box's apply and its containers command get two more records each, nothing else.
        for (const command of ["nas-apply", "nas-containers-run"]) {
            const [a3, a5] = [three.get(command)!, five.get(command)!];
            expect(a5.stdin.startsWith(a3.stdin), command).toBe(true);
            expect(a5.stdin.slice(a3.stdin.length).split("\n").filter(Boolean).map((l: string) => l.split("\t")[0])).toEqual(["nas/ttnode4", "nas/ttnode5"]);
            expect({ ...a5, stdin: "" }).toEqual({ ...a3, stdin: "" });
        }
        for (const [name, inputs] of three) {
            if (name !== "nas-apply" && name !== "nas-containers-run") expect(five.get(name), name).toEqual(inputs);
        }
    });

    it("5 -> 3 removes instances 4 and 5 and leaves the others identical", async () => {
        const five = await inputsAt(5);
        const three = await inputsAt(3);
        expect([...five.keys()].filter((name) => !three.has(name)).sort()).toEqual(["nas-ttnode4", "nas-ttnode5"]);
        // The apply and the containers command take them down on the box: they are simply no longer in their records.
        expect(three.get("nas-apply")!.stdin.split("\n").filter(Boolean)).toHaveLength(3);
        expect(three.get("nas-containers-run")!.stdin.split("\n").filter(Boolean)).toHaveLength(3);
        for (const [name, inputs] of three) {
            if (name !== "nas-apply" && name !== "nas-containers-run") expect(five.get(name), name).toEqual(inputs);
        }
    });
});

describe("secrets", () => {
    it("the SSH connection, with the private key, is sent only as a secret", async () => {
        const { box, registrations: regs } = await deploy(homeConfig());
        expect(await pulumi.isSecret(box.connection)).toBe(true);
        const commands = regs.filter((r) => r.type === "command:remote:Command");
        // per box: teardown, apply, containers
        expect(commands.length).toBe(3);
        for (const command of commands) {
            expect(command.raw.connection["4dabf18193072939515e22adb298388d"], command.name).toBe(secretSignature);
            expect(JSON.stringify({ ...command.raw, connection: undefined })).not.toContain("secret-key-material");
        }
        expect(JSON.stringify(box.summary)).not.toContain("secret-key-material");
    });
});

describe("stack config reading", () => {
    const setConfig = (values: Record<string, unknown>, secretKeys: string[] = []) =>
        pulumi.runtime.setAllConfig(
            Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])),
            secretKeys,
        );

    it("fails with one InputPropertiesError naming every key and value", () => {
        const config = homeConfig();
        config.boxes.nas.network.firstAddress = "192.168.7.9";
        config.boxes.minipc.ssh.port = 0;
        setConfig({ "overlay-fleet:defaults": config.defaults, "overlay-fleet:boxes": config.boxes, "overlay-fleet:sshPrivateKey": privateKey }, ["overlay-fleet:sshPrivateKey"]);
        expect(() => readFleetConfig()).toThrow(pulumi.InputPropertiesError);
        expect(() => readFleetConfig()).toThrow(/overlay-fleet:boxes\.nas\.network\.firstAddress: "192\.168\.7\.9" is outside the subnet/);
        expect(() => readFleetConfig()).toThrow(/overlay-fleet:boxes\.minipc\.ssh\.port: must be a port number 1\.\.65535, got 0/);
        let thrown: unknown;
        try {
            readFleetConfig();
        } catch (error) {
            thrown = error;
        }
        expect(pulumi.InputPropertiesError.isInstance(thrown)).toBe(true);
        const { errors, stack } = thrown as pulumi.InputPropertiesError;
        expect(errors).toEqual([
            { propertyPath: "overlay-fleet:boxes.minipc.ssh.port", reason: "must be a port number 1..65535, got 0" },
            { propertyPath: "overlay-fleet:boxes.nas.network.firstAddress", reason: '"192.168.7.9" is outside the subnet "192.168.1.0/24"' },
        ]);
        // No stack: the Node host then prints the message alone, every `key: message` line.
        expect(stack).toBeUndefined();
    });

    it("refuses a private key stored in plain text, and a missing one", () => {
        const config = homeConfig();
        setConfig({ "overlay-fleet:defaults": config.defaults, "overlay-fleet:boxes": config.boxes, "overlay-fleet:sshPrivateKey": privateKey });
        expect(() => readFleetConfig()).toThrow(/overlay-fleet:sshPrivateKey: is stored in plain text/);
        setConfig({ "overlay-fleet:defaults": config.defaults, "overlay-fleet:boxes": config.boxes });
        expect(() => readFleetConfig()).toThrow(/overlay-fleet:boxes\.minipc\.ssh: no SSH credentials/);
        config.defaults.ssh = { agent: true };
        setConfig({ "overlay-fleet:defaults": config.defaults, "overlay-fleet:boxes": config.boxes });
        expect(readFleetConfig().boxes.every((b) => b.settings.ssh.agent)).toBe(true);
    });

    it("returns the key as a secret output", async () => {
        const config = homeConfig();
        setConfig({ "overlay-fleet:defaults": config.defaults, "overlay-fleet:boxes": config.boxes, "overlay-fleet:sshPrivateKey": privateKey }, ["overlay-fleet:sshPrivateKey"]);
        const fleet = readFleetConfig();
        expect(await pulumi.isSecret(fleet.privateKey!)).toBe(true);
        expect(fleet.boxes.map((b) => b.settings.name)).toEqual(["minipc", "nas"]);
        expect(fleet.boxes.map((b) => b.instances.length)).toEqual([2, 3]);
        // Each box is claimed for this stack, by organization, project and stack (host/claim.sh).
        expect(fleet.stack).toBe(`acme/overlay-fleet/${pulumi.getStack()}`);
    });

    it("catches a typo in a top-level key", () => {
        const config = homeConfig();
        setConfig({ "overlay-fleet:defaults": config.defaults, "overlay-fleet:boxes": config.boxes, "overlay-fleet:sshPrivatekey": privateKey });
        expect(() => readFleetConfig()).toThrow(/overlay-fleet:sshPrivatekey: unknown key "sshPrivatekey" \(did you mean "sshPrivateKey"\?\)/);
    });
});
