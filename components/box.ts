import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { BoxPlan, ResolvedBox, ServiceBox } from "../model/config";
import { boxFstab } from "../model/constants";
import { InstancePlan } from "../model/plan";
import { claimText, HostCall, hostCalls, HostLibrary, HostLibraryBundle, installAndRun, LibraryCommand } from "./hostLibrary";
import { shQuote } from "./hostScripts";
import { BoxContainers } from "./boxContainers";
import { LowerCache, LowerCacheArgs, lowerCalls, retireCalls } from "./lowerCache";
import { enginePreflight, MacvlanNetwork, MacvlanNetworkArgs } from "./macvlanNetwork";
import { instanceRecord, OverlayInstance } from "./overlayInstance";


type Connection = pulumi.Output<command.types.input.remote.ConnectionArgs>;

/** Arguments of one box of the host group. */
export interface BoxArgs {
    /** The box's validated settings and the plan of its instances (see model/config.ts planFleet). */
    plan: BoxPlan;
    /** SSH private key (a secret) unless the box uses the SSH agent. */
    privateKey?: pulumi.Input<string>;
    /** The host library to install on the box, staged once by the program (stageHostLibrary). */
    hostLibrary: HostLibraryBundle;
    /** The stack that deploys the box, `<organization>/<project>/<stack>`: it claims the machine (host/claim.sh). */
    stack: string;
}

/** What the stack exports per box (used by the status command). */
export interface BoxSummary {
    name: string;
    host: string;
    port: number;
    user: string;
    hostKey: string;
    fstab: string;
    lower: string;
    generation: number;
    cacheOnly: boolean;
    network?: string;
    /** The box's claim of its machine, `<stack> <box>` (host/claim.sh); absent in a stack deployed before claims. */
    claim?: string;
    instances: Array<Pick<InstancePlan, "id" | "name" | "merged" | "upper" | "hostname" | "ip" | "mac">>;
}

/**
 * One box of the host group: its host library, lower cache, N overlay instances and, unless the
 * box is cache-only, the macvlan network and its containers, one per instance. The library is
 * copied, then one command over one SSH connection (the box's apply) installs it, makes the lower
 * ready and converges the box's overlays to the plan; then one command makes the box's network and
 * all its containers (BoxContainers). Destroy runs in reverse (containers and network, then mounts
 * and fstab lines), and cache data is never deleted.
 */
export class Box extends pulumi.ComponentResource {
    public readonly library: HostLibrary;
    public readonly lowerCache: LowerCache;
    /** Takes the box's instances and library down when the box goes; runs nothing on create. */
    public readonly teardown: command.remote.Command;
    /** The box's apply: library install, lower, instances, retire of old generations. */
    public readonly apply: command.remote.Command;
    public readonly instances: OverlayInstance[];
    /** The box's containers (one command for all of them); undefined on a cache-only box. */
    public readonly containers?: BoxContainers;
    /** The SSH connection given to every remote command; a secret as a whole. */
    public readonly connection: Connection;
    public readonly summary: BoxSummary;

    constructor(name: string, args: BoxArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:fleet:Box", name, {}, opts);
        const box = args.plan.settings;
        const plans = args.plan.instances;
        this.connection = boxConnection(box, args.privateKey);
        this.library = new HostLibrary(`${name}-host`, { connection: this.connection, bundle: args.hostLibrary }, { parent: this });
        this.lowerCache = createLowerCache(this, name, args.plan);
        this.teardown = createTeardown(this, name, args.plan, args.stack);
        this.apply = createApply(this, name, args.plan, args.stack);
        this.instances = createInstances(this, name, plans);
        this.containers = box.cacheOnly ? undefined : createContainers(this, name, box, plans);

        this.summary = {
            name,
            host: box.ssh.host,
            port: box.ssh.port,
            user: box.ssh.user,
            hostKey: box.ssh.hostKey,
            fstab: boxFstab,
            lower: this.lowerCache.lowerPath,
            generation: box.generation,
            cacheOnly: box.cacheOnly,
            ...(box.network ? { network: box.network.name } : {}),
            claim: claimText({ box: name, stack: args.stack }),
            instances: plans.map(({ id, name, merged, upper, hostname, ip, mac }) => ({ id, name, merged, upper, hostname, ip, mac })),
        };
        // The summary is the stack's `summary` output already: the state keeps it once.
        this.registerOutputs({ host: box.ssh.host, lower: this.lowerCache.lowerPath });
    }
}

/** The SSH connection of every remote command of a box (a secret: it holds the key). */
export function boxConnection(box: ResolvedBox, privateKey?: pulumi.Input<string>): Connection {
    return pulumi.secret(
        pulumi.output(privateKey).apply((key) => ({
            host: box.ssh.host,
            port: box.ssh.port,
            user: box.ssh.user,
            hostKey: box.ssh.hostKey,
            ...(box.ssh.agent ? { agentSocketPath: process.env.SSH_AUTH_SOCK } : { privateKey: key }),
            // sshd drops unauthenticated connections beyond MaxStartups (10 by default);
            // many parallel commands to one box must retry rather than fail.
            dialErrorLimit: 40,
            perDialTimeout: 15,
        })),
    );
}

/** The arguments of a box's LowerCache, from its plan. */
export function lowerCacheArgs(plan: BoxPlan): LowerCacheArgs {
    const box = plan.settings;
    return {
        instanceRoot: box.instanceRoot,
        lower: plan.lower,
        privatePaths: box.privatePaths,
        generation: box.generation,
        conflictRule: box.conflictRule,
        fstab: boxFstab,
    };
}

/** The box's lower cache at its declared generation (realised by the box's apply). */
export function createLowerCache(owner: Box, name: string, plan: BoxPlan): LowerCache {
    return new LowerCache(`${name}-cache`, lowerCacheArgs(plan), { parent: owner });
}

/** What taking an instance down does to its upper data: `purge` with purgeOnRemove, else `keep`. */
function removeMode(box: ResolvedBox): "purge" | "keep" {
    return box.purgeOnRemove ? "purge" : "keep";
}

/**
 * The host calls of a box's apply, in order: the lower (its preflight first, which changes
 * nothing), the instances (their records on stdin), the retire, then on a box with containers the
 * engine's read-only preflight, before the containers command makes the network: the overlays
 * never wait for docker.
 */
export function applyCalls(plan: BoxPlan): HostCall[] {
    const lower = lowerCacheArgs(plan);
    const box = plan.settings;
    return [
        ...lowerCalls(lower),
        ["apply", ["set", boxFstab, plan.settings.name, removeMode(plan.settings)]],
        ...retireCalls(lower),
        ...(box.cacheOnly ? [] : [enginePreflight(networkArgs(box))]),
    ];
}

/** The stdin of a box's apply: one instanceRecord per instance. */
export function applyInput(plan: BoxPlan): string {
    return plan.instances.map(instanceRecord).join("");
}

/** The one call of a box's apply that reads its stdin. */
export const applyReadsStdin: ReadonlySet<LibraryCommand> = new Set(["apply"]);

/**
 * What takes a box down when it leaves the stack (or the stack is destroyed): every managed
 * instance of the box unmounted and its line removed (upper data kept unless purgeOnRemove), then
 * the library. A command of its own, declared before the apply and with no create (it costs no
 * connection): it is in the state even when the box's first apply failed half way, and replacing
 * the apply never tears the box down. It names its stack (OF_STACK, which a library of an earlier
 * version ignores): on a machine claimed for another stack's box of its name (this stack's apply
 * was refused there) it takes nothing down, library included. A failed teardown fails the destroy, so nothing is dropped
 * from the state while still on the box.
 */
export function createTeardown(owner: Box, name: string, plan: BoxPlan, stack: string): command.remote.Command {
    const box = plan.settings;
    return new command.remote.Command(
        `${name}-teardown`,
        {
            connection: owner.connection,
            addPreviousOutputInEnv: false,
            // A library of an earlier overlay-fleet (an upgrade that failed before its apply) has no
            // `uninstall`: it is then left on the box, saying so, rather than failing the destroy.
            delete: `export OF_STACK=${shQuote(stack)} && ${hostCalls(["apply", ["remove", boxFstab, box.name, removeMode(box)]])} && if [ -f uninstall ]; then sh uninstall ${shQuote(boxFstab)}; else echo "overlay-fleet: host library kept: $(pwd -P) has no uninstall (an earlier version)"; fi`,
        },
        { parent: owner },
    );
}

/**
 * The box's one remote command, after its library copy (not beside it: the copy rewrites a
 * library already on the box in place, and a script being rewritten must not run): claims the
 * machine for the stack, installs the library, makes the lower ready (preflight, prepare, fold), converges the box's overlays to the plan (host/apply.sh, one
 * instanceRecord per instance on stdin: the stack diff of an instance is a line of it) and retires
 * old generations. Every step is idempotent, so any change re-runs the whole, one SSH connection
 * per box. It has no delete: the box's teardown takes the box down.
 */
export function createApply(owner: Box, name: string, plan: BoxPlan, stack: string): command.remote.Command {
    const hash = owner.library.hash;
    return new command.remote.Command(
        `${name}-apply`,
        {
            connection: owner.connection,
            addPreviousOutputInEnv: false,
            create: pulumi
                .all([owner.library.copy.urn, childUrn(owner, "command:remote:Command", `${name}-apply`)])
                .apply((urns) => installAndRun(hash, urns, { box: plan.settings.name, stack }, applyCalls(plan), applyReadsStdin)),
            stdin: applyInput(plan),
        },
        { parent: owner, dependsOn: [owner.library.copy, owner.teardown] },
    );
}

/**
 * The urn of a child of `parent` with `type` and `name`, as the engine makes it, for a text (a
 * command's message): it carries no dependency on the parent, which an input of the child's
 * itself must not (a child would wait for its own parent, that is for itself).
 */
function childUrn(parent: pulumi.Resource, type: string, name: string): pulumi.Output<string> {
    const parentUrn = new Promise<string>((resolve) => parent.urn.apply(resolve));
    // <prefix>::<parent type chain>::<parent name> -> <prefix>::<parent type chain>$<type>::<name>
    return pulumi.output(parentUrn.then((urn) => `${urn.slice(0, urn.lastIndexOf("::"))}$${type}::${name}`));
}

/** One OverlayInstance component per plan: the instances in the stack's diff, realised by the box's apply. */
export function createInstances(owner: Box, name: string, plans: InstancePlan[]): OverlayInstance[] {
    return plans.map((plan) => new OverlayInstance(`${name}-${plan.name}`, { plan }, { parent: owner }));
}

/** The macvlan network of a box with containers, from its settings (one owner for the preflight and the containers command). */
export function networkArgs(box: ServiceBox): MacvlanNetworkArgs {
    return { box: box.name, networkName: box.network.name, parent: box.network.parent, subnet: box.network.subnet, gateway: box.network.gateway };
}

/**
 * The macvlan network and the box's containers: the image archive copy (in parallel with the
 * library's), then one command after the apply (their overlays, and the engine's preflight) that
 * makes the network and the containers on it. The box lets at most `maxDownPerBox` containers be
 * replaced (a new image) at once; a change of the network takes them all down.
 */
export function createContainers(owner: Box, name: string, box: ServiceBox, plans: InstancePlan[]): BoxContainers {
    const macvlan = new MacvlanNetwork(`${name}-macvlan`, networkArgs(box), { parent: owner });
    return new BoxContainers(
        `${name}-containers`,
        {
            connection: owner.connection,
            box: name,
            instances: plans,
            settings: box.container,
            network: macvlan.args,
            maxDownPerBox: box.maxDownPerBox,
            after: [owner.apply],
        },
        { parent: owner },
    );
}
