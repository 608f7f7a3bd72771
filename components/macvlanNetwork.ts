import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import { boxLabel } from "../model/constants";
import { HostCall } from "./hostLibrary";


/** Arguments of the macvlan network of one box. */
export interface MacvlanNetworkArgs {
    /** Box name (the label value on the network). */
    box: string;
    /** Docker network name, e.g. `macnet`. */
    networkName: string;
    /** Parent LAN interface on the box; old engines allow one macvlan network per parent. */
    parent: string;
    /** LAN subnet in CIDR form. */
    subnet: string;
    /** LAN gateway. */
    gateway: string;
    /** The docker provider of the box's engine. */
    provider: docker.Provider;
    /** What the network waits for: the box's apply, which checks the engine first. */
    after: pulumi.Input<pulumi.Resource>[];
}

/** The engine preflight of a box's network: a read-only host call the box's apply runs before it changes anything. */
export function enginePreflight(args: Omit<MacvlanNetworkArgs, "provider" | "after">): HostCall {
    return ["engine", [args.networkName, args.parent, args.subnet, args.gateway, args.box]];
}

/**
 * The docker macvlan network that gives each container its own address and MAC on the LAN. The
 * box's apply checks the engine first (enginePreflight: API version, parent interface, no
 * foreign network in the way); the network itself is made by the docker provider, which does it
 * right.
 */
export class MacvlanNetwork extends pulumi.ComponentResource {
    public readonly network: docker.Network;
    public readonly networkName: pulumi.Output<string>;

    constructor(name: string, args: MacvlanNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:network:MacvlanNetwork", name, {}, opts);
        this.network = new docker.Network(
            `${name}-network`,
            {
                name: args.networkName,
                driver: "macvlan",
                options: { parent: args.parent },
                ipamConfigs: [{ subnet: args.subnet, gateway: args.gateway }],
                labels: [{ label: boxLabel, value: args.box }],
            },
            { parent: this, provider: args.provider, dependsOn: args.after },
        );
        this.networkName = this.network.name;
        this.registerOutputs({ networkName: this.networkName });
    }
}
