import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostCall, hostCalls } from "./hostLibrary";
import { LowerPlan } from "../model/plan";

/** Arguments of a LowerCache: the shared read-only lower of one box. */
export interface LowerCacheArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Directory holding the instances' upper/work/merged sets; the preflight test-mounts there. */
    instanceRoot: string;
    /** The lower at the declared generation (model/plan.ts): the configured path, the current one, the fold's manifests. */
    lower: LowerPlan;
    /** Paths relative to the lower that belong to one instance each; moved out of the lower. */
    privatePaths: string[];
    /** Cache generation the box should run on; a bump folds the uppers into a new lower. */
    generation: number;
    /** Which upper wins when several changed one path (see host/fold.sh). */
    conflictRule: string;
    /** The box's fstab: the fold finds the live instances and their uppers by their managed lines. */
    fstab: string;
}

/**
 * The shared lower cache of one box, made by one command over one SSH connection: a preflight
 * proving the box can host overlay uppers, the lower prepared with instance-private paths moved
 * aside, and the current cache generation built (folded) when the stack asks for a newer one.
 * Its retire step (createRetire) removes old generations once every instance has switched.
 * Lower data is never deleted.
 */
export class LowerCache extends pulumi.ComponentResource {
    /** Path of the lower the instances mount for the declared generation. */
    public readonly lowerPath: string;
    /** Where the fold left per-instance manifests for this generation. */
    public readonly manifestDir: string;
    /** Preflight, prepare and fold: instances mount after it. */
    public readonly ready: command.remote.Command;
    /** What the box did: the preflight, the lower's preparation and the fold report. */
    public readonly report: pulumi.Output<string>;
    /** The arguments, for the retire step (created once the instances exist). */
    public readonly args: LowerCacheArgs;

    constructor(name: string, args: LowerCacheArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:cache:LowerCache", name, {}, opts);
        this.args = args;
        this.lowerPath = args.lower.current;
        this.manifestDir = args.lower.manifestDir;
        const lower = args.lower.configured;
        // The fold reads the live instances from the box's managed fstab lines, so scaling the box
        // changes nothing here; a new generation (or new fold rules) re-runs the idempotent chain.
        this.ready = new command.remote.Command(
            `${name}-lower`,
            {
                connection: args.connection,
                addPreviousOutputInEnv: false,
                create: hostCalls(
                    ["preflight", [args.instanceRoot, lower]],
                    ["lower", [lower, ...args.privatePaths]],
                    ["fold", [lower, String(args.generation), this.manifestDir, args.conflictRule, args.privatePaths.join(",") || "-", "--fstab", args.fstab]],
                ),
            },
            // Children do not inherit the component's dependsOn (the host library comes first).
            { parent: this, dependsOn: opts?.dependsOn },
        );
        this.report = this.ready.stdout;
        // The report is the stack's `foldReports` output: the state keeps it once.
        this.registerOutputs({ lowerPath: this.lowerPath });
    }
}

/**
 * The lower cache's retire step: old cache generations go only after every instance has switched
 * (host/gc.sh also refuses to remove a lower that any mount or fstab line still uses).
 */
export function createRetire(cache: LowerCache, name: string, instances: pulumi.Resource[], opts?: pulumi.CustomResourceOptions): command.remote.Command {
    const args = cache.args;
    return new command.remote.Command(
        `${name}-retire`,
        { connection: args.connection, addPreviousOutputInEnv: false, create: hostCall("gc", [args.lower.configured, String(args.generation), args.fstab]) },
        { ...opts, parent: cache, dependsOn: instances.length > 0 ? instances : [cache.ready] },
    );
}
