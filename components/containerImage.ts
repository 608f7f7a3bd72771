import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { ImageArchive } from "../model/imageArchive";

/** Where image archives are copied on a box (one file per archive content). */
export const boxImageDir = "/var/lib/overlay-fleet/images";

/** Arguments of the image a box's containers run. */
export interface ContainerImageArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** An image archive on this machine to ship to the box instead of pulling from a registry. */
    archive?: ImageArchive;
}

/**
 * The image of a box's containers: an archive shipped to the box (copied over SFTP, once per
 * archive content) for boxes without registry access. The box's containers command loads it
 * (`of-image load`), or pulls the image when there is no archive; a new archive shows in preview
 * as a new copy and an update of that command, which then replaces the containers.
 */
export class ContainerImage extends pulumi.ComponentResource {
    /** Where the archive lands on the box; undefined when the image is pulled. */
    public readonly remoteArchive?: string;
    public readonly copy?: command.remote.CopyToRemote;

    constructor(name: string, args: ContainerImageArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:container:ContainerImage", name, {}, opts);
        if (args.archive) {
            this.remoteArchive = `${boxImageDir}/${args.archive.sha256.slice(0, 16)}.tar`;
            this.copy = new command.remote.CopyToRemote(
                `${name}-copy`,
                { connection: args.connection, source: new pulumi.asset.FileAsset(args.archive.path), remotePath: this.remoteArchive, triggers: [args.archive.sha256] },
                { parent: this, dependsOn: opts?.dependsOn },
            );
        }
        this.registerOutputs({ remoteArchive: this.remoteArchive ?? "" });
    }
}
