/**
 * The library install at the head of a box's apply (installAndRun): the apply starts beside the
 * library's copy (their SSH handshakes overlap), so it must wait on the box until the copy has
 * landed whole, and give up, naming the command that copies it again, when no copy comes.
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

describe.skipIf(unavailable)("the apply's library install", () => {
    it("waits while the copy is under way (a script still cut short), then activates the whole library", async () => {
        await withHostNs(async (ns) => {
            ns.ok("mount -t tmpfs -o size=64m,mode=0755 of-test-varlib /var/lib");
            const files = fs.readdirSync(lib()).sort();
            // The copy as the command plugin makes it: the directory, then one file after the other
            // (SHA256SUMS first), the apply script first cut short; about 0.6 s in all.
            const copy = [
                `mkdir -p ${shQuote(`${hostLibraryRoot}/${hash()}`)}`,
                ...files.flatMap((f) => {
                    const [from, to] = [shQuote(path.join(lib(), f)), shQuote(`${hostLibraryRoot}/${hash()}/${f}`)];
                    return f === "apply" ? [`head -c 1000 ${from} > ${to}`, "sleep 0.3", `cat ${from} > ${to}`] : [`cat ${from} > ${to}`, "sleep 0.02"];
                }),
            ].join("\n");
            const started = Date.now();
            const [installed, copied] = await Promise.all([ns.shAsync(apply()), ns.shAsync(`sleep 0.2\n${copy}\necho copied`)]);
            expect(copied.stdout).toBe("copied\n");
            expect(installed.stderr).toBe("");
            expect(installed.status).toBe(0);
            expect(installed.stdout).toBe(`ok: host library ${hash()}\ninstalled: lib/${hash()}\n`);
            expect(Date.now() - started).toBeGreaterThan(500);
        });
    });

    it("a box without the copy (wiped, a failed copy) fails after 10 s without progress, naming the command that copies it again", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=1m,mode=0755 of-test-varlib /var/lib");
            const started = Date.now();
            const r = ns.sh(apply());
            expect(r.status).toBe(1);
            expect(r.stderr).toBe(
                `overlay-fleet: host library ${hash()} is not on this box (${hostLibraryRoot}/${hash()}): copy it again with: pulumi up --replace 'urn-of-copy' --replace 'urn-of-apply' (README: A wiped box)\n`,
            );
            expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
            expect(r.stdout).toBe("");
        });
    });
});
