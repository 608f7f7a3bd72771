import { describe, expect, it } from "vitest";
import { ConfigError, planFleet, resolveFleetConfig } from "../../model/config";
import { maxGeneration } from "../../model/constants";
import { homeConfig, raw } from "./fixtures";

function issuesOf(config: { defaults?: any; boxes?: any }) {
    try {
        resolveFleetConfig(raw(config));
        return [];
    } catch (error) {
        if (!(error instanceof ConfigError)) {
            throw error;
        }
        return error.issues;
    }
}

describe("the config schema", () => {
    it("reports a wrong type or unknown key in defaults once, not once a box, even where every box overrides it", () => {
        const config = homeConfig();
        config.defaults.netwrok = {};
        config.defaults.ssh = "root@nas";
        config.defaults.container.dns = ["192.168.1.1", 53];
        expect(issuesOf(config)).toEqual([
            { key: "overlay-fleet:defaults.ssh", message: 'must be an object, got "root@nas"' },
            { key: "overlay-fleet:defaults.container.dns", message: 'must be a list of strings, got ["192.168.1.1",53]' },
            { key: "overlay-fleet:defaults.netwrok", message: expect.stringMatching(/^unknown key "netwrok" \(did you mean "network"\?\); allowed: ssh, disk, /) },
        ]);
    });

    it("requires every network and container field of a box with docker, by name", () => {
        const config = homeConfig();
        delete config.defaults.network;
        delete config.defaults.container;
        delete config.boxes.minipc.network;
        const minipc = issuesOf(config).filter((i) => i.key.includes("minipc"));
        expect(minipc).toEqual(
            ["network.parent", "network.subnet", "network.gateway", "network.firstAddress", "container.image"].map((field) => ({
                key: `overlay-fleet:boxes.minipc.${field}`,
                message: "is required unless cacheOnly is true",
            })),
        );
    });

    it("a cache-only box takes network and container from defaults without using them", () => {
        const config = homeConfig();
        config.boxes.nas.cacheOnly = true;
        delete config.boxes.nas.network;
        const { boxes } = planFleet(raw(config));
        const nas = boxes.find((b) => b.settings.name === "nas")!;
        expect(nas.settings.cacheOnly).toBe(true);
        expect(nas.settings.network).toBeUndefined();
        expect(nas.settings.container).toBeUndefined();
        expect(nas.instances.map((i) => i.ip)).toEqual([undefined, undefined, undefined]);
        // A box with docker has both, typed as present.
        const minipc = boxes.find((b) => b.settings.name === "minipc")!.settings;
        expect(minipc.cacheOnly || minipc.network.parent).toBe("enp1s0");
    });

    it("a cacheOnly that is no boolean is reported and the rest of the box still checked", () => {
        const config = homeConfig();
        config.boxes.nas.cacheOnly = "yes";
        config.boxes.nas.generation = maxGeneration + 1;
        expect(issuesOf(config)).toEqual([
            { key: "overlay-fleet:boxes.nas.cacheOnly", message: 'must be a boolean, got "yes"' },
            { key: "overlay-fleet:boxes.nas.generation", message: `must be a whole number 1..${maxGeneration}, got ${maxGeneration + 1}` },
        ]);
    });

    it("applies the documented defaults and normalises an override MAC", () => {
        const config = homeConfig();
        delete config.defaults.container.restart;
        delete config.defaults.container.privileged;
        config.boxes.nas.overrides = { 2: { mac: "02-AA-BB-CC-DD-EE" } };
        const nas = resolveFleetConfig(raw(config)).find((b) => b.name === "nas")!;
        expect(nas).toMatchObject({
            ssh: { port: 22, user: "root", agent: false },
            namePrefix: "ttnode",
            cacheOnly: false,
            purgeOnRemove: false,
            generation: 1,
            maxDownPerBox: 1,
            conflictRule: "lowest-index-wins",
            mountOptions: [],
            network: { name: "macnet" },
            container: { dns: ["192.168.1.1"], privileged: false, restart: "always", mountTarget: "/mnts" },
            overrides: { 2: { mac: "02:aa:bb:cc:dd:ee" } },
        });
    });

    it("takes an override entry left empty in YAML (null) as no overrides, and still refuses other values", () => {
        const config = homeConfig();
        config.boxes.nas.overrides = { 2: null };
        expect(issuesOf(config)).toEqual([]);
        expect(resolveFleetConfig(raw(config)).find((b) => b.name === "nas")!.overrides).toEqual({ 2: {} });
        config.boxes.nas.overrides = { 2: "fast" };
        expect(issuesOf(config).map((i) => i.key)).toEqual(["overlay-fleet:boxes.nas.overrides.2"]);
    });

    it("gives ConfigError a Pulumi view: { propertyPath, reason } per problem", () => {
        const config = homeConfig();
        config.boxes.nas.instances = 65;
        config.boxes.minipc.ssh.user = "Root";
        const error = (() => {
            try {
                planFleet(raw(config));
            } catch (e) {
                return e as ConfigError;
            }
            throw new Error("no error");
        })();
        expect(error.errors).toEqual([
            { propertyPath: "overlay-fleet:boxes.minipc.ssh.user", reason: '"Root" is not a valid user name' },
            { propertyPath: "overlay-fleet:boxes.nas.instances", reason: "must be a whole number 0..64, got 65" },
        ]);
        expect(error.message).toBe(
            "invalid overlay-fleet stack config:\n" +
                '  - overlay-fleet:boxes.minipc.ssh.user: "Root" is not a valid user name\n' +
                "  - overlay-fleet:boxes.nas.instances: must be a whole number 0..64, got 65",
        );
    });
});
