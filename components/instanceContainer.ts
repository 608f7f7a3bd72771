import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostCall } from "./hostLibrary";
import { ResolvedContainer } from "../model/config";
import { InstancePlan } from "../model/plan";

/** Arguments of the container of one instance. */
export interface InstanceContainerArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** The instance's plan: name, id, hostname, address, MAC, merged dir. */
    plan: InstancePlan;
    /** Image, DNS, privileged, restart policy, mount target. */
    settings: ResolvedContainer;
    /** Engine id of the image to run (from the box's ContainerImage). */
    imageId: pulumi.Input<string>;
    /** The macvlan network to join with the instance's fixed IP and MAC. */
    networkName: pulumi.Input<string>;
    /** The merged dir (mounted by the box's apply, which the container depends on). */
    merged: pulumi.Input<string>;
    /** At most this many containers of the box are replaced at once (enforced on the box). */
    maxDownPerBox: number;
}

/** The box command that makes (or keeps) the container and checks its identity on the engine. */
export function containerCommand(args: InstanceContainerArgs): pulumi.Output<string> {
    const { plan, settings } = args;
    return pulumi.all([args.imageId, args.networkName, args.merged]).apply(([imageId, networkName, merged]) =>
        hostCall("container", [
            "create",
            plan.name,
            plan.hostname,
            settings.image,
            imageId,
            networkName,
            plan.ip!,
            plan.mac,
            settings.dns.join(",") || "-",
            settings.restart,
            settings.privileged ? "1" : "0",
            plan.id,
            merged,
            settings.mountTarget,
            String(args.maxDownPerBox),
        ]),
    );
}

/**
 * The container of one instance on the box's macvlan network, with its fixed hostname, IP and
 * MAC (the node's identity), and the merged cache dir bind-mounted. It is made by the box's own
 * docker CLI, not by the docker provider: the provider creates a container on `bridge` and
 * connects it to the network afterwards, and engines ignore a MAC given on connect below API
 * 1.54 (the provider speaks at most 1.51), so it cannot give a container its MAC. The command
 * reads back what the engine gave the container and fails the `up` on any difference.
 */
export class InstanceContainer extends pulumi.ComponentResource {
    public readonly container: command.remote.Command;

    constructor(name: string, args: InstanceContainerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:container:InstanceContainer", name, {}, opts);
        this.container = new command.remote.Command(
            `${name}-container`,
            {
                connection: args.connection,
                addPreviousOutputInEnv: false,
                create: containerCommand(args),
                delete: hostCall("container", ["remove", args.plan.name, args.plan.id]),
            },
            { parent: this, dependsOn: opts?.dependsOn },
        );
        this.registerOutputs({ container: this.container.stdout });
    }
}
