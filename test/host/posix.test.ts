import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { hostInvocation, hostScript, hostScriptDir, HostScriptName } from "../../components/hostScripts";

const SCRIPTS: HostScriptName[] = ["apply", "preflight", "lower", "mount", "unmount", "fstab", "status", "engine", "image", "container", "containers", "fold", "gc"];
const have = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

/** Host files not (yet) held to the unquoted-expansion check: none. */
export const UNQUOTED_EXPANSION_TODO: readonly string[] = [];

export interface UnquotedExpansion {
    line: number;
    expansion: string;
    text: string;
}

/**
 * A heuristic lint for POSIX sh: unquoted expansions ($var, ${...}, $(...), `...`) that are
 * field-split and globbed, i.e. used as (part of) a command word, a `for ... in` list, a test
 * operand or a redirection target. Not flagged: assignments (`a=$b`, also before a command), the
 * word of `case ... in`, arithmetic `$((...))`, `$#` `$?` `$$` `$!` `$-` and `${#var}` (numbers),
 * comments and here-document bodies.
 */
export function unquotedExpansions(text: string): UnquotedExpansion[] {
    const found: UnquotedExpansion[] = [];
    const lines = text.split("\n");
    // Here-document bodies are blanked out first (expansions there are never split).
    const blanked: string[] = [];
    const pending: string[] = [];
    for (const line of lines) {
        if (pending.length > 0) {
            blanked.push("");
            if (line.replace(/^\t+/, "") === pending[0]) pending.shift();
            continue;
        }
        blanked.push(line);
        const re = /<<-?\s*(['"]?)([A-Za-z_]\w*)\1/g;
        const unquoted = line.replace(/'[^']*'/g, "''");
        for (let m = re.exec(unquoted); m; m = re.exec(unquoted)) pending.push(m[2]);
    }
    const src = blanked.join("\n");
    const lineOf = (i: number) => src.slice(0, i).split("\n").length;
    const flag = (i: number, expansion: string) => found.push({ line: lineOf(i), expansion, text: lines[lineOf(i) - 1].trim() });

    type Cmd = { kind: "cmd"; words: string[]; word: string; sub: boolean };
    const stack: (Cmd | { kind: "dq" })[] = [{ kind: "cmd", words: [], word: "", sub: false }];
    const assignment = /^[A-Za-z_]\w*=/;
    const exempt = (c: Cmd) =>
        c.words[c.words.length - 1] === "case" || (assignment.test(c.word) && c.words.every((w) => assignment.test(w)));
    const keywords = new Set(["if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "fi", "done", "esac"]);
    let i = 0;
    while (i < src.length) {
        const c = stack[stack.length - 1];
        const ch = src[i];
        if (c.kind === "dq") {
            if (ch === "\\") i += 2;
            else if (ch === '"') {
                stack.pop();
                (stack[stack.length - 1] as Cmd).word += '"';
                i++;
            } else if (src.startsWith("$((", i)) i = skipArithmetic(src, i);
            else if (src.startsWith("$(", i)) {
                stack.push({ kind: "cmd", words: [], word: "", sub: true });
                i += 2;
            } else if (src.startsWith("${", i)) i = skipParameter(src, i);
            else i++;
            continue;
        }
        const endWord = () => {
            if (c.word !== "") c.words.push(c.word);
            c.word = "";
        };
        if (ch === "\\") {
            c.word += src.slice(i, i + 2);
            i += 2;
        } else if (ch === "'") {
            const j = src.indexOf("'", i + 1);
            c.word += src.slice(i, j + 1);
            i = j + 1;
        } else if (ch === '"') {
            c.word += '"';
            stack.push({ kind: "dq" });
            i++;
        } else if (ch === "#" && c.word === "") {
            const j = src.indexOf("\n", i);
            i = j < 0 ? src.length : j;
        } else if (ch === ")" && c.sub) {
            stack.pop();
            (stack[stack.length - 1] as Cmd).word += "$(...)";
            i++;
        } else if (ch === " " || ch === "\t") {
            endWord();
            i++;
        } else if ("\n;&|()<>".includes(ch)) {
            endWord();
            if (!"<>".includes(ch)) c.words = [];
            i++;
        } else if (ch === "`") {
            flag(i, "`...`");
            const j = src.indexOf("`", i + 1);
            c.word += "`...`";
            i = j < 0 ? src.length : j + 1;
        } else if (src.startsWith("$((", i)) {
            c.word += "$((...))";
            i = skipArithmetic(src, i);
        } else if (src.startsWith("$(", i)) {
            if (!exempt(c)) flag(i, "$(...)");
            stack.push({ kind: "cmd", words: [], word: "", sub: true });
            i += 2;
        } else if (ch === "$") {
            const m = src[i + 1] === "{" ? undefined : /^\$([A-Za-z_]\w*|[0-9@*#?$!-])/.exec(src.slice(i));
            const end = src[i + 1] === "{" ? skipParameter(src, i) : m ? i + m[0].length : i + 1;
            const expansion = src.slice(i, end);
            const numeric = /^\$[#?$!-]$/.test(expansion) || /^\$\{#\w+\}$/.test(expansion);
            if (expansion !== "$" && !numeric && !exempt(c)) flag(i, expansion);
            c.word += expansion;
            i = end;
        } else {
            c.word += ch;
            if (keywords.has(c.word) && /[\s;]/.test(src[i + 1] ?? "\n")) {
                c.word = "";
                c.words = [];
            }
            i++;
        }
    }
    return found;
}

/** End of the `$((...))` starting at i. */
function skipArithmetic(src: string, i: number): number {
    let depth = 0;
    for (let j = i + 1; j < src.length; j++) {
        if (src[j] === "(") depth++;
        else if (src[j] === ")" && --depth === 0) return j + 1;
    }
    return src.length;
}

/** End of the `${...}` starting at i (quotes and nested braces inside it). */
function skipParameter(src: string, i: number): number {
    let depth = 0;
    let quote = "";
    for (let j = i + 1; j < src.length; j++) {
        const ch = src[j];
        if (quote) {
            if (ch === "\\" && quote === '"') j++;
            else if (ch === quote) quote = "";
        } else if (ch === "'" || ch === '"') quote = ch;
        else if (ch === "\\") j++;
        else if (ch === "{") depth++;
        else if (ch === "}" && --depth === 0) return j + 1;
    }
    return src.length;
}

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

    it("quotes every expansion used as a word (unquoted-expansion lint), except the fold files listed as TODO", () => {
        const owned = fs
            .readdirSync(hostScriptDir)
            .filter((f) => f.endsWith(".sh") && !UNQUOTED_EXPANSION_TODO.includes(f))
            .sort();
        expect(owned).toEqual(expect.arrayContaining(["lib.sh", ...SCRIPTS.map((n) => `${n}.sh`)]));
        const bad = owned.flatMap((f) =>
            unquotedExpansions(fs.readFileSync(path.join(hostScriptDir, f), "utf8")).map((u) => `${f}:${u.line}: ${u.expansion}: ${u.text}`),
        );
        expect(bad).toEqual([]);
    });

    it("the unquoted-expansion lint flags what splits and passes what does not", () => {
        const flagged = (line: string) => unquotedExpansions(line).map((u) => u.expansion);
        expect(flagged("for x in $list; do :; done")).toEqual(["$list"]);
        expect(flagged("rm -rf -- $dir")).toEqual(["$dir"]);
        expect(flagged("[ -n $x ] && exit $rc")).toEqual(["$x", "$rc"]);
        expect(flagged('y="$(readlink -f -- $p)"')).toEqual(["$p"]);
        expect(flagged("a=$b cmd ${c%/*} >$out")).toEqual(["${c%/*}", "$out"]);
        expect(flagged("mount -o lowerdir=$l $(echo x) `echo y`")).toEqual(["$l", "$(...)", "`...`"]);
        expect(flagged("set -- $line")).toEqual(["$line"]);
        const clean = [
            'a=$b; c=${d#"$e"}; f=$(g "$h")',
            "case $a:$b in *) ;; esac",
            'n=$((n + $k)); [ "$#" -eq 2 ] && [ $(($# % 3)) -eq 0 ]',
            'printf \'%s $notvar\' "$ok" "${x:-$y}" "$@" # $comment',
            'if [ "$a" ]; then b=$c; fi',
            "cat <<EOF\n$here $doc\nEOF\necho done",
            'echo $? $$ $! ${#v}',
        ];
        for (const text of clean) expect(flagged(text), text).toEqual([]);
    });

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
        const noEval = new Set(["lib.sh", "lib-fold.sh", "lib-mount.sh", ...SCRIPTS.map((n) => `${n}.sh`)]);
        for (const f of files) {
            fs.readFileSync(path.join(hostScriptDir, f), "utf8")
                .split("\n")
                .forEach((line, i) => {
                    if (/^\s*#/.test(line)) return;
                    for (const [re, what] of rules) {
                        if (re.test(line)) bad.push(`${f}:${i + 1}: ${what}: ${line.trim()}`);
                    }
                    if (noEval.has(f) && /\beval\b/.test(line)) bad.push(`${f}:${i + 1}: eval: ${line.trim()}`);
                });
        }
        expect(bad).toEqual([]);
    });
});
