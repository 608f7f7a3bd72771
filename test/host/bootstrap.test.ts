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
    const dir = path.join(root, "agent");
    const v1 = agentOf("agent v1");
    const v2 = agentOf("agent v2");
    const table = (a: { sha: string }) => [`amd64:${a.sha}:x86_64`, `arm64:${"0".repeat(64)}:aarch64,arm64`];

    it("asks for the agent of the box's architecture, installs it checked, then names it", () => {
        expect(bootstrap("x86_64", ["probe", dir, ...table(v1)])).toEqual({ status: 0, stdout: "need=amd64\n", stderr: "" });
        expect(bootstrap("arm64", ["probe", dir, ...table(v1)]).stdout).toBe("need=arm64\n");
        const agent = `${dir}/${v1.sha}/overlay-fleet-host`;
        expect(bootstrap("x86_64", ["install", dir, "amd64", v1.sha], v1.gz)).toEqual({ status: 0, stdout: `agent=${agent}\n`, stderr: "" });
        expect(fs.readFileSync(agent)).toEqual(v1.bytes);
        expect(fs.statSync(agent).mode & 0o777).toBe(0o755);
        expect(bootstrap("x86_64", ["probe", dir, ...table(v1)]).stdout).toBe(`agent=${agent}\n`);
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
        expect(fs.readdirSync(dir)).toEqual([v1.sha]);
    });

    it("a new version replaces the old one", () => {
        expect(bootstrap("x86_64", ["install", dir, "amd64", v2.sha], v2.gz).status).toBe(0);
        expect(fs.readdirSync(dir)).toEqual([v2.sha]);
        expect(bootstrap("x86_64", ["probe", dir, ...table(v2)]).stdout).toBe(`agent=${dir}/${v2.sha}/overlay-fleet-host\n`);
    });

    it("a box of an architecture without agent, a relative dir and a bad sha256 fail naming the value", () => {
        expect(bootstrap("mips", ["probe", dir, ...table(v2)])).toEqual({
            status: 1,
            stdout: "",
            stderr: "overlay-fleet bootstrap: no box agent for this box's architecture 'mips' (uname -m)\n",
        });
        expect(bootstrap("x86_64", ["probe", "agent", ...table(v2)]).stderr).toContain("agent dir 'agent' is not an absolute path");
        expect(bootstrap("x86_64", ["install", dir, "amd64", "../x"], v2.gz).stderr).toContain("'../x' is not a sha256");
    });
});
