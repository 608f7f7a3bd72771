/**
 * The whole project (program, components, model, ops, bench, tests) type-checks in strict mode:
 * vitest runs the tests without type checking, so a type error would otherwise reach a user's
 * `pulumi up` (or the benchmark) unseen.
 */
import { spawnSync } from "child_process";
import * as path from "path";
import { describe, expect, it } from "vitest";

const root = path.join(__dirname, "..", "..");

describe("TypeScript", () => {
    it("type-checks the whole project with tsconfig.json (strict) and reports nothing", () => {
        const tsc = require.resolve("typescript/bin/tsc", { paths: [root] });
        const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", path.join(root, "tsconfig.json")], { cwd: root, encoding: "utf8" });
        expect(r.stdout + r.stderr).toBe("");
        expect(r.status).toBe(0);
    });
});
