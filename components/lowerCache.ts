import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostCall } from "./hostLibrary";
import { foldManifestDir, lowerForGeneration } from "../model/plan";

/** Arguments of a LowerCache: the shared read-only lower of one box. */
export interface LowerCacheArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Directory holding the instances' upper/work/merged sets; the preflight test-mounts there. */
    instanceRoot: string;
    /** Generation-1 lower: the user's cache directory. Its path always names the current cache (host/gc.sh). */
    lower: string;
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
 * The shared lower cache of one box: a preflight proving the box can host overlay uppers,
 * the lower prepared with instance-private paths moved aside, and the current cache generation
 * built (folded) when the stack asks for a newer one. Lower data is never deleted.
 */
export class LowerCache extends pulumi.ComponentResource {
    /** Path of the lower the instances mount for the declared generation. */
    public readonly lowerPath: string;
    /** Where the fold left per-instance manifests for this generation. */
    public readonly manifestDir: string;
    public readonly preflight: command.remote.Command;
    public readonly prepare: command.remote.Command;
    public readonly fold: command.remote.Command;

    constructor(name: string, args: LowerCacheArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:cache:LowerCache", name, {}, opts);
        this.lowerPath = lowerForGeneration(args.lower, args.generation);
        this.manifestDir = foldManifestDir(args.lower, args.generation);

        const common = { connection: args.connection, addPreviousOutputInEnv: false };
        this.preflight = new command.remote.Command(
            `${name}-preflight`,
            { ...common, create: hostCall("preflight", [args.instanceRoot, args.lower]) },
            // Children do not inherit the component's dependsOn (the host library comes first).
            { parent: this, dependsOn: opts?.dependsOn },
        );
        this.prepare = new command.remote.Command(
            `${name}-prepare`,
            { ...common, create: hostCall("lower", [args.lower, ...args.privatePaths]) },
            { parent: this, dependsOn: [this.preflight] },
        );
        // Only the generation number (and the fold's rules) are inputs: scaling the box must not
        // show a change here. The fold reads the live instances from the box's managed fstab lines.
        this.fold = new command.remote.Command(
            `${name}-fold`,
            {
                ...common,
                create: hostCall("fold", [
                    args.lower,
                    String(args.generation),
                    this.manifestDir,
                    args.conflictRule,
                    args.privatePaths.join(",") || "-",
                    "--fstab",
                    args.fstab,
                ]),
            },
            { parent: this, dependsOn: [this.prepare] },
        );
        this.registerOutputs({ lowerPath: this.lowerPath, foldOutput: this.fold.stdout });
    }
}
