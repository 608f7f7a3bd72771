import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";

/** Arguments of the macvlan network of one box. */
export interface MacvlanNetworkArgs {
    /** Docker network name, e.g. `macnet`. */
    networkName: pulumi.Input<string>;
    /** Parent LAN interface on the box; docker allows one macvlan network per parent. */
    parent: pulumi.Input<string>;
    /** LAN subnet in CIDR form. */
    subnet: pulumi.Input<string>;
    /** LAN gateway. */
    gateway: pulumi.Input<string>;
}

/** The docker macvlan network that gives each container its own address and MAC on the LAN. */
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
            },
            { parent: this },
        );
        this.networkName = this.network.name;
        this.registerOutputs({ networkName: this.networkName });
    }
}
