import * as pulumi from "@pulumi/pulumi";
import { HostCall, hostLibraryCurrent } from "./hostLibrary";
import { LowerPlan } from "../model/plan";

/** Arguments of a LowerCache: the shared read-only lower of one box. */
export interface LowerCacheArgs {
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
 * Whether a box at `generation` may fold its lower, so its host library needs the fold helper:
 * from generation 2 on (generation 1 is the configured lower itself; its fold is a no-op).
 */
export function usesFoldTool(generation: number): boolean {
    return generation > 1;
}

/**
 * Where a box's preflight records a pass (host/preflight.sh): in the current host library's
 * directory, so a new library, with other pinned options or checks, tests again.
 */
export const preflightRecord = `${hostLibraryCurrent}/preflight.ok`;

/**
 * The host calls that make a box's lower ready, before any instance mounts: a preflight proving
 * the box can host overlay uppers (once per boot and mount, see preflightRecord), the lower
 * prepared with instance-private paths moved aside, and the current cache generation built
 * (folded) when the stack asks for a newer one. Idempotent: the
 * fold reads the live instances from the box's managed fstab lines, so scaling the box changes
 * nothing here.
 */
export function lowerCalls(args: LowerCacheArgs): HostCall[] {
    const lower = args.lower.configured;
    return [
        ["preflight", [args.instanceRoot, lower, preflightRecord]],
        ["lower", [lower, ...args.privatePaths]],
        ["fold", [lower, String(args.generation), args.lower.manifestDir, args.conflictRule, args.privatePaths.join(",") || "-", "--fstab", args.fstab]],
    ];
}

/**
 * The retire call, after every instance has switched: old cache generations go (host/gc.sh also
 * refuses to remove a lower that any mount or fstab line still uses). Generation 1 has none.
 */
export function retireCalls(args: LowerCacheArgs): HostCall[] {
    return args.generation > 1 ? [["gc", [args.lower.configured, String(args.generation), args.fstab]]] : [];
}

/**
 * The fold's report in a box's apply output (host/fold.sh): a line per conflict and per skipped
 * entry, then the `folded ...` summary; empty when the apply folded nothing (generation 1, or already folded).
 */
export function foldReport(applyOutput: string): string {
    return applyOutput
        .split("\n")
        .filter((line) => /^(conflict\t|skipped\t|folded )/.test(line))
        .join("\n");
}

/**
 * The shared lower cache of one box at its declared generation. Its box realises it in the box's
 * apply command: lowerCalls before the instances, retireCalls after them. Lower data is never
 * deleted.
 */
export class LowerCache extends pulumi.ComponentResource {
    /** Path of the lower the instances mount for the declared generation. */
    public readonly lowerPath: string;

    constructor(name: string, args: LowerCacheArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:cache:LowerCache", name, {}, opts);
        this.lowerPath = args.lower.current;
        this.registerOutputs({ lowerPath: this.lowerPath });
    }
}
