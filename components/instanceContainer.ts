import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import { ContainerSettings } from "../model/config";
import { InstancePlan } from "../model/plan";

/** Arguments of the container of one instance. */
export interface InstanceContainerArgs {
    /** The instance's plan: name, hostname, address, MAC, merged dir. */
    plan: InstancePlan;
    /** Image, DNS, privileged, restart policy, mount target. */
    settings: Required<ContainerSettings>;
    /** Image id to run (from the box's RemoteImage). */
    image: pulumi.Input<string>;
    /** The macvlan network to join with the instance's fixed IP and MAC. */
    networkName: pulumi.Input<string>;
    /** The merged dir, as an output of the mounted overlay (so the container comes after it). */
    merged: pulumi.Input<string>;
}

/**
 * The container of one instance on the box's macvlan network, with fixed hostname, IP and MAC
 * (its identity), and the merged cache dir bind-mounted. A `bind` mount fails when the source is
 * missing instead of silently creating an empty dir on the root filesystem, as `-v` would.
 */
export class InstanceContainer extends pulumi.ComponentResource {
    public readonly container: docker.Container;

    constructor(name: string, args: InstanceContainerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:container:InstanceContainer", name, {}, opts);
        const plan = args.plan;
        this.container = new docker.Container(
            `${name}-container`,
            {
                name: plan.name,
                hostname: plan.hostname,
                image: args.image,
                restart: args.settings.restart,
                privileged: args.settings.privileged,
                dns: args.settings.dns,
                // networkMode stays unset: with networksAdvanced and a static IP docker needs that.
                networksAdvanced: [{ name: args.networkName, ipv4Address: plan.ip, macAddress: plan.mac }],
                mounts: [{ type: "bind", source: args.merged, target: args.settings.mountTarget }],
            },
            { parent: this, dependsOn: opts?.dependsOn },
        );
        this.registerOutputs({ containerId: this.container.id });
    }
}
