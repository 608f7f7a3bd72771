/**
 * The project's Go modules (the box agent, the fold helper, the provider, the test programs):
 * each is gofmt-clean, passes `go vet` and its own tests (`go test ./...`, table-driven, no root
 * needed), with the flags the toolchain builds them with.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const repo = path.resolve(__dirname, "../..");

/** Directories (relative to the repo) holding a go.mod, outside node_modules and dot dirs. */
function goModules(): string[] {
    const found: string[] = [];
    const visit = (rel: string) => {
        const dir = path.join(repo, rel);
        if (fs.existsSync(path.join(dir, "go.mod"))) found.push(rel);
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
            if (e.isDirectory() && !e.name.startsWith(".") && e.name !== "node_modules") visit(path.join(rel, e.name));
        }
    };
    visit("");
    return found.sort();
}

const goBin = fs.existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go";
const goEnv = { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=mod", GOTOOLCHAIN: "local" };

function go(dir: string, args: string[]): Promise<{ status: number | null; out: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(goBin, args, { cwd: path.join(repo, dir), env: goEnv });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        child.on("error", reject);
        child.on("close", (status) => resolve({ status, out }));
    });
}

describe("Go modules", () => {
    const modules = goModules();
    it("are where the layout puts them", () => {
        expect(modules).toEqual(["host/agent", "host/foldtool", "provider", "test/host/mmapwrite"]);
    });
    for (const dir of modules) {
        it(`${dir}: gofmt, go vet and go test pass`, async () => {
            expect(unformatted(dir)).toBe("");
            const vet = await go(dir, ["vet", "./..."]);
            expect(vet.out).toBe("");
            expect(vet.status).toBe(0);
            const test = await go(dir, ["test", "-count=1", "./..."]);
            if (test.status !== 0) throw new Error(`go test in ${dir} failed:\n${test.out}`);
        }, 900_000);
    }
});

/** Files of the module that gofmt would change (`gofmt -l`), one per line. */
function unformatted(dir: string): string {
    const gofmt = goBin === "go" ? "gofmt" : path.join(path.dirname(goBin), "gofmt");
    const r = spawnSync(gofmt, ["-l", "."], { cwd: path.join(repo, dir), encoding: "utf8" });
    if (r.error) throw r.error;
    return r.stdout;
}
