/**
 * What the operator's commands (status, repair) share: the stack they read, with the main job's
 * defaults, the `pulumi` CLI, and an SSH session to one of the stack's boxes with its pinned host
 * key.
 */
import { execFileSync, spawnSync, SpawnSyncReturns, StdioOptions } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { BoxSummary } from "../components/box";
import { knownHostsLine } from "../model/net";

/** The project directory: where the command runs (`npm run` starts it there); `pulumi` runs there too. */
const projectDir = process.cwd();

/**
 * The stack named by `--stack` (default: $OVERLAY_FLEET_STACK, else `lab`). Same defaults as the
 * main job (tools/main.sh): the project's file backend when it has one, the lab's passphrase.
 */
export function stackFromArgs(argv: string[]): string {
    const at = argv.indexOf("--stack");
    const stack = at >= 0 ? argv[at + 1] : (process.env.OVERLAY_FLEET_STACK ?? "lab");
    if (!stack || stack.startsWith("-")) {
        throw new Error("--stack needs a stack name");
    }
    const localState = path.join(projectDir, ".pulumi-state");
    if (!process.env.PULUMI_BACKEND_URL && fs.existsSync(localState)) {
        process.env.PULUMI_BACKEND_URL = `file://${localState}`;
    }
    if (stack === "lab" && process.env.PULUMI_CONFIG_PASSPHRASE === undefined) {
        process.env.PULUMI_CONFIG_PASSPHRASE = "overlay-fleet-lab";
    }
    return stack;
}

/** `pulumi <args>` in the project directory: its stdout (throws with its stderr when it fails). */
export function pulumi(args: string[]): string {
    return execFileSync("pulumi", args, { cwd: projectDir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 256 << 20 });
}

/** The stack's `summary` output: its boxes as deployed (components/box.ts BoxSummary). */
export function deployedBoxes(stack: string): BoxSummary[] {
    return JSON.parse(pulumi(["stack", "output", "summary", "--json", "--stack", stack]) || "[]") ?? [];
}

/** The stack's SSH private key, or undefined for boxes that use the SSH agent. */
export function stackPrivateKey(stack: string): string | undefined {
    try {
        return pulumi(["config", "get", "overlay-fleet:sshPrivateKey", "--stack", stack]);
    } catch {
        return undefined;
    }
}

/**
 * `ssh <box> <remote>` with the box's pinned host key (and the stack's key, when it has one),
 * `input` on its stdin. Output is captured unless `stdio` says otherwise.
 */
export function onBox(box: BoxSummary, privateKey: string | undefined, remote: string, input: string, stdio: StdioOptions = "pipe"): SpawnSyncReturns<string> {
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
        return spawnSync("ssh", [...args, `${box.user}@${box.host}`, remote], { input, encoding: "utf8", stdio, maxBuffer: 64 << 20 });
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
