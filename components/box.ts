import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import { ResolvedBox } from "../model/config";
import { knownHostsLine } from "../model/net";
import { foldManifest, fstabOptions, InstancePlan, planBox } from "../model/plan";
import { hostInvocation } from "./hostScripts";
import { InstanceContainer } from "./instanceContainer";
import { LowerCache } from "./lowerCache";
import { MacvlanNetwork } from "./macvlanNetwork";
import { OverlayInstance } from "./overlayInstance";

/** The file every box's managed mount lines live in. */
export const boxFstab = "/etc/fstab";

/** Arguments of one box of the host group. */
export interface BoxArgs {
    /** The box's validated settings (see model/config.ts). */
    settings: ResolvedBox;
    /** SSH private key (a secret) unless the box uses the SSH agent. */
    privateKey?: pulumi.Input<string>;
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
    instances: Array<Pick<InstancePlan, "id" | "name" | "merged" | "upper" | "hostname" | "ip" | "mac">>;
}

/**
 * One box of the host group: its lower cache, N overlay instances and, unless the box is
 * cache-only, the macvlan network and one container per instance. Children are created in the
 * order the box needs them; destroy runs in reverse (containers, mounts, fstab lines), and the
 * lower data is never deleted.
 */
export class Box extends pulumi.ComponentResource {
    public readonly lowerCache: LowerCache;
    public readonly instances: OverlayInstance[];
    public readonly containers: InstanceContainer[];
    /** The SSH connection given to every remote command; a secret as a whole. */
    public readonly connection: pulumi.Output<command.types.input.remote.ConnectionArgs>;
    public readonly summary: BoxSummary;

    constructor(name: string, args: BoxArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:fleet:Box", name, {}, opts);
        const box = args.settings;
        this.connection = pulumi.secret(
            pulumi.output(args.privateKey).apply((privateKey) => ({
                host: box.ssh.host,
                port: box.ssh.port,
                user: box.ssh.user,
                hostKey: box.ssh.hostKey,
                ...(box.ssh.agent ? { agentSocketPath: process.env.SSH_AUTH_SOCK } : { privateKey }),
                // sshd drops unauthenticated connections beyond MaxStartups (10 by default);
                // many parallel commands to one box must retry rather than fail.
                dialErrorLimit: 40,
                perDialTimeout: 15,
            })),
        );

        this.lowerCache = new LowerCache(
            `${name}-cache`,
            {
                connection: this.connection,
                instanceRoot: box.instanceRoot,
                lower: box.lower,
                privatePaths: box.privatePaths,
                generation: box.generation,
                conflictRule: box.conflictRule,
                fstab: boxFstab,
            },
            { parent: this },
        );

        let provider: docker.Provider | undefined;
        let network: MacvlanNetwork | undefined;
        let image: docker.RemoteImage | undefined;
        if (!box.cacheOnly) {
            provider = new docker.Provider(
                `${name}-docker`,
                { host: `ssh://${box.ssh.user}@${box.ssh.host}:${box.ssh.port}`, sshOpts: dockerSshOptions(name, box, args.privateKey) },
                { parent: this },
            );
            network = new MacvlanNetwork(
                `${name}-macvlan`,
                {
                    networkName: box.network!.name,
                    parent: box.network!.parent,
                    subnet: box.network!.subnet,
                    gateway: box.network!.gateway,
                },
                { parent: this, provider },
            );
            image = new docker.RemoteImage(
                `${name}-image`,
                { name: box.container!.image, keepLocally: true },
                { parent: this, provider },
            );
        }

        const plans = planBox(box);
        this.instances = [];
        for (const plan of plans) {
            // A generation switch restarts instances; chaining each mount to the one K places
            // earlier keeps at most K instances of the box down at once.
            const previous = this.instances[plan.index - 1 - box.maxDownPerBox];
            this.instances.push(
                new OverlayInstance(
                    `${name}-${plan.name}`,
                    {
                        connection: this.connection,
                        plan,
                        lower: this.lowerCache.lowerPath,
                        fstabOptions: fstabOptions(box, plan, this.lowerCache.lowerPath),
                        fstab: boxFstab,
                        purgeOnRemove: box.purgeOnRemove,
                        containerName: box.cacheOnly ? undefined : plan.name,
                        foldManifest: box.generation > 1 ? foldManifest(box.lower, box.generation, plan.name) : undefined,
                    },
                    { parent: this, dependsOn: [this.lowerCache, ...(previous ? [previous.mount] : [])] },
                ),
            );
        }

        this.containers =
            network && image && provider
                ? this.instances.map(
                      (instance, i) =>
                          new InstanceContainer(
                              `${name}-${plans[i].name}`,
                              {
                                  plan: plans[i],
                                  settings: box.container!,
                                  image: image!.imageId,
                                  networkName: network!.networkName,
                                  merged: instance.merged,
                              },
                              { parent: this, provider, dependsOn: [instance] },
                          ),
                  )
                : [];

        // Old generations go only after every instance has switched (the script also refuses to
        // remove a lower that any mount or fstab line still uses).
        new command.remote.Command(
            `${name}-retire`,
            {
                connection: this.connection,
                addPreviousOutputInEnv: false,
                create: hostInvocation("gc", [box.lower, String(box.generation), boxFstab]),
            },
            { parent: this, dependsOn: this.instances.length > 0 ? this.instances : [this.lowerCache] },
        );

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
            instances: plans.map(({ id, name, merged, upper, hostname, ip, mac }) => ({ id, name, merged, upper, hostname, ip, mac })),
        };
        this.registerOutputs({ summary: this.summary });
    }
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
