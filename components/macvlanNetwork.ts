import * as pulumi from "@pulumi/pulumi";
import { HostCall } from "./hostLibrary";

/** Arguments of the macvlan network of one box. */
export interface MacvlanNetworkArgs {
    /** Box name (the label value on the network: `overlay-fleet.box=<box>`). */
    box: string;
    /** Docker network name, e.g. `macnet`. */
    networkName: string;
    /** Parent LAN interface on the box; old engines allow one macvlan network per parent. */
    parent: string;
    /** LAN subnet in CIDR form. */
    subnet: string;
    /** LAN gateway. */
    gateway: string;
}

/** The engine preflight of a box's network: a read-only host call the box's apply runs before it changes anything. */
export function enginePreflight(args: MacvlanNetworkArgs): HostCall {
    return ["engine", [args.networkName, args.parent, args.subnet, args.gateway, args.box]];
}

/** The network's arguments of the box's containers command (host/containers.sh `set`), in its order. */
export function networkCallArgs(args: MacvlanNetworkArgs): string[] {
    return [args.networkName, args.parent, args.subnet, args.gateway];
}

/**
 * The docker macvlan network that gives each container its own address and MAC on the LAN. The
 * box's apply checks the engine first (enginePreflight: API version, parent interface, no
 * foreign network in the way); the box's containers command then makes the network with the
 * box's own docker CLI, labelled as the box's, before its containers (as it makes them: one SSH
 * session for both), and makes it again, with its containers, when the plan changes it. The
 * docker provider would cost the box a second connection and its create waits two seconds. The
 * component has no child: it is the network in the stack's model and diff (the box's plan), as
 * an OverlayInstance is for its overlay.
 */
export class MacvlanNetwork extends pulumi.ComponentResource {
    public readonly args: MacvlanNetworkArgs;

    constructor(name: string, args: MacvlanNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:network:MacvlanNetwork", name, {}, opts);
        this.args = args;
        this.registerOutputs({ networkName: args.networkName });
    }
}
