/**
 * The stack configuration of one host group, its validation and its resolution into per-box
 * settings. Everything here is pure (no Pulumi; the only I/O is reading an image archive's
 * manifest), so every rule is unit-tested directly and `pulumi preview` fails before any box is
 * touched.
 */
import { ImageArchive, inspectImageArchive, withDefaultTag } from "./imageArchive";
import * as path from "path/posix";
import { configNamespace, maxInstancesPerBox, maxMountDataLength, pinnedMountOptions } from "./constants";
import { normaliseMac, isMulticastMac, parseIPv4, parseSubnet, subnetContains, formatIPv4 } from "./net";
import { fstabOptions, lowerForGeneration, planBox } from "./plan";

export { configNamespace, maxInstancesPerBox, pinnedMountOptions };

/** How to reach a box over SSH. */
export interface SshSettings {
    /** Host name or IPv4 address of the box. */
    host?: string;
    /** SSH port (default 22). */
    port?: number;
    /** Login user (default root: mounts and fstab edits need it). */
    user?: string;
    /** The box's SSH host public key, e.g. `ssh-ed25519 AAAA...`: pinned, so a swapped box is refused. */
    hostKey?: string;
    /** Authenticate with the local SSH agent instead of `overlay-fleet:sshPrivateKey`. */
    agent?: boolean;
}

/** The docker macvlan network the instances' containers join. */
export interface NetworkSettings {
    /** Docker network name (default `macnet`). */
    name?: string;
    /** Parent LAN interface on the box, e.g. `eth0`. */
    parent?: string;
    /** LAN subnet in CIDR form, e.g. `192.168.1.0/24`. */
    subnet?: string;
    /** LAN gateway. */
    gateway?: string;
    /** Address of instance 1; instance N gets the (N-1)-th next address, skipping the gateway. */
    firstAddress?: string;
}

/** The container each instance runs. */
export interface ContainerSettings {
    /** Image reference, e.g. `ericwang2006/ttnode`. */
    image?: string;
    /** DNS servers given to the container. */
    dns?: string[];
    /** Run privileged (the ttnode image needs it). */
    privileged?: boolean;
    /** Docker restart policy. */
    restart?: "always" | "unless-stopped" | "on-failure" | "no";
    /** Where the merged cache dir appears inside the container (default `/mnts`). */
    mountTarget?: string;
    /**
     * An image archive (`docker save` output) on the operator's machine, path absolute or relative
     * to the project: shipped to the box and loaded there instead of pulling `image` from a
     * registry (boxes without registry access). It must hold `image`.
     */
    imageArchive?: string;
}

/** The container settings after defaults, the archive checked. */
export interface ResolvedContainer {
    image: string;
    dns: string[];
    privileged: boolean;
    restart: NonNullable<ContainerSettings["restart"]>;
    mountTarget: string;
    imageArchive?: ImageArchive;
}

/** Per-instance overrides, keyed by instance index ("1", "2", ...). */
export interface InstanceOverride {
    ip?: string;
    mac?: string;
    hostname?: string;
    /** Extra overlay mount options for this instance only (from an allow-list, e.g. `xino=off`). */
    mountOptions?: string[];
}

/** Settings of one box; every field may also be given once in `overlay-fleet:defaults`. */
export interface BoxSettings {
    ssh?: SshSettings;
    /** Mount point of the disk holding the lower and the instances (fstab lines wait for it). */
    disk?: string;
    /** The shared read-only lower cache (generation 1). Must be inside `disk`. */
    lower?: string;
    /** Directory holding one `<namePrefix><N>/{upper,work,mnts}` set per instance. Inside `disk`. */
    instanceRoot?: string;
    /** Instance name prefix (default `ttnode`): instances are `<prefix>1`, `<prefix>2`, ... */
    namePrefix?: string;
    /** Paths, relative to the lower, private to each instance: removed from the lower, never folded. */
    privatePaths?: string[];
    /** How many instances this box runs. */
    instances?: number;
    /** Only caches: overlays and fstab lines without docker network or containers. */
    cacheOnly?: boolean;
    /** When an instance is removed, delete its upper and work dirs too (default: keep the data). */
    purgeOnRemove?: boolean;
    /** Cache generation: bumping it folds the uppers into a new lower and switches the instances. */
    generation?: number;
    /** At most this many instances of a box are down at once while switching generation. */
    maxDownPerBox?: number;
    /**
     * Which change wins when several uppers changed the same path during a fold: the instance
     * with the lowest index, or the newest modification time (ties: lowest index).
     */
    conflictRule?: ConflictRule;
    /** Extra overlay mount options for every instance of the box (allow-listed). */
    mountOptions?: string[];
    network?: NetworkSettings;
    container?: ContainerSettings;
    /** Per-instance overrides keyed by index. */
    overrides?: Record<string, InstanceOverride>;
}

/** The raw stack config as read from `overlay-fleet:*` keys. */
export interface RawFleetConfig {
    defaults?: unknown;
    boxes?: unknown;
    /** Every key present in the stack's `overlay-fleet` namespace, to catch typos. */
    presentKeys?: string[];
}

/** A box with every default applied and every value checked. */
export interface ResolvedBox {
    name: string;
    ssh: Required<Omit<SshSettings, "agent">> & { agent: boolean };
    disk: string;
    lower: string;
    instanceRoot: string;
    namePrefix: string;
    privatePaths: string[];
    instances: number;
    cacheOnly: boolean;
    purgeOnRemove: boolean;
    generation: number;
    maxDownPerBox: number;
    conflictRule: ConflictRule;
    mountOptions: string[];
    network?: Required<NetworkSettings>;
    container?: ResolvedContainer;
    overrides: Map<number, InstanceOverride>;
}


/** Extra mount options a user may add; anything else could change overlay semantics under us. */
const allowedExtraMountOption = /^(xino=(on|off|auto)|uuid=(on|off|null|auto)|volatile)$/;

const restartPolicies = ["always", "unless-stopped", "on-failure", "no"] as const;
const conflictRules = ["lowest-index-wins", "newest-wins"] as const;
/** Conflict rules of host/fold.sh. */
export type ConflictRule = (typeof conflictRules)[number];

/** One problem found in the stack config. */
export interface ConfigIssue {
    /** Full stack key, e.g. `overlay-fleet:boxes.nas.network.firstAddress`. */
    key: string;
    message: string;
}

/** Thrown when the stack config is invalid; lists every problem, each naming its key and value. */
export class ConfigError extends Error {
    constructor(readonly issues: ConfigIssue[]) {
        super(
            `invalid overlay-fleet stack config:\n` + issues.map((issue) => `  - ${issue.key}: ${issue.message}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

/** Collects issues while walking the config. */
class IssueList {
    readonly items: ConfigIssue[] = [];
    add(key: string, message: string): void {
        this.items.push({ key, message });
    }
}

const show = (value: unknown): string => JSON.stringify(value);

type FieldKind = "string" | "number" | "boolean" | "object" | "stringArray";

const sshFields: Record<keyof SshSettings, FieldKind> = {
    host: "string",
    port: "number",
    user: "string",
    hostKey: "string",
    agent: "boolean",
};
const networkFields: Record<keyof NetworkSettings, FieldKind> = {
    name: "string",
    parent: "string",
    subnet: "string",
    gateway: "string",
    firstAddress: "string",
};
const containerFields: Record<keyof ContainerSettings, FieldKind> = {
    image: "string",
    dns: "stringArray",
    privileged: "boolean",
    restart: "string",
    mountTarget: "string",
    imageArchive: "string",
};
const overrideFields: Record<keyof InstanceOverride, FieldKind> = {
    ip: "string",
    mac: "string",
    hostname: "string",
    mountOptions: "stringArray",
};
const boxFields: Record<keyof BoxSettings, FieldKind> = {
    ssh: "object",
    disk: "string",
    lower: "string",
    instanceRoot: "string",
    namePrefix: "string",
    privatePaths: "stringArray",
    instances: "number",
    cacheOnly: "boolean",
    purgeOnRemove: "boolean",
    generation: "number",
    maxDownPerBox: "number",
    conflictRule: "string",
    mountOptions: "stringArray",
    network: "object",
    container: "object",
    overrides: "object",
};
const nestedFields: Partial<Record<keyof BoxSettings, Record<string, FieldKind>>> = {
    ssh: sshFields,
    network: networkFields,
    container: containerFields,
};

/** Top-level keys of the `overlay-fleet` namespace. */
export const topLevelKeys = ["defaults", "boxes", "sshPrivateKey"] as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Levenshtein distance, for "did you mean" hints on typos. */
function editDistance(a: string, b: string): number {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let previous = row[0];
        row[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const current = row[j];
            row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
            previous = current;
        }
    }
    return row[b.length];
}

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
    const best = allowed
        .map((candidate) => ({ candidate, distance: editDistance(key.toLowerCase(), candidate.toLowerCase()) }))
        .sort((x, y) => x.distance - y.distance)[0];
    const hint = best && best.distance <= 3 ? ` (did you mean "${best.candidate}"?)` : "";
    return `unknown key ${show(key)}${hint}; allowed: ${allowed.join(", ")}`;
}

/** Checks the shape of one object: unknown keys and value types. Returns the well-typed part. */
function checkShape(
    value: unknown,
    fields: Record<string, FieldKind>,
    key: string,
    issues: IssueList,
): Record<string, unknown> {
    if (value === undefined || value === null) {
        return {};
    }
    if (!isPlainObject(value)) {
        issues.add(key, `must be an object, got ${show(value)}`);
        return {};
    }
    const result: Record<string, unknown> = {};
    for (const [name, fieldValue] of Object.entries(value)) {
        const kind = fields[name];
        const fieldKey = `${key}.${name}`;
        if (kind === undefined) {
            issues.add(fieldKey, unknownKeyMessage(name, Object.keys(fields)));
            continue;
        }
        const ok =
            kind === "stringArray"
                ? Array.isArray(fieldValue) && fieldValue.every((item) => typeof item === "string")
                : kind === "object"
                  ? isPlainObject(fieldValue)
                  : typeof fieldValue === kind;
        if (!ok) {
            const expected = kind === "stringArray" ? "a list of strings" : `a ${kind}`;
            issues.add(fieldKey, `must be ${expected}, got ${show(fieldValue)}`);
            continue;
        }
        result[name] = fieldValue;
    }
    return result;
}

/** Checks one box-settings object (the defaults or one box) for shape; nested objects too. */
function checkBoxShape(value: unknown, key: string, issues: IssueList): BoxSettings {
    const box = checkShape(value, boxFields, key, issues) as Record<string, unknown>;
    for (const [name, fields] of Object.entries(nestedFields)) {
        if (box[name] !== undefined) {
            box[name] = checkShape(box[name], fields as Record<string, FieldKind>, `${key}.${name}`, issues);
        }
    }
    if (box.overrides !== undefined) {
        const overrides: Record<string, InstanceOverride> = {};
        for (const [index, override] of Object.entries(box.overrides as Record<string, unknown>)) {
            const overrideKey = `${key}.overrides.${index}`;
            const number = Number(index);
            if (!/^[1-9]\d*$/.test(index) || number > maxInstancesPerBox) {
                issues.add(overrideKey, `override keys are instance numbers 1..${maxInstancesPerBox}, got ${show(index)}`);
                continue;
            }
            overrides[index] = checkShape(override, overrideFields, overrideKey, issues) as InstanceOverride;
        }
        box.overrides = overrides;
    }
    return box as BoxSettings;
}

/** Characters that break an overlay option (`,` `:` `\`), an fstab field (whitespace, `#` at start) or a line. */
const unsafePathCharacter = /[,:\\\s\x00-\x1f\x7f"'`$]/;

/** Validates an absolute, normalised path usable in overlay options and fstab fields. */
export function checkAbsolutePath(value: string, key: string, issues: IssueList): boolean {
    if (!value.startsWith("/")) {
        issues.add(key, `must be an absolute path, got ${show(value)}`);
        return false;
    }
    if (unsafePathCharacter.test(value)) {
        issues.add(
            key,
            `${show(value)} contains a character that breaks overlay mount options or fstab fields ` +
                `(comma, colon, backslash, quote, $, whitespace or control character)`,
        );
        return false;
    }
    if (value === "/" || path.normalize(value) !== value || value.endsWith("/")) {
        issues.add(key, `${show(value)} is not a normalised path (expected ${show(path.normalize(value).replace(/\/$/, "") || "/")}, and not "/")`);
        return false;
    }
    return true;
}

/** Validates a relative, normalised path inside the lower (an instance-private path). */
function checkRelativePath(value: string, key: string, issues: IssueList): boolean {
    if (value.startsWith("/") || value === "" || value === ".") {
        issues.add(key, `must be a path relative to the lower, got ${show(value)}`);
        return false;
    }
    if (unsafePathCharacter.test(value)) {
        issues.add(key, `${show(value)} contains a comma, colon, backslash, quote, $, whitespace or control character`);
        return false;
    }
    if (path.normalize(value) !== value || value.endsWith("/") || value.split("/").includes("..")) {
        issues.add(key, `${show(value)} is not a normalised relative path inside the lower`);
        return false;
    }
    return true;
}

/** True when `inner` is `outer` or lies below it. */
export function isWithin(inner: string, outer: string): boolean {
    return inner === outer || inner.startsWith(outer.endsWith("/") ? outer : `${outer}/`);
}

const boxNamePattern = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
const hostnamePattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const namePrefixPattern = /^[a-z][a-z0-9-]{0,30}$/;
const userPattern = /^[a-z_][a-z0-9_-]{0,31}$/;
const sshHostPattern = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const hostKeyPattern = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}$/;
const interfacePattern = /^[A-Za-z0-9_.-]{1,15}$/;
const dockerNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const imagePattern = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

/** Where a field came from, so messages name the key the user actually wrote. */
function originKey(boxKey: string, defaultsKey: string, box: BoxSettings, defaults: BoxSettings, field: string[]): string {
    const has = (settings: unknown): boolean =>
        field.reduce<unknown>((value, name) => (isPlainObject(value) ? value[name] : undefined), settings) !== undefined;
    const key = has(box) ? boxKey : has(defaults) ? defaultsKey : boxKey;
    return `${key}.${field.join(".")}`;
}

/** Merges group defaults into one box: objects field-wise, everything else replaced. */
function mergeSettings(defaults: BoxSettings, box: BoxSettings): BoxSettings {
    const merged: Record<string, unknown> = { ...defaults, ...box };
    for (const name of ["ssh", "network", "container"] as const) {
        if (defaults[name] !== undefined || box[name] !== undefined) {
            merged[name] = { ...(defaults[name] ?? {}), ...(box[name] ?? {}) };
        }
    }
    if (defaults.overrides !== undefined || box.overrides !== undefined) {
        merged.overrides = { ...(defaults.overrides ?? {}), ...(box.overrides ?? {}) };
    }
    return merged as BoxSettings;
}

/**
 * Validates the whole stack config and resolves every box. Throws ConfigError listing every
 * problem; returns boxes sorted by name so the plan does not depend on YAML key order.
 */
export function resolveFleetConfig(raw: RawFleetConfig): ResolvedBox[] {
    const issues = new IssueList();
    const ns = configNamespace;

    for (const present of raw.presentKeys ?? []) {
        const [prefix, name] = present.split(":", 2);
        if (prefix === ns && !(topLevelKeys as readonly string[]).includes(name)) {
            issues.add(present, unknownKeyMessage(name, topLevelKeys));
        }
    }

    const defaultsKey = `${ns}:defaults`;
    const defaults = checkBoxShape(raw.defaults, defaultsKey, issues);
    if (raw.boxes === undefined || raw.boxes === null) {
        issues.add(`${ns}:boxes`, "is required: declare at least one box");
        throw new ConfigError(issues.items);
    }
    if (!isPlainObject(raw.boxes) || Object.keys(raw.boxes).length === 0) {
        issues.add(`${ns}:boxes`, `must map box names to box settings, got ${show(raw.boxes)}`);
        throw new ConfigError(issues.items);
    }

    const resolved: ResolvedBox[] = [];
    for (const name of Object.keys(raw.boxes).sort()) {
        const boxKey = `${ns}:boxes.${name}`;
        if (!boxNamePattern.test(name)) {
            issues.add(boxKey, `box name ${show(name)} must be lower-case letters, digits and "-" (at most 32)`);
            continue;
        }
        const own = checkBoxShape(raw.boxes[name], boxKey, issues);
        const box = resolveBox(name, mergeSettings(defaults, own), (field) => originKey(boxKey, defaultsKey, own, defaults, field), issues);
        if (box) {
            resolved.push(box);
        }
    }
    if (issues.items.length === 0) {
        checkGroupRules(resolved, issues);
    }
    if (issues.items.length > 0) {
        throw new ConfigError(issues.items);
    }
    return resolved;
}

function resolveBox(
    name: string,
    settings: BoxSettings,
    keyOf: (field: string[]) => string,
    issues: IssueList,
): ResolvedBox | undefined {
    const before = issues.items.length;
    const require = <T>(value: T | undefined, field: string[]): T | undefined => {
        if (value === undefined) {
            issues.add(keyOf(field), "is required (set it on the box or in overlay-fleet:defaults)");
        }
        return value;
    };

    const ssh = settings.ssh ?? {};
    const host = require(ssh.host, ["ssh", "host"]);
    if (host !== undefined && !sshHostPattern.test(host)) {
        issues.add(keyOf(["ssh", "host"]), `${show(host)} is not a host name or IPv4 address`);
    }
    const port = ssh.port ?? 22;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
        issues.add(keyOf(["ssh", "port"]), `must be a port number 1..65535, got ${show(port)}`);
    }
    const user = ssh.user ?? "root";
    if (!userPattern.test(user)) {
        issues.add(keyOf(["ssh", "user"]), `${show(user)} is not a valid user name`);
    }
    const hostKey = require(ssh.hostKey, ["ssh", "hostKey"]);
    if (hostKey !== undefined && !hostKeyPattern.test(hostKey.trim())) {
        issues.add(keyOf(["ssh", "hostKey"]), `${show(hostKey)} is not an SSH public host key ("ssh-ed25519 AAAA...", as in ssh-keyscan output without the host)`);
    }

    const disk = require(settings.disk, ["disk"]);
    const lower = require(settings.lower, ["lower"]);
    const instanceRoot = require(settings.instanceRoot, ["instanceRoot"]);
    const pathsOk =
        disk !== undefined &&
        lower !== undefined &&
        instanceRoot !== undefined &&
        [checkAbsolutePath(disk, keyOf(["disk"]), issues), checkAbsolutePath(lower, keyOf(["lower"]), issues), checkAbsolutePath(instanceRoot, keyOf(["instanceRoot"]), issues)].every(Boolean);

    const namePrefix = settings.namePrefix ?? "ttnode";
    if (!namePrefixPattern.test(namePrefix)) {
        issues.add(keyOf(["namePrefix"]), `${show(namePrefix)} must start with a letter and hold only lower-case letters, digits and "-"`);
    }

    if (pathsOk) {
        if (lower === disk || !isWithin(lower, disk)) {
            issues.add(keyOf(["lower"]), `${show(lower)} must lie inside the disk ${show(disk)} (new cache generations are built beside it)`);
        }
        if (!isWithin(instanceRoot, disk)) {
            issues.add(keyOf(["instanceRoot"]), `${show(instanceRoot)} must lie inside the disk ${show(disk)}`);
        }
        if (isWithin(instanceRoot, lower)) {
            issues.add(keyOf(["instanceRoot"]), `${show(instanceRoot)} lies inside the lower ${show(lower)}: uppers must not overlap the lower`);
        }
        if (isWithin(lower, instanceRoot) && path.dirname(lower) !== instanceRoot) {
            issues.add(keyOf(["lower"]), `${show(lower)} lies inside an instance directory under ${show(instanceRoot)}`);
        }
    }

    const privatePaths = settings.privatePaths ?? [];
    privatePaths.forEach((privatePath, i) => checkRelativePath(privatePath, `${keyOf(["privatePaths"])}[${i}]`, issues));

    const instances = require(settings.instances, ["instances"]);
    if (instances !== undefined && (!Number.isInteger(instances) || instances < 0 || instances > maxInstancesPerBox)) {
        issues.add(keyOf(["instances"]), `must be a whole number 0..${maxInstancesPerBox}, got ${show(instances)}`);
    }

    const generation = settings.generation ?? 1;
    if (!Number.isInteger(generation) || generation < 1 || generation > 9999) {
        issues.add(keyOf(["generation"]), `must be a whole number 1..9999, got ${show(generation)}`);
    }
    const maxDownPerBox = settings.maxDownPerBox ?? 1;
    if (!Number.isInteger(maxDownPerBox) || maxDownPerBox < 1 || maxDownPerBox > maxInstancesPerBox) {
        issues.add(keyOf(["maxDownPerBox"]), `must be a whole number 1..${maxInstancesPerBox}, got ${show(maxDownPerBox)}`);
    }
    const conflictRule = settings.conflictRule ?? "lowest-index-wins";
    if (!(conflictRules as readonly string[]).includes(conflictRule)) {
        issues.add(keyOf(["conflictRule"]), `must be one of ${conflictRules.join(", ")}, got ${show(conflictRule)}`);
    }
    const mountOptions = settings.mountOptions ?? [];
    checkMountOptions(mountOptions, keyOf(["mountOptions"]), issues);

    const cacheOnly = settings.cacheOnly ?? false;
    let network: Required<NetworkSettings> | undefined;
    let container: ResolvedContainer | undefined;
    if (!cacheOnly) {
        network = resolveNetwork(settings.network ?? {}, keyOf, issues);
        container = resolveContainer(settings.container ?? {}, keyOf, issues);
    }

    const overrides = new Map<number, InstanceOverride>();
    for (const [index, override] of Object.entries(settings.overrides ?? {})) {
        const key = keyOf(["overrides", index]);
        checkOverride(override, key, network, issues);
        overrides.set(Number(index), override);
    }

    if (issues.items.length > before) {
        return undefined;
    }
    return {
        name,
        ssh: { host: host!, port, user, hostKey: hostKey!.trim(), agent: ssh.agent ?? false },
        disk: disk!,
        lower: lower!,
        instanceRoot: instanceRoot!,
        namePrefix,
        privatePaths,
        instances: instances!,
        cacheOnly,
        purgeOnRemove: settings.purgeOnRemove ?? false,
        generation,
        maxDownPerBox,
        conflictRule: conflictRule as ResolvedBox["conflictRule"],
        mountOptions,
        network,
        container,
        overrides,
    };
}

function checkMountOptions(options: string[], key: string, issues: IssueList): void {
    options.forEach((option, i) => {
        if (!allowedExtraMountOption.test(option)) {
            issues.add(
                `${key}[${i}]`,
                `mount option ${show(option)} is not allowed: overlay-fleet pins ${pinnedMountOptions.join(",")} and manages the layers; extra options may be xino=on|off|auto, uuid=on|off|null|auto, volatile`,
            );
        }
    });
}

function resolveNetwork(
    network: NetworkSettings,
    keyOf: (field: string[]) => string,
    issues: IssueList,
): Required<NetworkSettings> | undefined {
    const before = issues.items.length;
    const field = (name: keyof NetworkSettings): string | undefined => {
        const value = network[name];
        if (value === undefined && name !== "name") {
            issues.add(keyOf(["network", name]), "is required unless cacheOnly is true");
        }
        return value;
    };
    const name = network.name ?? "macnet";
    if (!dockerNamePattern.test(name)) {
        issues.add(keyOf(["network", "name"]), `${show(name)} is not a valid docker network name`);
    }
    const parent = field("parent");
    if (parent !== undefined && !interfacePattern.test(parent)) {
        issues.add(keyOf(["network", "parent"]), `${show(parent)} is not a network interface name`);
    }
    const subnetText = field("subnet");
    const subnet = subnetText === undefined ? undefined : parseSubnet(subnetText);
    if (subnetText !== undefined && subnet === undefined) {
        issues.add(keyOf(["network", "subnet"]), `${show(subnetText)} is not an IPv4 subnet like 192.168.1.0/24 (prefix 8..30, host bits zero)`);
    }
    for (const name of ["gateway", "firstAddress"] as const) {
        const text = field(name);
        if (text === undefined) {
            continue;
        }
        const address = parseIPv4(text);
        if (address === undefined) {
            issues.add(keyOf(["network", name]), `${show(text)} is not an IPv4 address`);
        } else if (subnet && !subnetContains(subnet, address)) {
            issues.add(keyOf(["network", name]), `${show(text)} is outside the subnet ${show(subnetText)}`);
        } else if (subnet && (address === subnet.network || address === subnet.broadcast)) {
            issues.add(keyOf(["network", name]), `${show(text)} is the network or broadcast address of ${show(subnetText)}`);
        }
    }
    if (network.firstAddress !== undefined && network.firstAddress === network.gateway) {
        issues.add(keyOf(["network", "firstAddress"]), `${show(network.firstAddress)} is the gateway`);
    }
    if (issues.items.length > before) {
        return undefined;
    }
    return { name, parent: parent!, subnet: subnetText!, gateway: network.gateway!, firstAddress: network.firstAddress! };
}

function resolveContainer(
    container: ContainerSettings,
    keyOf: (field: string[]) => string,
    issues: IssueList,
): ResolvedContainer | undefined {
    const before = issues.items.length;
    const image = container.image;
    if (image === undefined) {
        issues.add(keyOf(["container", "image"]), "is required unless cacheOnly is true");
    } else if (!imagePattern.test(image)) {
        issues.add(keyOf(["container", "image"]), `${show(image)} is not a docker image reference`);
    }
    const dns = container.dns ?? [];
    dns.forEach((server, i) => {
        if (parseIPv4(server) === undefined) {
            issues.add(`${keyOf(["container", "dns"])}[${i}]`, `${show(server)} is not an IPv4 address`);
        }
    });
    const restart = container.restart ?? "always";
    if (!(restartPolicies as readonly string[]).includes(restart)) {
        issues.add(keyOf(["container", "restart"]), `must be one of ${restartPolicies.join(", ")}, got ${show(restart)}`);
    }
    const mountTarget = container.mountTarget ?? "/mnts";
    checkAbsolutePath(mountTarget, keyOf(["container", "mountTarget"]), issues);
    let imageArchive: ImageArchive | undefined;
    if (container.imageArchive !== undefined) {
        const key = keyOf(["container", "imageArchive"]);
        try {
            imageArchive = inspectImageArchive(container.imageArchive);
            if (image !== undefined && !imageArchive.repoTags.includes(withDefaultTag(image))) {
                const held = imageArchive.repoTags.length > 0 ? imageArchive.repoTags.map(show).join(", ") : "no tagged image";
                issues.add(key, `${show(container.imageArchive)} does not hold the image ${show(withDefaultTag(image))} (it holds ${held})`);
            }
        } catch (error) {
            issues.add(key, `${show(container.imageArchive)} ${(error as Error).message}`);
        }
    }
    if (issues.items.length > before) {
        return undefined;
    }
    return { image: image!, dns, privileged: container.privileged ?? false, restart, mountTarget, ...(imageArchive ? { imageArchive } : {}) };
}

function checkOverride(
    override: InstanceOverride,
    key: string,
    network: Required<NetworkSettings> | undefined,
    issues: IssueList,
): void {
    if (override.ip !== undefined) {
        const address = parseIPv4(override.ip);
        const subnet = network ? parseSubnet(network.subnet) : undefined;
        if (address === undefined) {
            issues.add(`${key}.ip`, `${show(override.ip)} is not an IPv4 address`);
        } else if (subnet) {
            checkInstanceAddress(address, subnet, network!, `${key}.ip`, issues);
        }
    }
    if (override.mac !== undefined) {
        const mac = normaliseMac(override.mac);
        if (mac === undefined) {
            issues.add(`${key}.mac`, `${show(override.mac)} is not a MAC address like 02:42:c0:a8:01:c9`);
        } else if (isMulticastMac(mac)) {
            issues.add(`${key}.mac`, `${show(override.mac)} is a multicast MAC (lowest bit of the first octet set); a container needs a unicast MAC`);
        } else if (mac === "00:00:00:00:00:00") {
            issues.add(`${key}.mac`, `${show(override.mac)} is the all-zero MAC`);
        }
    }
    if (override.hostname !== undefined && !hostnamePattern.test(override.hostname)) {
        issues.add(`${key}.hostname`, `${show(override.hostname)} is not a valid host name (letters, digits, "-", at most 63)`);
    }
    checkMountOptions(override.mountOptions ?? [], `${key}.mountOptions`, issues);
}

/** An instance address must be a usable host address of the subnet, not the gateway. */
function checkInstanceAddress(
    address: number,
    subnet: NonNullable<ReturnType<typeof parseSubnet>>,
    network: Required<NetworkSettings>,
    key: string,
    issues: IssueList,
): boolean {
    const text = formatIPv4(address);
    if (!subnetContains(subnet, address)) {
        issues.add(key, `${show(text)} is outside the subnet ${show(network.subnet)}`);
    } else if (address === subnet.network || address === subnet.broadcast) {
        issues.add(key, `${show(text)} is the network or broadcast address of ${show(network.subnet)}`);
    } else if (address === parseIPv4(network.gateway)) {
        issues.add(key, `${show(text)} is the gateway of ${show(network.subnet)}`);
    } else {
        return true;
    }
    return false;
}

/**
 * Group-wide rules that need every box planned: unique IPs, MACs and hostnames, derived
 * addresses inside the subnet, mount option data that fits the kernel's one page.
 */
function checkGroupRules(boxes: ResolvedBox[], issues: IssueList): void {
    const seen = { ip: new Map<string, string>(), mac: new Map<string, string>(), hostname: new Map<string, string>() };
    for (const box of boxes) {
        const subnet = box.network ? parseSubnet(box.network.subnet) : undefined;
        for (const instance of planBox(box)) {
            const optionBytes = Buffer.byteLength(fstabOptions(box, instance, lowerForGeneration(box.lower, box.generation)));
            if (optionBytes + instance.id.length + 20 > maxMountDataLength) {
                issues.add(`${configNamespace}:boxes.${box.name}.lower`, `the mount options of ${instance.id} would be ${optionBytes} bytes; the kernel takes at most ${maxMountDataLength}: use shorter paths`);
            }
            if (box.network && subnet && instance.ip !== undefined && !instance.ipOverridden) {
                checkInstanceAddress(parseIPv4(instance.ip)!, subnet, box.network, `${instance.key}.ip (derived from ${configNamespace}:…network.firstAddress ${box.network.firstAddress})`, issues);
            }
            const values: Array<[keyof typeof seen, string | undefined]> = [
                ["ip", instance.ip],
                ["mac", instance.mac],
                ["hostname", instance.hostname.toLowerCase()],
            ];
            for (const [kind, value] of values) {
                if (value === undefined) {
                    continue;
                }
                const other = seen[kind].get(value);
                if (other !== undefined) {
                    issues.add(`${instance.key}.${kind}`, `${kind} ${show(value)} of ${instance.id} is already used by ${other} in this host group`);
                } else {
                    seen[kind].set(value, instance.id);
                }
            }
        }
    }
}
