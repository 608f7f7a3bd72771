import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostCalls } from "./hostLibrary";
import { HostScriptName } from "./hostScripts";
import { InstancePlan } from "../model/plan";

/** Arguments of one overlay instance on a box. */
export interface OverlayInstanceArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** The instance's plan (model/plan.ts): paths, names, lower, mount and fstab options, container, fold manifest. */
    plan: InstancePlan;
    /** The box's fstab file. */
    fstab: string;
    /** On removal also delete upper and work (default: the upper data is kept). */
    purgeOnRemove: boolean;
}

type Calls = Array<[HostScriptName, string[]]>;

/** The host calls that write the instance's fstab line, then mount its overlay. */
export function mountCalls(args: Pick<OverlayInstanceArgs, "plan" | "fstab">): Calls {
    const plan = args.plan;
    return [
        ["fstab", ["set", args.fstab, plan.id, plan.merged, plan.fstabOptions]],
        ["mount", [plan.lower, plan.upper, plan.work, plan.merged, plan.mountOptions, plan.containerName ?? "-", plan.foldManifest ?? "-"]],
    ];
}

/** The host calls that unmount the instance, then remove its fstab line (kept if busy). */
export function unmountCalls(args: Pick<OverlayInstanceArgs, "plan" | "fstab" | "purgeOnRemove">): Calls {
    const plan = args.plan;
    return [
        ["unmount", [plan.merged, args.purgeOnRemove ? "purge" : "keep", plan.upper, plan.work, args.fstab]],
        ["fstab", ["remove", args.fstab, plan.id]],
    ];
}

/** The box command of mountCalls, one SSH connection. */
export function mountCommand(args: OverlayInstanceArgs): string {
    return hostCalls(...mountCalls(args));
}

/** The box command of unmountCalls, one SSH connection. */
export function unmountCommand(args: OverlayInstanceArgs): string {
    return hostCalls(...unmountCalls(args));
}

/**
 * One overlay instance: its upper/work/merged directories, its managed /etc/fstab line and the
 * overlay mount with pinned options, made by one command over one SSH connection. The fstab line
 * is written before the mount and removed after it, so a failed (busy) unmount keeps its line.
 */
export class OverlayInstance extends pulumi.ComponentResource {
    public readonly mount: command.remote.Command;
    /** The merged directory, ready to bind-mount into a container (resolves once mounted). */
    public readonly merged: pulumi.Output<string>;

    constructor(name: string, args: OverlayInstanceArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:overlay:OverlayInstance", name, {}, opts);
        const plan = args.plan;
        // Children do not inherit the component's dependsOn: forward it so the state records it.
        this.mount = new command.remote.Command(
            `${name}-mount`,
            {
                connection: args.connection,
                addPreviousOutputInEnv: false,
                create: mountCommand(args),
                delete: unmountCommand(args),
                // A new identity or instance dir (upper, work and merged live in it) means a
                // different instance: unmount the old one first, then mount. Option or lower
                // changes re-run the idempotent commands.
                triggers: [plan.id, plan.dir],
            },
            { parent: this, deleteBeforeReplace: true, dependsOn: opts?.dependsOn },
        );
        this.merged = this.mount.stdout.apply(() => plan.merged);
        this.registerOutputs({ merged: this.merged });
    }
}
