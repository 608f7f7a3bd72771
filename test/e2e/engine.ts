/**
 * Drives the real Pulumi engine (the CLI, a file backend, passphrase secrets) against the local
 * lab's SSH boxes. Each TestProject is a copy of the program in a temp dir with its own stack
 * file and state, so tests never touch the repo's stacks/ or .pulumi-state/.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const repo = path.resolve(__dirname, "../..");
const labScript = path.join(repo, "tools", "lab.sh");

export interface LabBox {
    name: string;
    host: string;
    port: number;
    user: string;
    hostKey: string;
    privateKeyPath: string;
    knownHostsPath: string;
    disk: string;
    lower: string;
}

export interface RunResult {
    status: number | null;
    stdout: string;
    stderr: string;
}

/**
 * Runs a command without blocking the event loop (a long spawnSync starves vitest's RPC).
 */
export function run(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk) => (stdout += chunk));
        child.stderr.on("data", (chunk) => (stderr += chunk));
        // A child may exit (or close its stdin) before it has read all of `input`: the write then
        // fails with EPIPE, an 'error' event on stdin that would otherwise crash the test run. That
        // is no failure of ours; the child's exit status and output tell what happened. Any other
        // error on stdin is one, and rejects.
        let stdinError: Error | undefined;
        child.stdin.on("error", (error: NodeJS.ErrnoException) => {
            if (error.code === "EPIPE" || error.code === "ERR_STREAM_DESTROYED") return;
            stdinError = error;
        });
        child.on("error", reject);
        child.on("close", (status) => {
            if (stdinError) reject(new Error(`writing the stdin of ${command} failed: ${stdinError.message}`));
            else resolve({ status, stdout, stderr });
        });
        if (child.exitCode === null && child.signalCode === null && child.stdin.writable) {
            child.stdin.end(options.input ?? "");
        }
    });
}

/** Runs `tools/lab.sh` and fails loudly when it fails. */
export async function lab(...args: string[]): Promise<string> {
    const result = await run("bash", [labScript, ...args]);
    if (result.status !== 0) {
        throw new Error(`lab ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
    }
    return result.stdout;
}

export async function labBoxes(): Promise<LabBox[]> {
    return (JSON.parse(await lab("env")) as { boxes: LabBox[] }).boxes;
}

/** Runs a shell snippet inside a lab box's namespaces (no SSH); returns the raw result. */
export function inBox(box: string, script: string): Promise<RunResult> {
    return run("bash", [labScript, "exec", box, "--", "sh", "-c", script]);
}

/** Like inBox, but throws on failure and returns stdout. */
export async function inBoxOk(box: string, script: string): Promise<string> {
    const result = await inBox(box, script);
    if (result.status !== 0) {
        throw new Error(`in ${box}: ${script}\nexit ${result.status}: ${result.stderr}`);
    }
    return result.stdout;
}

/** Instance overlay mount points inside a box (not the lab's /etc overlay, nor a fold's view). */
export async function overlayMounts(box: string): Promise<string[]> {
    const targets = (await inBoxOk(box, "findmnt -rn -t overlay -o TARGET || true")).split("\n");
    return targets.filter((target) => /^\/mnt\/usbdisk\/[^/]+\/mnts$/.test(target)).sort();
}

/** Managed fstab lines inside a box. */
export async function managedFstabLines(box: string): Promise<string[]> {
    return (await inBoxOk(box, "grep 'x-overlay-fleet=' /etc/fstab || true")).split("\n").filter(Boolean);
}

/** Overlay mounts the machine itself sees (must never include a lab box's). */
export async function machineOverlayTargets(): Promise<string[]> {
    return (await run("findmnt", ["-rn", "-t", "overlay", "-o", "TARGET"])).stdout.split("\n").filter(Boolean);
}

/**
 * Brings every lab box back to its pristine state: no overlays, no managed fstab lines, no
 * instance dirs or later cache generations, no stack's claim. Used between test files.
 */
export async function scrubBox(box: string): Promise<void> {
    await inBoxOk(
        box,
        `set -e
         # Never edit the machine's fstab: the box must have its own /etc.
         [ "$(findmnt -n -o TARGET --mountpoint /etc)" = /etc ] || { echo "box has no private /etc" >&2; exit 1; }
         for m in $(findmnt -rn -t overlay -o TARGET | grep '^/mnt/usbdisk/' | sort -r); do umount "$m"; done
         sed -i '/x-overlay-fleet=/d' /etc/fstab
         # The box is no stack's any more (host/claim.sh): the next test's stack may have it.
         rm -f /var/lib/overlay-fleet/claim
         cd /mnt/usbdisk
         # A test may have moved the box to a later cache generation: make it the lower again
         # (once retired, the configured lower is a symlink to the current generation).
         if [ -L static_cache ]; then
           target=$(readlink static_cache); rm static_cache; mv "$target" static_cache
         fi
         if [ ! -d static_cache ]; then
           latest=$(ls -d static_cache.g* 2>/dev/null | grep -E '\.g[0-9]+$' | sort -t g -k2 -n | tail -1)
           [ -n "$latest" ] && mv "$latest" static_cache
         fi
         # Put the instance-private data moved aside by of-lower back where the lab made it.
         if [ -d .overlay-fleet/private/static_cache ]; then cp -a .overlay-fleet/private/static_cache/. static_cache/; fi
         for d in * .overlay-fleet; do
           case "$d" in static_cache|lost+found) ;; *) rm -rf -- "$d" ;; esac
         done`,
    );
}

/** A lab of two fresh boxes (pristine lower cache and fstab, whatever earlier runs left). */
export async function freshLab(): Promise<LabBox[]> {
    await lab("down");
    await lab("up", "2");
    return labBoxes();
}

export interface StepSummary {
    op: string;
    urn: string;
    name: string;
}

/** A copy of the program with its own stack and file backend. */
export class TestProject {
    readonly dir: string;
    readonly env: NodeJS.ProcessEnv;
    private secureKeyLines = "";
    private salt = "";

    constructor(readonly stack: string) {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `overlay-fleet-e2e-${stack}-`));
        for (const entry of ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts", "program", "components", "model", "host"]) {
            fs.cpSync(path.join(repo, entry), path.join(this.dir, entry), { recursive: true });
        }
        fs.symlinkSync(path.join(repo, "node_modules"), path.join(this.dir, "node_modules"));
        // The fold helper builds of the repo (per source hash): no need to build them again.
        const foldTools = path.join(repo, ".overlay-fleet", "foldtool");
        if (fs.existsSync(foldTools)) {
            fs.cpSync(foldTools, path.join(this.dir, ".overlay-fleet", "foldtool"), { recursive: true });
        }
        fs.mkdirSync(path.join(this.dir, "stacks"));
        fs.mkdirSync(path.join(this.dir, "state"));
        this.env = {
            ...process.env,
            PULUMI_BACKEND_URL: `file://${path.join(this.dir, "state")}`,
            PULUMI_CONFIG_PASSPHRASE: "e2e-test",
            PULUMI_NODEJS_TRANSPILE_ONLY: "true",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        };
    }

    get stackFile(): string {
        return path.join(this.dir, "stacks", `Pulumi.${this.stack}.yaml`);
    }

    pulumi(args: string[], input?: string): Promise<RunResult> {
        return run("pulumi", [...args, "--stack", this.stack, "--non-interactive"], { cwd: this.dir, env: this.env, input });
    }

    async pulumiOk(args: string[], input?: string): Promise<string> {
        const result = await this.pulumi(args, input);
        if (result.status !== 0) {
            throw new Error(`pulumi ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
        }
        return result.stdout;
    }

    /** Creates the stack and stores the lab's private key as a secret. */
    async init(privateKeyPath: string): Promise<void> {
        const init = await run("pulumi", ["stack", "init", this.stack, "--non-interactive"], { cwd: this.dir, env: this.env });
        if (init.status !== 0) {
            throw new Error(`stack init failed: ${init.stderr}`);
        }
        await this.pulumiOk(["config", "set", "--secret", "overlay-fleet:sshPrivateKey"], fs.readFileSync(privateKeyPath, "utf8"));
        const text = fs.readFileSync(this.stackFile, "utf8");
        this.salt = /^encryptionsalt: .*$/m.exec(text)![0];
        this.secureKeyLines = /^ {2}overlay-fleet:sshPrivateKey:\n {4}secure: .*$/m.exec(text)![0];
    }

    /** Writes the stack config (JSON is valid YAML), keeping the salt and the encrypted key. */
    configure(defaults: unknown, boxes: unknown, extra: Record<string, unknown> = {}): void {
        const lines = [this.salt, "config:", this.secureKeyLines, `  overlay-fleet:defaults: ${JSON.stringify(defaults)}`, `  overlay-fleet:boxes: ${JSON.stringify(boxes)}`];
        for (const [key, value] of Object.entries(extra)) {
            lines.push(`  ${key}: ${JSON.stringify(value)}`);
        }
        fs.writeFileSync(this.stackFile, lines.join("\n") + "\n");
    }

    /** `pulumi preview --json`: the planned steps. */
    async preview(): Promise<{ steps: StepSummary[]; result: RunResult }> {
        const result = await this.pulumi(["preview", "--json"]);
        if (result.status !== 0) {
            return { steps: [], result };
        }
        const parsed = JSON.parse(result.stdout) as { steps?: Array<{ op: string; urn: string }> };
        const steps = (parsed.steps ?? []).map((s) => ({ op: s.op, urn: s.urn, name: s.urn.split("::").pop()! }));
        return { steps, result };
    }

    up(extra: string[] = []): Promise<RunResult> {
        return this.pulumi(["up", "--yes", "--skip-preview", ...extra]);
    }

    async upOk(extra: string[] = []): Promise<string> {
        const result = await this.up(extra);
        if (result.status !== 0) {
            throw new Error(`pulumi up failed (${result.status}):\n${result.stdout.slice(-6000)}\n${result.stderr.slice(-4000)}`);
        }
        return result.stdout;
    }

    /**
     * Starts `pulumi up` in the background, for kill-mid-run drills; read or resume() its stdout
     * (with `--json` in `extra`: the engine's events as they happen, one JSON object a line).
     */
    upInBackground(extra: string[] = []) {
        return spawn("pulumi", ["up", "--yes", "--skip-preview", ...extra, "--stack", this.stack, "--non-interactive"], {
            cwd: this.dir,
            env: this.env,
            stdio: ["ignore", "pipe", "ignore"],
        });
    }

    destroyOk(): Promise<string> {
        return this.pulumiOk(["destroy", "--yes", "--skip-preview"]);
    }

    async outputs(): Promise<Record<string, unknown>> {
        return JSON.parse(await this.pulumiOk(["stack", "output", "--json", "--show-secrets"]));
    }

    async remove(): Promise<void> {
        await this.pulumi(["stack", "rm", "--yes", "--force"]);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

/** Cache-only lab config for the given instance counts per box. */
export function labConfig(boxes: LabBox[], counts: Record<string, number>, perBox: Record<string, unknown> = {}) {
    const defaults = {
        disk: "/mnt/usbdisk",
        lower: "/mnt/usbdisk/static_cache",
        instanceRoot: "/mnt/usbdisk",
        privatePaths: [".yfnode/config"],
        cacheOnly: true,
    };
    const declared: Record<string, unknown> = {};
    for (const box of boxes) {
        if (counts[box.name] === undefined) {
            continue;
        }
        declared[box.name] = {
            ssh: { host: box.host, port: box.port, user: box.user, hostKey: box.hostKey },
            instances: counts[box.name],
            ...((perBox[box.name] as object) ?? {}),
        };
    }
    return { defaults, boxes: declared };
}

/** Where tests and the main job keep the lab's cache-node image archive. */
export const labImageArchive = path.join(repo, ".lab", "cache-node.tar");
export const labImage = "overlay-fleet/cache-node:lab";

/** Builds the lab's cache-node image archive (no engine needed); a marker makes another image. */
export async function buildLabImage(out = labImageArchive, tag = labImage, marker = ""): Promise<string> {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const env = { ...process.env, LAB_IMAGE_TAG: tag, ...(marker ? { LAB_IMAGE_MARKER: marker } : {}) };
    const result = await run("bash", [path.join(repo, "tools", "lab-image.sh"), out], { env });
    if (result.status !== 0) {
        throw new Error(`lab-image.sh failed: ${result.stderr}`);
    }
    return out;
}

/** Lab config WITH containers: each box's macvlan network on its LAN interface of-b<i>. */
export function labContainerConfig(
    boxes: LabBox[],
    counts: Record<string, number>,
    perBox: Record<string, unknown> = {},
    container: Record<string, unknown> = {},
) {
    const { defaults, boxes: declared } = labConfig(boxes, counts, perBox);
    const withNetwork: Record<string, unknown> = {};
    for (const [name, settings] of Object.entries(declared)) {
        const i = name.replace("box", "");
        const own = settings as Record<string, any>;
        withNetwork[name] = {
            ...own,
            network: { parent: `of-b${i}`, subnet: `198.18.${i}.0/24`, gateway: `198.18.${i}.1`, firstAddress: `198.18.${i}.101`, ...(own.network ?? {}) },
        };
    }
    return {
        defaults: {
            ...defaults,
            cacheOnly: false,
            container: { image: labImage, imageArchive: labImageArchive, privileged: false, restart: "always", ...container },
        },
        boxes: withNetwork,
    };
}

/** `docker ...` inside a lab box (its own engine and CLI); throws on failure, returns stdout. */
export function dockerIn(box: string, args: string): Promise<string> {
    return inBoxOk(box, `docker ${args}`);
}
