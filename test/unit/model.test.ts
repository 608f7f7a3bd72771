import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const modelDir = path.join(__dirname, "..", "..", "model");

/** The model files each model file imports (`import`, `import type`, `export ... from`). */
function modelImports(): Map<string, string[]> {
    const graph = new Map<string, string[]>();
    for (const file of fs.readdirSync(modelDir).filter((f) => f.endsWith(".ts"))) {
        const text = fs.readFileSync(path.join(modelDir, file), "utf8");
        const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']/gms)].map((m) => m[1]);
        const local = specifiers.filter((s) => s.startsWith("./")).map((s) => `${path.posix.basename(s)}.ts`);
        graph.set(file, [...new Set(local)]);
    }
    return graph;
}

/** A cycle in the graph as a list of files (first = last), or undefined. */
function findCycle(graph: Map<string, string[]>): string[] | undefined {
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (file: string): string[] | undefined => {
        if (state.get(file) === "open") {
            return [...stack.slice(stack.indexOf(file)), file];
        }
        if (state.get(file) === "done") {
            return undefined;
        }
        state.set(file, "open");
        stack.push(file);
        for (const next of graph.get(file) ?? []) {
            const cycle = visit(next);
            if (cycle) {
                return cycle;
            }
        }
        stack.pop();
        state.set(file, "done");
        return undefined;
    };
    for (const file of graph.keys()) {
        const cycle = visit(file);
        if (cycle) {
            return cycle;
        }
    }
    return undefined;
}

describe("model/ imports", () => {
    it("finds a cycle when there is one (the check itself)", () => {
        expect(findCycle(new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]]]))).toEqual(["a.ts", "b.ts", "c.ts", "a.ts"]);
        expect(findCycle(new Map([["a.ts", ["b.ts"]], ["b.ts", []]]))).toBeUndefined();
    });

    it("have no cycle: schema -> plan -> validate -> config, one way", () => {
        const graph = modelImports();
        expect(graph.get("plan.ts")).toContain("schema.ts");
        expect(graph.get("config.ts")).toEqual(expect.arrayContaining(["schema.ts", "plan.ts", "validate.ts"]));
        expect(findCycle(graph)).toBeUndefined();
    });

    it("stay pure: no Pulumi in model/, and nothing from outside it but packages", () => {
        for (const file of fs.readdirSync(modelDir).filter((f) => f.endsWith(".ts"))) {
            const text = fs.readFileSync(path.join(modelDir, file), "utf8");
            const specifiers = [...text.matchAll(/(?:\bfrom\s+|\brequire\(\s*|\bimport\(\s*|^\s*import\s+)["']([^"']+)["']/gm)].map((m) => m[1]);
            expect(specifiers.filter((s) => s.startsWith("@pulumi/") || s.startsWith("..")), file).toEqual([]);
        }
    });
});
