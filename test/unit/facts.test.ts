/**
 * Facts shared by the TypeScript and the host scripts have one owner, model/constants.ts: they
 * reach a box in the facts preamble of every host script (components/hostScripts.ts), and no host
 * file writes one of them itself.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { hostFacts, hostInvocation, hostScript, hostScriptDir, hostScriptNames } from "../../components/hostScripts";
import { boxClaimFile, boxLabel, boxPlanDir, generationSuffix, instanceLabel, maxGeneration, maxMountDataLength, pinnedMountOptions } from "../../model/constants";
import { lowerForGeneration } from "../../model/plan";
import { testTempDir } from "./tempDirs";

/** Every host file's code lines (comments dropped: they may describe a fact in words). */
function hostCode(): Array<{ file: string; line: number; text: string }> {
    const files = [
        ...fs.readdirSync(hostScriptDir).filter((f) => f.endsWith(".sh")),
        ...fs.readdirSync(path.join(hostScriptDir, "foldtool")).filter((f) => f.endsWith(".go")).map((f) => path.join("foldtool", f)),
    ];
    return files.flatMap((file) =>
        fs
            .readFileSync(path.join(hostScriptDir, file), "utf8")
            .split("\n")
            .map((text, i) => ({ file, line: i + 1, text: text.replace(/^\s*(#|\/\/).*$/, "") }))
            .filter(({ text }) => text.trim() !== ""),
    );
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const pinnedOption = `(${pinnedMountOptions.map(escape).join("|")})`;

/** A host file that writes a fact's value itself, by pattern. */
const hardCoded: Array<[string, RegExp]> = [
    // two pinned options in a row: a copy of the pinned list (single options are overlay vocabulary)
    ["the pinned mount options", new RegExp(`${pinnedOption},${pinnedOption}`)],
    ["the mount data limit", new RegExp(`\\b${maxMountDataLength}\\b`)],
    ["the generation limit", new RegExp(`\\b${maxGeneration}\\b`)],
    ["the claim file", new RegExp(escape(boxClaimFile))],
    // `L.g5`, `"$L".g*`, `$L.g$n`: a generation path spelled out
    ["the generation suffix", new RegExp(`(["}\\w])${escape(generationSuffix)}(\\[|\\$|\\*|\\d|")`)],
];

describe("facts shared by TypeScript and the host scripts", () => {
    it("are defined once, in model/constants.ts, and handed to every host script", () => {
        expect(hostFacts).toEqual({
            OF_PINNED_OPTIONS: pinnedMountOptions.join(","),
            OF_MAX_MOUNT_DATA: String(maxMountDataLength),
            OF_GENERATION_SUFFIX: generationSuffix,
            OF_MAX_GENERATION: String(maxGeneration),
            OF_PLAN_DIR: boxPlanDir,
            OF_CLAIM_FILE: boxClaimFile,
            OF_INSTANCE_LABEL: instanceLabel,
            OF_BOX_LABEL: boxLabel,
        });
        for (const name of hostScriptNames) {
            const bundle = hostScript(name);
            for (const [variable, value] of Object.entries(hostFacts)) {
                expect(bundle.startsWith("#") && bundle.includes(`\n${variable}='${value}'\n`), `${name}: ${variable}`).toBe(true);
            }
        }
    });

    it("are not written into any host file", () => {
        const found = hostCode().flatMap(({ file, line, text }) =>
            hardCoded.filter(([, pattern]) => pattern.test(text)).map(([fact]) => `host/${file}:${line} hard-codes ${fact}: ${text.trim()}`),
        );
        expect(found).toEqual([]);
    });

    it("are read under the names the preamble gives them (a misspelt one would fail only on a box)", () => {
        const code = hostCode().map(({ text }) => text).join("\n");
        const factLike = new Set([...code.matchAll(/\b(OF_(?:PINNED|MAX|GENERATION|PLAN|CLAIM|INSTANCE_LABEL|BOX_LABEL)[A-Z_]*)/g)].map((m) => m[1]));
        expect([...factLike].filter((name) => !(name in hostFacts))).toEqual([]);
        expect([...factLike].sort()).toEqual(Object.keys(hostFacts).sort());
    });

    it("catch a hard-coded copy (the check itself can fail)", () => {
        const samples = ["pinned=index=off,nfs_export=off", 'if [ "$n" -gt 4095 ]; then', "[ \"$g\" -le 9999 ]", 'for d in "$L".g*; do', "FOLD_GP=$1.g$2"];
        expect(samples.map((s) => hardCoded.some(([, p]) => p.test(s)))).toEqual(samples.map(() => true));
    });

    it("mean the same on the box: the generation limit and the generation path", () => {
        const fstab = path.join(testTempDir("overlay-fleet-facts-"), "fstab");
        fs.writeFileSync(fstab, "");
        const gc = (generation: string) =>
            spawnSync("sh", ["-c", hostInvocation("gc", ["/nonexistent/cache", generation, fstab])], { encoding: "utf8" });
        const over = gc(String(maxGeneration + 1));
        expect(over.status).toBe(2);
        expect(over.stderr).toContain(`must be a whole number 1..${maxGeneration}, got '${maxGeneration + 1}'`);
        // The highest generation passes the check; the box then looks for the path the plan names.
        const top = gc(String(maxGeneration));
        expect(top.status).toBe(1);
        expect(top.stderr).toContain(`('${lowerForGeneration("/nonexistent/cache", maxGeneration)}') does not exist`);
    });
});
