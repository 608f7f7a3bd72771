/**
 * Test harness for the host scripts: a private mount namespace and a temp dir per test.
 *
 *   await withHostNs(async (ns) => {
 *       const r = ns.run("mount", [lower, upper, work, merged, PINNED, "-", "-"]);
 *       expect(r.status).toBe(0);
 *       expect(ns.sh('cat "$1"', [`${merged}/a`]).stdout).toBe("...");
 *   });
 *
 * `HostNs.open()` starts one `unshare --mount --propagation private` holder process; every
 * command of the test then enters that namespace with `nsenter --mount`, so mounts made by one
 * step are seen by the next, and none of them is ever visible to the machine. Scripts run exactly
 * as a box runs them: the string from `hostInvocation()` executed by `sh -c`. `close()` unmounts
 * everything below the temp dir, ends the namespace, detaches loop devices backed by files in the
 * temp dir, checks that no mount leaked to the machine and removes the temp dir.
 *
 * libmount records userspace mount options in /run/mount/utab, a file shared with the machine:
 * inside the namespace /run is covered by a tmpfs (so are the box's locks in /run/overlay-fleet),
 * and LIBMOUNT_UTAB points into the temp dir.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll } from "vitest";
import { stageHostLibrary } from "../../components/hostLibrary";
import { hostInvocation, HostScriptName, shQuote } from "../../components/hostScripts";
import type { InstancePlan } from "../../model/plan";

export interface Result {
    status: number | null;
    stdout: string;
    stderr: string;
}

export interface RunOptions {
    /** Extra environment variables (merged over the harness defaults). */
    env?: Record<string, string>;
    /** Replaces PATH entirely. */
    path?: string;
    timeoutMs?: number;
    /** Written to the command's stdin (sh() and shAsync(); otherwise stdin is empty). */
    input?: string;
}

/**
 * Where goBuild keeps its builds between runs: in the repository (.overlay-fleet/ is gitignored),
 * not in the OS temp dir, so a test run leaves nothing there.
 */
export const testCacheDir = path.join(__dirname, "..", "..", ".overlay-fleet", "test-cache");

/**
 * A Go program of the project built static once per source version (in testCacheDir, named
 * `<name>-<hash of the module's sources>`), with the flags a box's helpers get: package `pkg` of
 * the module in `dir`. A build of another version of `name` unused for a day is removed.
 */
export function goBuild(dir: string, name: string, pkg = "."): string {
    const files: string[] = [];
    const visit = (d: string) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
            const p = path.join(d, e.name);
            if (e.isDirectory()) visit(p);
            else if (e.name.endsWith(".go") || e.name === "go.mod" || e.name === "go.sum") files.push(p);
        }
    };
    visit(dir);
    let sum = 0;
    for (const f of files) for (const b of Buffer.concat([Buffer.from(path.relative(dir, f)), fs.readFileSync(f)])) sum = (sum * 31 + b) >>> 0;
    const bin = path.join(testCacheDir, `${name}-${sum.toString(16)}`);
    if (!fs.existsSync(bin)) {
        fs.mkdirSync(testCacheDir, { recursive: true });
        const tmp = `${bin}.${process.pid}`;
        const r = spawnSync("go", ["build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", tmp, pkg], {
            cwd: dir,
            env: { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=mod", GOTOOLCHAIN: "local" },
            encoding: "utf8",
        });
        if (r.status !== 0) throw new Error(`go build of ${pkg} in ${dir} failed: ${r.stderr}`);
        fs.renameSync(tmp, bin);
    }
    const now = new Date();
    fs.utimesSync(bin, now, now); // last used
    for (const other of fs.readdirSync(testCacheDir)) {
        const p = path.join(testCacheDir, other);
        if (/^(.+)-[0-9a-f]+$/.exec(other)?.[1] !== name || p === bin) continue;
        try {
            if (now.getTime() - fs.statSync(p).mtimeMs > 86_400_000) fs.rmSync(p, { force: true });
        } catch {
            /* gone meanwhile */
        }
    }
    return bin;
}

/**
 * The fold helper (host/foldtool), built static once per source version as a box gets it, and
 * passed to the host scripts as OVERLAY_FLEET_FOLDTOOL (see host/fold.sh).
 */
export function foldTool(): string {
    return goBuild(path.join(__dirname, "..", "..", "host", "foldtool"), "foldtool");
}

/** The options overlay-fleet pins on every overlay mount. */
export const PINNED = "index=off,nfs_export=off,redirect_dir=off,metacopy=off";

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Why host tests cannot run here, or undefined when they can (root, unshare, nsenter, overlay). */
export function hostTestsUnavailable(): string | undefined {
    if (process.platform !== "linux") return "not Linux";
    if (typeof process.getuid === "function" && process.getuid() !== 0) return "not root";
    const r = spawnSync("unshare", ["--mount", "--propagation", "private", "--", "true"]);
    if (r.status !== 0) return `unshare --mount fails: ${r.stderr?.toString() ?? r.error}`;
    if (spawnSync("nsenter", ["--version"]).status !== 0) return "no nsenter";
    if (!fs.readFileSync("/proc/filesystems", "utf8").match(/\boverlay$/m)) return "no overlayfs";
    return undefined;
}

/** Whether the running kernel knows a filesystem type (without loading modules). */
export function kernelHasFs(type: string): boolean {
    return fs
        .readFileSync("/proc/filesystems", "utf8")
        .split("\n")
        .some((line) => line.split("\t").pop() === type);
}

function collect(child: ChildProcess, timeoutMs: number): Promise<Result> {
    return new Promise((resolve, reject) => {
        let stdout = "";
        let stderr = "";
        child.stdout?.on("data", (d) => (stdout += d.toString()));
        child.stderr?.on("data", (d) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("error", (e) => {
            clearTimeout(timer);
            reject(e);
        });
        child.on("close", (status) => {
            clearTimeout(timer);
            resolve({ status, stdout, stderr });
        });
    });
}

export class HostNs {
    private readonly background = new Set<ChildProcess>();
    private closed = false;

    private constructor(
        /** Per-test temp dir (a plain dir on the machine; mounts below it exist only in the namespace). */
        readonly dir: string,
        private readonly holder: ChildProcess,
        /** PID of the namespace holder (`nsenter --target`). */
        readonly pid: number,
    ) {}

    static async open(prefix = "of-host-"): Promise<HostNs> {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
        const holderScript = [
            // /run is per test, not shared with the machine: the box's locks (/run/overlay-fleet), libmount's utab.
            "mount -t tmpfs -o size=4m,mode=0755 of-test-run /run || exit 1",
            "mkdir -p /run/mount /run/lock && chmod 1777 /run/lock || exit 1",
            "echo ready",
            "read _ || :",
        ].join("\n");
        const holder = spawn("unshare", ["--mount", "--propagation", "private", "--", "sh", "-c", holderScript], {
            stdio: ["pipe", "pipe", "pipe"],
        });
        await new Promise<void>((resolve, reject) => {
            let out = "";
            let err = "";
            const timer = setTimeout(() => reject(new Error("namespace holder did not start")), 10_000);
            holder.stderr!.on("data", (d) => (err += d.toString()));
            holder.stdout!.on("data", (d) => {
                out += d.toString();
                if (out.includes("ready\n")) {
                    clearTimeout(timer);
                    resolve();
                }
            });
            holder.on("error", reject);
            holder.on("exit", (code) => reject(new Error(`namespace holder exited (${code}): ${err}`)));
        });
        return new HostNs(dir, holder, holder.pid!);
    }

    /** Path inside the temp dir. */
    p(...parts: string[]): string {
        return path.join(this.dir, ...parts);
    }

    private env(opts?: RunOptions): NodeJS.ProcessEnv {
        return {
            PATH: opts?.path ?? DEFAULT_PATH,
            LANG: "C",
            LC_ALL: "C",
            HOME: "/root",
            LIBMOUNT_UTAB: path.join(this.dir, ".utab"),
            OVERLAY_FLEET_FOLDTOOL: foldTool(),
            ...(opts?.env ?? {}),
        };
    }

    private nsArgv(command: string, args: readonly string[]): string[] {
        return ["--target", String(this.pid), "--mount", "--", "sh", "-c", command, "of-test", ...args];
    }

    /** Runs a shell command line in the namespace (`sh -c command of-test args...`). */
    sh(command: string, args: readonly string[] = [], opts?: RunOptions): Result {
        const r = spawnSync("nsenter", this.nsArgv(command, args), {
            env: this.env(opts),
            timeout: opts?.timeoutMs ?? 120_000,
            maxBuffer: 64 * 1024 * 1024,
            input: opts?.input,
        });
        if (r.error) throw r.error;
        return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    }

    /** Like sh(), without blocking: for commands that must run in parallel. */
    shAsync(command: string, args: readonly string[] = [], opts?: RunOptions): Promise<Result> {
        const child = spawn("nsenter", this.nsArgv(command, args), { env: this.env(opts) });
        const done = collect(child, opts?.timeoutMs ?? 120_000);
        child.stdin?.end(opts?.input ?? "");
        return done;
    }

    /** Runs a host script exactly as a box does: `sh -c '<bundle>' of-<name> 'arg'...` by a shell. */
    run(name: HostScriptName, args: readonly string[], opts?: RunOptions): Result {
        return this.sh(hostInvocation(name, args), [], opts);
    }

    runAsync(name: HostScriptName, args: readonly string[], opts?: RunOptions): Promise<Result> {
        return this.shAsync(hostInvocation(name, args), [], opts);
    }

    /** Like sh(), but throws with the output when the command fails. */
    ok(command: string, args: readonly string[] = [], opts?: RunOptions): string {
        const r = this.sh(command, args, opts);
        if (r.status !== 0) {
            throw new Error(`command failed (${r.status}): ${command}\n${r.stdout}${r.stderr}`);
        }
        return r.stdout;
    }

    /**
     * Starts a long-running command in the namespace (e.g. a process keeping a mount busy).
     * It is killed by close() or by the returned stop().
     */
    spawnBackground(command: string, args: readonly string[] = []): { pid: number; stop: () => void } {
        const child = spawn("nsenter", this.nsArgv(command, args), { env: this.env(), stdio: "ignore" });
        this.background.add(child);
        const stop = () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
            this.background.delete(child);
        };
        return { pid: child.pid!, stop };
    }

    /** /proc/self/mountinfo as seen in the namespace. */
    mountinfo(): string {
        return this.ok("cat /proc/self/mountinfo");
    }

    /** mountinfo lines whose mount point is `target`. */
    mountsAt(target: string): string[] {
        return this.mountinfo()
            .split("\n")
            .filter((l) => l.split(" ")[4] === target);
    }

    /** Super options of the top-most mount at `target`, or undefined when nothing is mounted there. */
    superOptions(target: string): { fstype: string; superOpts: string; id: string } | undefined {
        const lines = this.mountsAt(target);
        if (lines.length === 0) return undefined;
        const line = lines[lines.length - 1];
        const [, tail] = line.split(" - ");
        const [fstype, , superOpts] = tail.split(" ");
        return { fstype, superOpts, id: line.split(" ")[0] };
    }

    /** Creates a filesystem image of `sizeMiB` and mounts it (loop) at `target` in the namespace. */
    mountImage(name: string, mkfs: string[], target: string, sizeMiB = 64): void {
        const img = this.p(`${name}.img`);
        fs.writeFileSync(img, "");
        fs.truncateSync(img, sizeMiB * 1024 * 1024);
        const r = spawnSync(mkfs[0], [...mkfs.slice(1), img]);
        if (r.status !== 0) throw new Error(`${mkfs.join(" ")} failed: ${r.stderr}`);
        this.ok('mkdir -p "$2" && mount -o loop "$1" "$2"', [img, target]);
    }

    async close(): Promise<void> {
        if (this.closed) return;
        this.closed = true;
        for (const child of this.background) {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        }
        this.background.clear();
        // Unmount everything below the temp dir, deepest first.
        this.sh(
            'awk -v d="$1" \'$5 == d || index($5, d "/") == 1 { print length($5), $5 }\' /proc/self/mountinfo | ' +
                "sort -rn | while read -r _ t; do umount -l \"$t\" 2>/dev/null || :; done",
            [this.dir],
        );
        const exited = new Promise<void>((resolve) => {
            if (this.holder.exitCode !== null) resolve();
            else this.holder.on("exit", () => resolve());
        });
        this.holder.stdin!.end();
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        if (this.holder.exitCode === null) this.holder.kill("SIGKILL");
        // Loop devices backed by files of this test.
        for (const f of fs.existsSync(this.dir) ? fs.readdirSync(this.dir) : []) {
            if (!f.endsWith(".img")) continue;
            const list = spawnSync("losetup", ["-n", "-O", "NAME", "-j", path.join(this.dir, f)]).stdout?.toString() ?? "";
            for (const dev of list.split("\n").map((s) => s.trim()).filter(Boolean)) {
                spawnSync("losetup", ["-d", dev]);
            }
        }
        const leaked = fs
            .readFileSync("/proc/self/mountinfo", "utf8")
            .split("\n")
            .filter((l) => {
                const mp = l.split(" ")[4];
                return mp === this.dir || mp?.startsWith(this.dir + "/");
            });
        if (leaked.length > 0) {
            throw new Error(`mounts leaked out of the test namespace:\n${leaked.join("\n")}`);
        }
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

/** Waits (polling every 20 ms) until `cond` holds, for an event the test cannot be told of; fails after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
    }
}

/** Runs `fn` with a fresh namespace and temp dir, closing them whatever happens. */
export async function withHostNs<T>(fn: (ns: HostNs) => Promise<T> | T): Promise<T> {
    const ns = await HostNs.open();
    try {
        return await fn(ns);
    } finally {
        await ns.close();
    }
}

/** Managed fstab lines (those with the x-overlay-fleet marker) of a file's content. */
export function managedLines(content: string): string[] {
    return content.split("\n").filter((l) => /(^|[\s,])x-overlay-fleet=/.test(l));
}

/**
 * A `docker` CLI stub in `<test dir>/bin` (put it first on PATH): logs each call's arguments to
 * `<test dir>/docker.log`, answers `info` (by running `info`: by default it succeeds), and runs
 * `cases` (sh `case "$1" in` branches); any other command fails.
 */
export function dockerStub(ns: HostNs, cases: string[], info = "exit 0"): { bin: string; log: string; path: string } {
    const bin = ns.p("bin");
    const log = ns.p("docker.log");
    fs.mkdirSync(bin, { recursive: true });
    const script = ["#!/bin/sh", `echo "$*" >> ${shQuote(log)}`, 'case "$1" in', `  info) ${info} ;;`, ...cases.map((c) => `  ${c}`), "  *) exit 1 ;;", "esac"];
    fs.writeFileSync(path.join(bin, "docker"), script.join("\n") + "\n", { mode: 0o755 });
    return { bin, log, path: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` };
}

/** A typical instance layout below `root`. */
export function instancePaths(root: string, name: string) {
    return {
        upper: path.join(root, name, "upper"),
        work: path.join(root, name, "work"),
        merged: path.join(root, name, "mnts"),
    };
}

/**
 * A cache-only instance plan as model/plan.ts builds one: `name` (index `index`) of `box`, its
 * directories in `<disk>/<dirName>` (default `name`), mounting `lower`, with `foldManifest` when
 * the box's generation has one.
 */
export function testInstancePlan(p: { disk: string; box: string; name: string; index: number; lower: string; dirName?: string; foldManifest?: string }): InstancePlan {
    const i = instancePaths(p.disk, p.dirName ?? p.name);
    return {
        box: p.box,
        index: p.index,
        name: p.name,
        id: `${p.box}/${p.name}`,
        key: `${p.box}.${p.name}`,
        dir: path.join(p.disk, p.dirName ?? p.name),
        ...i,
        hostname: p.name,
        ipOverridden: false,
        mac: `02:42:ac:11:00:0${p.index}`,
        mountOptions: PINNED,
        lower: p.lower,
        fstabOptions: fstabOptions(p.lower, i.upper, i.work, p.disk),
        foldManifest: p.foldManifest,
    };
}

/** fstab options for an instance as the component writes them. */
export function fstabOptions(lower: string, upper: string, work: string, disk: string): string {
    return [
        `lowerdir=${lower}`,
        `upperdir=${upper}`,
        `workdir=${work}`,
        PINNED,
        "nofail",
        `x-systemd.requires-mounts-for=${disk}`,
        "x-systemd.before=docker.service",
    ].join(",");
}

/**
 * The host library staged once for a test file (stageHostLibrary into a temp dir, removed after
 * the file's tests): a getter of its absolute directory, set before the first test runs.
 */
export function stagedHostLibrary(prefix: string): () => string {
    let root = "";
    let dir = "";
    beforeAll(() => {
        if (hostTestsUnavailable()) return;
        root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
        dir = path.resolve(stageHostLibrary(root).dir);
    });
    afterAll(() => {
        if (root) fs.rmSync(root, { recursive: true, force: true });
    });
    return () => dir;
}
