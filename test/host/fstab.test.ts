import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { fstabOptions, hostTestsUnavailable, HostNs, managedLines, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();

/** Foreign content with comments, blank lines, odd whitespace, a line findmnt cannot parse, and no final newline. */
const FOREIGN =
    "# /etc/fstab: static file system information.\n" +
    "\n" +
    "   # an indented comment\n" +
    "UUID=0a1b2c3d-1111-2222-3333-444455556666 /               ext4    errors=remount-ro 0       1\n" +
    "/dev/sdb1\t/mnt/usbdisk\text4\tdefaults,nofail\t0\t2   \n" +
    "/srv/a\\040b /mnt/with\\040space none bind 0 0\n" +
    "\n" +
    "broken-line-without-fields\n" +
    "tmpfs /tmp/of-never-exists tmpfs defaults 0 0";

function opts(ns: HostNs, name: string): string {
    const d = ns.p("disk");
    return fstabOptions(`${d}/static_cache`, `${d}/${name}/upper`, `${d}/${name}/work`, d);
}

function ourLine(ns: HostNs, id: string, name: string, options = opts(ns, name)): string {
    return `overlay ${ns.p("disk", name, "mnts")} overlay ${options},x-overlay-fleet=${id} 0 0`;
}

/** findmnt --verify report blocks for the given targets: lines of errors and parse errors. */
function verifyProblems(ns: HostNs, file: string, targets: string[]): string[] {
    const r = ns.sh('findmnt --verify --verbose --tab-file "$1" 2>&1 || :', [file]);
    const problems: string[] = [];
    let current = "";
    const ourLines = new Set<number>();
    fs.readFileSync(file, "utf8")
        .split("\n")
        .forEach((l, idx) => {
            if (l.includes("x-overlay-fleet=")) ourLines.add(idx + 1);
        });
    for (const line of r.stdout.split("\n")) {
        const pe = line.match(/parse error at line (\d+)/);
        if (pe && ourLines.has(Number(pe[1]))) problems.push(line);
        if (!line.startsWith(" ")) {
            current = line;
            continue;
        }
        if (targets.includes(current) && line.includes("[E]")) problems.push(`${current}: ${line.trim()}`);
    }
    return problems;
}

describe.skipIf(unavailable)("host fstab", () => {
    it("sets and removes several instances in one edit; a conflict on one refuses the whole edit, naming it", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN);
            const triple = (n: number) => [`box1/ttnode${n}`, ns.p("disk", `ttnode${n}`, "mnts"), opts(ns, `ttnode${n}`)];
            let r = ns.run("fstab", ["set", fstab, ...triple(1), ...triple(2), ...triple(3)]);
            expect(r.stderr).toBe("");
            expect(r.stdout).toBe(`ok fstab set box1/ttnode1 box1/ttnode2 box1/ttnode3: written to ${fstab}\n`);
            expect(fs.readFileSync(fstab, "utf8")).toBe(`${FOREIGN}\n${[1, 2, 3].map((n) => ourLine(ns, `box1/ttnode${n}`, `ttnode${n}`)).join("\n")}\n`);
            // One edit: the backup is the content before it, not an intermediate state.
            expect(fs.readFileSync(`${fstab}.overlay-fleet.bak`, "utf8")).toBe(FOREIGN);
            // Again, with 2 changed and 4 new: 2 in place, 4 appended; the rest unchanged.
            r = ns.run("fstab", ["set", fstab, ...triple(4), "box1/ttnode2", ns.p("disk", "ttnode2", "mnts"), `${opts(ns, "ttnode2")},uuid=off`]);
            expect(r.status).toBe(0);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([
                ourLine(ns, "box1/ttnode1", "ttnode1"),
                ourLine(ns, "box1/ttnode2", "ttnode2", `${opts(ns, "ttnode2")},uuid=off`),
                ourLine(ns, "box1/ttnode3", "ttnode3"),
                ourLine(ns, "box1/ttnode4", "ttnode4"),
            ]);
            const before = fs.readFileSync(fstab, "utf8");
            // A foreign entry on the target of one: nothing is written, the message names it.
            fs.appendFileSync(fstab, `tmpfs ${ns.p("disk", "ttnode6", "mnts")} tmpfs defaults 0 0\n`);
            const withForeign = fs.readFileSync(fstab, "utf8");
            r = ns.run("fstab", ["set", fstab, ...triple(5), ...triple(6)]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`already has another entry for '${ns.p("disk", "ttnode6", "mnts")}' (line 14); refusing to add the line of box1/ttnode6`);
            expect(fs.readFileSync(fstab, "utf8")).toBe(withForeign);
            fs.writeFileSync(fstab, before);
            r = ns.run("fstab", ["remove", fstab, "box1/ttnode1", "box1/ttnode3", "box1/ttnode9"]);
            expect(r.stdout).toBe(`ok fstab remove box1/ttnode1 box1/ttnode3 box1/ttnode9: written to ${fstab}\n`);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toEqual([
                ourLine(ns, "box1/ttnode2", "ttnode2", `${opts(ns, "ttnode2")},uuid=off`),
                ourLine(ns, "box1/ttnode4", "ttnode4"),
            ]);
            // An id or a merged dir given twice is a usage error.
            expect(ns.run("fstab", ["set", fstab, ...triple(7), ...triple(7)]).status).toBe(2);
            expect(ns.run("fstab", ["remove", fstab, "box1/ttnode2", "box1/ttnode2"]).status).toBe(2);
        });
    });

    it("the edit's lock file is root's alone (0600), also one an earlier version made readable by all: no other user can hold it", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN);
            const lock = `${fstab}.overlay-fleet.lock`;
            const set = () => ns.run("fstab", ["set", fstab, "box1/ttnode1", ns.p("disk", "ttnode1", "mnts"), opts(ns, "ttnode1")]);
            expect(set().status).toBe(0);
            expect(fs.statSync(lock).mode & 0o777).toBe(0o600);
            fs.chmodSync(lock, 0o644);
            expect(set().status).toBe(0);
            expect(fs.statSync(lock).mode & 0o777).toBe(0o600);
            // So `nobody` cannot open it to take a flock (its directories open to all, as /etc is).
            fs.chmodSync(path.dirname(fstab), 0o755);
            expect(ns.sh('setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$1"', [path.dirname(fstab)]).status).toBe(0);
            expect(ns.sh('setpriv --reuid=65534 --regid=65534 --clear-groups flock -n "$1" true', [lock]).status).not.toBe(0);
        });
    });

    it("appends, replaces in place, removes; foreign lines byte for byte; backup; true no-op", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN);
            fs.chmodSync(fstab, 0o640);
            fs.chownSync(fstab, 1234, 5678);

            let r = ns.run("fstab", ["set", fstab, "box1/ttnode1", ns.p("disk", "ttnode1", "mnts"), opts(ns, "ttnode1")]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            // The missing final newline is added before our line, nothing else changes.
            expect(fs.readFileSync(fstab, "utf8")).toBe(`${FOREIGN}\n${ourLine(ns, "box1/ttnode1", "ttnode1")}\n`);
            expect(fs.readFileSync(`${fstab}.overlay-fleet.bak`, "utf8")).toBe(FOREIGN);
            const st = fs.statSync(fstab);
            expect(st.mode & 0o7777).toBe(0o640);
            expect([st.uid, st.gid]).toEqual([1234, 5678]);

            r = ns.run("fstab", ["set", fstab, "box1/ttnode2", ns.p("disk", "ttnode2", "mnts"), opts(ns, "ttnode2")]);
            expect(r.status).toBe(0);
            const two = `${FOREIGN}\n${ourLine(ns, "box1/ttnode1", "ttnode1")}\n${ourLine(ns, "box1/ttnode2", "ttnode2")}\n`;
            expect(fs.readFileSync(fstab, "utf8")).toBe(two);

            // Same again: no write at all.
            const before = fs.statSync(fstab);
            const bak = fs.statSync(`${fstab}.overlay-fleet.bak`);
            r = ns.run("fstab", ["set", fstab, "box1/ttnode1", ns.p("disk", "ttnode1", "mnts"), opts(ns, "ttnode1")]);
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(/unchanged/);
            const after = fs.statSync(fstab);
            expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
            expect(fs.statSync(`${fstab}.overlay-fleet.bak`).mtimeMs).toBe(bak.mtimeMs);
            r = ns.run("fstab", ["remove", fstab, "box1/never"]);
            expect(r.status).toBe(0);
            expect(fs.statSync(fstab).mtimeMs).toBe(before.mtimeMs);

            // New options for ttnode1: replaced at the same position.
            const newOpts = opts(ns, "ttnode1").replace("nofail", "nofail,x-systemd.device-timeout=10s");
            r = ns.run("fstab", ["set", fstab, "box1/ttnode1", ns.p("disk", "ttnode1", "mnts"), newOpts]);
            expect(r.status).toBe(0);
            expect(fs.readFileSync(fstab, "utf8")).toBe(
                `${FOREIGN}\n${ourLine(ns, "box1/ttnode1", "ttnode1", newOpts)}\n${ourLine(ns, "box1/ttnode2", "ttnode2")}\n`,
            );
            expect(fs.readFileSync(`${fstab}.overlay-fleet.bak`, "utf8")).toBe(two);

            r = ns.run("fstab", ["remove", fstab, "box1/ttnode1"]);
            expect(r.status).toBe(0);
            r = ns.run("fstab", ["remove", fstab, "box1/ttnode2"]);
            expect(r.status).toBe(0);
            expect(fs.readFileSync(fstab, "utf8")).toBe(`${FOREIGN}\n`);
            const end = fs.statSync(fstab);
            expect(end.mode & 0o7777).toBe(0o640);
            expect([end.uid, end.gid]).toEqual([1234, 5678]);
            // No temp files left beside the fstab.
            expect(fs.readdirSync(ns.dir).filter((f) => f.startsWith(".fstab"))).toEqual([]);
        });
    });

    it("collapses duplicate managed lines of one id, keeps similar ids apart, refuses a foreign entry on the same target", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            const stale = ourLine(ns, "box1/ttnode1", "ttnode1", "lowerdir=/old,upperdir=/old/u,workdir=/old/w");
            const ten = ourLine(ns, "box1/ttnode10", "ttnode10");
            fs.writeFileSync(fstab, `# head\n${stale}\n${ten}\n# middle\n${stale}\n\t${stale}\n# tail\n`);
            let r = ns.run("fstab", ["set", fstab, "box1/ttnode1", ns.p("disk", "ttnode1", "mnts"), opts(ns, "ttnode1")]);
            expect(r.status).toBe(0);
            expect(fs.readFileSync(fstab, "utf8")).toBe(`# head\n${ourLine(ns, "box1/ttnode1", "ttnode1")}\n${ten}\n# middle\n# tail\n`);

            r = ns.run("fstab", ["remove", fstab, "box1/ttnode1"]);
            expect(r.status).toBe(0);
            expect(fs.readFileSync(fstab, "utf8")).toBe(`# head\n${ten}\n# middle\n# tail\n`);

            // A foreign line already mounting something on our merged dir.
            const foreign = `/dev/sdc1 ${ns.p("disk", "ttnode3", "mnts")} ext4 defaults 0 2\n`;
            fs.appendFileSync(fstab, foreign);
            const content = fs.readFileSync(fstab, "utf8");
            r = ns.run("fstab", ["set", fstab, "box1/ttnode3", ns.p("disk", "ttnode3", "mnts"), opts(ns, "ttnode3")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/already has another entry for '.*ttnode3\/mnts'/);
            expect(fs.readFileSync(fstab, "utf8")).toBe(content);

            // The same target written with doubled and trailing slashes, after a comment naming it.
            const odd = `# ${ns.p("disk", "ttnode4", "mnts")} was here\n/dev/sdd1\t${ns.p("disk", "ttnode4", "mnts").replace("/disk/", "//disk//")}/ ext4 defaults 0 2\n`;
            fs.appendFileSync(fstab, odd);
            const lines = fs.readFileSync(fstab, "utf8").split("\n").length - 1;
            r = ns.run("fstab", ["set", fstab, "box1/ttnode4", ns.p("disk", "ttnode4", "mnts"), opts(ns, "ttnode4")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`already has another entry for '${ns.p("disk", "ttnode4", "mnts")}' (line ${lines})`);
        });
    });

    it("edits the file behind a symlinked fstab and creates a missing fstab", async () => {
        await withHostNs((ns) => {
            const real = ns.p("etc", "fstab.real");
            fs.mkdirSync(ns.p("etc"));
            fs.writeFileSync(real, "# real\n");
            fs.symlinkSync(real, ns.p("etc", "fstab"));
            let r = ns.run("fstab", ["set", ns.p("etc", "fstab"), "b/i1", ns.p("disk", "i1", "mnts"), opts(ns, "i1")]);
            expect(r.status).toBe(0);
            expect(fs.lstatSync(ns.p("etc", "fstab")).isSymbolicLink()).toBe(true);
            expect(managedLines(fs.readFileSync(real, "utf8"))).toHaveLength(1);

            const fresh = ns.p("etc", "fstab.new");
            r = ns.run("fstab", ["set", fresh, "b/i1", ns.p("disk", "i1", "mnts"), opts(ns, "i1")]);
            expect(r.status).toBe(0);
            expect(fs.readFileSync(fresh, "utf8")).toBe(`${ourLine(ns, "b/i1", "i1")}\n`);
            expect(fs.statSync(fresh).mode & 0o777).toBe(0o644);
            r = ns.run("fstab", ["remove", ns.p("etc", "absent"), "b/i1"]);
            expect(r.status).toBe(0);
            expect(fs.existsSync(ns.p("etc", "absent"))).toBe(false);
        });
    });

    it("refuses to write when findmnt --verify reports a parse error on our line (findmnt stub)", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN + "\n");
            const bin = ns.p("bin");
            fs.mkdirSync(bin);
            fs.writeFileSync(
                path.join(bin, "findmnt"),
                [
                    "#!/bin/sh",
                    'case "$*" in',
                    "  *--help*) echo ' -x, --verify  verify mount table content' ;;",
                    "  *--verify*)",
                    '    for a; do tab=$a; done',
                    "    n=$(grep -n x-overlay-fleet= \"$tab\" | cut -d: -f1)",
                    '    echo "findmnt: $tab: parse error at line $n -- ignored" >&2; exit 1 ;;',
                    '  *) exec /usr/bin/findmnt "$@" ;;',
                    "esac",
                ].join("\n") + "\n",
                { mode: 0o755 },
            );
            const r = ns.run("fstab", ["set", fstab, "box1/ttnode1", ns.p("disk", "ttnode1", "mnts"), opts(ns, "ttnode1")], {
                path: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
            });
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/^overlay-fleet: refusing to write fstab .*parse error at line 10/m);
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN + "\n");
            expect(fs.existsSync(`${fstab}.overlay-fleet.bak`)).toBe(false);
            expect(fs.readdirSync(ns.dir).filter((f) => f.startsWith(".fstab"))).toEqual([]);
        });
    });

    it("16 parallel sets on one fstab give 16 lines; 8 parallel removes leave 8 (flock)", async () => {
        await withHostNs(async (ns) => {
            await parallelSetsAndRemoves(ns, 16);
        });
    });
});

async function parallelSetsAndRemoves(ns: HostNs, n: number) {
    const fstab = ns.p("fstab");
    fs.writeFileSync(fstab, FOREIGN);
    const ids = Array.from({ length: n }, (_, k) => `box1/ttnode${k + 1}`);
    for (let k = 1; k <= n; k++) fs.mkdirSync(ns.p("disk", `ttnode${k}`, "mnts"), { recursive: true });

    const sets = await Promise.all(
        ids.map((id, k) =>
            ns.runAsync("fstab", ["set", fstab, id, ns.p("disk", `ttnode${k + 1}`, "mnts"), opts(ns, `ttnode${k + 1}`)]),
        ),
    );
    for (const r of sets) {
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
    }
    let content = fs.readFileSync(fstab, "utf8");
    expect(content.startsWith(FOREIGN + "\n")).toBe(true);
    const managed = managedLines(content);
    expect(managed).toHaveLength(n);
    expect(new Set(managed).size).toBe(n);
    for (const [k, id] of ids.entries()) {
        expect(managed).toContain(ourLine(ns, id, `ttnode${k + 1}`));
    }
    // Nothing but the foreign content and our lines.
    expect(content.slice(FOREIGN.length + 1).split("\n").filter(Boolean).sort()).toEqual([...managed].sort());
    expect(fs.existsSync(`${fstab}.overlay-fleet.bak`)).toBe(true);
    const targets = ids.map((_, k) => ns.p("disk", `ttnode${k + 1}`, "mnts"));
    expect(verifyProblems(ns, fstab, targets)).toEqual([]);

    const removed = ids.filter((_, k) => k % 2 === 0);
    const removes = await Promise.all(removed.map((id) => ns.runAsync("fstab", ["remove", fstab, id])));
    for (const r of removes) {
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
    }
    content = fs.readFileSync(fstab, "utf8");
    expect(content.startsWith(FOREIGN + "\n")).toBe(true);
    const left = managedLines(content);
    expect(left).toHaveLength(n - removed.length);
    for (const id of ids) {
        const present = left.some((l) => l.includes(`,x-overlay-fleet=${id} `));
        expect(present).toBe(!removed.includes(id));
    }
    expect(fs.readdirSync(ns.dir).filter((f) => f.startsWith(".fstab"))).toEqual([]);
}
