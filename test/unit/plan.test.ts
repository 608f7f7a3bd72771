import { describe, expect, it } from "vitest";
import { resolveFleetConfig } from "../../model/config";
import { fstabOptions, planBox, lowerForGeneration } from "../../model/plan";
import { derivedMac, isMulticastMac } from "../../model/net";
import { homeConfig, raw } from "./fixtures";

const boxNamed = (config: any, name: string) => resolveFleetConfig(raw(config)).find((b) => b.name === name)!;

describe("per-instance plan", () => {
    it("derives paths, names, hostname, IP and MAC from box and index", () => {
        const [first, second] = planBox(boxNamed(homeConfig(), "nas")).instances;
        expect(first).toMatchObject({
            id: "nas/ttnode1",
            name: "ttnode1",
            upper: "/mnt/usbdisk/ttnode1/upper",
            work: "/mnt/usbdisk/ttnode1/work",
            merged: "/mnt/usbdisk/ttnode1/mnts",
            hostname: "nas-ttnode1",
            ip: "192.168.1.201",
            mountOptions: "index=off,nfs_export=off,redirect_dir=off,metacopy=off",
        });
        expect(second.ip).toBe("192.168.1.202");
        expect(first.mac).toMatch(/^02(:[0-9a-f]{2}){5}$/);
        expect(first.mac).not.toBe(second.mac);
    });

    it("skips the gateway when counting addresses", () => {
        const config = homeConfig();
        config.defaults.network.gateway = "192.168.1.202";
        expect(planBox(boxNamed(config, "nas")).instances.map((i) => i.ip)).toEqual(["192.168.1.201", "192.168.1.203", "192.168.1.204"]);
    });

    it("MACs are locally administered unicast and stable across stacks and box order", () => {
        for (let i = 1; i <= 64; i++) {
            const mac = derivedMac("nas", i);
            expect(isMulticastMac(mac)).toBe(false);
            expect(parseInt(mac.slice(0, 2), 16) & 2).toBe(2);
        }
        const reordered = homeConfig();
        reordered.boxes = { minipc: reordered.boxes.minipc, nas: reordered.boxes.nas };
        expect(planBox(boxNamed(reordered, "nas")).instances).toEqual(planBox(boxNamed(homeConfig(), "nas")).instances);
        expect(derivedMac("nas", 1)).toBe(derivedMac("nas", 1));
        expect(derivedMac("nas", 1)).not.toBe(derivedMac("nas2", 1));
    });

    it("scaling 3 -> 5 -> 2 never changes the plan of the remaining instances", () => {
        const plans = [3, 5, 2].map((count) => {
            const config = homeConfig();
            config.boxes.nas.instances = count;
            return planBox(boxNamed(config, "nas")).instances;
        });
        expect(plans[1].slice(0, 3)).toEqual(plans[0]);
        expect(plans[2]).toEqual(plans[0].slice(0, 2));
    });

    it("applies per-instance overrides only to that instance", () => {
        const config = homeConfig();
        config.boxes.nas.overrides = { 2: { ip: "192.168.1.240", mac: "02:AA:BB:CC:DD:EE", hostname: "ttnode-b", mountOptions: ["xino=off"] } };
        const [one, two, three] = planBox(boxNamed(config, "nas")).instances;
        const [baseOne, , baseThree] = planBox(boxNamed(homeConfig(), "nas")).instances;
        expect(two).toMatchObject({ ip: "192.168.1.240", mac: "02:aa:bb:cc:dd:ee", hostname: "ttnode-b" });
        expect(two.mountOptions).toBe("index=off,nfs_export=off,redirect_dir=off,metacopy=off,xino=off");
        expect(one).toEqual(baseOne);
        expect(three).toEqual(baseThree);
    });

    it("builds fstab options that pin overlay options and order boot", () => {
        const box = boxNamed(homeConfig(), "nas");
        const [first] = planBox(box).instances;
        expect(first.lower).toBe(box.lower);
        expect(first.fstabOptions).toBe(fstabOptions(box.disk, first, lowerForGeneration(box.lower, 1)));
        expect(first.fstabOptions).toBe(
            "lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/ttnode1/upper,workdir=/mnt/usbdisk/ttnode1/work," +
                "index=off,nfs_export=off,redirect_dir=off,metacopy=off,nofail," +
                "x-systemd.requires-mounts-for=/mnt/usbdisk,x-systemd.before=docker.service",
        );
        expect(lowerForGeneration("/mnt/usbdisk/static_cache", 3)).toBe("/mnt/usbdisk/static_cache.g3");
    });

    it("plans the lower cache and each instance's switch at a later generation", () => {
        const config = homeConfig();
        config.boxes.nas.generation = 3;
        const plan = planBox(boxNamed(config, "nas"));
        expect(plan.lower).toEqual({
            configured: "/mnt/usbdisk/static_cache",
            current: "/mnt/usbdisk/static_cache.g3",
            manifestDir: "/mnt/usbdisk/.overlay-fleet/static_cache.gen3",
        });
        const [first] = plan.instances;
        expect(first.lower).toBe("/mnt/usbdisk/static_cache.g3");
        expect(first.fstabOptions.startsWith("lowerdir=/mnt/usbdisk/static_cache.g3,")).toBe(true);
        expect(first.foldManifest).toBe("/mnt/usbdisk/.overlay-fleet/static_cache.gen3/ttnode1.manifest");
        expect(first.containerName).toBe("ttnode1");
        expect(planBox(boxNamed(homeConfig(), "nas")).instances[0].foldManifest).toBeUndefined();
    });
});
