/**
 * Issue 9: defects found by the audit of the host scripts. One test per audit item (numbers in
 * the test names), each against real overlay mounts and a scratch fstab in a private namespace.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { hostInvocation } from "../../components/hostScripts";
import { fstabOptions, hostTestsUnavailable, HostNs, instancePaths, managedLines, PINNED, Result, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();

const FOREIGN = "# foreign\nUUID=0a1b2c3d-1111-2222-3333-444455556666 / ext4 errors=remount-ro 0 1\n";

function opts(ns: HostNs, name: string): string {
    const d = ns.p("disk");
    return fstabOptions(`${d}/static_cache`, `${d}/${name}/upper`, `${d}/${name}/work`, d);
}

function setArgs(ns: HostNs, fstab: string, name: string): string[] {
    return ["set", fstab, `box1/${name}`, ns.p("disk", name, "mnts"), opts(ns, name)];
}

/** Temp files of fstab edits left beside `fstab`. */
function fstabTemps(fstab: string): string[] {
    const base = path.basename(fstab);
    return fs.readdirSync(path.dirname(fstab)).filter((f) => f.startsWith(`.${base}.overlay-fleet.`));
}

/** A PATH of symlinks to every command of the machine, except `without`, plus the `extra` scripts. */
function fakePath(ns: HostNs, name: string, without: string[], extra: Record<string, string> = {}): string {
    const bin = ns.p(name);
    fs.mkdirSync(bin);
    for (const [cmd, text] of Object.entries(extra)) fs.writeFileSync(path.join(bin, cmd), text, { mode: 0o755 });
    for (const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
        if (!fs.existsSync(dir)) continue;
        for (const f of fs.readdirSync(dir)) {
            if (without.includes(f) || fs.existsSync(path.join(bin, f))) continue;
            fs.symlinkSync(path.join(dir, f), path.join(bin, f));
        }
    }
    return bin;
}

function makeLower(ns: HostNs, name = "static_cache"): string {
    const lower = ns.p("disk", name);
    fs.mkdirSync(path.join(lower, "dir"), { recursive: true });
    fs.writeFileSync(path.join(lower, "a.txt"), "lower-a\n");
    return lower;
}

type Inst = { upper: string; work: string; merged: string };
const mountArgs = (lower: string, i: Inst, options = PINNED) => [lower, i.upper, i.work, i.merged, options, "-", "-"];

function expectRefused(r: Result, status: number, message: RegExp) {
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    expect(r.status).toBe(status);
}

describe.skipIf(unavailable)("audit of the host scripts (issue 9)", () => {
    it("1: 64 managed lines in one fstab, set one by one, all succeed (findmnt --verify report parsed by stream)", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN);
            for (let k = 1; k <= 64; k++) {
                const r = ns.run("fstab", setArgs(ns, fstab, `ttnode${k}`));
                expect(`${k}: ${r.status} ${r.stderr}`).toBe(`${k}: 0 `);
            }
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toHaveLength(64);
            // And edits keep working on the full file: a change of the first and a removal.
            const changed = opts(ns, "ttnode1").replace("nofail", "nofail,x-systemd.device-timeout=10s");
            let r = ns.run("fstab", ["set", fstab, "box1/ttnode1", ns.p("disk", "ttnode1", "mnts"), changed]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            r = ns.run("fstab", ["remove", fstab, "box1/ttnode64"]);
            expect(r.status).toBe(0);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toHaveLength(63);
        });
    });

    it("2: a write failure (full filesystem) or a sync failure fails the edit and leaves the old fstab untouched", async () => {
        await withHostNs((ns) => {
            // The tmpfs exists only in the namespace: every file operation on it goes through ns.sh.
            const tiny = ns.p("tiny");
            fs.mkdirSync(tiny);
            ns.ok('mount -t tmpfs -o size=8k of-test-tiny "$1"', [tiny]);
            const fstab = path.join(tiny, "fstab");
            const state = () => ns.ok('stat -c %i "$1"; cat "$1"; echo "<end>"; ls -A "$2" | grep -v "^fstab.overlay-fleet.lock$"', [fstab, tiny]);
            for (const before of ["", FOREIGN]) {
                ns.ok('rm -f "$3/fill"; printf %s "$2" >"$1"; dd if=/dev/zero of="$3/fill" bs=1024 count=64 2>/dev/null || :', [fstab, before, tiny]);
                const was = state();
                expect(was).toContain(`${before}<end>\nfill\nfstab\n`);
                const r = ns.run("fstab", setArgs(ns, fstab, "ttnode1"));
                expect(r.stdout).toBe("");
                expect(r.stderr).toMatch(/^overlay-fleet: cannot write the temp file .*'.*tiny\/fstab' is unchanged/m);
                expect(r.status).toBe(1);
                // Same inode, same content, no temp file or backup left.
                expect(state()).toBe(was);
            }

            // sync(1) fails: nothing is renamed over the fstab.
            const plain = ns.p("fstab");
            fs.writeFileSync(plain, FOREIGN);
            const bin = fakePath(ns, "failing-sync-bin", ["sync"], {
                sync: "#!/bin/sh\necho 'sync: error syncing: Input/output error' >&2\nexit 1\n",
            });
            const r = ns.run("fstab", setArgs(ns, plain, "ttnode1"), { path: bin });
            expect(r.stderr).toMatch(/^overlay-fleet: cannot sync '.*' \(sync: error syncing: Input\/output error\); '.*fstab' is unchanged/m);
            expect(r.status).toBe(1);
            expect(fs.readFileSync(plain, "utf8")).toBe(FOREIGN);
            expect(fstabTemps(plain)).toEqual([]);
            expect(fs.existsSync(`${plain}.overlay-fleet.bak`)).toBe(false);
        });
    });

    it("3: temp files of killed edits are cleaned by the next edit (under the lock)", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN);
            const marker = ns.p("findmnt-started");
            // findmnt --verify hangs: the edit is killed (SIGKILL, no trap runs) while it holds its temp file.
            const bin = fakePath(ns, "hanging-findmnt-bin", ["findmnt"], {
                findmnt: [
                    "#!/bin/sh",
                    'case "$*" in',
                    "  *--help*) echo ' -x, --verify  verify mount table content' ;;",
                    '  *--verify*) : >"$OF_TEST_MARKER"; exec sleep 60 ;;',
                    "  *) exit 1 ;;",
                    "esac",
                ].join("\n") + "\n",
            });
            for (let k = 1; k <= 2; k++) {
                fs.rmSync(marker, { force: true });
                const inv = hostInvocation("fstab", setArgs(ns, fstab, `ttnode${k}`));
                ns.ok(
                    `setsid ${inv} & p=$!\n` +
                        'n=0; while [ ! -e "$1" ]; do n=$((n + 1)); [ "$n" -lt 200 ] || break; sleep 0.05; done\n' +
                        'kill -9 "-$p"; wait "$p" || :',
                    [marker],
                    { path: bin, env: { OF_TEST_MARKER: marker } },
                );
                expect(fs.existsSync(marker)).toBe(true);
            }
            fs.writeFileSync(`${ns.p(".fstab.overlay-fleet.AbC123")}.bak`, "stale backup copy\n");
            // (The second edit already removed the temp files of the first, under the lock; the
            // second left its temp file and the one findmnt's messages went to.)
            expect(fstabTemps(fstab)).toHaveLength(3);
            // An unrelated dot file is not touched.
            fs.writeFileSync(ns.p(".fstab.overlay-fleet.keep-me-not-a-temp"), "");
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN);

            const r = ns.run("fstab", setArgs(ns, fstab, "ttnode3"));
            expect(r.stderr).toMatch(/^overlay-fleet: warning: removed 3 stale temp files of interrupted fstab edits/m);
            expect(r.status).toBe(0);
            expect(fstabTemps(fstab)).toEqual([".fstab.overlay-fleet.keep-me-not-a-temp"]);
            expect(managedLines(fs.readFileSync(fstab, "utf8"))).toHaveLength(1);
        });
    });

    it("4: without flock(1) an edit fails naming what is missing (no mkdir lock fallback)", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN);
            const bin = fakePath(ns, "no-flock-bin", ["flock"]);
            expect(ns.sh("command -v flock", [], { path: bin }).status).not.toBe(0);
            for (const args of [setArgs(ns, fstab, "ttnode1"), ["remove", fstab, "box1/ttnode1"]]) {
                const r = ns.run("fstab", args, { path: bin });
                expectRefused(r, 1, /^overlay-fleet: flock\(1\) \(util-linux\) is required .*not found/m);
            }
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN);
            expect(fs.existsSync(`${fstab}.overlay-fleet.lock.d`)).toBe(false);
            expect(fstabTemps(fstab)).toEqual([]);
            // mount takes the box lock too.
            const lower = makeLower(ns);
            const i = instancePaths(ns.p("disk"), "ttnode1");
            expectRefused(ns.run("mount", mountArgs(lower, i), { path: bin }), 1, /flock\(1\) \(util-linux\) is required/);
            expect(ns.mountsAt(i.merged)).toEqual([]);
        });
    });

    it("5: purge removes only the instance's own upper/work, never a lower, a generation or a dir another instance uses", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const fstab = ns.p("fstab");
            const disk = ns.p("disk");
            const i1 = instancePaths(disk, "ttnode1");
            const i2 = instancePaths(disk, "ttnode2");
            for (const i of [i1, i2]) {
                expect(ns.run("fstab", ["set", fstab, `box1/${path.basename(path.dirname(i.merged))}`, i.merged, fstabOptions(lower, i.upper, i.work, disk)]).status).toBe(0);
            }
            // Nothing is mounted: only the layout and the fstab protect the lower.
            const gen2 = `${lower}.g2`;
            fs.mkdirSync(path.join(gen2, "dir"), { recursive: true });
            const other = (p: string) => path.join(disk, "x", p);
            const cases: [string[], RegExp][] = [
                [[i1.merged, "purge", lower, i1.work], /refusing to purge '.*static_cache': the upper dir must be '.*ttnode1\/upper'/],
                [[i1.merged, "purge", gen2, i1.work], /must be '.*ttnode1\/upper'/],
                [[other("mnts"), "purge", i1.upper, other("work")], /must be '.*x\/upper'/],
                [[i1.merged, "purge", i1.upper, i2.work], /the work dir must be '.*ttnode1\/work'/],
            ];
            for (const [args, message] of cases) {
                expectRefused(ns.run("unmount", [...args, fstab]), 1, message);
            }
            // A generation laid out like an instance dir.
            const g = { upper: path.join(gen2, "upper"), work: path.join(gen2, "work"), merged: path.join(gen2, "mnts") };
            fs.mkdirSync(g.upper);
            expectRefused(ns.run("unmount", [g.merged, "purge", g.upper, g.work, fstab]), 1, /refusing to purge '.*static_cache\.g2\/upper': it is inside the lowerdir generation of box1\/ttnode1/);
            // A lower laid out like an instance dir, used by another instance's fstab line.
            const odd = instancePaths(disk, "oddlower");
            fs.mkdirSync(odd.upper, { recursive: true });
            fs.writeFileSync(path.join(odd.upper, "keep"), "x");
            const i3 = instancePaths(disk, "ttnode3");
            expect(ns.run("fstab", ["set", fstab, "box1/ttnode3", i3.merged, fstabOptions(odd.upper, i3.upper, i3.work, disk)]).status).toBe(0);
            expectRefused(ns.run("unmount", [odd.merged, "purge", odd.upper, odd.work, fstab]), 1, /refusing to purge '.*oddlower\/upper': .*lowerdir of box1\/ttnode3/);
            // Another instance's fstab line names a dir inside ours.
            const i4 = instancePaths(disk, "ttnode4");
            const i5 = instancePaths(disk, "ttnode5");
            fs.mkdirSync(path.join(i4.upper, "nested"), { recursive: true });
            expect(ns.run("fstab", ["set", fstab, "box1/ttnode5", i5.merged, fstabOptions(lower, path.join(i4.upper, "nested"), i5.work, disk)]).status).toBe(0);
            expectRefused(ns.run("unmount", [i4.merged, "purge", i4.upper, i4.work, fstab]), 1, /refusing to purge '.*ttnode4\/upper': .*upperdir of box1\/ttnode5/);
            // A live overlay (e.g. a fold's view) uses a dir inside the upper as a lower.
            const i6 = instancePaths(disk, "ttnode6");
            fs.mkdirSync(path.join(i6.upper, "sub"), { recursive: true });
            fs.mkdirSync(ns.p("view"));
            ns.ok('mount -t overlay overlay -o "lowerdir=$1:$2" "$3"', [path.join(i6.upper, "sub"), lower, ns.p("view")]);
            expectRefused(ns.run("unmount", [i6.merged, "purge", i6.upper, i6.work, fstab]), 1, /refusing to purge '.*ttnode6\/upper': .*view/);

            for (const p of [lower, path.join(lower, "a.txt"), gen2, g.upper, path.join(odd.upper, "keep"), path.join(i4.upper, "nested"), path.join(i6.upper, "sub")]) {
                expect(fs.existsSync(p)).toBe(true);
            }
            // The instance's own dirs go (its own fstab line is still there at this point of a teardown).
            fs.mkdirSync(i1.upper, { recursive: true });
            fs.mkdirSync(i1.work, { recursive: true });
            const r = ns.run("unmount", [i1.merged, "purge", i1.upper, i1.work, fstab]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(fs.existsSync(i1.upper)).toBe(false);
            expect(fs.existsSync(i1.work)).toBe(false);
            expect(fs.existsSync(path.join(lower, "a.txt"))).toBe(true);
        });
    });

    it("6: concurrent mounts on one upper (or nested uppers) never both mount; an upper that is another's lower is refused", async () => {
        await withHostNs(async (ns) => {
            const lower = makeLower(ns);
            const disk = ns.p("disk");
            for (let t = 0; t < 20; t++) {
                const a = instancePaths(disk, `a${t}`);
                const b = { ...instancePaths(disk, `b${t}`), upper: t % 2 === 0 ? a.upper : path.join(a.upper, "nested") };
                const rs = await Promise.all([ns.runAsync("mount", mountArgs(lower, a)), ns.runAsync("mount", mountArgs(lower, b))]);
                const mounted = [a, b].filter((i) => ns.superOptions(i.merged)?.fstype === "overlay");
                expect(`try ${t}: ${mounted.length} mounted; ${rs.map((r) => `${r.status} ${r.stderr}`).join(" / ")}`).toMatch(
                    new RegExp(`^try ${t}: 1 mounted`),
                );
                expect(rs.map((r) => r.status).sort()).toEqual([0, 1]);
                expect(rs.find((r) => r.status === 1)!.stderr).toMatch(/(is inside|is the same as|contains) the (upperdir|workdir) of another overlay/);
                for (const i of [a, b]) ns.sh(hostInvocation("unmount", [i.merged, "keep", i.upper, i.work]));
            }

            // Sequential: nested in another's upper, containing it, and another's lower as upper.
            const i1 = instancePaths(disk, "ttnode1");
            expect(ns.run("mount", mountArgs(lower, i1)).status).toBe(0);
            const i2 = instancePaths(disk, "ttnode2");
            const lower2 = makeLower(ns, "cache2");
            const cases: [Inst, string, RegExp][] = [
                [{ ...i2, upper: path.join(i1.upper, "deep", "er") }, lower2, /upper dir '.*ttnode1\/upper\/deep\/er' is inside the upperdir of another overlay/],
                [{ ...i2, upper: path.dirname(i1.upper) }, lower2, /upper dir '.*ttnode1' contains the (upperdir|workdir) of another overlay/],
                [{ ...i2, upper: lower }, lower2, /upper dir '.*static_cache' is the same as the lowerdir of another overlay/],
                [{ ...i2, work: path.join(lower, "dir") }, lower2, /work dir '.*static_cache\/dir' is inside the lowerdir of another overlay/],
                [i2, i1.upper, /lower dir '.*ttnode1\/upper' is the same as the upperdir of another overlay/],
                // Through a symlink to the other instance's dir (the upper does not exist yet).
                [{ ...i2, upper: ns.p("alias", "upper", "new") }, lower2, /upper dir '.*alias\/upper\/new' is inside the upperdir of another overlay/],
                [{ ...i2, upper: ns.p("alias") }, lower2, /upper dir '.*alias' contains the upperdir of another overlay/],
            ];
            fs.symlinkSync(path.dirname(i1.upper), ns.p("alias"));
            for (const [i, l, message] of cases) {
                const r = ns.run("mount", mountArgs(l, i));
                expectRefused(r, 1, message);
                expect(r.stderr).toContain(i1.merged);
                expect(ns.mountsAt(i.merged)).toEqual([]);
            }
            expect(fs.readdirSync(lower).sort()).toEqual(["a.txt", "dir"]);
        });
    });

    it("6b: another overlay's layers written with .. are still checked; relative ones (docker overlay2) do not hang the check", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            // A foreign overlay whose upper is written through `..`, and one with relative layers.
            ns.ok(
                'cd "$1" && mkdir -p x other/lo other/up other/wk other/m dock/l dock/u dock/w dock/m && ' +
                    'mount -t overlay overlay -o "lowerdir=$1/other/lo,upperdir=$1/x/../other/up,workdir=$1/x/../other/wk" other/m && ' +
                    "(cd dock && mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w m)",
                [ns.p()],
            );
            const inside = { ...instancePaths(ns.p("disk"), "ttnode1"), upper: ns.p("other", "up", "inner") };
            const r = ns.run("mount", mountArgs(lower, inside));
            expectRefused(r, 1, /upper dir '.*other\/up\/inner' is inside the upperdir of another overlay on '.*other\/m'/);
            expect(ns.mountsAt(inside.merged)).toEqual([]);
            // Apart from both: mounts, and the relative layers do not stop the walk.
            const apart = instancePaths(ns.p("disk"), "ttnode2");
            expect(ns.run("mount", mountArgs(lower, apart)).status).toBe(0);
            expect(ns.mountsAt(apart.merged)).toHaveLength(1);
        });
    });

    it("7: mount(8) action words and other non-overlay options are refused on the box", async () => {
        await withHostNs((ns) => {
            const lower = makeLower(ns);
            const i = instancePaths(ns.p("disk"), "ttnode1");
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN);
            const bad = ["bind", "rbind", "move", "remount", "make-private", "make-rshared", "loop", "offset=0", "users", "x-mount.subdir=x", "X-mount.mkdir", "helper=x", "upperdir"];
            for (const o of bad) {
                const r = ns.run("mount", mountArgs(lower, i, `${PINNED},${o}`));
                expectRefused(r, 2, new RegExp(`pinned options '.*' contain '${o.replace(/[.]/g, "\\.")}', which is not an overlay mount option`));
                expect(ns.mountsAt(i.merged)).toEqual([]);
                expect(fs.existsSync(path.join(i.merged, "overlay"))).toBe(false);
                const f = ns.run("fstab", ["set", fstab, "box1/ttnode1", i.merged, `${opts(ns, "ttnode1")},${o}`]);
                expectRefused(f, 2, /fstab options '.*' contain '.*', which is not an overlay mount option/);
            }
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN);
            // The allowed extras work.
            // (volatile last: it marks the work dir, and a later mount without it is refused by the kernel)
            for (const o of ["xino=off", "uuid=null", "redirect_dir=nofollow", "noatime,nodev", "volatile"]) {
                const r = ns.run("mount", mountArgs(lower, i, `${PINNED},${o}`));
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
                expect(ns.run("fstab", ["set", fstab, "box1/ttnode1", i.merged, `${opts(ns, "ttnode1")},${o},x-systemd.device-timeout=10s`]).status).toBe(0);
            }
        });
    });

    it("8: the conflict message names the line number and mount point, never a foreign line's options", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            const merged = ns.p("disk", "ttnode1", "mnts");
            const content = `${FOREIGN}//nas/share ${merged} cifs username=bob,password=hunter2,vers=3.0 0 0\n`;
            fs.writeFileSync(fstab, content);
            const r = ns.run("fstab", setArgs(ns, fstab, "ttnode1"));
            expectRefused(r, 1, /already has another entry for '.*ttnode1\/mnts' \(line 3\)/);
            expect(r.stderr).not.toMatch(/hunter2|password|bob|nas\/share/);
            expect(fs.readFileSync(fstab, "utf8")).toBe(content);
        });
    });

    it("10: instance ids are <box>/<name> as the config allows them; . and .. components are refused", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, FOREIGN);
            const merged = ns.p("disk", "i", "mnts");
            const bad = ["box/..", "box/.", "../x", "./x", "box/../x", "box", "/x", "box/", "box/x/y", "Box/x", "box/X", "box/x_1", "box/1x", "box/-x", "-box/x", "box-/x", "box/x.y", "a".repeat(33) + "/x", "box/" + "x".repeat(64)];
            for (const id of bad) {
                expectRefused(ns.run("fstab", ["set", fstab, id, merged, "nofail"]), 2, /instance id '.*' must be/);
                expectRefused(ns.run("fstab", ["remove", fstab, id]), 2, /instance id/);
                expectRefused(ns.run("status", [fstab, ns.p("disk"), id, merged, ns.p("u")]), 2, /instance id/);
            }
            for (const id of ["box1/ttnode1", "0/a", "my-box-2/tt-node-10", "a".repeat(32) + "/x"]) {
                const r = ns.run("fstab", ["set", fstab, id, merged, "nofail"]);
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
                expect(ns.run("fstab", ["remove", fstab, id]).status).toBe(0);
            }
            expect(fs.readFileSync(fstab, "utf8")).toBe(FOREIGN);
        });
    });
});

