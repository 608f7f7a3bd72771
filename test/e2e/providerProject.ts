/**
 * What the end-to-end tests of the overlay-fleet provider share: where the provider installs its
 * box agent, and a Pulumi project of the test's own (its program in a temp dir, a
 * file backend, the provider loaded from provider/bin through `plugins.providers`, the SDK from
 * sdk/nodejs), driven by the real CLI. Its stack config holds the test's values under `test:`.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { repo, run, RunResult } from "./engine";

/** The provider binary the toolchain builds (tools/toolchain.sh). */
export const providerBin = path.join(repo, "provider", "bin", "pulumi-resource-overlay-fleet");

/** Where the provider installs its box agent on a box (provider/pkg/provider/agent_install.go AgentDir). */
export const agentDir = "/var/lib/overlay-fleet/agent";

export interface StateResource {
    urn: string;
    id?: string;
    outputs?: Record<string, unknown>;
}

/** A Pulumi project of one test file: `program` is its index.ts. */
export class ProviderProject {
    readonly dir: string;
    readonly env: NodeJS.ProcessEnv;

    constructor(
        readonly name: string,
        readonly stack: string,
        program: string,
    ) {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `overlay-fleet-e2e-${name}-`));
        fs.cpSync(path.join(repo, "sdk"), path.join(this.dir, "sdk"), { recursive: true });
        fs.symlinkSync(path.join(repo, "node_modules"), path.join(this.dir, "node_modules"));
        fs.copyFileSync(path.join(repo, "tsconfig.json"), path.join(this.dir, "tsconfig.json"));
        fs.writeFileSync(path.join(this.dir, "index.ts"), program);
        fs.writeFileSync(path.join(this.dir, "package.json"), JSON.stringify({ name, private: true, main: "index.ts" }));
        fs.writeFileSync(
            path.join(this.dir, "Pulumi.yaml"),
            [`name: ${name}`, "runtime:", "  name: nodejs", "  options:", "    typescript: true", "plugins:", "  providers:", "    - name: overlay-fleet", `      path: ${path.dirname(providerBin)}`, ""].join(
                "\n",
            ),
        );
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

    pulumi(args: string[], input?: string): Promise<RunResult> {
        return run("pulumi", [...args, "--stack", this.stack, "--non-interactive"], { cwd: this.dir, env: this.env, input });
    }

    async pulumiOk(args: string[], input?: string): Promise<string> {
        const r = await this.pulumi(args, input);
        if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (${r.status}):\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
        return r.stdout;
    }

    /** Creates the stack with the lab's private key as the secret `test:privateKey`. */
    async init(privateKeyPath: string): Promise<void> {
        await this.pulumiOk(["stack", "init"]);
        await this.pulumiOk(["config", "set", "--secret", "test:privateKey"], fs.readFileSync(privateKeyPath, "utf8"));
    }

    /** Sets `test:<key>` to `value` as JSON (the program reads it with requireObject). */
    async set(key: string, value: unknown): Promise<void> {
        await this.pulumiOk(["config", "set", `test:${key}`, typeof value === "string" ? value : JSON.stringify(value)]);
    }

    /**
     * The steps a preview plans, as `<op> <name>`, sorted: `same` and the stack itself left out,
     * and a replacement's halves (create-replacement, delete-replaced) too: its `replace` says it.
     */
    async planned(): Promise<string[]> {
        const out = JSON.parse(await this.pulumiOk(["preview", "--json"])) as { steps?: Array<{ op: string; urn: string }> };
        return (out.steps ?? [])
            .filter((s) => !["same", "create-replacement", "delete-replaced"].includes(s.op) && !s.urn.includes("::pulumi:pulumi:Stack::"))
            .map((s) => `${s.op} ${s.urn.split("::").pop()}`)
            .sort();
    }

    async resources(): Promise<StateResource[]> {
        return (JSON.parse(await this.pulumiOk(["stack", "export"])) as { deployment: { resources?: StateResource[] } }).deployment.resources ?? [];
    }

    /** The URN of a resource of the provider (`type` e.g. FstabEntry), or of the box's provider itself. */
    urn(type: string, name: string): string {
        return `urn:pulumi:${this.stack}::${this.name}::${type === "provider" ? "pulumi:providers:overlay-fleet" : `overlay-fleet:index:${type}`}::${name}`;
    }

    /** Destroys what is left, removes the stack and the project dir. */
    async remove(): Promise<void> {
        await this.pulumi(["destroy", "--yes", "--skip-preview"]).catch(() => undefined);
        await this.pulumi(["stack", "rm", "--yes", "--force"]).catch(() => undefined);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
