/**
 * The library install at the head of a box's apply (installAndRun), run by a real shell: a whole
 * library is checked and made current; a box without it (wiped, new disk) fails at once naming
 * the command that copies it again; one cut short (a copy that failed half way) is refused.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { hostLibraryCurrent, hostLibraryRoot, installAndRun } from "../../components/hostLibrary";
import { shQuote } from "../../components/hostScripts";
import { hostTestsUnavailable, stagedHostLibrary, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();
const lib = stagedHostLibrary("of-install-lib-");
const hash = () => path.basename(lib());
/** The apply's text with no call after the install, then a line that says it got there. */
const apply = () => `${installAndRun(hash(), ["urn-of-copy", "urn-of-apply"], [], new Set())}\necho "installed: $(readlink ${hostLibraryCurrent})"`;
/** The library as the copy leaves it on the box, `apply` cut to its first `cut` bytes if given. */
const copy = (cut?: number) =>
    [
        `mkdir -p ${shQuote(`${hostLibraryRoot}/${hash()}`)}`,
        ...fs.readdirSync(lib()).map((f) => {
            const [from, to] = [shQuote(path.join(lib(), f)), shQuote(`${hostLibraryRoot}/${hash()}/${f}`)];
            return f === "apply" && cut !== undefined ? `head -c ${cut} ${from} > ${to}` : `cat ${from} > ${to}`;
        }),
    ].join("\n");

describe.skipIf(unavailable)("the apply's library install", () => {
    it("checks a whole library and makes it current", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=64m,mode=0755 of-test-varlib /var/lib");
            ns.ok(copy());
            const r = ns.sh(apply());
            expect(r.stderr).toBe("");
            expect(r.stdout).toBe(`ok: host library ${hash()}\ninstalled: lib/${hash()}\n`);
            expect(r.status).toBe(0);
        });
    });

    it("a box without the library (wiped, new disk) fails at once, naming the command that copies it again", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=1m,mode=0755 of-test-varlib /var/lib");
            const r = ns.sh(apply());
            expect(r.status).toBe(1);
            expect(r.stderr).toBe(
                `overlay-fleet: host library ${hash()} is not on this box (${hostLibraryRoot}/${hash()}): copy it again with: pulumi up --replace 'urn-of-copy' --replace 'urn-of-apply' (README: A wiped box)\n`,
            );
            expect(r.stdout).toBe("");
        });
    });

    it("a library cut short (a copy that failed half way) is refused before anything runs from it", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=64m,mode=0755 of-test-varlib /var/lib");
            ns.ok(copy(1000));
            const r = ns.sh(apply());
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`overlay-fleet: host library ${hash()} on this box is incomplete`);
            expect(r.stdout).toBe("");
            expect(ns.sh(`readlink ${hostLibraryCurrent}`).status).not.toBe(0);
        });
    });
});
