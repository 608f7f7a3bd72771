/**
 * What the operator's commands (status, repair) share: the stack they read, with the main job's
 * defaults, the `pulumi` CLI, and an SSH session to one of the stack's boxes with its pinned host
 * key.
 */
import { execFileSync, spawnSync, SpawnSyncReturns, StdioOptions } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseArgs } from "util";
import type { BoxSummary } from "../components/box";
import { knownHostsLine } from "../model/net";

/**
 * The project directory, where `pulumi` runs: the nearest directory holding a Pulumi.yaml from
 * where the command runs (`npm run` starts it at the project's root), else this project's own.
 */
function findProjectDir(): string {
    for (let dir = process.cwd(); ; dir = path.dirname(dir)) {
        if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
        if (path.dirname(dir) === dir) return path.join(__dirname, "..");
    }
}
const projectDir = findProjectDir();

/** A bad command line: its message says what is wrong (main prints it with the usage). */
export class UsageError extends Error {}

/** An operator command's line: the stack (`--stack`), the flags given, and its other words (deduplicated). */
export interface OperatorArgs {
    stack: string;
    flags: Set<string>;
    names: string[];
}

/**
 * Parses an operator command's arguments (`--stack <stack>` or `--stack=<stack>`, the boolean
 * `flags` it takes, then names). Strict: an unknown option or a `--stack` without a value is a
 * UsageError naming it. The stack defaults to $OVERLAY_FLEET_STACK, else `lab`.
 */
export function parseOperatorArgs(argv: string[], flags: string[]): OperatorArgs {
    const options: Record<string, { type: "string" | "boolean" }> = { stack: { type: "string" } };
    for (const flag of flags) options[flag] = { type: "boolean" };
    let parsed: ReturnType<typeof parseArgs>;
    try {
        parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    } catch (error) {
        throw new UsageError((error as Error).message);
    }
    const stack = parsed.values.stack ?? process.env.OVERLAY_FLEET_STACK ?? "lab";
    if (typeof stack !== "string" || stack === "" || stack.startsWith("-")) {
        throw new UsageError(`--stack needs a stack name, got ${JSON.stringify(stack)}`);
    }
    return { stack, flags: new Set(flags.filter((f) => parsed.values[f] === true)), names: [...new Set(parsed.positionals)] };
}

/**
 * Selects `stack` for the `pulumi` calls that follow, with the main job's defaults (tools/main.sh):
 * the project's file backend when it has one, the lab's passphrase for the lab stack.
 */
export function useStack(stack: string): void {
    const localState = path.join(projectDir, ".pulumi-state");
    if (!process.env.PULUMI_BACKEND_URL && fs.existsSync(localState)) {
        process.env.PULUMI_BACKEND_URL = `file://${localState}`;
    }
    if (stack === "lab" && process.env.PULUMI_CONFIG_PASSPHRASE === undefined) {
        process.env.PULUMI_CONFIG_PASSPHRASE = "overlay-fleet-lab";
    }
}

/** `pulumi <args>` in the project directory: its stdout (throws with its stderr when it fails). */
export function pulumi(args: string[]): string {
    return execFileSync("pulumi", args, { cwd: projectDir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 256 << 20 });
}

/** The stack's `summary` output: its boxes as deployed (components/box.ts BoxSummary). */
export function deployedBoxes(stack: string): BoxSummary[] {
    return JSON.parse(pulumi(["stack", "output", "summary", "--json", "--stack", stack]) || "[]") ?? [];
}

/**
 * The stack's SSH private key, or undefined when the stack has none (boxes that use the SSH
 * agent). Any other failure (a wrong passphrase, say) is an error saying so, not a key left out.
 */
export function stackPrivateKey(stack: string): string | undefined {
    try {
        return pulumi(["config", "get", "overlay-fleet:sshPrivateKey", "--stack", stack]);
    } catch (error) {
        const stderr = String((error as { stderr?: string }).stderr ?? error);
        if (/configuration key .* not found/.test(stderr)) {
            return undefined;
        }
        throw new Error(`cannot read overlay-fleet:sshPrivateKey of stack ${JSON.stringify(stack)}: ${stderr.trim()}`);
    }
}

/**
 * Ctrl-C or a TERM while an SSH session runs: without handlers node would die at once and leave
 * the session's key file behind; with them the session ends (ssh gets the signal too), its files
 * are removed, and onBox stops the command.
 */
let signalsTrapped = false;
function trapSignals(): void {
    if (signalsTrapped) return;
    signalsTrapped = true;
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, () => process.exit(130));
    }
}

/**
 * `ssh <box> <remote>` with the box's pinned host key (and the stack's key, when it has one),
 * `input` on its stdin. Output is captured unless `stdio` says otherwise.
 */
export function onBox(box: BoxSummary, privateKey: string | undefined, remote: string, input: string, stdio: StdioOptions = "pipe"): SpawnSyncReturns<string> {
    trapSignals();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "overlay-fleet-ssh-"));
    try {
        const knownHosts = path.join(dir, "known_hosts");
        fs.writeFileSync(knownHosts, knownHostsLine(box.host, box.port, box.hostKey));
        const args = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "ConnectTimeout=10", "-p", String(box.port)];
        if (privateKey) {
            const keyFile = path.join(dir, "key");
            fs.writeFileSync(keyFile, privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`, { mode: 0o600 });
            args.push("-i", keyFile, "-o", "IdentitiesOnly=yes");
        }
        const result = spawnSync("ssh", [...args, `${box.user}@${box.host}`, remote], { input, encoding: "utf8", stdio, maxBuffer: 64 << 20 });
        if (result.signal === "SIGINT" || result.signal === "SIGTERM") {
            throw new Error(`interrupted (${result.signal}) while on ${box.name}`);
        }
        return result;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * Runs an operator command's `main`: a UsageError prints its message and the usage (exit 2), any
 * other error its message, or the stderr of the `pulumi` call that failed (exit 1).
 */
export function runCommand(main: () => void, usage: string): void {
    try {
        main();
    } catch (error) {
        const stderr = (error as { stderr?: string }).stderr;
        console.error(`overlay-fleet: ${stderr ? stderr.trim() : (error as Error).message}`);
        if (error instanceof UsageError) console.error(usage);
        process.exit(error instanceof UsageError ? 2 : 1);
    }
}
