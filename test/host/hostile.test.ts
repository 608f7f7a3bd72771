import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { HostScriptName } from "../../components/hostScripts";
import { hostTestsUnavailable, HostNs, PINNED, Result, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();

/**
 * Values that run `touch <canary>` if any shell ever evaluates them. Those without blanks are
 * legal path names and must be used literally; the others are refused, naming the value.
 */
function hostileValues(canary: string): string[] {
    return [
        `$(touch$IFS${canary}1)`,
        `\`touch$IFS${canary}2\``,
        `x;touch$IFS${canary}3`,
        `x'$(touch$IFS${canary}4)'`,
        `x&&touch$IFS${canary}5`,
        `x|touch$IFS${canary}6>`,
        `$(touch ${canary}7)`,
        `\`touch ${canary}8\``,
        `x"; touch ${canary}9; "`,
        `x'; touch ${canary}10; '`,
        `x\ntouch ${canary}11`,
        `x\n$(touch ${canary}12)`,
        `*`,
        `-rf`,
    ];
}

function expectSafe(r: Result, value: string) {
    expect([0, 1, 2]).toContain(r.status);
    if (r.status !== 0) {
        expect(r.stderr).toMatch(/^overlay-fleet: /);
        expect(r.stderr).toContain(value);
    }
}

function noCanaries(ns: HostNs) {
    const found = ns.ok('find "$1" -name "pwned*" -print; ls -d /tmp/pwned* /pwned* 2>/dev/null || :', [ns.dir]);
    expect(found).toBe("");
}

describe.skipIf(unavailable)("host scripts with hostile values", () => {
    it("never execute arguments: paths, ids, options, container names", async () => {
        await withHostNs((ns) => {
            const canary = ns.p("pwned");
            const base = ns.p("h");
            fs.mkdirSync(base);
            const good = {
                lower: ns.p("disk", "lower"),
                upper: ns.p("disk", "i", "upper"),
                work: ns.p("disk", "i", "work"),
                merged: ns.p("disk", "i", "mnts"),
                fstab: ns.p("fstab"),
            };
            fs.mkdirSync(good.lower, { recursive: true });
            let accepted = 0;
            for (const [k, v] of hostileValues(canary).entries()) {
                const p = `${base}/${k}/${v}`;
                const run = (name: HostScriptName, args: string[], shown: string = v) => {
                    const r = ns.run(name, args);
                    expectSafe(r, shown);
                    return r;
                };
                // lower: a legal name is created literally.
                const rl = run("lower", [p, v]);
                if (rl.status === 0) {
                    accepted++;
                    expect(fs.statSync(p).isDirectory()).toBe(true);
                }
                run("preflight", [p, good.lower]);
                run("preflight", [ns.p("pf"), p]);
                // mount: the hostile value in each position.
                const i = (n: string) => ({ upper: `${p}/${n}/upper`, work: `${p}/${n}/work`, merged: `${p}/${n}/mnts` });
                const a = i("a");
                const rm = run("mount", [rl.status === 0 ? p : good.lower, a.upper, a.work, a.merged, PINNED, "-", "-"]);
                if (rm.status === 0) {
                    expect(ns.superOptions(a.merged)?.fstype).toBe("overlay");
                    expect(run("unmount", [a.merged, "purge", a.upper, a.work]).status).toBe(0);
                    expect(fs.existsSync(a.upper)).toBe(false);
                }
                run("mount", [good.lower, good.upper, good.work, good.merged, `${PINNED},${v}`, "-", "-"]);
                run("mount", [good.lower, good.upper, good.work, good.merged, PINNED, v, "-"]);
                run("mount", [good.lower, good.upper, good.work, good.merged, PINNED, "-", p]);
                run("unmount", [good.merged, "keep", p, p + "w"]);
                run("unmount", [p, "keep", good.upper, good.work]);
                run("unmount", [good.merged, v, good.upper, good.work]);
                // fstab
                run("fstab", ["set", good.fstab, `box1/${v}`, good.merged, "nofail"]);
                run("fstab", ["set", good.fstab, "box1/i", p, "nofail"]);
                run("fstab", ["set", good.fstab, "box1/i", good.merged, `nofail,${v}`]);
                run("fstab", ["set", `${p}/fstab`, "box1/i", good.merged, "nofail"]);
                run("fstab", ["remove", good.fstab, v]);
                run("fstab", [v, good.fstab, "box1/i"]);
                // status
                run("status", [good.fstab, p]);
                run("status", [good.fstab, good.lower, v, good.merged, good.upper]);
                run("status", [good.fstab, good.lower, "box1/i", p, p]);
                noCanaries(ns);
            }
            expect(accepted).toBeGreaterThanOrEqual(6); // the blank-free ones were really used
            // Whatever landed in the test fstab is still one line per entry and parseable.
            if (fs.existsSync(good.fstab)) {
                for (const line of fs.readFileSync(good.fstab, "utf8").split("\n").filter(Boolean)) {
                    expect(line.split(/\s+/)).toHaveLength(6);
                }
            }
            ns.ok('mount | grep -c overlay >/dev/null || :');
            noCanaries(ns);
            expect(fs.existsSync(path.join("/tmp", "pwned"))).toBe(false);
        });
    });
});
