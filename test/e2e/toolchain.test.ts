/**
 * One Pulumi version: the CLI, its Node language host and the @pulumi/pulumi SDK agree, and the
 * resource plugins installed are the upstream ones at the versions the SDK packages ask for.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
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
