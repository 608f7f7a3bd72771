import { describe, expect, it } from "vitest";
import * as pulumi from "@pulumi/pulumi";
import { byName, drain, installMocks, mockImageId, Registration, secretSignature, settle } from "./mocks";
import { homeConfig, raw } from "./fixtures";
import { planFleet, resolveFleetConfig } from "../../model/config";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hostScript } from "../../components/hostScripts";
import { hostCall, hostCalls, stageHostLibrary } from "../../components/hostLibrary";
import { planBox } from "../../model/plan";
import { writeImageArchive } from "./imageArchives";
import { Box } from "../../components/box";
import { readFleetConfig } from "../../program/stackConfig";

// One mock monitor for the file: every deploy records into the same list, cleared per deploy.
const registrations: Registration[] = installMocks();

const privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n-----END OPENSSH PRIVATE KEY-----\n";

/**
 * The host library staged from a project without the fold helper's sources: the same scripts,
 * no Go build (that is the program's job, tested end to end), so this tier needs no Go.
 */
const hostLibrary = stageHostLibrary(fs.mkdtempSync(path.join(os.tmpdir(), "overlay-fleet-unit-")));

async function deploy(config: { defaults?: any; boxes?: any }, boxName = "nas") {
    await drain(registrations);
    registrations.length = 0;
    const plan = planFleet(raw(config)).boxes.find((b) => b.settings.name === boxName)!;
    const box = new Box(boxName, { plan, privateKey: pulumi.secret(privateKey), hostLibrary });
    await settle(box.urn);
    await drain(registrations);
    return { box, registrations: [...registrations] };
}

const commandInputs = (regs: Registration[], name: string) => {
    const { create, delete: del, triggers } = byName(regs, name).inputs;
    return { create, delete: del, triggers };
};

describe("Box resource graph", () => {
    it("declares host library, cache, network, image and per instance mount and container", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const types = regs.map((r) => `${r.type} ${r.name}`).sort();
        expect(types).toEqual(
            [
                "overlay-fleet:fleet:Box nas",
                "overlay-fleet:host:HostLibrary nas-host",
                "command:remote:CopyToRemote nas-host-copy",
                "command:remote:Command nas-host-install",
                "overlay-fleet:cache:LowerCache nas-cache",
                "command:remote:Command nas-cache-lower",
                "pulumi:providers:docker nas-docker",
                "overlay-fleet:network:MacvlanNetwork nas-macvlan",
                "command:remote:Command nas-macvlan-engine",
                "docker:index/network:Network nas-macvlan-network",
                "overlay-fleet:container:ContainerImage nas-image",
                "command:remote:Command nas-image-pull",
                ...[1, 2, 3].flatMap((i) => [
                    `overlay-fleet:overlay:OverlayInstance nas-ttnode${i}`,
                    `command:remote:Command nas-ttnode${i}-mount`,
                    `overlay-fleet:container:InstanceContainer nas-ttnode${i}`,
                    `command:remote:Command nas-ttnode${i}-container`,
                ]),
            ].sort(),
        );
        // Every child hangs under its component, every component under the box.
        const urnOf = (name: string, type: string) => regs.find((r) => r.name === name && r.type === type)!.urn;
        const boxUrn = urnOf("nas", "overlay-fleet:fleet:Box");
        expect(byName(regs, "nas-cache").parent).toBe(boxUrn);
        expect(byName(regs, "nas-ttnode2-mount").parent).toBe(urnOf("nas-ttnode2", "overlay-fleet:overlay:OverlayInstance"));
        expect(byName(regs, "nas-ttnode2-container").parent).toBe(urnOf("nas-ttnode2", "overlay-fleet:container:InstanceContainer"));
    });

    it("orders library, cache, mount and container; containers wait for network and image", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const urn = (name: string) => byName(regs, name).urn;
        // Nothing runs on the box before its host library is installed.
        for (const name of ["nas-cache-lower", "nas-macvlan-engine", "nas-image-pull"]) {
            expect(byName(regs, name).dependencies, name).toContain(urn("nas-host-install"));
        }
        const mount = byName(regs, "nas-ttnode1-mount");
        expect(mount.dependencies).toContain(urn("nas-cache-lower"));
        const container = byName(regs, "nas-ttnode1-container");
        expect(container.dependencies).toEqual(
            expect.arrayContaining([urn("nas-ttnode1-mount"), urn("nas-macvlan-network"), urn("nas-macvlan-engine"), urn("nas-image-pull")]),
        );
        // Instances deploy in parallel: none waits for another (the box limits what is down at once).
        expect(byName(regs, "nas-ttnode3-mount").dependencies).not.toContain(urn("nas-ttnode2-mount"));
        expect(byName(regs, "nas-ttnode3-container").dependencies).not.toContain(urn("nas-ttnode2-container"));
        // Generation 1 has nothing to retire.
        expect(regs.filter((r) => r.name === "nas-retire")).toEqual([]);
    });

    it("replaces mounts delete-before-create", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        expect(byName(regs, "nas-ttnode1-mount").deleteBeforeReplace).toBe(true);
    });

    it("keeps the library entry of every command byte for byte (a new text would re-run every command of every stack)", () => {
        expect(hostCalls(["mount", ["a b"]])).toBe(
            `{ cd /var/lib/overlay-fleet/host 2>/dev/null || { echo "overlay-fleet: no host library on this box (/var/lib/overlay-fleet/host): ` +
                `replace the box's HostLibrary, see README: A wiped box" >&2; exit 3; }; } && sh mount 'a b'`,
        );
    });

    it("sends short, quoted calls into the installed host library", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const fstabOptions =
            "lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/ttnode2/upper,workdir=/mnt/usbdisk/ttnode2/work," +
            "index=off,nfs_export=off,redirect_dir=off,metacopy=off,nofail,x-systemd.requires-mounts-for=/mnt/usbdisk,x-systemd.before=docker.service";
        expect(commandInputs(regs, "nas-ttnode2-mount")).toEqual({
            create: hostCalls(
                ["fstab", ["set", "/etc/fstab", "nas/ttnode2", "/mnt/usbdisk/ttnode2/mnts", fstabOptions]],
                ["mount", [
                    "/mnt/usbdisk/static_cache",
                    "/mnt/usbdisk/ttnode2/upper",
                    "/mnt/usbdisk/ttnode2/work",
                    "/mnt/usbdisk/ttnode2/mnts",
                    "index=off,nfs_export=off,redirect_dir=off,metacopy=off",
                    "ttnode2",
                    "-",
                ]],
            ),
            delete: hostCalls(["unmount", ["/mnt/usbdisk/ttnode2/mnts", "keep", "/mnt/usbdisk/ttnode2/upper", "/mnt/usbdisk/ttnode2/work", "/etc/fstab"]], ["fstab", ["remove", "/etc/fstab", "nas/ttnode2"]]),
            triggers: ["nas/ttnode2", "/mnt/usbdisk/ttnode2"],
        });
        // Removal: unmount first, then the fstab line (a busy mount keeps its line).
        expect(byName(regs, "nas-ttnode2-mount").inputs.delete.endsWith("sh unmount '/mnt/usbdisk/ttnode2/mnts' 'keep' '/mnt/usbdisk/ttnode2/upper' '/mnt/usbdisk/ttnode2/work' '/etc/fstab' && sh fstab 'remove' '/etc/fstab' 'nas/ttnode2'")).toBe(true);
        // The lower cache: preflight, prepare and fold over one connection, each only if the one before succeeded.
        expect(byName(regs, "nas-cache-lower").inputs.create).toBe(
            hostCalls(
                ["preflight", ["/mnt/usbdisk", "/mnt/usbdisk/static_cache"]],
                ["lower", ["/mnt/usbdisk/static_cache", ".yfnode/config"]],
                ["fold", ["/mnt/usbdisk/static_cache", "1", "/mnt/usbdisk/.overlay-fleet/static_cache.gen1", "lowest-index-wins", ".yfnode/config", "--fstab", "/etc/fstab"]],
            ),
        );
        // The call ends with each argument as one single-quoted word, and stays short.
        expect(byName(regs, "nas-ttnode2-mount").inputs.create.endsWith(`'index=off,nfs_export=off,redirect_dir=off,metacopy=off' 'ttnode2' '-'`)).toBe(true);
        for (const r of regs.filter((r) => r.type === "command:remote:Command" && r.name !== "nas-host-install")) {
            expect(String(r.inputs.create).length, r.name).toBeLessThan(1500);
        }
    });

    it("copies the host library once per box, named by its content hash", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const bundle = hostLibrary;
        const copy = byName(regs, "nas-host-copy").inputs;
        expect(copy.remotePath).toBe("/var/lib/overlay-fleet/lib");
        expect(copy.triggers).toEqual([bundle.hash]);
        expect(byName(regs, "nas-host-install").inputs.create).toContain(`hash='${bundle.hash}'`);
        // The staged files are the host scripts with their libraries, with a checksum list.
        expect(fs.readFileSync(path.join(bundle.dir, "mount"), "utf8")).toBe(hostScript("mount"));
        expect(fs.readFileSync(path.join(bundle.dir, "SHA256SUMS"), "utf8")).toMatch(/^[0-9a-f]{64} {2}preflight$/m);
    });

    it("runs each container with its fixed identity on the macvlan network, merged dir bind-mounted", async () => {
        const { registrations: regs } = await deploy(homeConfig());
        const create: string = byName(regs, "nas-ttnode2-container").inputs.create;
        const mac = planBox(resolveFleetConfig(raw(homeConfig())).find((b) => b.name === "nas")!).instances[1].mac;
        expect(create).toBe(
            hostCall("container", [
                "create", "ttnode2", "nas-ttnode2", "ericwang2006/ttnode", mockImageId, "macnet",
                "192.168.1.202", mac, "192.168.1.1", "always", "1", "nas/ttnode2", "/mnt/usbdisk/ttnode2/mnts", "/mnts", "1",
            ]),
        );
        expect(byName(regs, "nas-ttnode2-container").inputs.delete).toBe(hostCall("container", ["remove", "ttnode2", "nas/ttnode2"]));
        expect(byName(regs, "nas-macvlan-network").inputs).toMatchObject({
            name: "macnet",
            driver: "macvlan",
            options: { parent: "eth0" },
            ipamConfigs: [{ subnet: "192.168.1.0/24", gateway: "192.168.1.1" }],
            labels: [{ label: "overlay-fleet.box", value: "nas" }],
        });
        expect(byName(regs, "nas-macvlan-engine").inputs.create).toBe(hostCall("engine", ["macnet", "eth0", "192.168.1.0/24", "192.168.1.1", "nas"]));
        expect(byName(regs, "nas-docker").inputs.host).toBe("ssh://root@192.168.1.10:22");
    });

    it("a cache-only box has no docker resources and mounts without a container name", async () => {
        const config = homeConfig();
        config.boxes.nas.cacheOnly = true;
        const { registrations: regs } = await deploy(config);
        expect(regs.filter((r) => r.type.startsWith("docker:") || r.type === "pulumi:providers:docker" || r.name.endsWith("-container"))).toEqual([]);
        expect(byName(regs, "nas-ttnode1-mount").inputs.create).toContain(`'index=off,nfs_export=off,redirect_dir=off,metacopy=off' '-' '-'`);
    });

    it("purgeOnRemove makes removal delete the upper data; the default keeps it", async () => {
        const config = homeConfig();
        config.boxes.nas.purgeOnRemove = true;
        const { registrations: regs } = await deploy(config);
        expect(byName(regs, "nas-ttnode1-mount").inputs.delete).toContain(
            "sh unmount '/mnt/usbdisk/ttnode1/mnts' 'purge' '/mnt/usbdisk/ttnode1/upper' '/mnt/usbdisk/ttnode1/work' '/etc/fstab'",
        );
    });

    it("a generation bump changes the lower and fold of the box, and only inputs that depend on it", async () => {
        const before = (await deploy(homeConfig())).registrations;
        const config = homeConfig();
        config.boxes.nas.generation = 2;
        const after = (await deploy(config)).registrations;
        expect(byName(after, "nas-cache-lower").inputs.create).not.toBe(byName(before, "nas-cache-lower").inputs.create);
        expect(byName(after, "nas-ttnode1-mount").inputs.create).toContain("'/mnt/usbdisk/static_cache.g2'");
        expect(byName(after, "nas-ttnode1-mount").inputs.create).toContain("'/mnt/usbdisk/.overlay-fleet/static_cache.gen2/ttnode1.manifest'");
        expect(byName(after, "nas-ttnode1-mount").inputs.create).toContain("lowerdir=/mnt/usbdisk/static_cache.g2,");
        // Triggers (identity) stay: a generation switch is an in-place update, not a replacement.
        expect(byName(after, "nas-ttnode1-mount").inputs.triggers).toEqual(byName(before, "nas-ttnode1-mount").inputs.triggers);
        expect(byName(after, "nas-ttnode1-container").inputs).toEqual(byName(before, "nas-ttnode1-container").inputs);
        // The lower cache's retire step appears, after every instance has switched.
        const retire = byName(after, "nas-retire");
        expect(retire.parent).toBe(byName(after, "nas-cache").urn);
        expect(retire.inputs.create).toBe(hostCall("gc", ["/mnt/usbdisk/static_cache", "2", "/etc/fstab"]));
        expect(retire.dependencies).toEqual(expect.arrayContaining([1, 2, 3].map((i) => byName(after, `nas-ttnode${i}-mount`).urn)));
    });
});

describe("images", () => {
    it("an image archive is copied by content hash and loaded; without one the image is pulled", async () => {
        const archive = writeImageArchive(["ericwang2006/ttnode:latest"]);
        const config = homeConfig();
        config.defaults.container.imageArchive = archive;
        const { registrations: regs } = await deploy(config);
        const sha = crypto.createHash("sha256").update(fs.readFileSync(archive)).digest("hex");
        const remote = `/var/lib/overlay-fleet/images/${sha.slice(0, 16)}.tar`;
        expect(byName(regs, "nas-image-copy").inputs).toMatchObject({ remotePath: remote, triggers: [sha] });
        expect(byName(regs, "nas-image-load").inputs.create).toBe(hostCall("image", ["load", remote, "ericwang2006/ttnode"]));
        expect(regs.find((r) => r.name === "nas-image-pull")).toBeUndefined();
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
        expect(added).toEqual(["nas-ttnode4", "nas-ttnode4-mount", "nas-ttnode4-container", "nas-ttnode5", "nas-ttnode5-mount", "nas-ttnode5-container"].sort());
        for (const [name, inputs] of three) {
            expect(five.get(name), name).toEqual(inputs);
        }
    });

    it("5 -> 3 removes instances 4 and 5 and leaves the others identical", async () => {
        const five = await inputsAt(5);
        const three = await inputsAt(3);
        expect([...five.keys()].filter((name) => !three.has(name)).sort()).toEqual(
            ["nas-ttnode4", "nas-ttnode4-mount", "nas-ttnode4-container", "nas-ttnode5", "nas-ttnode5-mount", "nas-ttnode5-container"].sort(),
        );
        for (const [name, inputs] of three) {
            expect(five.get(name), name).toEqual(inputs);
        }
    });
});

describe("secrets", () => {
    it("the SSH connection, with the private key, is sent only as a secret", async () => {
        const { box, registrations: regs } = await deploy(homeConfig());
        expect(await pulumi.isSecret(box.connection)).toBe(true);
        const commands = regs.filter((r) => r.type === "command:remote:Command");
        // per box: host install, cache, engine preflight, image; per instance: mount, container
        expect(commands.length).toBe(4 + 3 * 2);
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
    });

    it("catches a typo in a top-level key", () => {
        const config = homeConfig();
        setConfig({ "overlay-fleet:defaults": config.defaults, "overlay-fleet:boxes": config.boxes, "overlay-fleet:sshPrivatekey": privateKey });
        expect(() => readFleetConfig()).toThrow(/overlay-fleet:sshPrivatekey: unknown key "sshPrivatekey" \(did you mean "sshPrivateKey"\?\)/);
    });
});
