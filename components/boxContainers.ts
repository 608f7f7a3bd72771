import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostCall } from "./hostLibrary";
import { tabRecord } from "./hostScripts";
import { ResolvedContainer } from "../model/config";
import { boxImageDir, containerJobsPerBox } from "../model/constants";
import { InstancePlan } from "../model/plan";
import { MacvlanNetworkArgs, networkCallArgs } from "./macvlanNetwork";

/** Arguments of the containers of one box. */
export interface BoxContainersArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Box name: the containers it manages are labelled `overlay-fleet.instance=<box>/<name>`. */
    box: string;
    /** The plans of the box's instances: name, id, hostname, address, MAC, merged dir. */
    instances: InstancePlan[];
    /** Image (and the archive to ship it in, if any), DNS, privileged, restart policy, mount target. */
    settings: ResolvedContainer;
    /** The macvlan network the command makes, for each instance to join with its fixed IP and MAC. */
    network: MacvlanNetworkArgs;
    /** At most this many containers of the box are replaced at once (enforced on the box). */
    maxDownPerBox: number;
    /** What the command waits for besides the image copy: the box's apply (the overlays, the engine's preflight). */
    after: pulumi.Input<pulumi.Resource>[];
}

/** Where a box keeps the image archive of `settings` (named by its content), or undefined to pull. */
export function remoteArchive(settings: ResolvedContainer): string | undefined {
    return settings.imageArchive ? `${boxImageDir}/${settings.imageArchive.sha256.slice(0, 16)}.tar` : undefined;
}

/** The fields of a container record, in order (host/containers.sh reads them). */
function recordFields(plan: InstancePlan): string[] {
    return [plan.id, plan.containerName ?? plan.name, plan.hostname, plan.ip ?? "", plan.mac, plan.merged];
}

/** One container as its box's containers command reads it on stdin (host/containers.sh): a tabRecord. */
export function containerRecord(plan: InstancePlan): string {
    return tabRecord(recordFields(plan), `the container of ${plan.id}`);
}

/** The box's containers command: the box-wide settings as arguments (the containers come on stdin). */
export function containersCall(args: BoxContainersArgs): string {
    const { settings } = args;
    return hostCall("containers", [
        "set",
        args.box,
        ...networkCallArgs(args.network),
        settings.image,
        remoteArchive(settings) ?? "-",
        settings.dns.join(",") || "-",
        settings.restart,
        settings.privileged ? "1" : "0",
        settings.mountTarget,
        String(args.maxDownPerBox),
        String(containerJobsPerBox),
    ]);
}

/**
 * The containers of one box, one per instance, on the box's macvlan network with their fixed
 * hostname, IP and MAC (the node's identity) and their merged cache dir bind-mounted: one command
 * over one SSH connection (host/containers.sh, fed one containerRecord per instance: the stack
 * diff of a container is a line of its stdin). It loads the image, makes the network as planned
 * (MacvlanNetwork), removes the box's containers the plan no longer has and makes or keeps each
 * planned one with the box's own docker CLI, not the docker provider: the provider creates a
 * container on `bridge` and connects it to the network afterwards, and engines ignore a MAC given
 * on connect below API 1.54 (the provider speaks at most 1.51), so it cannot give a container its
 * MAC. Each container is read back from
 * the engine; any difference from the plan fails the `up`. Its delete removes the box's
 * containers and then its network (and only those overlay-fleet made).
 */
export class BoxContainers extends pulumi.ComponentResource {
    /** The image archive's copy to the box (without an archive the command pulls the image). */
    public readonly imageCopy?: command.remote.CopyToRemote;
    public readonly command: command.remote.Command;

    constructor(name: string, args: BoxContainersArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:container:BoxContainers", name, {}, opts);
        this.imageCopy = createImageCopy(this, args, opts?.parent);
        this.command = new command.remote.Command(
            `${name}-run`,
            {
                connection: args.connection,
                addPreviousOutputInEnv: false,
                create: containersCall(args),
                stdin: args.instances.map(containerRecord).join(""),
                delete: hostCall("containers", ["remove", args.box]),
            },
            // A replacement (`pulumi up --replace`, for a box that lost its containers) removes
            // the box's containers before making them again: created first, the old command's
            // delete would remove the new ones.
            { parent: this, dependsOn: [...args.after, ...(this.imageCopy ? [this.imageCopy] : [])], deleteBeforeReplace: true },
        );
        this.registerOutputs({});
    }
}

/**
 * The image archive copied to the box over SFTP, once per archive content, beside the library's
 * copy (it waits for nothing): for boxes without registry access. A new archive shows in preview
 * as a new copy and an update of the containers command, which loads it and replaces the
 * containers. (Named `<box>-image-copy` under a ContainerImage component before: aliased, so a
 * stack deployed then keeps its copy.)
 */
export function createImageCopy(owner: BoxContainers, args: BoxContainersArgs, box?: pulumi.Resource): command.remote.CopyToRemote | undefined {
    const archive = args.settings.imageArchive;
    const target = remoteArchive(args.settings);
    if (!archive || !target) return undefined;
    const formerParent = pulumi.createUrn(`${args.box}-image`, "overlay-fleet:container:ContainerImage", box);
    return new command.remote.CopyToRemote(
        `${args.box}-image-copy`,
        { connection: args.connection, source: new pulumi.asset.FileAsset(archive.path), remotePath: target, triggers: [archive.sha256] },
        { parent: owner, aliases: [{ parent: formerParent }] },
    );
}
