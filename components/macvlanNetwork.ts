import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import { hostCall } from "./hostLibrary";

/** Label that marks the docker objects overlay-fleet made, with the box name as value. */
export const boxLabel = "overlay-fleet.box";

/** Arguments of the macvlan network of one box. */
export interface MacvlanNetworkArgs {
    /** SSH connection to the box, for the engine preflight. */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
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
}

/**
 * The docker macvlan network that gives each container its own address and MAC on the LAN,
 * after a read-only preflight of the box's engine (API version, parent interface, no foreign
 * network in the way). The network itself is made by the docker provider, which does it right.
 */
export class MacvlanNetwork extends pulumi.ComponentResource {
    public readonly preflight: command.remote.Command;
    public readonly network: docker.Network;
    public readonly networkName: pulumi.Output<string>;

    constructor(name: string, args: MacvlanNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:network:MacvlanNetwork", name, {}, opts);
        this.preflight = new command.remote.Command(
            `${name}-engine`,
            {
                connection: args.connection,
                addPreviousOutputInEnv: false,
                create: hostCall("engine", [args.networkName, args.parent, args.subnet, args.gateway, args.box]),
            },
            { parent: this, dependsOn: opts?.dependsOn },
        );
        this.network = new docker.Network(
            `${name}-network`,
            {
                name: args.networkName,
                driver: "macvlan",
                options: { parent: args.parent },
                ipamConfigs: [{ subnet: args.subnet, gateway: args.gateway }],
                labels: [{ label: boxLabel, value: args.box }],
            },
            { parent: this, provider: args.provider, dependsOn: [this.preflight] },
        );
        this.networkName = this.network.name;
        this.registerOutputs({ networkName: this.networkName });
    }
}
