/**
 * The local lab itself (tools/lab.sh): boxes reachable over real SSH with the pinned host key,
 * private mount/UTS namespaces, a per-box /etc and USB disk, sshd restarts that keep the box,
 * a Docker engine per box (docker20 on box1, docker29 on box2) that stops and starts, and a
 * `down` that leaves nothing behind. Needs root (namespaces, loop devices).
 *
 *   npx vitest run --project lab
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LabBox } from "../e2e/engine";

const repo = path.resolve(__dirname, "..", "..");
const labScript = path.join(repo, "tools", "lab.sh");
const imageScript = path.join(repo, "tools", "lab-image.sh");

/** What `lab.sh env` says about a box's engine, besides the SSH facts. */
interface LabBoxEngine extends LabBox {
    engine: string;
    apiVersion: string | null;
    dockerHost: string;
    cgroupParent: string;
    dataDir: string;
}
const stateDir = process.env.OVERLAY_FLEET_LAB_DIR ?? "/run/overlay-fleet-lab";

interface Run {
    code: number;
    stdout: string;
    stderr: string;
}

/** Runs a command without blocking the event loop (vitest's worker must stay responsive). */
function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<Run> {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("error", (err) => {
            clearTimeout(timer);
            reject(err);
        });
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
        });
    });
}

function lab(...args: string[]): Promise<Run> {
    return run("bash", [labScript, ...args], 300_000);
}

async function labOk(...args: string[]): Promise<string> {
    const r = await lab(...args);
    if (r.code !== 0) {
        throw new Error(`lab ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
    return r.stdout;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
    const t0 = Date.now();
    const result = await fn();
    return [result, (Date.now() - t0) / 1000];
}

function sshArgs(box: LabBox, extra: { knownHosts?: string; key?: string } = {}): string[] {
    return [
        "-F", "/dev/null",
        "-i", extra.key ?? box.privateKeyPath,
        "-o", "IdentitiesOnly=yes",
        "-o", `UserKnownHostsFile=${extra.knownHosts ?? box.knownHostsPath}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
        "-p", String(box.port),
        `${box.user}@${box.host}`,
    ];
}

/** Runs a command on a box over real SSH (not through lab.sh). */
function ssh(box: LabBox, command: string, extra: { knownHosts?: string; key?: string } = {}): Promise<Run> {
    return run("ssh", [...sshArgs(box, extra), command], 60_000);
}

async function sshOk(box: LabBox, command: string): Promise<string> {
    const r = await ssh(box, command);
    if (r.code !== 0) throw new Error(`ssh ${box.name} '${command}' exited ${r.code}: ${r.stderr}`);
    return r.stdout;
}

/** For quick local commands only (ip, losetup). */
function runSync(cmd: string, args: string[]): Run {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000, stdio: ["ignore", "pipe", "pipe"] });
    if (r.error) throw r.error;
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function hostMountinfo(): string[] {
    return fs.readFileSync("/proc/self/mountinfo", "utf8").trim().split("\n");
}

/** Mount points (field 5) of a mountinfo text. */
function mountPoints(mountinfo: string): string[] {
    return mountinfo
        .trim()
        .split("\n")
        .filter((l) => l.length > 0)
        .map((l) => l.split(" ")[4]);
}

/** Mountinfo lines that belong to the lab (box netns handles, lab paths, the test's probes). */
function labMountLines(lines: string[]): string[] {
    return lines.filter((l) => /\/run\/netns\/of-box|overlay-fleet-lab|usbdisk|labprobe|labkeep/.test(l));
}

function netnsNames(): string[] {
    return runSync("ip", ["netns", "list"]).stdout.split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
}

function linkNames(): string[] {
    return runSync("ip", ["-o", "link", "show"]).stdout
        .split("\n")
        .map((l) => l.split(": ")[1] ?? "")
        .map((n) => n.split("@")[0])
        .filter(Boolean);
}

function loopBackingFiles(): string[] {
    return runSync("losetup", ["-l", "-n", "-O", "BACK-FILE"]).stdout.split("\n").map((l) => l.trim()).filter(Boolean);
}

function pidsWithCmdlineContaining(needle: string): number[] {
    const found: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
        try {
            const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
            if (cmdline.includes(needle)) found.push(Number(entry));
        } catch {
            // process went away
        }
    }
    return found;
}

/** The inode of a process's namespace, e.g. "mnt:[4026532...]". */
function nsOf(pid: number, kind: string): string | undefined {
    try {
        return fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
    } catch {
        return undefined;
    }
}

function isAlive(pid: number): boolean {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
        return state !== "Z" && state !== "X";
    } catch {
        return false;
    }
}

/** Pids of every process whose network namespace is one of the lab's boxes. */
function processesInBoxes(): number[] {
    const boxNets = new Set<string>();
    for (const name of netnsNames().filter((n) => /^of-box\d+$/.test(n))) {
        boxNets.add(`net:[${fs.statSync(`/run/netns/${name}`).ino}]`);
    }
    const pids: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        const net = nsOf(Number(entry), "net");
        if (net && boxNets.has(net) && isAlive(Number(entry))) pids.push(Number(entry));
    }
    return pids;
}

interface StatusRow {
    state: string;
    anchor: string;
    sshd: string;
    engine: string;
    api: string;
}

async function statusRows(): Promise<Map<string, StatusRow>> {
    const r = await lab("status");
    const rows = new Map<string, StatusRow>();
    for (const line of r.stdout.split("\n").slice(1)) {
        const [box, state, , anchor, sshd, engine, api] = line.trim().split(/\s+/);
        if (box?.startsWith("box")) rows.set(box, { state, anchor, sshd, engine, api });
    }
    return rows;
}

/** Pids of processes named `comm` (dockerd, containerd, ...) anywhere on the machine. */
function pidsNamed(comm: string): number[] {
    const found: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            if (fs.readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm && isAlive(Number(entry))) found.push(Number(entry));
        } catch {
            // process went away
        }
    }
    return found;
}

/** The machine's cgroup hierarchies (mount points under /sys/fs/cgroup). */
function cgroupMounts(): string[] {
    return fs
        .readFileSync("/proc/self/mountinfo", "utf8")
        .trim()
        .split("\n")
        .filter((l) => / - cgroup2? /.test(l))
        .map((l) => l.split(" ")[4])
        .filter((m) => m.startsWith("/sys/fs/cgroup/"));
}

/** The box's engine API version as its own CLI reports it over SSH. */
async function apiOverSsh(box: LabBox): Promise<string> {
    return (await sshOk(box, "docker version --format '{{.Server.APIVersion}}'")).trim();
}

function apiAtLeast(v: string, want: string): boolean {
    const [a, b] = v.split(".").map(Number);
    const [c, d] = want.split(".").map(Number);
    return a > c || (a === c && b >= d);
}

async function sleep(ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
}

const timings: Record<string, number> = {};
const hostFstabPath = "/etc/fstab";
let hostFstabBefore: Buffer;
let hostFstabStatBefore: fs.Stats;
let hostnameBefore: string;
let netnsDirBefore: boolean;
let netnsMountedBefore: boolean;
let boxes: LabBoxEngine[] = [];
let labIsDown = false;

describe("local lab (tools/lab.sh)", () => {
    beforeAll(async () => {
        expect(process.getuid?.(), "the lab needs root").toBe(0);
        hostFstabBefore = fs.readFileSync(hostFstabPath);
        hostFstabStatBefore = fs.statSync(hostFstabPath);
        hostnameBefore = os.hostname();
        // Start from nothing, so that the "before" snapshot is the machine without the lab.
        await labOk("down");
        expect(labMountLines(hostMountinfo())).toEqual([]);
        netnsDirBefore = fs.existsSync("/run/netns");
        netnsMountedBefore = mountPoints(fs.readFileSync("/proc/self/mountinfo", "utf8")).includes("/run/netns");
        const [, upSeconds] = await timed(() => labOk("up", "2"));
        timings["up 2 (cold)"] = upSeconds;
        boxes = (JSON.parse(await labOk("env")) as { boxes: LabBoxEngine[] }).boxes;
    });

    afterAll(async () => {
        if (!labIsDown) await lab("down");
        console.log("lab timings (s):", JSON.stringify(timings));
    });

    it("env describes box1 and box2 with the lab keys and the pinned host key", async () => {
        expect(boxes.map((b) => b.name)).toEqual(["box1", "box2"]);
        const hostPub = fs.readFileSync(path.join(repo, "lab/keys/ssh_host_ed25519_key.pub"), "utf8").trim().split(/\s+/);
        boxes.forEach((box, k) => {
            const i = k + 1;
            expect(box.host).toBe(`198.18.${i}.2`);
            expect(box.port).toBe(22);
            expect(box.user).toBe("root");
            expect(box.hostKey).toBe(`${hostPub[0]} ${hostPub[1]}`);
            expect(box.disk).toBe("/mnt/usbdisk");
            expect(box.lower).toBe("/mnt/usbdisk/static_cache");
            expect(box.privateKeyPath.startsWith(stateDir + "/")).toBe(true);
            expect(fs.statSync(box.privateKeyPath).mode & 0o777).toBe(0o600);
            expect(fs.readFileSync(box.privateKeyPath, "utf8")).toBe(
                fs.readFileSync(path.join(repo, "lab/keys/id_ed25519"), "utf8"),
            );
            const knownHosts = fs.readFileSync(box.knownHostsPath, "utf8");
            expect(knownHosts).toContain(`${box.host} ${box.hostKey}\n`);
        });
        // host side of each veth on this machine
        const links = linkNames();
        expect(links).toContain("of-h1");
        expect(links).toContain("of-h2");
        expect(netnsNames()).toEqual(expect.arrayContaining(["of-box1", "of-box2"]));
    });

    it("each box answers over SSH, checked against the pinned host key, as box<i>", async () => {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lab-test-"));
        try {
            for (const [k, box] of boxes.entries()) {
                // a known_hosts holding only env's hostKey: proves hostKey is the key the box presents
                const pinned = path.join(tmp, `known_hosts.${box.name}`);
                fs.writeFileSync(pinned, `${box.host} ${box.hostKey}\n`);
                const r = await ssh(box, "hostname; cat /proc/sys/kernel/hostname; ip -4 -o addr show", { knownHosts: pinned });
                expect(r.code, r.stderr).toBe(0);
                const [h1, h2] = r.stdout.split("\n");
                expect(h1).toBe(`box${k + 1}`);
                expect(h2).toBe(`box${k + 1}`);
                expect(r.stdout).toContain(`inet ${box.host}/24`);
                expect(r.stdout).not.toContain(`inet ${boxes[(k + 1) % boxes.length].host}/`);
                // `lab ssh` reaches the same box
                expect((await labOk("ssh", box.name, "hostname")).trim()).toBe(box.name);
            }
            expect(os.hostname()).toBe(hostnameBefore);

            // The pin is real: a different host key is refused, and so is a different client key.
            spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(tmp, "other")]);
            const otherPub = fs.readFileSync(path.join(tmp, "other.pub"), "utf8").trim().split(/\s+/);
            const wrongHosts = path.join(tmp, "known_hosts.wrong");
            fs.writeFileSync(wrongHosts, `${boxes[0].host} ${otherPub[0]} ${otherPub[1]}\n`);
            const badHost = await ssh(boxes[0], "true", { knownHosts: wrongHosts });
            expect(badHost.code).toBe(255);
            expect(badHost.stderr).toMatch(/host key|HOST IDENTIFICATION HAS CHANGED/i);
            const badKey = await ssh(boxes[0], "true", { key: path.join(tmp, "other") });
            expect(badKey.code).toBe(255);
            expect(badKey.stderr).toMatch(/Permission denied/);
        } finally {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    });

    it("/mnt/usbdisk is a separate ext4 mount in each box, holding the lower cache, absent on the machine", async () => {
        const sources = new Set<string>();
        for (const box of boxes) {
            const out = (await sshOk(box, "findmnt -n -o FSTYPE,SOURCE /mnt/usbdisk; stat -c %d / /mnt/usbdisk")).trim().split("\n");
            const [fstype, source] = out[0].trim().split(/\s+/);
            expect(fstype).toBe("ext4");
            expect(source).toMatch(/^\/dev\/loop\d+$/);
            sources.add(source);
            expect(out[1]).not.toBe(out[2]); // a different filesystem from /
            const config = await sshOk(box, `cat ${box.lower}/.yfnode/config`);
            expect(config.length).toBeGreaterThan(0);
            const files = (await sshOk(box, `cd ${box.lower} && find . -type f | sort`)).trim().split("\n");
            expect(files).toContain("./.yfnode/config");
            expect(files.filter((f) => f.startsWith("./cache/")).length).toBeGreaterThanOrEqual(3);
            // the box's fstab is its own and its foreign lines verify cleanly
            const fstab = await sshOk(box, "cat /etc/fstab");
            expect(fstab).toMatch(/^#/);
            expect(fstab).toMatch(/^\S+\s+\/\s+\S+\s+\S+\s+0\s+1$/m);
            expect(fstab).toMatch(/^tmpfs\s+\/tmp\s+tmpfs\s/m);
            expect((await ssh(box, "findmnt --verify --tab-file /etc/fstab")).code).toBe(0);
        }
        expect(sources.size).toBe(boxes.length); // each box has its own disk
        expect(mountPoints(fs.readFileSync("/proc/self/mountinfo", "utf8"))).not.toContain("/mnt/usbdisk");
    });

    it("a mount made in box1 is invisible in box2 and on the machine", async () => {
        const [box1, box2] = boxes;
        try {
            await sshOk(box1, "mkdir -p /mnt/probe && mount -t tmpfs -o size=1m labprobe /mnt/probe && echo hi >/mnt/probe/x");
            expect((await sshOk(box1, "findmnt -n -o SOURCE,FSTYPE /mnt/probe")).trim().split(/\s+/)).toEqual(["labprobe", "tmpfs"]);
            // `lab exec` enters the same mount namespace as the SSH session
            expect((await labOk("exec", "box1", "--", "cat", "/mnt/probe/x")).trim()).toBe("hi");
            expect((await labOk("exec", "box1", "--", "readlink", "/proc/self/ns/mnt")).trim()).toBe(
                (await sshOk(box1, "readlink /proc/self/ns/mnt")).trim(),
            );

            expect((await ssh(box2, "cat /proc/self/mountinfo")).stdout).not.toContain("labprobe");
            expect((await lab("exec", "box2", "--", "findmnt", "/mnt/probe")).code).not.toBe(0);
            expect((await lab("exec", "box2", "--", "cat", "/proc/self/mountinfo")).stdout).not.toContain("labprobe");
            expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain("labprobe");
            // and box2's own mounts are not visible in box1 or here either
            const box2Disk = (await sshOk(box2, "findmnt -n -o SOURCE /mnt/usbdisk")).trim();
            expect((await sshOk(box1, "findmnt -n -o SOURCE /mnt/usbdisk")).trim()).not.toBe(box2Disk);
        } finally {
            await ssh(box1, "umount /mnt/probe; rmdir /mnt/probe");
        }
    });

    it("/etc/fstab can be replaced by temp file + rename inside a box, without touching the machine's", async () => {
        const [box1, box2] = boxes;
        const before1 = await sshOk(box1, "cat /etc/fstab");
        const before2 = await sshOk(box2, "cat /etc/fstab");
        const line = "# lab-probe: written by test/lab/lab.test.ts";
        // mv within one directory is rename(2); bind-mounting a file over /etc/fstab would fail it with EBUSY
        await sshOk(box1, `set -e; cp -p /etc/fstab /etc/.fstab.tmp; printf '%s\\n' '${line}' >>/etc/.fstab.tmp; mv -f /etc/.fstab.tmp /etc/fstab`);
        const after1 = await sshOk(box1, "cat /etc/fstab");
        expect(after1).toBe(before1 + line + "\n");
        expect((await sshOk(box1, "ls -a /etc")).split("\n")).not.toContain(".fstab.tmp");
        expect(await sshOk(box2, "cat /etc/fstab")).toBe(before2);
        expect(fs.readFileSync(hostFstabPath).equals(hostFstabBefore)).toBe(true);
        const statNow = fs.statSync(hostFstabPath);
        expect(statNow.ino).toBe(hostFstabStatBefore.ino);
        expect(statNow.mtimeMs).toBe(hostFstabStatBefore.mtimeMs);
        expect(fs.existsSync("/etc/.fstab.tmp")).toBe(false);
        // a second rename works too (no leftover busy state), then restore
        await sshOk(box1, `set -e; printf '%s' '${before1.replace(/'/g, "'\\''")}' >/etc/.fstab.tmp; mv -f /etc/.fstab.tmp /etc/fstab`);
        expect(await sshOk(box1, "cat /etc/fstab")).toBe(before1);
    });

    it("up is idempotent: a second `up 2` changes nothing", async () => {
        const before = await statusRows();
        const mntBefore = await Promise.all(boxes.map(async (b) => (await labOk("exec", b.name, "--", "readlink", "/proc/self/ns/mnt")).trim()));
        await sshOk(boxes[0], "mkdir -p /mnt/labkeep && mount -t tmpfs -o size=1m labkeep /mnt/labkeep");
        const [, seconds] = await timed(() => labOk("up", "2"));
        timings["up 2 (already up)"] = seconds;
        const after = await statusRows();
        expect([...after.keys()]).toEqual(["box1", "box2"]);
        for (const name of ["box1", "box2"]) {
            expect(after.get(name)?.state).toBe("up");
            expect(after.get(name)?.anchor).toBe(before.get(name)?.anchor);
            expect(after.get(name)?.sshd).toBe(before.get(name)?.sshd);
        }
        expect(await Promise.all(boxes.map(async (b) => (await labOk("exec", b.name, "--", "readlink", "/proc/self/ns/mnt")).trim()))).toEqual(mntBefore);
        expect((await sshOk(boxes[0], "findmnt -n -o SOURCE /mnt/labkeep")).trim()).toBe("labkeep");
    });

    it("stop-sshd drops connections but keeps the box; start-sshd brings SSH back to the same namespaces", async () => {
        const [box1, box2] = boxes;
        await sshOk(box1, "echo marker >/tmp/labkeep-marker && echo disk >/mnt/usbdisk/labkeep-file");
        const mntNs = (await labOk("exec", "box1", "--", "readlink", "/proc/self/ns/mnt")).trim();

        // a session in flight, like a deploy step
        const session = spawn("ssh", [...sshArgs(box1), "touch /tmp/labkeep-session; sleep 60; echo finished"], {
            stdio: ["ignore", "pipe", "pipe"],
        });
        let sessionOut = "";
        session.stdout.on("data", (d) => (sessionOut += d));
        const sessionExit = new Promise<number>((resolve) => session.on("exit", (code) => resolve(code ?? -1)));
        try {
            for (let k = 0; k < 100 && (await lab("exec", "box1", "--", "test", "-e", "/tmp/labkeep-session")).code !== 0; k++) {
                await sleep(200);
            }
            expect((await lab("exec", "box1", "--", "test", "-e", "/tmp/labkeep-session")).code).toBe(0);

            const [, stopSeconds] = await timed(() => labOk("stop-sshd", "box1"));
            timings["stop-sshd"] = stopSeconds;
            const code = await Promise.race([sessionExit, sleep(20_000).then(() => "still running")]);
            expect(code).not.toBe("still running");
            expect(code).not.toBe(0);
            expect(sessionOut).not.toContain("finished");
        } finally {
            if (session.exitCode === null && session.signalCode === null) session.kill("SIGKILL");
        }

        expect((await ssh(box1, "true")).code).toBe(255);
        expect((await sshOk(box2, "hostname")).trim()).toBe("box2");
        expect((await statusRows()).get("box1")?.state).toBe("no-ssh");
        // the box is intact without sshd
        expect((await labOk("exec", "box1", "--", "readlink", "/proc/self/ns/mnt")).trim()).toBe(mntNs);
        expect((await labOk("exec", "box1", "--", "findmnt", "-n", "-o", "FSTYPE", "/mnt/usbdisk")).trim()).toBe("ext4");
        expect((await labOk("exec", "box1", "--", "findmnt", "-n", "-o", "SOURCE", "/mnt/labkeep")).trim()).toBe("labkeep");
        expect((await labOk("exec", "box1", "--", "cat", "/tmp/labkeep-marker")).trim()).toBe("marker");

        const [, startSeconds] = await timed(() => labOk("start-sshd", "box1"));
        timings["start-sshd"] = startSeconds;
        expect((await sshOk(box1, "readlink /proc/self/ns/mnt")).trim()).toBe(mntNs);
        expect((await sshOk(box1, "hostname")).trim()).toBe("box1");
        expect((await sshOk(box1, "findmnt -n -o SOURCE /mnt/labkeep")).trim()).toBe("labkeep");
        expect((await sshOk(box1, "cat /mnt/usbdisk/labkeep-file /tmp/labkeep-marker")).trim()).toBe("disk\nmarker");
        // start-sshd on a running sshd is a no-op
        const sshdPid = (await statusRows()).get("box1")?.sshd;
        await labOk("start-sshd", "box1");
        expect((await statusRows()).get("box1")?.sshd).toBe(sshdPid);
        await sshOk(box1, "umount /mnt/labkeep && rmdir /mnt/labkeep");
    });


    it("each box runs its own engine: docker20 (API 1.41) on box1, docker29 (API >= 1.44) on box2", async () => {
        const [box1, box2] = boxes;
        expect(box1.engine).toBe("docker20");
        expect(box1.apiVersion).toBe("1.41");
        expect(box2.engine).toBe("docker29");
        expect(apiAtLeast(box2.apiVersion ?? "0.0", "1.44")).toBe(true);
        expect(await apiOverSsh(box1)).toBe("1.41");
        expect(apiAtLeast(await apiOverSsh(box2), "1.44")).toBe(true);
        // the CLI on PATH (both usual places) matches the engine
        for (const bin of ["/usr/bin/docker", "/usr/local/bin/docker"]) {
            expect((await sshOk(box1, `${bin} version --format '{{.Client.Version}}'`)).trim()).toMatch(/^20\.10\./);
            expect(Number((await sshOk(box2, `${bin} version --format '{{.Client.Version}}'`)).trim().split(".")[0])).toBeGreaterThanOrEqual(25);
        }
        const rows = await statusRows();
        expect(rows.get("box1")).toMatchObject({ state: "up", engine: "docker20", api: "1.41" });
        expect(rows.get("box2")).toMatchObject({ state: "up", engine: "docker29", api: box2.apiVersion });
        for (const box of boxes) {
            // the socket is the box's own (its private /run), the data is on the machine's disk
            expect(box.dockerHost).toBe("unix:///run/docker.sock");
            expect((await sshOk(box, "test -S /run/docker.sock && findmnt -n -o FSTYPE /run")).trim()).toBe("tmpfs");
            const dataIno = fs.statSync(path.join(box.dataDir, "docker")).ino;
            expect((await sshOk(box, "stat -c %i /var/lib/docker")).trim()).toBe(String(dataIno));
            expect(box.dataDir.startsWith("/run/") || box.dataDir.startsWith("/tmp/")).toBe(false);
            // cgroup v1 hierarchies inside the box, and the engine's cgroup parent
            expect((await sshOk(box, "docker info --format '{{.CgroupDriver}} {{.CgroupVersion}}'")).trim()).toBe("cgroupfs 1");
        }
        // the two engines are different processes, one per box, in the boxes' namespaces
        const dockerds = pidsNamed("dockerd");
        const ours = dockerds.filter((p) => processesInBoxes().includes(p));
        expect(ours.length).toBe(2);
    });

    it("lab-image.sh writes the same docker-save archive every time, without an engine", async () => {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lab-image-"));
        try {
            const hashes: string[] = [];
            for (const name of ["a.tar", "b.tar"]) {
                const r = await run("bash", [imageScript, path.join(tmp, name)]);
                expect(r.code, r.stderr).toBe(0);
                hashes.push(runSync("sha256sum", [path.join(tmp, name)]).stdout.split(" ")[0]);
                await sleep(1100); // a different second: mtimes must not leak in
            }
            expect(hashes[0]).toMatch(/^[0-9a-f]{64}$/);
            expect(hashes[1]).toBe(hashes[0]);
            const entries = runSync("tar", ["tf", path.join(tmp, "a.tar")]).stdout.trim().split("\n");
            expect(entries).toContain("manifest.json");
            expect(entries.filter((e) => /^[0-9a-f]{64}\.json$/.test(e)).length).toBe(1);
            expect(entries.filter((e) => /^[0-9a-f]{64}\/layer\.tar$/.test(e)).length).toBe(1);
            const manifest = JSON.parse(runSync("tar", ["xOf", path.join(tmp, "a.tar"), "manifest.json"]).stdout);
            expect(manifest[0].RepoTags).toEqual(["overlay-fleet/cache-node:lab"]);
        } finally {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    });

    it("a macvlan container keeps its IP and MAC, serves the lower, and comes back after stop-engine/start-engine", async () => {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lab-image-"));
        try {
            const image = path.join(tmp, "cache-node.tar");
            const built = await run("bash", [imageScript, image]);
            expect(built.code, built.stderr).toBe(0);
            for (const [k, box] of boxes.entries()) {
                const i = k + 1;
                const ip = `198.18.${i}.101`;
                const mac = `02:0f:00:00:0${i}:01`;
                // the machine's /tmp is not the box's: stream the archive in
                const load = await run("bash", ["-c", `bash "$1" exec "$2" -- docker load <"$3"`, "load", labScript, box.name, image]);
                expect(load.code, load.stderr).toBe(0);
                expect(load.stdout).toContain("overlay-fleet/cache-node:lab");
                // the identity recipe: the box's own CLI, per-container IP and MAC on a macvlan network
                await sshOk(box, [
                    `docker network create -d macvlan --subnet 198.18.${i}.0/24 --gateway 198.18.${i}.1 -o parent=of-b${i} macnet >/dev/null`,
                    `docker run -d --name t1 --network macnet --ip ${ip} --mac-address ${mac} --hostname h1 --restart always`
                        + ` --mount type=bind,src=${box.lower},dst=/mnts overlay-fleet/cache-node:lab >/dev/null`,
                ].join(" && "));
                const macOf = async () =>
                    (await sshOk(box, "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.MacAddress}}{{end}}' t1")).trim();
                const served = async () => {
                    const r = await run("curl", ["-s", "-m", "5", `http://${ip}/README.txt`]);
                    return r.code === 0 ? r.stdout : `curl exit ${r.code}`;
                };
                const readme = await sshOk(box, `cat ${box.lower}/README.txt`);
                expect(await macOf()).toBe(`${ip} ${mac}`);
                expect(await served()).toBe(readme);
                expect(runSync("ip", ["neigh", "show", "dev", `of-h${i}`]).stdout).toContain(`${ip} lladdr ${mac} `);
                expect((await sshOk(box, "docker inspect -f '{{.State.Running}}' t1")).trim()).toBe("true");
                const ctrPid = Number((await sshOk(box, "docker inspect -f '{{.State.Pid}}' t1")).trim());
                expect(isAlive(ctrPid)).toBe(true);

                const [, stopSeconds] = await timed(() => labOk("stop-engine", box.name));
                timings[`stop-engine ${box.name}`] = stopSeconds;
                expect(isAlive(ctrPid)).toBe(false);
                expect((await ssh(box, "docker version --format '{{.Server.APIVersion}}'")).code).not.toBe(0);
                expect((await statusRows()).get(box.name)?.state).toBe("no-engine");
                expect((await lab("status")).code).not.toBe(0);

                const [, startSeconds] = await timed(() => labOk("start-engine", box.name));
                timings[`start-engine ${box.name}`] = startSeconds;
                let running = "";
                for (let n = 0; n < 50 && running !== "true"; n++) {
                    running = (await sshOk(box, "docker inspect -f '{{.State.Running}}' t1")).trim();
                    if (running !== "true") await sleep(200);
                }
                expect(running).toBe("true");
                expect(await macOf()).toBe(`${ip} ${mac}`);
                runSync("ip", ["neigh", "flush", "dev", `of-h${i}`]);
                expect(await served()).toBe(readme);
                expect(runSync("ip", ["neigh", "show", "dev", `of-h${i}`]).stdout).toContain(`${ip} lladdr ${mac} `);
                expect((await statusRows()).get(box.name)?.state).toBe("up");
                // start-engine on a running engine is a no-op
                const dockerd = processesInBoxes().filter((p) => pidsNamed("dockerd").includes(p));
                await labOk("start-engine", box.name);
                expect(processesInBoxes().filter((p) => pidsNamed("dockerd").includes(p))).toEqual(dockerd);
                await sshOk(box, "docker rm -f t1 >/dev/null && docker network rm macnet >/dev/null");
            }
        } finally {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    });

    it("up repairs a box whose anchor died and leaves the healthy box alone", async () => {
        const rows = await statusRows();
        const box1Mnt = (await labOk("exec", "box1", "--", "readlink", "/proc/self/ns/mnt")).trim();
        // A mount only the old box2 namespace has: namespace inode numbers can be reused by the
        // kernel once freed, so the marker, not the inode, shows that box2 was recreated.
        await labOk("exec", "box2", "--", "sh", "-c", "mkdir -p /mnt/old-box2 && mount -t tmpfs old-box2 /mnt/old-box2");
        const anchor2 = Number(rows.get("box2")?.anchor);
        expect(anchor2).toBeGreaterThan(0);
        process.kill(anchor2, "SIGKILL");
        expect((await lab("status")).code).not.toBe(0);
        const [, seconds] = await timed(() => labOk("up", "2"));
        timings["up 2 (repair box2)"] = seconds;
        const after = await statusRows();
        expect(after.get("box1")?.anchor).toBe(rows.get("box1")?.anchor);
        expect(after.get("box1")?.sshd).toBe(rows.get("box1")?.sshd);
        expect(after.get("box2")?.state).toBe("up");
        expect(after.get("box2")?.anchor).not.toBe(String(anchor2));
        expect((await labOk("exec", "box1", "--", "readlink", "/proc/self/ns/mnt")).trim()).toBe(box1Mnt);
        expect((await labOk("exec", "box2", "--", "sh", "-c", "findmnt -n /mnt/old-box2 || echo gone")).trim()).toBe("gone");
        expect((await sshOk(boxes[1], "hostname; findmnt -n -o FSTYPE /mnt/usbdisk")).trim()).toBe("box2\next4");
        expect((await lab("status")).code).toBe(0);
    });

    it("down removes namespaces, links, mounts, loop devices, processes and state", async () => {
        const labPids = processesInBoxes();
        expect(labPids.length).toBeGreaterThanOrEqual(4); // two anchors, two sshds at least
        const images = loopBackingFiles().filter((f) => f.includes("overlay-fleet-lab"));
        expect(images.length).toBe(2);
        const enginePids = ["dockerd", "containerd", "containerd-shim-runc-v2"].flatMap(pidsNamed).filter((p) => labPids.includes(p));
        expect(enginePids.length).toBeGreaterThanOrEqual(4); // dockerd and containerd in each box
        const dataDirs = boxes.map((b) => b.dataDir);
        for (const d of dataDirs) expect(fs.existsSync(d)).toBe(true);
        const cgroupDirs = cgroupMounts().flatMap((m) => boxes.map((b) => path.join(m, b.cgroupParent)));
        expect(cgroupDirs.filter((d) => fs.existsSync(d)).length).toBeGreaterThan(0);

        const [, seconds] = await timed(() => labOk("down"));
        timings["down"] = seconds;
        labIsDown = true;

        expect(netnsNames().filter((n) => n.startsWith("of-box"))).toEqual([]);
        expect(linkNames().filter((n) => /^of-[hb]\d+$/.test(n))).toEqual([]);
        expect(labMountLines(hostMountinfo())).toEqual([]);
        // `ip netns add` bind-mounts /run/netns on itself; down undoes that unless others use it now
        const otherNetns = fs.existsSync("/run/netns") && fs.readdirSync("/run/netns").length > 0;
        if (!otherNetns) {
            expect(fs.existsSync("/run/netns")).toBe(netnsDirBefore);
            expect(mountPoints(fs.readFileSync("/proc/self/mountinfo", "utf8")).includes("/run/netns")).toBe(netnsMountedBefore);
        }
        expect(loopBackingFiles().filter((f) => f.includes("overlay-fleet-lab"))).toEqual([]);
        for (const image of images) expect(fs.existsSync(image.replace(/ \(deleted\)$/, ""))).toBe(false);
        expect(labPids.filter(isAlive)).toEqual([]);
        expect(enginePids.filter(isAlive)).toEqual([]);
        // no engine process of the lab anywhere, no cgroup of a box, no engine data
        const cgroupLeft = cgroupMounts().flatMap((m) => fs.readdirSync(m).filter((n) => /^of-lab-box\d+$/.test(n)).map((n) => path.join(m, n)));
        expect(cgroupLeft).toEqual([]);
        for (const d of cgroupDirs) expect(fs.existsSync(d)).toBe(false);
        for (const d of dataDirs) expect(fs.existsSync(d)).toBe(false);
        expect(pidsWithCmdlineContaining("--cgroup-parent /of-lab-box")).toEqual([]);
        expect(pidsWithCmdlineContaining(stateDir + "/")).toEqual([]);
        expect(fs.existsSync(stateDir)).toBe(false);
        expect(fs.readFileSync(hostFstabPath).equals(hostFstabBefore)).toBe(true);
        expect(os.hostname()).toBe(hostnameBefore);

        // idempotent, and the lab reports itself as down
        const [, again] = await timed(() => labOk("down"));
        timings["down (already down)"] = again;
        expect((await lab("status")).code).not.toBe(0);
        expect((await lab("env")).code).not.toBe(0);
    });
});
