import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { hostInvocation, hostScript, hostScriptDir, HostScriptName } from "../../components/hostScripts";

const SCRIPTS: HostScriptName[] = ["preflight", "lower", "mount", "unmount", "fstab", "status", "fold", "gc"];
const have = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

describe("host scripts are plain POSIX sh", () => {
    for (const name of SCRIPTS) {
        it(`${name}: parses with dash and bash --posix, fits in one argv string, usage error exits 2`, () => {
            const bundle = hostScript(name);
            // Sent as one argument of `sh -c`: Linux caps a single argv string at 128 KiB.
            expect(Buffer.byteLength(bundle)).toBeLessThan(128 * 1024);
            for (const sh of [["dash", "-n"], ["bash", "--posix", "-n"]]) {
                if (!have(sh[0])) continue;
                const r = spawnSync(sh[0], [...sh.slice(1), "-c", bundle]);
                expect(r.stderr.toString()).toBe("");
                expect(r.status).toBe(0);
            }
            if (have("dash")) {
                const r = spawnSync("dash", ["-c", hostInvocation(name, [])]);
                expect(r.status).toBe(2);
                expect(r.stderr.toString()).toMatch(/^overlay-fleet: usage: of-/);
                expect(r.stdout.toString()).toBe("");
            }
        });
    }

    it("uses no common bashisms and sources nothing", () => {
        const files = fs.readdirSync(hostScriptDir).filter((f) => f.endsWith(".sh"));
        const bad: string[] = [];
        const rules: [RegExp, string][] = [
            [/(^|[\s;&|(])\[\[\s/, "[["],
            [/^\s*function\s+\w+/, "function keyword"],
            [/^\s*local\s/, "local"],
            [/^\s*(source|\.)\s+\S/, "sourcing a file"],
            [/\$'/, "$'...' quoting"],
            [/<<<|&>|\|&/, "bash redirection"],
            [/\$\{[A-Za-z_]\w*\/\/?/, "${var/pattern/repl}"],
            [/\$\{[A-Za-z_]\w*:[0-9]/, "${var:offset}"],
            [/^\s*(declare|typeset|shopt|pushd|popd)\b/, "bash builtin"],
            [/\becho\s+-[neE]\b/, "echo with options"],
        ];
        // Files of this suite's scripts must not eval at all (other host files may eval names
        // they generate themselves, never arguments).
        const noEval = new Set(["lib.sh", "lib-fold.sh", ...SCRIPTS.map((n) => `${n}.sh`)]);
        // Path arguments are always quoted: an unquoted expansion is split and globbed (a fold of
        // lower `l?` once unmounted the view of a concurrent fold of `lx`).
        const unquotedArg = /^\s*(rm|rmdir|mv|cp|ln|mkdir|mount|umount|touch|chmod|chown|setfattr|getfattr|mknod|cat|find|du|df|stat)\b[^#]*\s\$[{A-Za-z_]/;
        for (const f of files) {
            fs.readFileSync(path.join(hostScriptDir, f), "utf8")
                .split("\n")
                .forEach((line, i) => {
                    if (/^\s*#/.test(line)) return;
                    for (const [re, what] of rules) {
                        if (re.test(line)) bad.push(`${f}:${i + 1}: ${what}: ${line.trim()}`);
                    }
                    if (noEval.has(f) && /\beval\b/.test(line)) bad.push(`${f}:${i + 1}: eval: ${line.trim()}`);
                    const bare = line.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, '""'); // quoted strings blanked
                    if (unquotedArg.test(bare)) bad.push(`${f}:${i + 1}: unquoted argument: ${line.trim()}`);
                    if (/^\s*for\s+\w+\s+in\s.*\$[{A-Za-z_(]/.test(bare)) bad.push(`${f}:${i + 1}: unquoted for list: ${line.trim()}`);
                });
        }
        expect(bad).toEqual([]);
    });
});
