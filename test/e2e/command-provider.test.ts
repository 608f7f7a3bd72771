/**
 * The Go tests of our command provider (tools/command-provider): diff semantics, host-key
 * pinning, SSH retries against a throwaway sshd. Run here so `npm test` covers them.
 */
import { spawn } from "child_process";
import * as path from "path";
import { expect, it } from "vitest";

it("go test ./... passes for tools/command-provider", async () => {
    const dir = path.join(__dirname, "..", "..", "tools", "command-provider");
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn("go", ["test", "-count=1", "./..."], {
            cwd: dir,
            env: { ...process.env, GOFLAGS: "-mod=mod", CGO_ENABLED: "0", PATH: `/usr/local/go/bin:${process.env.PATH}` },
        });
        let output = "";
        child.stdout.on("data", (d) => (output += d));
        child.stderr.on("data", (d) => (output += d));
        child.on("close", (code) => resolve({ code, output }));
    });
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/^ok\s+overlay-fleet\/command-provider/m);
}, 600_000);
