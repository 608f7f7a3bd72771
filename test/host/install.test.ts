/**
 * The library install at the head of a box's apply (installAndRun), run by a real shell: a whole
 * library is checked and made current; a box without it (wiped, new disk) fails at once naming
 * the command that copies it again; one cut short (a copy that failed half way) is refused.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { BoxClaim, hostLibraryCurrent, hostLibraryRoot, installAndRun } from "../../components/hostLibrary";
import { boxClaimFile } from "../../model/constants";
import { claimGuard } from "../../ops/repair";
import { shQuote } from "../../components/hostScripts";
import { hostTestsUnavailable, stagedHostLibrary, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();
const lib = stagedHostLibrary("of-install-lib-");
const hash = () => path.basename(lib());
const home: BoxClaim = { box: "nas", stack: "acme/overlay-fleet/home" };
/** The apply's text with no call after the install, then a line that says it got there. */
const apply = (claim = home) => `${installAndRun(hash(), ["urn-of-copy", "urn-of-apply"], claim, [], new Set())}\necho "installed: $(readlink ${hostLibraryCurrent})"`;
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
            expect(r.stdout).toBe(`ok claim: this machine is box nas of stack acme/overlay-fleet/home\nok: host library ${hash()}\ninstalled: lib/${hash()}\n`);
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

    it("one machine belongs to one stack: another stack's box is refused, naming both, before anything changes", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=64m,mode=0755 of-test-varlib /var/lib");
            ns.ok(copy());
            expect(ns.sh(apply()).status).toBe(0);
            expect(ns.ok(`cat ${boxClaimFile}`)).toBe("acme/overlay-fleet/home nas\n");
            // Another version of the library beside it (this stack's next upgrade, or another stack's).
            ns.ok(`mkdir -p ${hostLibraryRoot}/0123456789abcdef`);
            // Another stack's box of the same name; another stack; another name of the machine in this stack.
            for (const other of [{ box: "nas", stack: "acme/overlay-fleet/test" }, { box: "box1", stack: "other/overlay-fleet/home" }, { box: "nas2", stack: "acme/overlay-fleet/home" }]) {
                const r = ns.sh(apply(other));
                expect(r.status).toBe(1);
                expect(r.stderr).toContain(
                    `overlay-fleet: this machine is box 'nas' of stack 'acme/overlay-fleet/home' (its claim: ${boxClaimFile}), not box '${other.box}' of stack '${other.stack}': one machine belongs to one box of one stack.`,
                );
                expect(r.stderr).toContain("This deployment changed nothing on the machine but its copy of the host library");
                expect(r.stdout).toBe("");
            }
            expect(ns.ok(`cat ${boxClaimFile}`)).toBe("acme/overlay-fleet/home nas\n");
            expect(ns.sh(`test -d ${hostLibraryRoot}/0123456789abcdef`).status).toBe(0);
            // Its own box goes on.
            const again = ns.sh(apply());
            expect(again.stderr).toBe("");
            expect(again.stdout).toContain("ok claim: this machine is box nas of stack acme/overlay-fleet/home\n");
        });
    });

    it("a claim that cannot be read as one box of one stack fails closed; a symlink beside it is not written through (issue 24.13)", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=64m,mode=0755 of-test-varlib /var/lib");
            ns.ok(copy());
            const victim = ns.p("victim");
            fs.writeFileSync(victim, "untouched\n");
            for (const [make, says] of [
                [`mkdir -p ${boxClaimFile}`, "is not a regular file"],
                [`mkdir -p ${path.dirname(boxClaimFile)} && : >${boxClaimFile}`, "is empty or garbled"],
                [`mkdir -p ${path.dirname(boxClaimFile)} && echo 'acme/overlay-fleet/home' >${boxClaimFile}`, "is empty or garbled"],
                [`mkdir -p ${path.dirname(boxClaimFile)} && ln -s ${shQuote(victim)} ${boxClaimFile}`, "is not a regular file"],
            ]) {
                ns.ok(`rm -rf ${boxClaimFile} && ${make}`);
                const r = ns.sh(apply());
                expect(r.status).toBe(1);
                expect(r.stderr).toContain(`overlay-fleet: the claim '${boxClaimFile}' ${says}`);
                expect(r.stdout).toBe("");
                expect(ns.sh(`readlink ${hostLibraryCurrent}`).status).not.toBe(0);
            }
            // claim.new, a symlink someone put beside the claim: the claim is written, not its target
            ns.ok(`rm -rf ${boxClaimFile} && ln -s ${shQuote(victim)} ${boxClaimFile}.new`);
            const r = ns.sh(apply());
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(fs.readFileSync(victim, "utf8")).toBe("untouched\n");
            expect(ns.ok(`cat ${boxClaimFile}`)).toBe("acme/overlay-fleet/home nas\n");
            expect(ns.sh(`test -L ${boxClaimFile}`).status).not.toBe(0);
        });
    });

    it("the box's teardown gives the claim up, once its instances are down; another box's teardown does not", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=64m,mode=0755 of-test-varlib /var/lib");
            ns.ok(copy());
            expect(ns.sh(apply()).status).toBe(0);
            // The box's one instance, its line in a test fstab (not mounted: the take-down has only the line to remove).
            // (in the test's dir, removed with it: the namespace shares the machine's /tmp)
            const d = ns.p("of-claim");
            const fstab = `${d}/fstab`;
            const line = `overlay ${d}/i1/mnts overlay lowerdir=${d}/lower,upperdir=${d}/i1/upper,workdir=${d}/i1/work,x-overlay-fleet=nas/ttnode1 0 0\n`;
            ns.ok('mkdir -p "$1/lower" "$1/i1/upper" "$1/i1/work" "$1/i1/mnts" && printf "%s" "$2" > "$1/fstab"', [d, line]);
            // As the box's teardown runs it (components/box.ts createTeardown): its stack in OF_STACK (none: an earlier version's).
            const teardown = (box: string, stack?: string) =>
                ns.sh(`${stack ? `export OF_STACK='${stack}' && ` : ""}cd ${hostLibraryCurrent} && sh apply remove "$2" "$1" keep </dev/null && sh uninstall "$2"`, [box, fstab]);
            // A box of another name (an earlier version's, or refused here): only its own lines are its.
            for (const stack of [undefined, "acme/overlay-fleet/home", "acme/overlay-fleet/test"]) {
                expect(teardown("box1", stack).status).toBe(0);
                expect(ns.ok('cat "$1"', [fstab])).toBe(line);
                expect(ns.ok(`cat ${boxClaimFile}`)).toBe("acme/overlay-fleet/home nas\n");
            }
            // Another stack's box of the same name (its apply was refused here): nothing is taken down.
            const other = teardown("nas", "acme/overlay-fleet/test");
            expect(other.status).toBe(0);
            expect(other.stderr).toBe(
                "overlay-fleet: warning: this machine is box nas of stack acme/overlay-fleet/home, not of stack acme/overlay-fleet/test: nothing taken down (were that stack this one before a rename or a move, its instances would stay: see README, One machine, one stack)\n",
            );
            expect(ns.ok('cat "$1"', [fstab])).toBe(line);
            expect(ns.ok(`cat ${boxClaimFile}`)).toBe("acme/overlay-fleet/home nas\n");
            // Nor its library, even with no instance left on the machine.
            ns.ok(': > "$1"', [fstab]);
            expect(teardown("nas", "acme/overlay-fleet/test").stdout).toContain(`host library ${hash()} kept: the machine is claimed (${boxClaimFile})`);
            expect(ns.ok(`readlink ${hostLibraryCurrent}`)).toBe(`lib/${hash()}\n`);
            ns.ok('printf "%s" "$1" > "$2"', [line, fstab]);
            const own = teardown("nas", "acme/overlay-fleet/home");
            expect(ns.ok('cat "$1"', [fstab])).toBe("");
            expect(own.stderr).toBe("");
            expect(own.status).toBe(0);
            expect(ns.sh(`test -e ${boxClaimFile}`).status).not.toBe(0);
            // ... and then its library.
            expect(own.stdout).toContain("ok fstab remove");
            expect(ns.sh(`readlink ${hostLibraryCurrent}`).status).not.toBe(0);
            // The machine is free: another stack may have it now.
            ns.ok(copy());
            expect(ns.sh(apply({ box: "box1", stack: "other/overlay-fleet/home" })).status).toBe(0);
        });
    });

    it("npm run repair changes nothing on a machine claimed for another box", async () => {
        await withHostNs((ns) => {
            ns.ok("mount -t tmpfs -o size=1m,mode=0755 of-test-varlib /var/lib");
            const run = () => ns.sh(`${claimGuard({ name: "nas", claim: "acme/overlay-fleet/home nas" })}echo ran`).stdout;
            // No claim yet (or a wiped /var/lib): the command runs.
            expect(run()).toBe("ran\n");
            ns.ok(`mkdir -p /var/lib/overlay-fleet && echo 'acme/overlay-fleet/home nas' > ${boxClaimFile}`);
            expect(run()).toBe("ran\n");
            ns.ok(`echo 'acme/overlay-fleet/test nas' > ${boxClaimFile}`);
            const refused = ns.sh(`${claimGuard({ name: "nas", claim: "acme/overlay-fleet/home nas" })}echo ran`);
            expect(refused.status).toBe(1);
            expect(refused.stdout).toBe("");
            expect(refused.stderr).toBe("overlay-fleet: the machine of nas is claimed by another box (acme/overlay-fleet/test nas: stack, box); repair changes nothing there\n");
            // A stack deployed before claims: no guard.
            expect(claimGuard({ name: "nas" })).toBe("");
        });
    });
});
