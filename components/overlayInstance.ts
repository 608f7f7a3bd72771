import * as pulumi from "@pulumi/pulumi";
import { InstancePlan } from "../model/plan";
import { tabRecord } from "./hostScripts";

/** Arguments of one overlay instance on a box. */
export interface OverlayInstanceArgs {
    /** The instance's plan (model/plan.ts): paths, names, lower, mount and fstab options, container, fold manifest. */
    plan: InstancePlan;
}

/** The fields of an instance record, in order (host/apply.sh reads them). */
function recordFields(plan: InstancePlan): string[] {
    return [plan.id, plan.lower, plan.upper, plan.work, plan.merged, plan.mountOptions, plan.fstabOptions, plan.containerName ?? "-", plan.foldManifest ?? "-"];
}

/**
 * The instance as its box's apply reads it on stdin (host/apply.sh): one line, the fields
 * separated by tabs. The model refuses whitespace and control characters in every field; a value
 * that still holds one is refused here rather than shifting the fields on the box.
 */
export function instanceRecord(plan: InstancePlan): string {
    return tabRecord(recordFields(plan), `instance ${plan.id}`);
}

/**
 * One overlay instance: its upper/work/merged directories, its managed /etc/fstab line and the
 * overlay mount with pinned options. Its box realises all of them in one command over one SSH
 * connection (the box's apply, fed one instanceRecord per instance): the fstab line is written
 * before the mount and removed after the unmount, so a failed (busy) unmount keeps its line; an
 * instance the plan no longer has is taken down there, keeping its upper data unless
 * `purgeOnRemove`. The component is the instance in the stack's diff: `+`/`-` per instance.
 */
export class OverlayInstance extends pulumi.ComponentResource {
    /**
     * The merged directory to bind-mount into a container: mounted once the box's apply ran, so
     * a user of it depends on that command. A plain value, not an output of the apply: a change
     * of the box's apply must not show every container as changed in a preview.
     */
    public readonly merged: string;

    constructor(name: string, args: OverlayInstanceArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:overlay:OverlayInstance", name, {}, opts);
        this.merged = args.plan.merged;
        this.registerOutputs({ merged: this.merged });
    }
}
