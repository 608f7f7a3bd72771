import { describe, expect, it } from "vitest";
import { BoxSummary } from "../../components/box";
import { maxInstancesPerBox } from "../../model/constants";
import { containersRun } from "../../ops/repair";
import { parseOperatorArgs, UsageError } from "../../ops/stack";
import { BoxStatus, boxHealthy, claimedByOther, ContainerStatus, containersLost, containersMissing, containersRecovery, libraryRecovery, statusCommand } from "../../ops/status";

const box = (states: Array<ContainerStatus["state"] | undefined>): BoxStatus => ({
    box: "box1",
    reachable: true,
    library: true,
    claim: "",
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

describe("status exit code", () => {
    it("is unhealthy (exit 1) for an instance without its fstab line, unmounted, or a container not as planned (issue 24.11)", () => {
        expect(boxHealthy(box(["running", undefined]))).toBe(true);
        const noLine = box([undefined]);
        noLine.instances[0].fstab = false;
        expect(boxHealthy(noLine)).toBe(false);
        const unmounted = box([undefined]);
        unmounted.instances[0].mounted = false;
        expect(boxHealthy(unmounted)).toBe(false);
        expect(boxHealthy(box(["stopped"]))).toBe(false);
        expect(boxHealthy({ ...box([]), reachable: false })).toBe(false);
        expect(boxHealthy({ ...box([]), library: false })).toBe(false);
    });
});

describe("status recovery commands", () => {
    it("suggest making a box's containers again only when all of them are gone, never over running ones", () => {
        expect(containersLost(box(["absent", "absent"]))).toBe(true);
        expect(containersLost(box(["absent", "running"]))).toBe(false);
        expect(containersLost(box(["engine down", "engine down"]))).toBe(false);
        expect(containersLost(box([undefined, undefined]))).toBe(false);
        expect(containersRecovery(urns, "box1").map((a) => a.replace(/.*::/, ""))).toEqual(["--replace", "box1-containers-run"]);
    });

    it("suggest npm run repair for the containers of a box that are gone while others of it remain", () => {
        expect(containersMissing(box(["running", "absent", "stopped", "absent"]))).toEqual(["box1/ttnode2", "box1/ttnode4"]);
        expect(containersMissing(box(["running", "running"]))).toEqual([]);
        // All gone: the containers command's replacement (containersLost), not a repair.
        expect(containersMissing(box(["absent", "absent"]))).toEqual([]);
        expect(containersMissing(box(["engine down", "engine down"]))).toEqual([]);
        // Without its library the box needs its copy and apply first (libraryRecovery).
        expect(containersMissing({ ...box(["running", "absent"]), library: false })).toEqual([]);
    });

    it("repair runs the containers command the state holds, and names what it cannot run", () => {
        const resource = (name: string, inputs: Record<string, unknown>) => ({ urn: urns.split("\n").map((l) => l.trim().slice(5)).find((u) => u.endsWith(`::${name}`)), type: "command:remote:Command", inputs });
        const exported = (...resources: object[]) => JSON.stringify({ version: 3, deployment: { resources } });
        const run = { create: "cd /var/lib/overlay-fleet/host && sh containers set box1", stdin: "box1/ttnode1\t...\n" };
        expect(containersRun(exported(resource("box12-containers-run", { create: "other", stdin: "" }), resource("box1-containers-run", run)), "box1")).toEqual(run);
        expect(containersRun(exported(resource("box12-containers-run", run)), "box1")).toMatch(/no containers command for box "box1"/);
        expect(containersRun(exported(resource("box1-containers-run", { create: { ciphertext: "..." }, stdin: "" })), "box1")).toMatch(/as a secret .* which repair does not run/);
        // The old one of a replacement whose delete has not run is not the box's command.
        expect(containersRun(exported({ ...resource("box1-containers-run", { create: "old", stdin: "" }), delete: true }, resource("box1-containers-run", run)), "box1")).toEqual(run);
        // Nothing runs beside an update in flight, or after one cut short.
        const pending = JSON.stringify({ deployment: { resources: [resource("box1-containers-run", run)], pending_operations: [{ type: "updating" }] } });
        expect(containersRun(pending, "box1")).toMatch(/operations pending/);
    });

    it("the operator commands refuse what they do not know, naming it", () => {
        expect(parseOperatorArgs(["--stack=home", "nas", "minipc", "nas"], [])).toEqual({ stack: "home", flags: new Set(), names: ["nas", "minipc"] });
        expect(parseOperatorArgs(["--json", "--stack", "home"], ["json"])).toEqual({ stack: "home", flags: new Set(["json"]), names: [] });
        expect(() => parseOperatorArgs(["--dry-run", "box1"], [])).toThrow(UsageError);
        expect(() => parseOperatorArgs(["--dry-run", "box1"], [])).toThrow(/--dry-run/);
        expect(() => parseOperatorArgs(["box1", "--stack"], [])).toThrow(/--stack/);
        expect(() => parseOperatorArgs(["--stack", "--json"], ["json"])).toThrow(UsageError);
        expect(() => parseOperatorArgs(["--stack="], [])).toThrow(/needs a stack name/);
    });

    it("a wiped box gets a new library copy and apply, and its containers command too when its containers are gone", () => {
        expect(libraryRecovery(urns, "box1").map((a) => a.replace(/.*::/, ""))).toEqual(["--replace", "box1-host-copy", "--replace", "box1-apply"]);
        expect(libraryRecovery(urns, "box1", true).map((a) => a.replace(/.*::/, ""))).toEqual([
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

describe("a machine claimed by another box (host/claim.sh)", () => {
    it("is reported when the machine's claim is not the deployed box's; no claim, or a stack deployed before claims, says nothing", () => {
        const ours = { claim: "organization/overlay-fleet/lab box1" };
        const at = (claim: string, reachable = true) => ({ ...box([]), claim, reachable });
        expect(claimedByOther(ours, at("organization/overlay-fleet/test box1"))).toBe("organization/overlay-fleet/test box1");
        expect(claimedByOther(ours, at("organization/overlay-fleet/lab box2"))).toBe("organization/overlay-fleet/lab box2");
        expect(claimedByOther(ours, at("organization/overlay-fleet/lab box1"))).toBeUndefined();
        expect(claimedByOther(ours, at(""))).toBeUndefined();
        expect(claimedByOther(ours, at("organization/overlay-fleet/test box1", false))).toBeUndefined();
        expect(claimedByOther({}, at("organization/overlay-fleet/test box1"))).toBeUndefined();
    });
});

describe("status command", () => {
    it("of the biggest box with containers: each argument the box's shell executes stays under Linux's 128 KiB", () => {
        const root = "/mnt/usbdisk-of-a-box-with-a-long-name/instances-of-overlay-fleet";
        const summary: BoxSummary = {
            name: "box1",
            host: "192.168.1.10",
            port: 22,
            user: "root",
            hostKey: "ssh-ed25519 AAAA",
            fstab: "/etc/fstab",
            lower: `${root}/static_cache`,
            generation: 1,
            cacheOnly: false,
            network: "macnet",
            instances: Array.from({ length: maxInstancesPerBox }, (_, i) => ({
                id: `box1/ttnode${i + 1}`,
                name: `ttnode${i + 1}`,
                merged: `${root}/ttnode${i + 1}/mnts`,
                upper: `${root}/ttnode${i + 1}/upper`,
                hostname: `ttnode${i + 1}`,
                ip: `192.168.1.${100 + i}`,
                mac: "02:42:c0:a8:01:64",
            })),
        };
        const command = statusCommand(summary);
        // The scripts, one `sh -c '<script>'` each: the longest single-quoted word is what one exec gets.
        const words = command.match(/'(?:[^']|'\\'')*'/g) ?? [];
        const longest = Math.max(...words.map((w) => Buffer.byteLength(w)));
        expect(longest).toBeGreaterThan(40_000);
        expect(longest).toBeLessThan(128 * 1024 - 16 * 1024);
        expect(command).toContain("ttnode64");
    });
});
