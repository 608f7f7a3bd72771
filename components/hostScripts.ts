import * as fs from "fs";
import * as path from "path";
import { boxClaimFile, boxLabel, boxPlanDir, generationSuffix, instanceLabel, maxGeneration, maxMountDataLength, pinnedMountOptions } from "../model/constants";

/** Directory holding the POSIX sh scripts that run on a box. */
export const hostScriptDir = path.join(__dirname, "..", "host");

/** Names of the host-side scripts (file `host/<name>.sh`). */
export const hostScriptNames = ["claim", "apply", "preflight", "lower", "mount", "unmount", "fstab", "status", "fold", "gc", "engine", "image", "container", "containers"] as const;
export type HostScriptName = (typeof hostScriptNames)[number];

/**
 * Quotes one value for a POSIX shell: single quotes, with embedded single quotes closed,
 * escaped and reopened. The result is always exactly one word, whatever the input holds.
 */
export function shQuote(value: string): string {
    if (value.includes("\0")) {
        throw new Error(`cannot pass a NUL byte to a remote command: ${JSON.stringify(value)}`);
    }
    return "'" + value.replace(/'/g, "'\\''") + "'";
}

/**
 * One record of a host command's stdin: the fields separated by tabs, ending in a newline. A
 * field that is empty or holds a tab, newline or NUL is refused (naming `what`) rather than
 * shifting the fields on the box.
 */
export function tabRecord(fields: readonly string[], what: string): string {
    for (const value of fields) {
        if (value === "" || /[\t\n\r\0]/.test(value)) {
            throw new Error(`cannot pass ${JSON.stringify(value)} of ${what} to its box: empty, or holds a tab, newline or NUL`);
        }
    }
    return fields.join("\t") + "\n";
}

/**
 * Facts the TypeScript owns (model/constants.ts) that the host scripts need too, as the shell
 * variables they read. No host script writes one of these values itself (test/unit/facts.test.ts).
 */
export const hostFacts: Readonly<Record<string, string>> = {
    OF_PINNED_OPTIONS: pinnedMountOptions.join(","),
    OF_MAX_MOUNT_DATA: String(maxMountDataLength),
    OF_GENERATION_SUFFIX: generationSuffix,
    OF_MAX_GENERATION: String(maxGeneration),
    OF_PLAN_DIR: boxPlanDir,
    OF_CLAIM_FILE: boxClaimFile,
    OF_INSTANCE_LABEL: instanceLabel,
    OF_BOX_LABEL: boxLabel,
};

/**
 * The first lines of every host script: the facts as quoted assignments. They ride in the
 * content-hashed library (one update per box when one changes), and commands recorded in the
 * state by an older overlay-fleet (a delete) still get them from the box's current library.
 */
export function hostFactsPreamble(): string {
    const lines = Object.entries(hostFacts).map(([name, value]) => `${name}=${shQuote(value)}`);
    return ["# Facts from overlay-fleet's model/constants.ts (written when the library is built).", ...lines, ""].join("\n");
}

const bundleCache = new Map<HostScriptName, string>();

/** Scripts that use the fold functions (`drop_folded`, `fold_*`) of `host/lib-fold.sh`. */
const usesFoldLibrary: ReadonlySet<HostScriptName> = new Set(["mount", "apply", "fold", "gc"]);
/** Scripts that mount or unmount an instance with `of_mount_main`, `of_unmount_main` of `host/lib-mount.sh`. */
const usesMountLibrary: ReadonlySet<HostScriptName> = new Set(["mount", "unmount", "apply"]);

/**
 * The text a box runs for one script: the facts (hostFactsPreamble), `host/lib.sh`,
 * `host/lib-fold.sh` and `host/lib-mount.sh` for the scripts that need them, then `host/<name>.sh`: self-contained, so a box runs it with a POSIX shell alone,
 * installed in its host library (see hostLibrary.ts) or sent inline; a script carries only the
 * libraries it uses.
 */
export function hostScript(name: HostScriptName): string {
    let text = bundleCache.get(name);
    if (text === undefined) {
        const libraries = ["lib.sh", ...(usesFoldLibrary.has(name) ? ["lib-fold.sh"] : []), ...(usesMountLibrary.has(name) ? ["lib-mount.sh"] : [])];
        text = [
            hostFactsPreamble(),
            ...[...libraries, `${name}.sh`].map((file) => fs.readFileSync(path.join(hostScriptDir, file), "utf8")),
        ].join("\n");
        bundleCache.set(name, text);
    }
    return text;
}

/**
 * The command line that runs a host script inline (the whole script in the command), e.g. as an
 * SSH command on a box that has no host library installed (the status tool, tests):
 * `sh -c '<script>' <name> 'arg1' 'arg2'`. Every argument is quoted, so no value from the
 * stack config is ever parsed by the remote shell.
 */
export function hostInvocation(name: HostScriptName, args: readonly string[]): string {
    return ["sh", "-c", shQuote(hostScript(name)), shQuote(`of-${name}`), ...args.map(shQuote)].join(" ");
}
