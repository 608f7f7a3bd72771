/**
 * The deterministic per-instance plan: everything an instance is (paths, names, addresses, mount
 * options, fstab entry) derives from (box, index) plus explicit overrides, so adding or removing
 * instances never changes the plan of the others.
 */
import * as path from "path/posix";
import type { ResolvedBox, ResolvedNetwork } from "./schema";
import { configNamespace, generationSuffix, pinnedMountOptions } from "./constants";
import { derivedMac, formatIPv4, parseIPv4 } from "./net";

/** Everything one instance is on its box. */
export interface InstancePlan {
    /** Box name. */
    box: string;
    /** 1-based index on the box. */
    index: number;
    /** Instance (and container) name on the box, e.g. `ttnode2`. */
    name: string;
    /** Group-wide id, also the fstab marker: `<box>/<name>`. */
    id: string;
    /** Stack key of this instance's override entry, for messages. */
    key: string;
    dir: string;
    upper: string;
    work: string;
    /** The merged view, bind-mounted into the container. */
    merged: string;
    hostname: string;
    /** Container address on the macvlan network (absent for cache-only boxes). */
    ip?: string;
    ipOverridden: boolean;
    mac: string;
    /** Options passed to `mount -t overlay` besides the layers: pinned + allowed extras. */
    mountOptions: string;
    /** The lower it mounts: the box's current cache generation. */
    lower: string;
    /** Its fstab line's options: layers, mount options, boot ordering (see fstabOptions). */
    fstabOptions: string;
    /** Fold manifest of the current generation (generation > 1): what the switch drops from the upper. */
    foldManifest?: string;
    /** Its container (absent on cache-only boxes): stopped and started around a remount. */
    containerName?: string;
}

/** The box's lower cache at its declared generation. */
export interface LowerPlan {
    /** The configured lower (generation 1); its path always names the current cache. */
    configured: string;
    /** The lower the instances mount: `<configured><generationSuffix><N>` from generation 2 on. */
    current: string;
    /** Where the fold leaves per-instance manifests for this generation. */
    manifestDir: string;
}

/** Path of the lower for one cache generation: generation 1 is the configured lower itself. */
export function lowerForGeneration(lower: string, generation: number): string {
    return generation === 1 ? lower : `${lower}${generationSuffix}${generation}`;
}

/** Where folds keep their per-instance manifests (beside the lowers, never inside one). */
export function foldManifestDir(lower: string, generation: number): string {
    return path.join(path.dirname(lower), ".overlay-fleet", `${path.basename(lower)}.gen${generation}`);
}

/** Manifest of what one instance's upper contributed to a generation's fold. */
export function foldManifest(lower: string, generation: number, instanceName: string): string {
    return path.join(foldManifestDir(lower, generation), `${instanceName}.manifest`);
}

/** One box of the host group: its settings, its lower cache and the plan of each of its instances. */
export interface BoxPlan {
    settings: ResolvedBox;
    lower: LowerPlan;
    instances: InstancePlan[];
}

/** The plan of a box: its lower cache and every instance, index 1..instances. */
export function planBox(box: ResolvedBox): BoxPlan {
    return {
        settings: box,
        lower: {
            configured: box.lower,
            current: lowerForGeneration(box.lower, box.generation),
            manifestDir: foldManifestDir(box.lower, box.generation),
        },
        instances: Array.from({ length: box.instances }, (_, i) => planInstance(box, i + 1)),
    };
}

export function planInstance(box: ResolvedBox, index: number): InstancePlan {
    const override = box.overrides[String(index)] ?? {};
    const name = `${box.namePrefix}${index}`;
    const dir = path.join(box.instanceRoot, name);
    const ip = box.network ? (override.ip ?? formatIPv4(derivedAddress(box.network, index))) : undefined;
    const extraOptions = [...box.mountOptions, ...(override.mountOptions ?? [])];
    const lower = lowerForGeneration(box.lower, box.generation);
    const upper = path.join(dir, "upper");
    const work = path.join(dir, "work");
    const mountOptions = [...pinnedMountOptions, ...new Set(extraOptions)].join(",");
    return {
        box: box.name,
        index,
        name,
        id: `${box.name}/${name}`,
        key: `${configNamespace}:boxes.${box.name}.overrides.${index}`,
        dir,
        upper,
        work,
        merged: path.join(dir, "mnts"),
        // Hostnames must be unique in the group; prefixing the box keeps the default unique.
        hostname: override.hostname ?? `${box.name}-${name}`,
        ip,
        ipOverridden: override.ip !== undefined,
        mac: override.mac ?? derivedMac(box.name, index),
        mountOptions,
        lower,
        fstabOptions: fstabOptions(box.disk, { upper, work, mountOptions }, lower),
        ...(box.generation > 1 ? { foldManifest: foldManifest(box.lower, box.generation, name) } : {}),
        ...(box.cacheOnly ? {} : { containerName: name }),
    };
}

/** The overlay layer options for one instance on one lower. */
export function layerOptions(instance: Pick<InstancePlan, "upper" | "work">, lower: string): string {
    return `lowerdir=${lower},upperdir=${instance.upper},workdir=${instance.work}`;
}

/**
 * The fstab options of an instance (the script appends the `x-overlay-fleet=<id>` marker):
 * layers, pinned options, `nofail` so a missing USB disk cannot hang boot, and explicit boot
 * ordering because nofail drops the implicit one: wait for the disk, come up before docker.
 */
export function fstabOptions(disk: string, instance: Pick<InstancePlan, "upper" | "work" | "mountOptions">, lower: string): string {
    return [
        layerOptions(instance, lower),
        instance.mountOptions,
        "nofail",
        `x-systemd.requires-mounts-for=${disk}`,
        "x-systemd.before=docker.service",
    ].join(",");
}

/** Address of instance `index` counted from the network's first address, skipping the gateway. */
export function derivedAddress(network: ResolvedNetwork, index: number): number {
    const gateway = parseIPv4(network.gateway)!;
    let address = parseIPv4(network.firstAddress)!;
    for (let counted = 0; ; address++) {
        if (address !== gateway && ++counted === index) {
            return address;
        }
    }
}
