/**
 * The stack configuration of one host group, written once: a zod schema that holds the shape (strict
 * objects, so a typo in a key is caught), the defaults and every per-box rule; the TypeScript types
 * are inferred from it. `parseFleetConfig` merges `overlay-fleet:defaults` under each box, parses
 * it and reports every problem at the stack key the user wrote. Everything here is pure (no
 * Pulumi; the only I/O is reading an image archive's manifest), so every rule is unit-tested
 * directly and `pulumi preview` fails before any box is touched. The rules that need the whole
 * host group planned (unique addresses, mount data size) are in validate.ts.
 */
import * as path from "path/posix";
import { z } from "zod";
import { configNamespace, maxGeneration, maxInstancesPerBox, pinnedMountOptions } from "./constants";
import { inspectImageArchive, withDefaultTag } from "./imageArchive";
import { ConfigError, ConfigIssue, show, unknownKeyMessage } from "./issues";
import { formatIPv4, isMulticastMac, normaliseMac, parseIPv4, parseSubnet, subnetContains } from "./net";

/** A rule on one value: the message when the value breaks it, undefined when it holds. */
type Rule<T> = (value: T) => string | undefined;

/** Adds one rule to a schema; a broken rule is one issue at the value's key. */
function ruled<S extends z.ZodType>(schema: S, rule: Rule<z.output<S>>): S {
    return schema.superRefine((value, ctx) => {
        const message = rule(value);
        if (message !== undefined) {
            ctx.addIssue({ code: "custom", message });
        }
    });
}

/** A list of strings, each checked by `rule` (its issues name the element: `key[i]`). */
function stringList(rule: Rule<string>) {
    return z.array(z.string()).superRefine((items, ctx) =>
        items.forEach((item, i) => {
            const message = rule(item);
            if (message !== undefined) {
                ctx.addIssue({ code: "custom", message, path: [i] });
            }
        }),
    );
}

const pattern =
    (regex: RegExp, message: (value: string) => string): Rule<string> =>
    (value) =>
        regex.test(value) ? undefined : message(value);

const wholeNumber =
    (min: number, max: number): Rule<number> =>
    (value) =>
        Number.isInteger(value) && value >= min && value <= max ? undefined : `must be a whole number ${min}..${max}, got ${show(value)}`;

/** Characters that break an overlay option (`,` `:` `\`), an fstab field (whitespace, `#` at start) or a line. */
const unsafePathCharacter = /[,:\\\s\x00-\x1f\x7f"'`$]/;

/** An absolute, normalised path usable in overlay options and fstab fields. */
const absolutePathProblem: Rule<string> = (value) => {
    if (!value.startsWith("/")) {
        return `must be an absolute path, got ${show(value)}`;
    }
    if (unsafePathCharacter.test(value)) {
        return (
            `${show(value)} contains a character that breaks overlay mount options or fstab fields ` +
            `(comma, colon, backslash, quote, $, whitespace or control character)`
        );
    }
    if (value === "/" || path.normalize(value) !== value || value.endsWith("/")) {
        return `${show(value)} is not a normalised path (expected ${show(path.normalize(value).replace(/\/$/, "") || "/")}, and not "/")`;
    }
    return undefined;
};

/** A relative, normalised path inside the lower (an instance-private path). */
const relativePathProblem: Rule<string> = (value) => {
    if (value.startsWith("/") || value === "" || value === ".") {
        return `must be a path relative to the lower, got ${show(value)}`;
    }
    if (unsafePathCharacter.test(value)) {
        return `${show(value)} contains a comma, colon, backslash, quote, $, whitespace or control character`;
    }
    if (path.normalize(value) !== value || value.endsWith("/") || value.split("/").includes("..")) {
        return `${show(value)} is not a normalised relative path inside the lower`;
    }
    return undefined;
};

/** True when `inner` is `outer` or lies below it. */
function isWithin(inner: string, outer: string): boolean {
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

/** Extra mount options a user may add; anything else could change overlay semantics under us. */
const allowedExtraMountOption = /^(xino=(on|off|auto)|uuid=(on|off|null|auto)|volatile)$/;

const mountOptionProblem = pattern(
    allowedExtraMountOption,
    (option) =>
        `mount option ${show(option)} is not allowed: overlay-fleet pins ${pinnedMountOptions.join(",")} and manages the layers; extra options may be xino=on|off|auto, uuid=on|off|null|auto, volatile`,
);

const ipv4Problem: Rule<string> = (value) => (parseIPv4(value) === undefined ? `${show(value)} is not an IPv4 address` : undefined);

const macProblem: Rule<string> = (value) => {
    const mac = normaliseMac(value);
    if (mac === undefined) {
        return `${show(value)} is not a MAC address like 02:42:c0:a8:01:c9`;
    }
    if (isMulticastMac(mac)) {
        return `${show(value)} is a multicast MAC (lowest bit of the first octet set); a container needs a unicast MAC`;
    }
    return mac === "00:00:00:00:00:00" ? `${show(value)} is the all-zero MAC` : undefined;
};

/** An instance address must be a usable host address of the subnet, not the gateway. */
export function instanceAddressProblem(address: number, network: { subnet: string; gateway: string }): string | undefined {
    const subnet = parseSubnet(network.subnet);
    if (subnet === undefined) {
        return undefined;
    }
    const text = formatIPv4(address);
    if (!subnetContains(subnet, address)) {
        return `${show(text)} is outside the subnet ${show(network.subnet)}`;
    }
    if (address === subnet.network || address === subnet.broadcast) {
        return `${show(text)} is the network or broadcast address of ${show(network.subnet)}`;
    }
    return address === parseIPv4(network.gateway) ? `${show(text)} is the gateway of ${show(network.subnet)}` : undefined;
}

/** A nested object that may be left out: it is parsed as `{}`, so each required field in it is reported by name. */
function fieldsRequired<S extends z.ZodType<object>>(schema: S) {
    return schema.prefault({} as z.input<S>);
}

function isPlainObject(value: unknown): value is Settings {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isString = (value: unknown): value is string => typeof value === "string";

/** Runs a cross-field rule on an object even when some of its fields failed: the rule checks the types it relies on. */
const always = { when: (payload: { value: unknown }) => isPlainObject(payload.value) };

/** How to reach a box over SSH. */
export const sshSchema = z.strictObject({
    /** Host name or IPv4 address of the box. */
    host: ruled(z.string(), pattern(sshHostPattern, (host) => `${show(host)} is not a host name or IPv4 address`)),
    /** SSH port (default 22). */
    port: ruled(z.number(), (port) => (Number.isInteger(port) && port >= 1 && port <= 65535 ? undefined : `must be a port number 1..65535, got ${show(port)}`)).default(22),
    /** Login user (default root: mounts and fstab edits need it). */
    user: ruled(z.string(), pattern(userPattern, (user) => `${show(user)} is not a valid user name`)).default("root"),
    /** The box's SSH host public key, e.g. `ssh-ed25519 AAAA...`: pinned, so a swapped box is refused. */
    hostKey: ruled(z.string(), (key) =>
        hostKeyPattern.test(key.trim()) ? undefined : `${show(key)} is not an SSH public host key ("ssh-ed25519 AAAA...", as in ssh-keyscan output without the host)`,
    ).transform((key) => key.trim()),
    /** Authenticate with the local SSH agent instead of `overlay-fleet:sshPrivateKey`. */
    agent: z.boolean().default(false),
});

/** The fields of the docker macvlan network the instances' containers join. */
const networkFields = {
    /** Docker network name (default `macnet`). */
    name: ruled(z.string(), pattern(dockerNamePattern, (name) => `${show(name)} is not a valid docker network name`)).default("macnet"),
    /** Parent LAN interface on the box, e.g. `eth0`. */
    parent: ruled(z.string(), pattern(interfacePattern, (parent) => `${show(parent)} is not a network interface name`)),
    /** LAN subnet in CIDR form, e.g. `192.168.1.0/24`. */
    subnet: ruled(z.string(), (subnet) =>
        parseSubnet(subnet) === undefined ? `${show(subnet)} is not an IPv4 subnet like 192.168.1.0/24 (prefix 8..30, host bits zero)` : undefined,
    ),
    /** LAN gateway. */
    gateway: ruled(z.string(), ipv4Problem),
    /** Address of instance 1; instance N gets the (N-1)-th next address, skipping the gateway. */
    firstAddress: ruled(z.string(), ipv4Problem),
};

/** The docker macvlan network the instances' containers join: gateway and first address inside the subnet. */
export const networkSchema = z.strictObject(networkFields).superRefine((network, ctx) => {
    const subnet = isString(network.subnet) ? parseSubnet(network.subnet) : undefined;
    for (const name of ["gateway", "firstAddress"] as const) {
        const text = network[name];
        const address = isString(text) ? parseIPv4(text) : undefined;
        if (subnet === undefined || address === undefined) {
            continue;
        }
        if (!subnetContains(subnet, address)) {
            ctx.addIssue({ code: "custom", path: [name], message: `${show(text)} is outside the subnet ${show(network.subnet)}` });
        } else if (address === subnet.network || address === subnet.broadcast) {
            ctx.addIssue({ code: "custom", path: [name], message: `${show(text)} is the network or broadcast address of ${show(network.subnet)}` });
        }
    }
    if (network.firstAddress !== undefined && network.firstAddress === network.gateway) {
        ctx.addIssue({ code: "custom", path: ["firstAddress"], message: `${show(network.firstAddress)} is the gateway` });
    }
}, always);

const restartPolicies = ["always", "unless-stopped", "on-failure", "no"] as const;

/** The fields of the container each instance runs. */
const containerFields = {
    /** Image reference, e.g. `ericwang2006/ttnode`. */
    image: ruled(z.string(), pattern(imagePattern, (image) => `${show(image)} is not a docker image reference`)),
    /** DNS servers given to the container. */
    dns: stringList(ipv4Problem).default([]),
    /** Run privileged (the ttnode image needs it). */
    privileged: z.boolean().default(false),
    /** Docker restart policy. */
    restart: z.enum(restartPolicies).default("always"),
    /** Where the merged cache dir appears inside the container (default `/mnts`). */
    mountTarget: ruled(z.string(), absolutePathProblem).default("/mnts"),
    /**
     * An image archive (`docker save` output) on the operator's machine, path absolute or relative
     * to the project: shipped to the box and loaded there instead of pulling `image` from a
     * registry (boxes without registry access). It must hold `image`. Read here, once.
     */
    imageArchive: z
        .string()
        .transform((file, ctx) => {
            try {
                return inspectImageArchive(file);
            } catch (error) {
                ctx.addIssue({ code: "custom", message: `${show(file)} ${(error as Error).message}`, continue: true });
                return z.NEVER;
            }
        })
        .optional(),
};

/** The container each instance runs; an image archive must hold the image. */
export const containerSchema = z.strictObject(containerFields).superRefine((container, ctx) => {
    const archive = container.imageArchive;
    if (!isString(container.image) || !Array.isArray(archive?.repoTags)) {
        return;
    }
    const image = withDefaultTag(container.image);
    if (!archive.repoTags.includes(image)) {
        const held = archive.repoTags.length > 0 ? archive.repoTags.map(show).join(", ") : "no tagged image";
        ctx.addIssue({ code: "custom", path: ["imageArchive"], message: `${show(archive.path)} does not hold the image ${show(image)} (it holds ${held})` });
    }
}, always);

/** Per-instance overrides of one instance. */
export const overrideSchema = z.strictObject({
    /** The instance's address instead of the derived one. */
    ip: ruled(z.string(), ipv4Problem).optional(),
    /** The instance's MAC instead of the derived one (normalised to lower-case colon form). */
    mac: ruled(z.string(), macProblem)
        .transform((mac) => normaliseMac(mac) ?? mac)
        .optional(),
    /** The container's host name instead of `<box>-<name>`. */
    hostname: ruled(z.string(), pattern(hostnamePattern, (hostname) => `${show(hostname)} is not a valid host name (letters, digits, "-", at most 63)`)).optional(),
    /** Extra overlay mount options for this instance only (from an allow-list, e.g. `xino=off`). */
    mountOptions: stringList(mountOptionProblem).optional(),
});

/** Per-instance overrides, keyed by instance index ("1", "2", ...). */
/** An entry left empty in YAML (`"3":` with no value) is null: no overrides for that instance. */
const overrideEntrySchema = z.preprocess((value) => value ?? {}, overrideSchema);

const overridesSchema = z.record(z.string(), overrideEntrySchema).superRefine((overrides, ctx) => {
    for (const index of Object.keys(overrides)) {
        if (!/^[1-9]\d*$/.test(index) || Number(index) > maxInstancesPerBox) {
            const message = `override keys are instance numbers 1..${maxInstancesPerBox}, got ${show(index)}`;
            ctx.addIssue({ code: "custom", path: [index], message, params: { shape: true } });
        }
    }
});

const conflictRules = ["lowest-index-wins", "newest-wins"] as const;

/** The settings every box has, cache-only or not (in the order messages list them). */
const boxFields = {
    /** How to reach the box over SSH. */
    ssh: fieldsRequired(sshSchema),
    /** Mount point of the disk holding the lower and the instances (fstab lines wait for it). */
    disk: ruled(z.string(), absolutePathProblem),
    /** The shared read-only lower cache (generation 1). Must be inside `disk`. */
    lower: ruled(z.string(), absolutePathProblem),
    /** Directory holding one `<namePrefix><N>/{upper,work,mnts}` set per instance. Inside `disk`. */
    instanceRoot: ruled(z.string(), absolutePathProblem),
    /** Instance name prefix (default `ttnode`): instances are `<prefix>1`, `<prefix>2`, ... */
    namePrefix: ruled(
        z.string(),
        pattern(namePrefixPattern, (prefix) => `${show(prefix)} must start with a letter and hold only lower-case letters, digits and "-"`),
    ).default("ttnode"),
    /** Paths, relative to the lower, private to each instance: removed from the lower, never folded. */
    privatePaths: stringList(relativePathProblem).default([]),
    /** How many instances this box runs. */
    instances: ruled(z.number(), wholeNumber(0, maxInstancesPerBox)),
};

const boxRunFields = {
    /** When an instance is removed, delete its upper and work dirs too (default: keep the data). */
    purgeOnRemove: z.boolean().default(false),
    /** Cache generation: bumping it folds the uppers into a new lower and switches the instances. */
    generation: ruled(z.number(), wholeNumber(1, maxGeneration)).default(1),
    /** At most this many instances of a box are down at once while switching generation. */
    maxDownPerBox: ruled(z.number(), wholeNumber(1, maxInstancesPerBox)).default(1),
    /**
     * Which change wins when several uppers changed the same path during a fold: the instance
     * with the lowest index, or the newest modification time (ties: lowest index).
     */
    conflictRule: z.enum(conflictRules).default("lowest-index-wins"),
    /** Extra overlay mount options for every instance of the box (allow-listed). */
    mountOptions: stringList(mountOptionProblem).default([]),
};

/** A box with docker: the macvlan network and the containers are required. */
export const serviceBoxSchema = z.strictObject({
    ...boxFields,
    /** Only caches: overlays and fstab lines without docker network or containers. */
    cacheOnly: z.literal(false).default(false),
    ...boxRunFields,
    /** The docker macvlan network the instances' containers join. */
    network: fieldsRequired(networkSchema),
    /** The container each instance runs. */
    container: fieldsRequired(containerSchema),
    /** Per-instance overrides keyed by index. */
    overrides: overridesSchema.default({}),
});

/**
 * A cache-only box: network and container settings (e.g. from `defaults`) are checked for shape
 * and dropped.
 */
export const cacheOnlyBoxSchema = z.strictObject({
    ...boxFields,
    /** Only caches: overlays and fstab lines without docker network or containers. */
    cacheOnly: z.literal(true),
    ...boxRunFields,
    /** Ignored on a cache-only box. */
    network: z
        .strictObject(networkFields)
        .partial()
        .optional()
        .transform(() => undefined),
    /** Ignored on a cache-only box (its image archive is not read). */
    container: z
        .strictObject({ ...containerFields, imageArchive: z.string() })
        .partial()
        .optional()
        .transform(() => undefined),
    /** Per-instance overrides keyed by index. */
    overrides: overridesSchema.default({}),
});

/** Settings of one box; every field may also be given once in `overlay-fleet:defaults`. */
export const boxSchema = z.discriminatedUnion("cacheOnly", [serviceBoxSchema, cacheOnlyBoxSchema]).superRefine((box, ctx) => {
    const { disk, lower, instanceRoot } = box;
    if ([disk, lower, instanceRoot].every((value) => isString(value) && absolutePathProblem(value) === undefined)) {
        const issue = (field: string, message: string) => ctx.addIssue({ code: "custom", path: [field], message });
        if (lower === disk || !isWithin(lower, disk)) {
            issue("lower", `${show(lower)} must lie inside the disk ${show(disk)} (new cache generations are built beside it)`);
        }
        if (!isWithin(instanceRoot, disk)) {
            issue("instanceRoot", `${show(instanceRoot)} must lie inside the disk ${show(disk)}`);
        }
        if (isWithin(instanceRoot, lower)) {
            issue("instanceRoot", `${show(instanceRoot)} lies inside the lower ${show(lower)}: uppers must not overlap the lower`);
        }
        if (isWithin(lower, instanceRoot) && path.dirname(lower) !== instanceRoot) {
            issue("lower", `${show(lower)} lies inside an instance directory under ${show(instanceRoot)}`);
        }
    }
    const network = box.network;
    if (!isPlainObject(network) || !isString(network.subnet) || !isString(network.gateway)) {
        return;
    }
    for (const [index, override] of Object.entries(isPlainObject(box.overrides) ? box.overrides : {})) {
        const address = isString(override?.ip) ? parseIPv4(override.ip) : undefined;
        const message = address === undefined ? undefined : instanceAddressProblem(address, network);
        if (message !== undefined) {
            ctx.addIssue({ code: "custom", path: ["overrides", index, "ip"], message });
        }
    }
}, always);

/** Settings of one box as written in the stack file. */
export type BoxSettings = z.input<typeof boxSchema>;
export type SshSettings = z.input<typeof sshSchema>;
export type NetworkSettings = z.input<typeof networkSchema>;
export type ContainerSettings = z.input<typeof containerSchema>;
/** The network settings after defaults, every value checked. */
export type ResolvedNetwork = z.output<typeof networkSchema>;
/** The container settings after defaults, the archive read and checked. */
export type ResolvedContainer = z.output<typeof containerSchema>;
export type InstanceOverride = z.output<typeof overrideSchema>;
/** Conflict rules of host/fold.sh. */
export type ConflictRule = (typeof conflictRules)[number];
/** A box with every default applied and every value checked. */
export type ResolvedBox = { name: string } & z.output<typeof boxSchema>;
/** A box that runs containers: network and container are there. */
export type ServiceBox = Extract<ResolvedBox, { cacheOnly: false }>;

/** Top-level keys of the `overlay-fleet` namespace. */
export const topLevelKeys = ["defaults", "boxes", "sshPrivateKey"] as const;

/** Settings merged key-wise from `defaults` and the box (every other value the box replaces). */
const mergedKeyWise = ["ssh", "network", "container", "overrides"];

/** The raw stack config as read from `overlay-fleet:*` keys. */
export interface RawFleetConfig {
    defaults?: unknown;
    boxes?: unknown;
    /** Every key present in the stack's `overlay-fleet` namespace, to catch typos. */
    presentKeys?: string[];
}

type Settings = Record<string, unknown>;
type Path = ReadonlyArray<PropertyKey>;

const valueAt = (settings: unknown, at: Path): unknown =>
    at.reduce<unknown>((value, name) => (isPlainObject(value) || Array.isArray(value) ? (value as Settings)[name as string] : undefined), settings);

/** Wording of a wrong type, by what zod expected. */
const expectedNames: Record<string, string> = { object: "an object", record: "an object", array: "a list of strings" };

/** The messages of the stack config, in place of zod's: each names the offending value. */
const configErrorMap: z.core.$ZodErrorMap = (issue) => {
    switch (issue.code) {
        case "invalid_type":
            if (issue.input === undefined) {
                const dockerField = issue.path?.[0] === "network" || issue.path?.[0] === "container";
                return dockerField ? "is required unless cacheOnly is true" : `is required (set it on the box or in ${configNamespace}:defaults)`;
            }
            return `must be ${expectedNames[issue.expected] ?? `a ${issue.expected}`}, got ${show(issue.input)}`;
        case "invalid_value":
            return isString(issue.input) ? `must be one of ${issue.values.join(", ")}, got ${show(issue.input)}` : `must be a string, got ${show(issue.input)}`;
        case "unrecognized_keys": {
            // One issue names every unknown key of an object; parseBox splits it, a line a key.
            const allowed = Object.keys((issue.inst as z.ZodObject)._zod.def.shape);
            return issue.keys.map((key) => unknownKeyMessage(key, allowed)).join("\n");
        }
    }
    return undefined;
};

/** One problem in one box's merged settings; `shape` problems (types, keys) do not depend on the box. */
interface BoxIssue {
    path: Path;
    message: string;
    shape: boolean;
}

/** Parses one box's merged settings: the box, or every problem found. */
function parseBox(merged: Settings): { box?: z.output<typeof boxSchema>; issues: BoxIssue[] } {
    const issues: BoxIssue[] = [];
    const settings = { ...merged };
    if (settings.cacheOnly !== undefined && typeof settings.cacheOnly !== "boolean") {
        issues.push({ path: ["cacheOnly"], message: `must be a boolean, got ${show(settings.cacheOnly)}`, shape: true });
        // Check the rest as a cache-only box: it asks for the least.
        settings.cacheOnly = true;
    }
    const result = boxSchema.safeParse(settings, { error: configErrorMap, reportInput: true });
    for (const issue of result.error?.issues ?? []) {
        if (issue.code === "unrecognized_keys") {
            const messages = issue.message.split("\n");
            issue.keys.forEach((key, i) => issues.push({ path: [...issue.path, key], message: messages[i], shape: true }));
        } else if (issue.code === "invalid_type" && typeof issue.path.at(-1) === "number") {
            // An element of a list of strings: the list is what has the wrong type.
            const list = issue.path.slice(0, -1);
            const message = `must be a list of strings, got ${show(valueAt(settings, list))}`;
            if (!issues.some((seen) => seen.message === message && show(seen.path) === show(list))) {
                issues.push({ path: list, message, shape: true });
            }
        } else {
            const wrongType = (issue.code === "invalid_type" && issue.input !== undefined) || (issue.code === "invalid_value" && !isString(issue.input));
            const shape = wrongType || (issue.code === "custom" && issue.params?.shape === true);
            issues.push({ path: issue.path, message: issue.message, shape });
        }
    }
    return issues.length === 0 && result.success ? { box: result.data, issues } : { issues };
}

/** Merges group defaults into one box: ssh, network, container and overrides key-wise, everything else replaced. */
function mergeSettings(defaults: Settings, box: Settings): Settings {
    const merged: Settings = { ...defaults, ...box };
    for (const name of mergedKeyWise) {
        if (isPlainObject(defaults[name]) && isPlainObject(box[name])) {
            merged[name] = { ...defaults[name], ...box[name] };
        }
    }
    return merged;
}

/** The stack key of a problem: under the box or under `defaults`, wherever the user wrote the value. */
function stackKey(at: Path, box: Settings, defaults: Settings, boxKey: string, defaultsKey: string): string {
    const field = at.slice(0, mergedKeyWise.includes(at[0] as string) ? 2 : 1);
    const source = valueAt(box, field) !== undefined ? boxKey : valueAt(defaults, field) !== undefined ? defaultsKey : boxKey;
    return source + at.map((name) => (typeof name === "number" ? `[${name}]` : `.${String(name)}`)).join("");
}

/** A settings object, or an issue and no settings. */
function settingsAt(value: unknown, key: string, issues: ConfigIssue[]): Settings {
    if (value === undefined || value === null) {
        return {};
    }
    if (!isPlainObject(value)) {
        issues.push({ key, message: `must be an object, got ${show(value)}` });
        return {};
    }
    return value;
}

/**
 * Validates the stack config and resolves every box. Throws ConfigError listing every problem;
 * returns boxes sorted by name so the plan does not depend on YAML key order.
 */
export function parseFleetConfig(raw: RawFleetConfig): ResolvedBox[] {
    const issues: ConfigIssue[] = [];
    const ns = configNamespace;

    for (const present of raw.presentKeys ?? []) {
        const [prefix, name] = present.split(":", 2);
        if (prefix === ns && !(topLevelKeys as readonly string[]).includes(name)) {
            issues.push({ key: present, message: unknownKeyMessage(name, topLevelKeys) });
        }
    }

    const defaultsKey = `${ns}:defaults`;
    const defaults = settingsAt(raw.defaults, defaultsKey, issues);
    if (raw.boxes === undefined || raw.boxes === null) {
        issues.push({ key: `${ns}:boxes`, message: "is required: declare at least one box" });
        throw new ConfigError(issues);
    }
    if (!isPlainObject(raw.boxes) || Object.keys(raw.boxes).length === 0) {
        issues.push({ key: `${ns}:boxes`, message: `must map box names to box settings, got ${show(raw.boxes)}` });
        throw new ConfigError(issues);
    }

    // A wrong type or unknown key in `defaults` is reported once, not once a box, and also where
    // every box overrides the value: defaults are checked for shape on their own first.
    const reported = new Set<string>();
    const report = (key: string, message: string, shape: boolean): void => {
        if (shape && key.startsWith(`${defaultsKey}.`)) {
            if (reported.has(`${key}\n${message}`)) {
                return;
            }
            reported.add(`${key}\n${message}`);
        }
        issues.push({ key, message });
    };
    for (const { path: at, message, shape } of parseBox(defaults).issues) {
        if (shape) {
            report(stackKey(at, {}, defaults, defaultsKey, defaultsKey), message, shape);
        }
    }

    const resolved: ResolvedBox[] = [];
    for (const name of Object.keys(raw.boxes).sort()) {
        const boxKey = `${ns}:boxes.${name}`;
        if (!boxNamePattern.test(name)) {
            issues.push({ key: boxKey, message: `box name ${show(name)} must be lower-case letters, digits and "-" (at most 32)` });
            continue;
        }
        const own = settingsAt(raw.boxes[name], boxKey, issues);
        const { box, issues: found } = parseBox(mergeSettings(defaults, own));
        for (const { path: at, message, shape } of found) {
            report(stackKey(at, own, defaults, boxKey, defaultsKey), message, shape);
        }
        if (box) {
            resolved.push({ name, ...box });
        }
    }
    if (issues.length > 0) {
        throw new ConfigError(issues);
    }
    return resolved;
}
