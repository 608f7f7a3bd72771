/**
 * The box bootstrap (host/agent/dist/bootstrap.sh), run as the provider runs it (`sh -c <text>`)
 * with a fake `uname` first on PATH: it names the agent of the box's architecture when it is
 * there unchanged, asks for it otherwise, and installs only an agent whose sha256 is the one
 * asked for.
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { afterAll, describe, expect, it } from "vitest";
const repo = path.join(__dirname, "..", "..");

const script = fs.readFileSync(path.join(repo, "host", "agent", "dist", "bootstrap.sh"), "utf8");
const root = fs.mkdtempSync(path.join(os.tmpdir(), "of-bootstrap-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fake agent: its bytes, gzipped, and its sha256. */
function agentOf(text: string) {
    const bytes = Buffer.from(text);
    return { bytes, gz: zlib.gzipSync(bytes), sha: crypto.createHash("sha256").update(bytes).digest("hex") };
}

/** The bootstrap on a box whose `uname -m` says `machine`. */
function bootstrap(machine: string, args: string[], input?: Buffer) {
    const bin = path.join(root, `bin-${machine}`);
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "uname"), `#!/bin/sh\necho ${machine}\n`, { mode: 0o755 });
    const r = spawnSync("sh", ["-c", script, "overlay-fleet-bootstrap", ...args], { input, encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin` } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("box bootstrap", () => {
    const dir = path.join(root, "lib", "agent");
    const v1 = agentOf("agent v1");
    const v2 = agentOf("agent v2");
    const table = (a: { sha: string }) => [`amd64:${a.sha}:x86_64`, `arm64:${"0".repeat(64)}:aarch64,arm64`];
    fs.mkdirSync(path.dirname(dir), { mode: 0o755 });
    fs.chmodSync(root, 0o755);

    it("asks for the agent of the box's architecture, installs it checked, then has it", () => {
        expect(bootstrap("x86_64", ["probe", dir, ...table(v1)])).toEqual({ status: 0, stdout: "need=amd64\n", stderr: "" });
        expect(bootstrap("arm64", ["probe", dir, ...table(v1)]).stdout).toBe("need=arm64\n");
        const agent = `${dir}/${v1.sha}/overlay-fleet-host`;
        expect(bootstrap("x86_64", ["install", dir, "amd64", v1.sha], v1.gz)).toEqual({ status: 0, stdout: "have=amd64\n", stderr: "" });
        expect(fs.readFileSync(agent)).toEqual(v1.bytes);
        expect(fs.statSync(agent).mode & 0o777).toBe(0o755);
        expect(bootstrap("x86_64", ["probe", dir, ...table(v1)]).stdout).toBe("have=amd64\n");
        // Changed since: asked for again.
        fs.appendFileSync(agent, "x");
        expect(bootstrap("x86_64", ["probe", dir, ...table(v1)]).stdout).toBe("need=amd64\n");
        expect(bootstrap("x86_64", ["install", dir, "amd64", v1.sha], v1.gz).status).toBe(0);
        expect(fs.readFileSync(agent)).toEqual(v1.bytes);
    });

    it("refuses an agent that is not the one asked for, leaving what is installed and no temp file", () => {
        const r = bootstrap("x86_64", ["install", dir, "amd64", v2.sha], v1.gz);
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(`overlay-fleet bootstrap: the amd64 agent arrived with sha256 ${v1.sha}, not ${v2.sha}\n`);
        const garbage = bootstrap("x86_64", ["install", dir, "amd64", v2.sha], Buffer.from("not gzip"));
        expect(garbage.status).toBe(1);
        expect(garbage.stderr).toContain("cannot unpack the amd64 agent");
        expect(fs.readdirSync(path.join(dir, v2.sha))).toEqual([]);
        expect(fs.readFileSync(`${dir}/${v1.sha}/overlay-fleet-host`)).toEqual(v1.bytes);
    });

    it("a new version leaves the versions used within a day; it removes older ones, and only agent versions (no symlink followed)", () => {
        const outside = path.join(root, "outside");
        fs.mkdirSync(path.join(outside, "data"), { recursive: true });
        const old = "a".repeat(64);
        fs.mkdirSync(path.join(dir, old));
        fs.symlinkSync(outside, path.join(dir, "b".repeat(64)));
        fs.mkdirSync(path.join(dir, "not-a-version"));
        const dayAgo = new Date(Date.now() - 2 * 86400_000);
        for (const n of [old, v1.sha, "not-a-version"]) fs.utimesSync(path.join(dir, n), dayAgo, dayAgo);
        fs.rmSync(path.join(dir, v2.sha), { recursive: true });
        expect(bootstrap("x86_64", ["install", dir, "amd64", v2.sha], v2.gz).status).toBe(0);
        expect(fs.readdirSync(dir).sort()).toEqual(["b".repeat(64), "not-a-version", v2.sha].sort());
        expect(fs.readdirSync(path.join(outside, "data"))).toEqual([]);
        expect(fs.existsSync(path.join(outside, "data"))).toBe(true);
        expect(bootstrap("x86_64", ["probe", dir, ...table(v2)]).stdout).toBe("have=amd64\n");
    });

    it("trusts no agent dir that others can write or that is a symlink", () => {
        fs.chmodSync(dir, 0o777);
        const open = bootstrap("x86_64", ["probe", dir, ...table(v2)]);
        expect(open.status).toBe(1);
        expect(open.stderr).toContain(`${dir} must be a directory or file of uid ${process.getuid!()} that others cannot write`);
        expect(bootstrap("x86_64", ["install", dir, "amd64", v2.sha], v2.gz).status).toBe(1);
        fs.chmodSync(dir, 0o755);
        const link = path.join(root, "lib", "agent-link");
        fs.symlinkSync(dir, link);
        expect(bootstrap("x86_64", ["probe", link, ...table(v2)]).stderr).toContain(`${link} must be a directory`);
    });

    it("a box of an architecture without agent, a relative dir and a bad sha256 fail naming the value", () => {
        expect(bootstrap("mips", ["probe", dir, ...table(v2)])).toEqual({
            status: 1,
            stdout: "",
            stderr: "overlay-fleet bootstrap: no box agent for this box's architecture 'mips' (uname -m)\n",
        });
        expect(bootstrap("x86_64", ["probe", "agent", ...table(v2)]).stderr).toContain("agent dir 'agent' is not an absolute path");
        expect(bootstrap("x86_64", ["install", dir, "amd64", "../x"], v2.gz).stderr).toContain("'../x' is not a sha256");
        expect(bootstrap("x86_64", ["install", dir, "amd64", "ab"], v2.gz).stderr).toContain("'ab' is not a sha256");
    });
});
