import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostCall } from "./hostLibrary";
import { ImageArchive } from "../model/imageArchive";

/** Where image archives are copied on a box (one file per archive content). */
export const boxImageDir = "/var/lib/overlay-fleet/images";

/** Arguments of the image a box's containers run. */
export interface ContainerImageArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Image reference the containers run, e.g. `ericwang2006/ttnode`. */
    image: string;
    /** An image archive on this machine to ship to the box instead of pulling from a registry. */
    archive?: ImageArchive;
}

/**
 * The image of a box's containers, present in the box's engine: shipped as an archive (copied
 * over SFTP, then `docker load`) for boxes without registry access, or pulled. `imageId` is the
 * engine's id of the image; a new archive shows in preview and replaces the containers.
 */
export class ContainerImage extends pulumi.ComponentResource {
    public readonly load: command.remote.Command;
    public readonly imageId: pulumi.Output<string>;

    constructor(name: string, args: ContainerImageArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:container:ContainerImage", name, {}, opts);
        const common = { connection: args.connection, addPreviousOutputInEnv: false };
        if (args.archive) {
            const remoteArchive = `${boxImageDir}/${args.archive.sha256.slice(0, 16)}.tar`;
            const copy = new command.remote.CopyToRemote(
                `${name}-copy`,
                { connection: args.connection, source: new pulumi.asset.FileAsset(args.archive.path), remotePath: remoteArchive, triggers: [args.archive.sha256] },
                { parent: this, dependsOn: opts?.dependsOn },
            );
            this.load = new command.remote.Command(
                `${name}-load`,
                { ...common, create: hostCall("image", ["load", remoteArchive, args.image]), triggers: [args.archive.sha256] },
                { parent: this, dependsOn: [copy] },
            );
        } else {
            this.load = new command.remote.Command(
                `${name}-pull`,
                { ...common, create: hostCall("image", ["pull", args.image]) },
                { parent: this, dependsOn: opts?.dependsOn },
            );
        }
        this.imageId = this.load.stdout.apply((out) => out.trim().split("\n").pop() ?? "");
        this.registerOutputs({ imageId: this.imageId });
    }
}
