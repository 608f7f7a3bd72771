import { describe, expect, it } from "vitest";
import { ConfigError, resolveFleetConfig } from "../../model/config";
import { planBox } from "../../model/plan";
import { homeConfig, raw } from "./fixtures";

/** Resolves a config and returns the issues it raised (empty when valid). */
function issuesOf(config: { defaults?: any; boxes?: any }, presentKeys?: string[]) {
    try {
        resolveFleetConfig(raw(config, presentKeys));
        return [];
    } catch (error) {
        if (!(error instanceof ConfigError)) {
            throw error;
        }
        return error.issues;
    }
}

/** Applies a change to the home config and expects exactly one issue on `key` matching `message`. */
function expectIssue(change: (config: any) => void, key: string, message: RegExp | string) {
    const config = homeConfig();
    change(config);
    const issues = issuesOf(config);
    expect(issues, JSON.stringify(issues, null, 1)).toContainEqual({ key, message: expect.stringMatching(message) });
    expect(() => resolveFleetConfig(raw(config))).toThrow(key);
}

describe("a valid home config", () => {
    it("resolves both boxes with defaults applied", () => {
        const boxes = resolveFleetConfig(raw(homeConfig()));
        expect(boxes.map((b) => b.name)).toEqual(["minipc", "nas"]);
        const nas = boxes.find((b) => b.name === "nas")!;
        expect(nas.ssh).toMatchObject({ host: "192.168.1.10", port: 22, user: "root", agent: false });
        expect(nas.network).toEqual({ name: "macnet", parent: "eth0", subnet: "192.168.1.0/24", gateway: "192.168.1.1", firstAddress: "192.168.1.201" });
        const minipc = boxes.find((b) => b.name === "minipc")!;
        expect(minipc.network!.parent).toBe("enp1s0");
        expect(minipc.container).toEqual({ image: "ericwang2006/ttnode", dns: ["192.168.1.1"], privileged: true, restart: "always", mountTarget: "/mnts" });
        expect(nas.generation).toBe(1);
        expect(nas.purgeOnRemove).toBe(false);
    });

    it("does not need network or container settings on a cache-only box", () => {
        const config = homeConfig();
        config.defaults = { disk: "/d", lower: "/d/cache", instanceRoot: "/d", cacheOnly: true };
        config.boxes = { lab: { ssh: { host: "box1", hostKey: config.boxes.nas.ssh.hostKey }, instances: 2 } };
        const [box] = resolveFleetConfig(raw(config));
        expect(box.network).toBeUndefined();
        expect(planBox(box).instances.map((i) => i.ip)).toEqual([undefined, undefined]);
    });
});

describe("validation names the stack key and the bad value", () => {
    it("rejects unknown keys with a suggestion", () => {
        expectIssue((c) => (c.boxes.nas.netwrok = {}), "overlay-fleet:boxes.nas.netwrok", /unknown key "netwrok" \(did you mean "network"\?\)/);
        expectIssue((c) => (c.defaults.network.gatway = "192.168.1.1"), "overlay-fleet:defaults.network.gatway", /did you mean "gateway"/);
        expectIssue((c) => (c.boxes.nas.overrides = { 1: { addr: "x" } }), "overlay-fleet:boxes.nas.overrides.1.addr", /unknown key "addr"/);
        const issues = issuesOf(homeConfig(), ["overlay-fleet:boxes", "overlay-fleet:default"]);
        expect(issues).toContainEqual({ key: "overlay-fleet:default", message: expect.stringContaining('did you mean "defaults"') });
    });

    it("rejects wrong types", () => {
        expectIssue((c) => (c.boxes.nas.instances = "3"), "overlay-fleet:boxes.nas.instances", /must be a number, got "3"/);
        expectIssue((c) => (c.defaults.privatePaths = ".yfnode/config"), "overlay-fleet:defaults.privatePaths", /list of strings/);
        expectIssue((c) => (c.boxes = "nas"), "overlay-fleet:boxes", /must map box names/);
    });

    it("rejects instance counts out of range", () => {
        expectIssue((c) => (c.boxes.nas.instances = 65), "overlay-fleet:boxes.nas.instances", /0\.\.64, got 65/);
        expectIssue((c) => (c.boxes.nas.instances = -1), "overlay-fleet:boxes.nas.instances", /got -1/);
        expectIssue((c) => (c.boxes.nas.instances = 2.5), "overlay-fleet:boxes.nas.instances", /got 2\.5/);
        expectIssue((c) => delete c.boxes.nas.instances, "overlay-fleet:boxes.nas.instances", /is required/);
    });

    it("rejects relative and non-normalised paths", () => {
        expectIssue((c) => (c.defaults.lower = "static_cache"), "overlay-fleet:defaults.lower", /absolute path, got "static_cache"/);
        expectIssue((c) => (c.boxes.nas.lower = "/mnt/usbdisk/x/../static_cache"), "overlay-fleet:boxes.nas.lower", /not a normalised path/);
        expectIssue((c) => (c.defaults.instanceRoot = "/mnt/usbdisk/"), "overlay-fleet:defaults.instanceRoot", /not a normalised path/);
        expectIssue((c) => (c.defaults.disk = "/mnt//usbdisk"), "overlay-fleet:defaults.disk", /not a normalised path/);
        expectIssue((c) => (c.defaults.privatePaths = ["../etc/passwd"]), "overlay-fleet:defaults.privatePaths[0]", /normalised relative path/);
        expectIssue((c) => (c.defaults.privatePaths = ["/abs"]), "overlay-fleet:defaults.privatePaths[0]", /relative to the lower/);
    });

    it.each([
        ["comma", "/mnt/usbdisk/a,b"],
        ["colon", "/mnt/usbdisk/a:b"],
        ["space", "/mnt/usbdisk/a b"],
        ["tab", "/mnt/usbdisk/a\tb"],
        ["newline", "/mnt/usbdisk/a\nb"],
        ["control character", "/mnt/usbdisk/a\x01b"],
        ["backslash", "/mnt/usbdisk/a\\b"],
        ["command substitution", "/mnt/usbdisk/$(reboot)"],
        ["quote", "/mnt/usbdisk/it's"],
    ])("rejects a path containing a %s", (_, bad) => {
        expectIssue((c) => (c.defaults.lower = bad), "overlay-fleet:defaults.lower", /breaks overlay mount options or fstab fields/);
        expect(issuesOf({ ...homeConfig(), defaults: { ...homeConfig().defaults, lower: bad } })[0].message).toContain(JSON.stringify(bad));
    });

    it("rejects overlapping upper/work/merged dirs and lower", () => {
        expectIssue((c) => (c.defaults.instanceRoot = "/mnt/usbdisk/static_cache/instances"), "overlay-fleet:defaults.instanceRoot", /inside the lower/);
        expectIssue((c) => (c.defaults.instanceRoot = "/mnt/usbdisk/static_cache"), "overlay-fleet:defaults.instanceRoot", /inside the lower/);
        expectIssue((c) => (c.defaults.lower = "/mnt/usbdisk/ttnode1/upper"), "overlay-fleet:defaults.lower", /inside an instance directory/);
        expectIssue((c) => (c.defaults.lower = "/srv/cache"), "overlay-fleet:defaults.lower", /inside the disk/);
        expectIssue((c) => (c.defaults.lower = "/mnt/usbdisk"), "overlay-fleet:defaults.lower", /inside the disk/);
    });

    it("rejects addresses outside the subnet, network, gateway and broadcast", () => {
        expectIssue((c) => (c.boxes.nas.network.firstAddress = "10.0.0.5"), "overlay-fleet:boxes.nas.network.firstAddress", /outside the subnet "192.168.1.0\/24"/);
        expectIssue((c) => (c.boxes.nas.network.firstAddress = "192.168.1.255"), "overlay-fleet:boxes.nas.network.firstAddress", /network or broadcast/);
        expectIssue((c) => (c.boxes.nas.network.firstAddress = "192.168.1.0"), "overlay-fleet:boxes.nas.network.firstAddress", /network or broadcast/);
        expectIssue((c) => (c.boxes.nas.network.firstAddress = "192.168.1.1"), "overlay-fleet:boxes.nas.network.firstAddress", /is the gateway/);
        expectIssue((c) => (c.boxes.nas.overrides = { 2: { ip: "192.168.1.1" } }), "overlay-fleet:boxes.nas.overrides.2.ip", /"192.168.1.1" is the gateway/);
        expectIssue((c) => (c.boxes.nas.overrides = { 2: { ip: "192.168.2.7" } }), "overlay-fleet:boxes.nas.overrides.2.ip", /outside the subnet/);
        expectIssue((c) => (c.boxes.nas.overrides = { 2: { ip: "192.168.1.256" } }), "overlay-fleet:boxes.nas.overrides.2.ip", /not an IPv4 address/);
        expectIssue((c) => (c.defaults.network.subnet = "192.168.1.7/24"), "overlay-fleet:defaults.network.subnet", /not an IPv4 subnet/);
        // Derived addresses running past the broadcast address are caught too.
        expectIssue(
            (c) => {
                c.boxes.nas.network.firstAddress = "192.168.1.253";
                c.boxes.nas.instances = 3;
            },
            "overlay-fleet:boxes.nas.overrides.3.ip (derived from overlay-fleet:…network.firstAddress 192.168.1.253)",
            /"192.168.1.255" is the network or broadcast/,
        );
    });

    it("rejects malformed and multicast MACs", () => {
        expectIssue((c) => (c.boxes.nas.overrides = { 1: { mac: "02:42:c0:a8:01" } }), "overlay-fleet:boxes.nas.overrides.1.mac", /not a MAC address/);
        expectIssue((c) => (c.boxes.nas.overrides = { 1: { mac: "01:00:5e:00:00:01" } }), "overlay-fleet:boxes.nas.overrides.1.mac", /multicast/);
        expectIssue((c) => (c.boxes.nas.overrides = { 1: { mac: "00:00:00:00:00:00" } }), "overlay-fleet:boxes.nas.overrides.1.mac", /all-zero/);
    });

    it("rejects duplicate IP, MAC and hostname across the host group", () => {
        expectIssue((c) => (c.boxes.minipc.network.firstAddress = "192.168.1.203"), "overlay-fleet:boxes.nas.overrides.3.ip", /"192.168.1.203" of nas\/ttnode3 is already used by minipc\/ttnode1/);
        expectIssue((c) => (c.boxes.minipc.overrides = { 2: { mac: "02:11:22:33:44:55" } }, c.boxes.nas.overrides = { 1: { mac: "02-11-22-33-44-55" } }), "overlay-fleet:boxes.nas.overrides.1.mac", /already used by minipc\/ttnode2/);
        expectIssue((c) => (c.boxes.nas.overrides = { 3: { hostname: "minipc-ttnode1" } }), "overlay-fleet:boxes.nas.overrides.3.hostname", /"minipc-ttnode1" of nas\/ttnode3 is already used by minipc\/ttnode1/);
        expectIssue((c) => (c.boxes.nas.overrides = { 3: { hostname: "bad_name" } }), "overlay-fleet:boxes.nas.overrides.3.hostname", /not a valid host name/);
    });

    it("rejects bad ssh, network, container and generation settings", () => {
        expectIssue((c) => (c.boxes.nas.ssh.hostKey = "AAAA"), "overlay-fleet:boxes.nas.ssh.hostKey", /not an SSH public host key/);
        expectIssue((c) => delete c.boxes.nas.ssh.hostKey, "overlay-fleet:boxes.nas.ssh.hostKey", /is required/);
        expectIssue((c) => (c.boxes.nas.ssh.port = 70000), "overlay-fleet:boxes.nas.ssh.port", /got 70000/);
        expectIssue((c) => (c.boxes.nas.ssh.host = "nas; reboot"), "overlay-fleet:boxes.nas.ssh.host", /"nas; reboot" is not a host name/);
        expectIssue((c) => (c.boxes.nas.ssh.host = c.boxes.minipc.ssh.host.toUpperCase()), "overlay-fleet:boxes.nas.ssh.host", /is box minipc already: declare one box per machine/);
        const twoPorts = homeConfig();
        twoPorts.boxes.nas.ssh.host = twoPorts.boxes.minipc.ssh.host;
        twoPorts.boxes.nas.ssh.port = 2222;
        expect(issuesOf(twoPorts)).toEqual([]);
        expectIssue((c) => (c.boxes.nas.network.parent = "eth0 up"), "overlay-fleet:boxes.nas.network.parent", /not a network interface name/);
        expectIssue((c) => (c.defaults.container.image = "Bad Image"), "overlay-fleet:defaults.container.image", /not a docker image reference/);
        expectIssue((c) => (c.defaults.container.restart = "sometimes"), "overlay-fleet:defaults.container.restart", /got "sometimes"/);
        expectIssue((c) => (c.boxes.nas.generation = 0), "overlay-fleet:boxes.nas.generation", /got 0/);
        expectIssue((c) => (c.defaults.conflictRule = "oldest-wins"), "overlay-fleet:defaults.conflictRule", /one of lowest-index-wins, newest-wins, got "oldest-wins"/);
        expectIssue((c) => (c.defaults.maxDownPerBox = 0), "overlay-fleet:defaults.maxDownPerBox", /got 0/);
        expectIssue((c) => (c.defaults.mountOptions = ["index=on"]), "overlay-fleet:defaults.mountOptions[0]", /"index=on" is not allowed/);
        expectIssue((c) => (c.boxes.nas.overrides = { 1: { mountOptions: ["lowerdir=/x"] } }), "overlay-fleet:boxes.nas.overrides.1.mountOptions[0]", /not allowed/);
        expectIssue((c) => (c.boxes["Bad Box"] = {}), "overlay-fleet:boxes.Bad Box", /box name "Bad Box"/);
    });

    it("accepts only allow-listed overlay options in mountOptions: no mount(8) action words (issue 9, item 7)", () => {
        const actions = ["bind", "rbind", "move", "remount", "make-private", "make-rshared", "loop", "users", "x-mount.subdir=x", "ro,bind", "xino=on,bind", " volatile", "uuid=", "xino=yes"];
        for (const option of actions) {
            const message = `mount option ${JSON.stringify(option)} is not allowed`;
            expectIssue((c) => (c.defaults.mountOptions = [option]), "overlay-fleet:defaults.mountOptions[0]", message);
            expectIssue((c) => (c.boxes.nas.mountOptions = ["xino=off", option]), "overlay-fleet:boxes.nas.mountOptions[1]", message);
            expectIssue((c) => (c.boxes.nas.overrides = { 2: { mountOptions: [option] } }), "overlay-fleet:boxes.nas.overrides.2.mountOptions[0]", message);
        }
        const config = homeConfig();
        config.defaults.mountOptions = ["xino=auto", "uuid=null", "volatile"];
        config.boxes.nas.overrides = { 1: { mountOptions: ["xino=off", "uuid=on"] } };
        expect(issuesOf(config)).toEqual([]);
    });

    it("accepts both conflict rules, lowest-index-wins by default", () => {
        const config = homeConfig();
        config.boxes.nas.conflictRule = "newest-wins";
        const boxes = resolveFleetConfig(raw(config));
        expect(boxes.find((b) => b.name === "nas")!.conflictRule).toBe("newest-wins");
        expect(boxes.find((b) => b.name === "minipc")!.conflictRule).toBe("lowest-index-wins");
    });

    it("reports every problem at once", () => {
        const config = homeConfig();
        config.boxes.nas.instances = 100;
        config.boxes.minipc.ssh.port = 0;
        config.defaults.lower = "relative";
        expect(issuesOf(config).map((i) => i.key).sort()).toEqual([
            "overlay-fleet:boxes.minipc.ssh.port",
            "overlay-fleet:boxes.nas.instances",
            "overlay-fleet:defaults.lower",
            "overlay-fleet:defaults.lower",
        ]);
    });
});
