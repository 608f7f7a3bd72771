import { describe, expect, it } from "vitest";
import { BoxStatus, ContainerStatus, containersLost, containersRecovery, libraryRecovery } from "../../ops/status";

const box = (states: Array<ContainerStatus["state"] | undefined>): BoxStatus => ({
    box: "box1",
    reachable: true,
    library: true,
    lower: "/mnt/usbdisk/static_cache",
    lowerBytes: 0,
    instances: states.map((state, i) => ({
        box: "box1",
        instance: `box1/ttnode${i + 1}`,
        mounted: true,
        fstab: true,
        upperBytes: 0,
        ...(state ? { container: { state, ip: "", mac: "", hostname: "", matchesPlan: state === "running" } } : {}),
    })),
});

const urns = [
    "    URN: urn:pulumi:lab::overlay-fleet::overlay-fleet:fleet:Box$overlay-fleet:host:HostLibrary$command:remote:CopyToRemote::box1-host-copy",
    "    URN: urn:pulumi:lab::overlay-fleet::overlay-fleet:fleet:Box$command:remote:Command::box1-apply",
    "    URN: urn:pulumi:lab::overlay-fleet::overlay-fleet:fleet:Box$command:remote:Command::box11-apply",
    "    URN: urn:pulumi:lab::overlay-fleet::overlay-fleet:fleet:Box$overlay-fleet:container:BoxContainers$command:remote:Command::box1-containers-run",
    "    URN: urn:pulumi:lab::overlay-fleet::overlay-fleet:fleet:Box$overlay-fleet:container:BoxContainers$command:remote:Command::box12-containers-run",
].join("\n");

describe("status recovery commands", () => {
    it("suggest making a box's containers again only when all of them are gone, never over running ones", () => {
        expect(containersLost(box(["absent", "absent"]))).toBe(true);
        expect(containersLost(box(["absent", "running"]))).toBe(false);
        expect(containersLost(box(["engine down", "engine down"]))).toBe(false);
        expect(containersLost(box([undefined, undefined]))).toBe(false);
        expect(containersRecovery(urns, "box1").map((a) => a.replace(/.*::/, ""))).toEqual(["--replace", "box1-containers-run"]);
    });

    it("a wiped box gets a new library copy and apply, and its containers command too when its containers are gone", () => {
        expect(libraryRecovery(urns, "box1").map((a) => a.replace(/.*::/, ""))).toEqual(["--refresh", "--replace", "box1-host-copy", "--replace", "box1-apply"]);
        expect(libraryRecovery(urns, "box1", true).map((a) => a.replace(/.*::/, ""))).toEqual([
            "--refresh",
            "--replace",
            "box1-host-copy",
            "--replace",
            "box1-apply",
            "--replace",
            "box1-containers-run",
        ]);
        expect(libraryRecovery(urns, "box9")).toEqual([]);
    });
});
