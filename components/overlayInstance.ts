import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostInvocation } from "./hostScripts";
import { InstancePlan } from "../model/plan";

/** Arguments of one overlay instance on a box. */
export interface OverlayInstanceArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** The instance's deterministic plan: paths, names, mount options. */
    plan: InstancePlan;
    /** The lower this instance mounts (the box's current cache generation). */
    lower: string;
    /** Full fstab options of the instance (layers, pinned options, boot ordering). */
    fstabOptions: string;
    /** The box's fstab file. */
    fstab: string;
    /** On removal also delete upper and work (default: the upper data is kept). */
    purgeOnRemove: boolean;
    /** Container using the merged dir; stopped and started again when the mount must change. */
    containerName?: string;
    /** Fold manifest of the current generation: what to drop from the upper when switching lowers. */
    foldManifest?: string;
}

/**
 * One overlay instance: its upper/work/merged directories, the overlay mount with pinned
 * options, and its managed /etc/fstab line. The fstab line is written before the mount and
 * removed after it, so a failed (busy) unmount leaves the line in place.
 */
export class OverlayInstance extends pulumi.ComponentResource {
    public readonly fstabEntry: command.remote.Command;
    public readonly mount: command.remote.Command;
    /** The merged directory, ready to bind-mount into a container. */
    public readonly merged: pulumi.Output<string>;

    constructor(name: string, args: OverlayInstanceArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:overlay:OverlayInstance", name, {}, opts);
        const plan = args.plan;
        const common = { connection: args.connection, addPreviousOutputInEnv: false };
        // Children do not inherit the component's dependsOn: forward it so the state records it.
        const after = opts?.dependsOn ? pulumi.output(opts.dependsOn).apply((d) => (Array.isArray(d) ? d : [d])) : [];

        this.fstabEntry = new command.remote.Command(
            `${name}-fstab`,
            {
                ...common,
                create: hostInvocation("fstab", ["set", args.fstab, plan.id, plan.merged, args.fstabOptions]),
                delete: hostInvocation("fstab", ["remove", args.fstab, plan.id]),
                // Options change in place (the line is rewritten); a new identity replaces it.
                triggers: [args.fstab, plan.id],
            },
            { parent: this, deleteBeforeReplace: true, dependsOn: after },
        );

        this.mount = new command.remote.Command(
            `${name}-mount`,
            {
                ...common,
                create: hostInvocation("mount", [
                    args.lower,
                    plan.upper,
                    plan.work,
                    plan.merged,
                    plan.mountOptions,
                    args.containerName ?? "-",
                    args.foldManifest ?? "-",
                ]),
                delete: hostInvocation("unmount", [plan.merged, args.purgeOnRemove ? "purge" : "keep", plan.upper, plan.work]),
                // New directories mean a different instance: unmount the old one first, then mount.
                // Option or lower changes re-run the idempotent mount script, which remounts.
                triggers: [plan.upper, plan.work, plan.merged],
            },
            { parent: this, deleteBeforeReplace: true, dependsOn: pulumi.output(after).apply((d) => [...d, this.fstabEntry]) },
        );

        this.merged = this.mount.stdout.apply(() => plan.merged);
        this.registerOutputs({ merged: this.merged });
    }
}
