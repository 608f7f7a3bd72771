import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import { BoxPlan, ResolvedBox, ServiceBox } from "../model/config";
import { knownHostsLine } from "../model/net";
import { boxFstab } from "../model/constants";
import { InstancePlan } from "../model/plan";
import { ContainerImage } from "./containerImage";
import { HostLibrary, HostLibraryBundle } from "./hostLibrary";
import { InstanceContainer } from "./instanceContainer";
import { createRetire, LowerCache } from "./lowerCache";
import { MacvlanNetwork } from "./macvlanNetwork";
import { OverlayInstance } from "./overlayInstance";


type Connection = pulumi.Output<command.types.input.remote.ConnectionArgs>;

/** Arguments of one box of the host group. */
export interface BoxArgs {
    /** The box's validated settings and the plan of its instances (see model/config.ts planFleet). */
    plan: BoxPlan;
    /** SSH private key (a secret) unless the box uses the SSH agent. */
    privateKey?: pulumi.Input<string>;
    /** The host library to install on the box, staged once by the program (stageHostLibrary). */
    hostLibrary: HostLibraryBundle;
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
    instances: Array<Pick<InstancePlan, "id" | "name" | "merged" | "upper" | "hostname" | "ip" | "mac">>;
}

/**
 * One box of the host group: its host library, lower cache, N overlay instances and, unless the
 * box is cache-only, the macvlan network, the image and one container per instance. Children are
 * created in the order the box needs them; destroy runs in reverse (containers, then mounts and
 * fstab lines), and cache data is never deleted.
 */
export class Box extends pulumi.ComponentResource {
    public readonly library: HostLibrary;
    public readonly lowerCache: LowerCache;
    public readonly instances: OverlayInstance[];
    public readonly containers: InstanceContainer[];
    /** The lower cache's retire step (generation > 1). */
    public readonly retire?: command.remote.Command;
    /** The SSH connection given to every remote command; a secret as a whole. */
    public readonly connection: Connection;
    public readonly summary: BoxSummary;

    constructor(name: string, args: BoxArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:fleet:Box", name, {}, opts);
        const box = args.plan.settings;
        const plans = args.plan.instances;
        this.connection = boxConnection(box, args.privateKey);
        this.library = new HostLibrary(`${name}-host`, { connection: this.connection, bundle: args.hostLibrary, fstab: boxFstab }, { parent: this });
        this.lowerCache = createLowerCache(this, name, args.plan);
        this.instances = createInstances(this, name, box, plans);
        this.containers = box.cacheOnly ? [] : createContainers(this, name, box, plans, args.privateKey);
        // The retire step belongs to the lower cache; it kept its name when it moved under it.
        // Generation 1 has nothing to retire: the step exists from the first bump on.
        this.retire = box.generation > 1 ? createRetire(this.lowerCache, name, this.instances, { aliases: [{ parent: this }] }) : undefined;

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

/** The box's preflight, lower and fold, after its host library. */
export function createLowerCache(owner: Box, name: string, plan: BoxPlan): LowerCache {
    const box = plan.settings;
    return new LowerCache(
        `${name}-cache`,
        {
            connection: owner.connection,
            instanceRoot: box.instanceRoot,
            lower: plan.lower,
            privatePaths: box.privatePaths,
            generation: box.generation,
            conflictRule: box.conflictRule,
            fstab: boxFstab,
        },
        { parent: owner, dependsOn: [owner.library] },
    );
}

/**
 * One OverlayInstance per plan, all deployed in parallel. A generation switch remounts them one
 * at a time on the box (the mount runs under the box lock), so the others keep serving.
 */
export function createInstances(owner: Box, name: string, box: ResolvedBox, plans: InstancePlan[]): OverlayInstance[] {
    const instances: OverlayInstance[] = [];
    for (const plan of plans) {
        instances.push(
            new OverlayInstance(
                `${name}-${plan.name}`,
                {
                    connection: owner.connection,
                    plan,
                    fstab: boxFstab,
                    purgeOnRemove: box.purgeOnRemove,
                },
                // The cache's ready command, not the component: its retire step waits for these.
                { parent: owner, dependsOn: [owner.lowerCache.ready] },
            ),
        );
    }
    return instances;
}

/**
 * The macvlan network (docker provider, after an engine preflight), the image and one container
 * per instance, each after its overlay. They deploy in parallel; the box lets at most
 * `maxDownPerBox` containers be replaced (a new image) at once.
 */
export function createContainers(
    owner: Box,
    name: string,
    box: ServiceBox,
    plans: InstancePlan[],
    privateKey?: pulumi.Input<string>,
): InstanceContainer[] {
    const { network, container: settings } = box;
    const provider = new docker.Provider(
        `${name}-docker`,
        { host: `ssh://${box.ssh.user}@${box.ssh.host}:${box.ssh.port}`, sshOpts: dockerSshOptions(name, box, privateKey) },
        { parent: owner },
    );
    const macvlan = new MacvlanNetwork(
        `${name}-macvlan`,
        {
            connection: owner.connection,
            box: name,
            networkName: network.name,
            parent: network.parent,
            subnet: network.subnet,
            gateway: network.gateway,
            provider,
        },
        { parent: owner, dependsOn: [owner.library] },
    );
    const image = new ContainerImage(
        `${name}-image`,
        { connection: owner.connection, image: settings.image, archive: settings.imageArchive },
        { parent: owner, dependsOn: [owner.library] },
    );
    return plans.map(
        (plan, i) =>
            new InstanceContainer(
                `${name}-${plan.name}`,
                {
                    connection: owner.connection,
                    plan,
                    settings,
                    imageId: image.imageId,
                    networkName: macvlan.networkName,
                    merged: owner.instances[i].merged,
                    maxDownPerBox: box.maxDownPerBox,
                },
                { parent: owner, dependsOn: [owner.instances[i], macvlan, image] },
            ),
    );
}

/**
 * The docker provider reaches the engine through the local `ssh` binary, which needs files:
 * a known_hosts entry with the pinned host key, and (without an agent) the key in a 0600 file.
 */
function dockerSshOptions(name: string, box: ResolvedBox, privateKey?: pulumi.Input<string>): pulumi.Output<string[]> {
    const dir = path.join(os.tmpdir(), `overlay-fleet-ssh-${process.getuid?.() ?? "user"}`);
    const knownHosts = path.join(dir, `${name}.known_hosts`);
    return pulumi.output(privateKey).apply((key) => {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        fs.writeFileSync(knownHosts, knownHostsLine(box.ssh.host, box.ssh.port, box.ssh.hostKey), { mode: 0o600 });
        const options = ["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "BatchMode=yes"];
        if (!box.ssh.agent && key !== undefined) {
            const keyFile = path.join(dir, `${name}.key`);
            fs.writeFileSync(keyFile, key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
            options.push("-i", keyFile, "-o", "IdentitiesOnly=yes");
        }
        return options;
    });
}
