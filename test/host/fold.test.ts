/**
 * Cache generations: host/fold.sh, drop_folded (host/lib-fold.sh) and host/gc.sh on real overlayfs.
 *
 * Every test runs in its own private mount namespace and temp dir (test/host/harness.ts); the
 * scripts run exactly as a box runs them (`hostInvocation()` executed by `sh -c`). The corpus is
 * written THROUGH the merged dirs of three instances sharing one lower (one of them mounted with
 * userxattr, so its opaque dirs use user.overlay.*). What each instance sees is recorded before the
 * fold; an independent model (below, from those views, not from the uppers) gives the expected
 * new lower and what each instance must see after the switch.
 */
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { hostFactsPreamble, hostInvocation } from "../../components/hostScripts";
import { foldTool, HostNs, hostTestsUnavailable, PINNED, until, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();
const hasAttr = spawnSync("sh", ["-c", "command -v getfattr && command -v setfattr"]).status === 0;
const hasRsync = spawnSync("sh", ["-c", "command -v rsync"]).status === 0;
const skip = unavailable !== undefined || !hasAttr;

// ---------------------------------------------------------------------------------------------
// Tree walks (from the machine, through /proc/<holder>/root, which shows the namespace's mounts)

interface Ent {
    type: string; // f d l c b p s
    mode: number;
    uid: number;
    gid: number;
    size: bigint;
    mtimeNs: bigint;
    ino: bigint;
    dev: bigint;
    blocks: bigint;
    rdev: bigint;
    content?: string; // md5 for files, target for symlinks
    xattrs: Record<string, string>;
}
type Tree = Map<string, Ent>;

function typeOf(st: fs.BigIntStats): string {
    if (st.isDirectory()) return "d";
    if (st.isFile()) return "f";
    if (st.isSymbolicLink()) return "l";
    if (st.isCharacterDevice()) return "c";
    if (st.isBlockDevice()) return "b";
    if (st.isFIFO()) return "p";
    return "s";
}

function md5File(p: string): string {
    const h = crypto.createHash("md5");
    const fd = fs.openSync(p, "r");
    const buf = Buffer.alloc(8 << 20);
    try {
        for (;;) {
            const n = fs.readSync(fd, buf, 0, buf.length, null);
            if (n === 0) break;
            h.update(buf.subarray(0, n));
        }
    } finally {
        fs.closeSync(fd);
    }
    return h.digest("hex");
}

/** getfattr's escaping of file names (octal \ooo) undone. */
function unescapeGetfattr(s: string): string {
    const bytes: number[] = [];
    for (let i = 0; i < s.length; ) {
        if (s[i] === "\\" && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
            bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
            i += 4;
        } else {
            for (const b of Buffer.from(s[i], "utf8")) bytes.push(b);
            i += 1;
        }
    }
    return Buffer.from(bytes).toString("utf8");
}

function xattrsOf(ns: HostNs, root: string): Map<string, Record<string, string>> {
    const r = ns.sh('cd "$1" && getfattr -R -P -h -d -m - -e hex . 2>/dev/null; true', [root]);
    const out = new Map<string, Record<string, string>>();
    let cur: Record<string, string> | undefined;
    for (const line of r.stdout.split("\n")) {
        if (line.startsWith("# file: ")) {
            let rel = unescapeGetfattr(line.slice(8));
            rel = rel === "." ? "" : rel.replace(/^\.\//, "");
            cur = {};
            out.set(rel, cur);
        } else if (cur && line.includes("=")) {
            const i = line.indexOf("=");
            cur[line.slice(0, i)] = line.slice(i + 1);
        } else if (cur && line.trim() !== "") {
            cur[line.trim()] = "";
        }
    }
    return out;
}

function walk(ns: HostNs, root: string, opts: { hash?: boolean } = {}): Tree {
    const base = `/proc/${ns.pid}/root${root}`;
    const xa = xattrsOf(ns, root);
    const tree: Tree = new Map();
    const visit = (rel: string) => {
        const p = rel === "" ? base : path.join(base, rel);
        const st = fs.lstatSync(p, { bigint: true });
        const e: Ent = {
            type: typeOf(st),
            mode: Number(st.mode & 0o7777n),
            uid: Number(st.uid),
            gid: Number(st.gid),
            size: st.size,
            mtimeNs: st.mtimeNs,
            ino: st.ino,
            dev: st.dev,
            blocks: st.blocks,
            rdev: st.rdev,
            xattrs: xa.get(rel) ?? {},
        };
        if (e.type === "f" && opts.hash !== false) e.content = md5File(p);
        if (e.type === "l") e.content = fs.readlinkSync(p);
        tree.set(rel, e);
        if (e.type === "d") {
            for (const name of fs.readdirSync(p).sort()) visit(rel === "" ? name : `${rel}/${name}`);
        }
    };
    visit("");
    return tree;
}

const isOverlayXattr = (k: string) => k.startsWith("trusted.overlay.") || k.startsWith("user.overlay.");

function plainXattrs(e: Ent): string {
    return Object.entries(e.xattrs)
        .filter(([k]) => !isOverlayXattr(k) && !k.startsWith("system.posix_acl"))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}=${v}`)
        .join(",");
}

/** What a path looks like, for comparisons (dir mtimes included unless `noDirMtime`). */
function describe_(e: Ent | undefined, opts: { noDirMtime?: boolean } = {}): string {
    if (!e) return "absent";
    const mode = e.mode.toString(8);
    const x = plainXattrs(e);
    switch (e.type) {
        case "d":
            return `d ${mode} ${e.uid}:${e.gid}${opts.noDirMtime ? "" : ` t=${e.mtimeNs}`} x={${x}}`;
        case "f":
            return `f ${mode} ${e.uid}:${e.gid} t=${e.mtimeNs} size=${e.size} md5=${e.content} x={${x}}`;
        case "l":
            return `l ${e.uid}:${e.gid} -> ${e.content}`;
        default:
            return `${e.type} ${mode} ${e.uid}:${e.gid} t=${e.mtimeNs} rdev=${e.rdev} x={${x}}`;
    }
}

function asRecord(tree: Tree, opts: { noDirMtime?: boolean; skipRoot?: boolean } = {}): Record<string, string> {
    const r: Record<string, string> = {};
    for (const [p, e] of tree) {
        if (p === "" && opts.skipRoot) continue;
        r[p] = describe_(e, opts);
    }
    return r;
}

/** Hard-link groups (paths sharing an inode, size > 1) of the regular files among `paths`. */
function linkGroups(tree: Tree, paths?: Set<string>): string[][] {
    const by = new Map<string, string[]>();
    for (const [p, e] of tree) {
        if (e.type !== "f" || (paths && !paths.has(p))) continue;
        const k = `${e.dev}:${e.ino}`;
        by.set(k, [...(by.get(k) ?? []), p]);
    }
    return [...by.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort();
}

// ---------------------------------------------------------------------------------------------
// The model: expected new lower and what each instance sees after the switch, from the views.

const isUnder = (p: string, dir: string) => p === dir || p.startsWith(dir + "/");
const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");
const ancestors = (p: string) => {
    const a: string[] = [];
    for (let q = parentOf(p); q !== ""; q = parentOf(q)) a.push(q);
    return a;
};

function sameObject(a: Ent, b: Ent): boolean {
    return describe_(a) === describe_(b);
}
function sameDirMeta(a: Ent, b: Ent): boolean {
    return describe_(a, { noDirMtime: true }) === describe_(b, { noDirMtime: true });
}

interface Claim {
    inst: number;
    kind: "absent" | "dir" | "obj";
    ent?: Ent;
}
interface Model {
    lower: Map<string, Ent & { src: string }>;
    conflicts: Map<string, { winner: number; others: number[] }>;
    /** per instance: paths it changed (claims, won or lost), and dirs it had opaque */
    claimed: Set<string>[];
}

/**
 * Documented semantics of lowest-index-wins: an instance's changes (its view vs the current
 * lower) are claims on paths: "absent" (top-most deleted path), "obj" (a non-directory that is
 * new or differs), "dir" (a directory that is new, differs in mode/owner/xattrs, or holds a
 * change). The first instance to claim a path wins; a later claim that is identical is no
 * conflict; otherwise it is a conflict and, for a directory claim, its subtree is not applied.
 */
function model(current: Tree, views: Tree[], priv: string[]): Model {
    const lower = new Map<string, Ent & { src: string }>();
    for (const [p, e] of current) lower.set(p, { ...e, src: `c:${e.ino}` });
    const claims = new Map<string, Claim>();
    const conflicts = new Map<string, { winner: number; others: number[] }>();
    const claimed: Set<string>[] = [];
    const isPriv = (p: string) => priv.some((q) => isUnder(p, q));
    views.forEach((v, i) => {
        const mine = new Map<string, Claim>();
        for (const p of new Set([...current.keys(), ...v.keys()])) {
            if (p === "" || isPriv(p)) continue;
            const c = current.get(p);
            const e = v.get(p);
            if (!e) {
                if (c && v.has(parentOf(p)) && v.get(parentOf(p))!.type === "d") mine.set(p, { inst: i, kind: "absent" });
                continue;
            }
            if (e.type === "d") {
                if (!c || c.type !== "d" || !sameDirMeta(c, e)) mine.set(p, { inst: i, kind: "dir", ent: e });
            } else if (!c || !sameObject(c, e)) {
                mine.set(p, { inst: i, kind: "obj", ent: e });
            }
        }
        for (const p of [...mine.keys()]) {
            for (const a of ancestors(p)) if (!mine.has(a)) mine.set(a, { inst: i, kind: "dir", ent: v.get(a)! });
        }
        claimed.push(new Set(mine.keys()));
        const lost = new Set<string>();
        const conflict = (p: string, w: number) => {
            const c = conflicts.get(p) ?? { winner: w, others: [] };
            if (!c.others.includes(i)) c.others.push(i);
            conflicts.set(p, c);
        };
        for (const p of [...mine.keys()].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b))) {
            if (ancestors(p).some((a) => lost.has(a))) {
                lost.add(p);
                continue;
            }
            const m = mine.get(p)!;
            const prev = claims.get(p);
            // a claim below a path an earlier instance deleted or replaced by a non-directory
            const blocker = ancestors(p).map((a) => claims.get(a)).find((c) => c && c.kind !== "dir");
            if (blocker) {
                lost.add(p);
                continue;
            }
            if (prev) {
                const same =
                    prev.kind === m.kind &&
                    (m.kind === "absent" || (m.kind === "obj" ? sameObject(prev.ent!, m.ent!) : sameDirMeta(prev.ent!, m.ent!)));
                if (!same) {
                    conflict(p, prev.inst);
                    if (m.kind === "dir" && prev.kind !== "dir") lost.add(p);
                }
                continue;
            }
            if (m.kind === "absent") {
                // a deletion of a directory another instance changes below is a conflict on it
                const below = [...claims.entries()].find(([q]) => q.startsWith(p + "/"));
                if (below) {
                    conflict(p, below[1].inst);
                    continue;
                }
            }
            claims.set(p, m);
            for (const q of [...lower.keys()]) if (isUnder(q, p) && (m.kind !== "dir" || q === p)) lower.delete(q);
            if (m.kind !== "absent") lower.set(p, { ...m.ent!, src: `v${i}:${m.ent!.ino}` });
        }
    });
    // directories keep the mtime of the first instance that claimed them
    return { lower, conflicts, claimed };
}

/**
 * After the switch, an instance sees exactly what it saw for the paths it changed (its claims, and
 * everything below its opaque directories and its private config), and the new lower elsewhere.
 */
function expectOwnAfterSwitch(ns: HostNs, m: Model, k: number, inst: Inst, before: Tree, upper: Tree) {
    const after = walk(ns, inst.merged);
    const owned = (p: string) =>
        m.claimed[k].has(p) ||
        [...m.claimed[k]].some((q) => p.startsWith(q + "/") && before.get(q)?.type !== "d") ||
        ancestors(p).some((a) => {
            const u = upper.get(a);
            return u !== undefined && (u.xattrs["trusted.overlay.opaque"] || u.xattrs["user.overlay.opaque"]);
        }) ||
        p.startsWith(".yfnode/config");
    const got: Record<string, string> = {};
    const exp: Record<string, string> = {};
    for (const p of new Set([...before.keys(), ...after.keys(), ...m.lower.keys()])) {
        if (p === "") continue;
        got[p] = describe_(after.get(p), { noDirMtime: !owned(p) });
        exp[p] = describe_(owned(p) ? before.get(p) : m.lower.get(p), { noDirMtime: !owned(p) });
    }
    expect(got, inst.name).toEqual(exp);
    // hard-link groups of what it changed are kept
    const mine = new Set([...before.keys()].filter(owned));
    expect(linkGroups(after, mine)).toEqual(linkGroups(before, mine));
}

// ---------------------------------------------------------------------------------------------
// Running things in the namespace

const libBundle = () =>
    [
        hostFactsPreamble(),
        ...["lib.sh", "lib-fold.sh"].map((f) => fs.readFileSync(path.join(__dirname, "..", "..", "host", f), "utf8")),
    ].join("\n");

/** drop_folded as mount.sh calls it: the function from the bundle, in a shell. */
function dropFolded(ns: HostNs, manifest: string, upper: string) {
    return ns.sh(`${libBundle()}\ndrop_folded "$1" "$2"`, [manifest, upper]);
}

function mountInstance(ns: HostNs, lower: string, inst: Inst) {
    ns.ok('mkdir -p "$2" "$3" "$4" && mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3,$5" "$4"', [
        lower,
        inst.upper,
        inst.work,
        inst.merged,
        // userxattr conflicts with redirect_dir=off (= follow): nofollow is its strict equivalent
        inst.userxattr ? PINNED.replace("redirect_dir=off", "redirect_dir=nofollow") + ",userxattr" : PINNED,
    ]);
}

/** The corpus with only its first instance folded into generation 2 (its manifest in c.manifests). */
function foldFirst(ns: HostNs) {
    const c = buildCorpus(ns);
    const [n1] = c.insts;
    expect(ns.run("fold", foldArgs(c.lower, 2, c.manifests, [n1])).status).toBe(0);
    return { c, g2: `${c.lower}.g2`, n1 };
}

/** The switch, as mount.sh does it: unmount, drop_folded, mount on the new lower. */
function switchInstance(ns: HostNs, newLower: string, inst: Inst, manifest: string) {
    ns.ok('umount "$1"', [inst.merged]);
    const r = dropFolded(ns, manifest, inst.upper);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    mountInstance(ns, newLower, inst);
    return r.stdout;
}

interface Inst {
    name: string;
    upper: string;
    work: string;
    merged: string;
    userxattr?: boolean;
}

function instances(root: string, n: number): Inst[] {
    return Array.from({ length: n }, (_, k) => ({
        name: `n${k + 1}`,
        upper: `${root}/n${k + 1}/upper`,
        work: `${root}/n${k + 1}/work`,
        merged: `${root}/n${k + 1}/mnts`,
        userxattr: k === 2,
    }));
}

function foldArgs(lower: string, target: number, manifests: string, insts: Inst[], priv = ".yfnode/config", rule = "lowest-index-wins"): string[] {
    return [lower, String(target), manifests, rule, priv, ...insts.flatMap((i) => [i.name, i.upper])];
}

function dfUsed(ns: HostNs, dir: string): number {
    const out = ns.ok('sync; df -P -k "$1" | tail -n 1', [dir]).trim().split(/\s+/);
    return Number(out[2]) * 1024;
}

/** Kills the process group of a script started by startScript (it and everything it forked). */
function killGroup(pid: number) {
    try {
        process.kill(-pid, "SIGKILL");
    } catch {
        /* gone */
    }
}

/** Starts a host script in the namespace without waiting; resolves on exit. */
function startScript(ns: HostNs, args: string[], env: Record<string, string> = {}) {
    const child = spawn("nsenter", ["--target", String(ns.pid), "--mount", "--", "sh", "-c", hostInvocation("fold", args)], {
        detached: true, // its own process group: kill -9 reaches everything it forked
        env: {
            PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            LANG: "C",
            LC_ALL: "C",
            LIBMOUNT_UTAB: path.join(ns.dir, ".utab"),
            OVERLAY_FLEET_FOLDTOOL: foldTool(),
            ...env,
        },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d.toString()));
    child.stderr.on("data", (d) => (stderr += d.toString()));
    const done = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return { child, done, out: () => stdout, err: () => stderr };
}

// ---------------------------------------------------------------------------------------------
// Corpus

const BASE_CORPUS = String.raw`
set -eu
L=$1
C=$L/.yfnode/cache
mkdir -p "$C/deep/l1/l2/l3" "$C/olddir/sub" "$C/rendir/inner" "$C/meta" "$C/links" "$L/dirx" "$L/space name"
head -c 8388608 /dev/urandom >"$C/big.unchanged"
head -c 65536 /dev/urandom >"$C/A.vdata"
echo b >"$C/B.task"
echo 1 >"$C/deep/l1/l2/l3/file1"
echo 2 >"$C/deep/l1/l2/l3/file2"
echo k >"$C/deep/l1/keep"
echo x >"$C/olddir/sub/x"
echo y >"$C/olddir/y"
echo r >"$C/renfile"
echo f >"$C/rendir/inner/f"
echo c >"$C/meta/chmodme"
echo o >"$C/meta/chownme"
echo x >"$C/meta/xattrme"
setfattr -n user.orig -v one "$C/meta/xattrme"
echo in >"$L/dirx/file"
setfattr -n user.dirattr -v lower "$L/dirx"
echo base >"$C/conflict.txt"
echo base >"$C/ident.txt"
echo a >"$C/links/a"
ln "$C/links/a" "$C/links/b"
ln -s B.task "$C/sym"
echo s >"$L/space name/file é.txt"
: >"$C/empty.lower"
find "$L" -exec touch -h -d @1600000000 {} +
`;

/** Changes made through the merged dirs (M1 M2 M3). */
const CHANGES = String.raw`
set -eu
M1=$1 M2=$2 M3=$3 SPARSE=$4
# n1: nested delete (depth 5), deleted-and-recreated dir, renames, hard links, symlink, xattrs,
# empty file, sparse file, odd names, chmod/chown only, private config, conflict, identical change
rm "$M1/.yfnode/cache/deep/l1/l2/l3/file1"
rm -rf "$M1/.yfnode/cache/olddir"
mkdir "$M1/.yfnode/cache/olddir"
echo fresh >"$M1/.yfnode/cache/olddir/fresh"
mv "$M1/.yfnode/cache/renfile" "$M1/.yfnode/cache/renamed-file"
mv "$M1/.yfnode/cache/rendir" "$M1/.yfnode/cache/rendir2"
mkdir "$M1/.yfnode/cache/hl"
echo linked >"$M1/.yfnode/cache/hl/one"
ln "$M1/.yfnode/cache/hl/one" "$M1/.yfnode/cache/hl/two"
setfattr -n user.hl -v yes "$M1/.yfnode/cache/hl/one"
ln -s renamed-file "$M1/.yfnode/cache/newsym"
mkdir "$M1/xdir"
setfattr -n user.dirattr -v new "$M1/xdir"
echo xf >"$M1/xdir/xf"
setfattr -n user.fileattr -v v1 "$M1/xdir/xf"
: >"$M1/.yfnode/cache/empty.new"
truncate -s "$SPARSE" "$M1/.yfnode/cache/huge.sparse"
printf 'data in the middle' | dd of="$M1/.yfnode/cache/huge.sparse" bs=1 seek=$(($(stat -c %s "$M1/.yfnode/cache/huge.sparse") / 2)) conv=notrunc status=none
mkdir -p "$M1/odd names"
echo sp >"$M1/odd names/with space é 中文.txt"
printf 'nl' >"$M1/odd names/new
line"
chmod 600 "$M1/.yfnode/cache/meta/chmodme"
chown 1234:5678 "$M1/.yfnode/cache/meta/chownme"
echo n1-identity >"$M1/.yfnode/config"
echo n1 >"$M1/.yfnode/cache/conflict.txt"
echo same >"$M1/.yfnode/cache/ident.txt"
touch -d @1700000000 "$M1/.yfnode/cache/ident.txt"
# n2: private config, conflicting and identical changes, new file, xattr change, delete one name
# of a hard-linked pair, a change below a dir n1 deleted (rendir), a delete n1 also did (olddir/sub)
echo n2-identity >"$M2/.yfnode/config"
echo n2 >"$M2/.yfnode/cache/conflict.txt"
echo same >"$M2/.yfnode/cache/ident.txt"
touch -d @1700000000 "$M2/.yfnode/cache/ident.txt"
head -c 100000 /dev/urandom >"$M2/.yfnode/cache/C.vdata"
setfattr -n user.orig -v two "$M2/.yfnode/cache/meta/xattrme"
rm "$M2/.yfnode/cache/links/b"
echo f2 >"$M2/.yfnode/cache/rendir/inner/f"
rm -rf "$M2/.yfnode/cache/olddir/sub"
# n3 (userxattr: its opaque dirs carry user.overlay.opaque)
echo n3-identity >"$M3/.yfnode/config"
echo n3 >"$M3/.yfnode/cache/conflict.txt"
rm -rf "$M3/dirx"
rm -rf "$M3/space name"
mkdir "$M3/space name"
echo again >"$M3/space name/again"
echo only >"$M3/n3only"
sync
`;

interface Corpus {
    root: string;
    lower: string;
    insts: Inst[];
    manifests: string;
}

/** The corpus; the sparse file is 1 GiB apparent unless `sparseMiB` says otherwise. */
function buildCorpus(ns: HostNs, opts: { disk?: boolean; diskMiB?: number; sparseMiB?: number } = {}): Corpus {
    const root = ns.p("disk");
    if (opts.disk !== false) {
        ns.mountImage("disk", ["mkfs.ext4", "-q", "-F", "-O", "^has_journal"], root, opts.diskMiB ?? 256);
    } else {
        fs.mkdirSync(root);
    }
    const lower = `${root}/static_cache`;
    ns.ok(BASE_CORPUS, [lower]);
    const insts = instances(root, 3);
    for (const i of insts) mountInstance(ns, lower, i);
    ns.ok(CHANGES, [...insts.map((i) => i.merged), `${opts.sparseMiB ?? 1024}M`]);
    return { root, lower, insts, manifests: `${root}/.overlay-fleet/gen2` };
}

// ---------------------------------------------------------------------------------------------

describe.skipIf(skip)("fold: a new lower generation from the instances' uppers", () => {
    it(
        "folds exactly what the instances see; after the switch each still sees its own changes",
        async () => {
            await withHostNs(async (ns) => {
                const c = buildCorpus(ns);
                const g2 = `${c.lower}.g2`;
                const current = walk(ns, c.lower);
                const views = c.insts.map((i) => walk(ns, i.merged));
                const uppersBefore = c.insts.map((i) => walk(ns, i.upper, { hash: false }));
                const m = model(current, views, [".yfnode/config"]);
                const usedBefore = dfUsed(ns, c.root);

                const r = ns.run("fold", foldArgs(c.lower, 2, c.manifests, c.insts));
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);

                // conflicts: every one reported, nothing else
                const lines = r.stdout.trim().split("\n");
                const reported = lines.filter((l) => l.startsWith("conflict\t")).sort();
                const expected = [...m.conflicts.entries()]
                    .map(([p, c2]) => `conflict\t${p}\twinner=n${c2.winner + 1}\tothers=${c2.others.map((o) => `n${o + 1}`).join(",")}`)
                    .sort();
                expect(reported).toEqual(expected);
                expect(reported).toEqual([
                    "conflict\t.yfnode/cache/conflict.txt\twinner=n1\tothers=n2,n3",
                    "conflict\t.yfnode/cache/rendir\twinner=n1\tothers=n2",
                ]);
                expect(lines.filter((l) => l.startsWith("skipped"))).toEqual([]);
                expect(lines[lines.length - 1]).toMatch(/^folded 2 from 1: files=\d+ bytes=\d+ deleted=\d+ conflicts=2 skipped=0$/);

                // the new lower, file by file
                const newLower = walk(ns, g2);
                const want: Record<string, string> = {};
                for (const [p, e] of m.lower) if (p !== "") want[p] = describe_(e, { noDirMtime: true });
                expect(asRecord(newLower, { noDirMtime: true, skipRoot: true })).toEqual(want);
                // hard-link groups of the model (same source inode) are one inode in the new lower
                const wantGroups = new Map<string, string[]>();
                for (const [p, e] of m.lower) if (e.type === "f") wantGroups.set(e.src, [...(wantGroups.get(e.src) ?? []), p]);
                expect(linkGroups(newLower)).toEqual(
                    [...wantGroups.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort(),
                );
                expect(linkGroups(newLower)).toContainEqual([".yfnode/cache/hl/one", ".yfnode/cache/hl/two"]);
                // nothing of overlay's own in the new lower
                for (const [p, e] of newLower) {
                    expect(Object.keys(e.xattrs).filter(isOverlayXattr), p).toEqual([]);
                    expect(e.type === "c" && e.rdev === 0n, `whiteout ${p}`).toBe(false);
                }
                // private paths never leave their instance
                expect([...newLower.keys()].filter((p) => p.includes("config"))).toEqual([]);
                // the sparse file is still sparse, the unchanged big file is shared (hard link)
                const sparse = newLower.get(".yfnode/cache/huge.sparse")!;
                expect(sparse.size).toBe(1n << 30n);
                expect(Number(sparse.blocks) * 512).toBeLessThan(1 << 20);
                const big = newLower.get(".yfnode/cache/big.unchanged")!;
                expect(big.ino).toBe(current.get(".yfnode/cache/big.unchanged")!.ino);
                // extra disk ≈ the changed data: far below the 8 MiB unchanged file, a few blocks
                // per directory and per copied file
                const extra = dfUsed(ns, c.root) - usedBefore;
                expect(extra).toBeLessThan(2 << 20);

                // the old lower is unchanged (content, metadata, xattrs)
                expect(asRecord(walk(ns, c.lower))).toEqual(asRecord(current));
                // the instances still see what they saw (the fold wrote nothing they use)
                c.insts.forEach((i, k) => expect(asRecord(walk(ns, i.merged))).toEqual(asRecord(views[k])));

                // manifests are there, one per instance
                for (const i of c.insts) {
                    const text = ns.ok('cat "$1"', [`${c.manifests}/${i.name}.manifest`]);
                    expect(text).toContain("# overlay-fleet fold manifest 1");
                    expect(text).toContain(`# upper ${i.upper}`);
                    expect(text).not.toContain("config");
                }

                // the switch, one instance at a time
                const dropOut = c.insts.map((i) => switchInstance(ns, g2, i, `${c.manifests}/${i.name}.manifest`));
                for (const o of dropOut) expect(o).toMatch(/^dropped .*: removed=\d+ kept=\d+ whiteouts=0 unopaqued=\d+\n$/);
                c.insts.forEach((inst, k) => expectOwnAfterSwitch(ns, m, k, inst, views[k], uppersBefore[k]));
                // the uppers shrank: n1's folded files are gone from its upper, its private config stays
                const u1 = walk(ns, c.insts[0].upper, { hash: false });
                expect(u1.has(".yfnode/config")).toBe(true);
                expect(u1.has(".yfnode/cache/huge.sparse")).toBe(false);
                expect(u1.has(".yfnode/cache/hl/one")).toBe(false);
                // conflict losers keep their own version
                expect(ns.ok('cat "$1"', [`${c.insts[1].merged}/.yfnode/cache/conflict.txt`])).toBe("n2\n");
                expect(ns.ok('cat "$1"', [`${c.insts[2].merged}/.yfnode/cache/conflict.txt`])).toBe("n3\n");
                expect(ns.ok('cat "$1"', [`${c.insts[1].merged}/.yfnode/cache/rendir/inner/f`])).toBe("f2\n");
                for (const i of c.insts) {
                    expect(ns.ok('cat "$1"', [`${i.merged}/.yfnode/config`])).toBe(`${i.name}-identity\n`);
                }
            });
        },
        300_000,
    );

    it("drop_folded keeps what changed after the fold, and deletes stay deleted", async () => {
        await withHostNs(async (ns) => {
            // only n1 is folded: after the switch it must see exactly what it saw
            const { c, g2, n1 } = foldFirst(ns);
            // after the fold, before the switch (the instance still runs on the old lower):
            ns.ok(
                [
                    'echo changed >"$1/.yfnode/cache/hl/one"', // a folded file rewritten
                    'rm "$1/.yfnode/cache/empty.new"', // a folded new file deleted (no whiteout: new in the upper)
                    'rm -rf "$1/odd names"', // a folded new directory deleted
                    'echo late >"$1/late"', // something new
                ].join("\n"),
                [n1.merged],
            );
            const before = walk(ns, n1.merged);
            const out = switchInstance(ns, g2, n1, `${c.manifests}/n1.manifest`);
            expect(out).toMatch(/whiteouts=2 /);
            const after = walk(ns, n1.merged);
            expect(asRecord(after)).toEqual(asRecord(before));
            expect(linkGroups(after)).toEqual(linkGroups(before));
            // idempotent: a second drop (on the unmounted upper) changes nothing
            ns.ok('umount "$1"', [n1.merged]);
            const upper = asRecord(walk(ns, n1.upper, { hash: false }));
            const again = dropFolded(ns, `${c.manifests}/n1.manifest`, n1.upper);
            expect(again.status).toBe(0);
            expect(again.stdout).toMatch(/removed=0 .*whiteouts=0 unopaqued=0/);
            expect(asRecord(walk(ns, n1.upper, { hash: false }))).toEqual(upper);
            // refuses a manifest of another upper, and a mounted upper
            const wrong = dropFolded(ns, `${c.manifests}/n1.manifest`, c.insts[1].upper);
            expect(wrong.status).not.toBe(0);
            expect(wrong.stderr).toMatch(/overlay-fleet: .*written for upper/);
            mountInstance(ns, g2, n1);
            const mounted = dropFolded(ns, `${c.manifests}/n1.manifest`, n1.upper);
            expect(mounted.status).not.toBe(0);
            expect(mounted.stderr).toMatch(/is mounted/);
        });
    }, 300_000);

    it("drop_folded never acts through a symlink an instance put where the fold saw a directory", async () => {
        await withHostNs(async (ns) => {
            const { c, g2, n1 } = foldFirst(ns);
            // n1's folded whiteout deep/l1/l2/l3/file1 now leads, through the symlink, to a whiteout of
            // another tree (mode 0, as the kernel makes them: another overlay's layer, say).
            const victim = ns.p("victim");
            ns.ok('mkdir -p "$2/l1/l2/l3" && mknod -m 0 "$2/l1/l2/l3/file1" c 0 0 && rm -rf "$1/.yfnode/cache/deep" && ln -s "$2" "$1/.yfnode/cache/deep"', [n1.merged, victim]);
            const before = walk(ns, n1.merged);
            switchInstance(ns, g2, n1, `${c.manifests}/n1.manifest`);
            expect(ns.ok('stat -c %F "$1"', [`${victim}/l1/l2/l3/file1`])).toBe("character special file\n");
            expect(asRecord(walk(ns, n1.merged))).toEqual(asRecord(before));
        });
    }, 300_000);

    it("drop_folded without the fold helper fails naming it, and changes nothing", async () => {
        await withHostNs(async (ns) => {
            const { c, n1 } = foldFirst(ns);
            ns.ok('umount "$1"', [n1.merged]);
            const upper = asRecord(walk(ns, n1.upper, { hash: false }));
            const r = ns.sh(`${libBundle()}\ndrop_folded "$1" "$2"`, [`${c.manifests}/n1.manifest`, n1.upper], { env: { OVERLAY_FLEET_FOLDTOOL: "/nonexistent/foldtool" } });
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("overlay-fleet: the fold helper '/nonexistent/foldtool' is missing or not executable");
            expect(asRecord(walk(ns, n1.upper, { hash: false }))).toEqual(upper);
        });
    }, 300_000);

    it("is idempotent: a second fold of the same generation is a no-op", async () => {
        await withHostNs(async (ns) => {
            const c = buildCorpus(ns);
            const args = foldArgs(c.lower, 2, c.manifests, c.insts);
            expect(ns.run("fold", args).status).toBe(0);
            const g2 = walk(ns, `${c.lower}.g2`, { hash: false });
            const man = ns.ok('cat "$1"/*.manifest', [c.manifests]);
            const r = ns.run("fold", args);
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(/already exists; nothing to do/);
            expect(asRecord(walk(ns, `${c.lower}.g2`, { hash: false }))).toEqual(asRecord(g2));
            expect(ns.ok('cat "$1"/*.manifest', [c.manifests])).toBe(man);
            expect(ns.ok('ls -a "$1"', [c.root]).split("\n")).not.toContain("static_cache.g2.partial");
        });
    }, 300_000);
});

/** A tmpfs of `sizeMiB` at `root` (many small files build fast there and need no inode sizing). */
function tmpfsRoot(ns: HostNs, name: string, sizeMiB: number): string {
    const root = ns.p(name);
    ns.ok('mkdir -p "$1" && mount -t tmpfs -o "size=$2m" tmpfs "$1"', [root, String(sizeMiB)]);
    return root;
}

/**
 * A lower built by `build` ($1: the lower) on a tmpfs, `n` instances (trusted xattrs) mounted on
 * it and changed by `changes` ($1 $2 ...: their merged dirs).
 */
function sharedCache(ns: HostNs, sizeMiB: number, build: string, n: number, changes: string) {
    const root = tmpfsRoot(ns, "disk", sizeMiB);
    const lower = `${root}/static_cache`;
    ns.ok(build, [lower]);
    const insts = instances(root, n).map((i) => ({ ...i, userxattr: false }));
    for (const i of insts) mountInstance(ns, lower, i);
    ns.ok(changes, insts.map((i) => i.merged));
    return { root, lower, insts, manifests: `${root}/.of/gen2` };
}

/** Folds into generation 2; must succeed silently. Output and conflict lines (speed: bench/fold.sh). */
function foldOk(ns: HostNs, c: { lower: string; insts: Inst[]; manifests: string }, rule = "lowest-index-wins") {
    const r = ns.run("fold", foldArgs(c.lower, 2, c.manifests, c.insts, "-", rule));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return { stdout: r.stdout, conflicts: r.stdout.split("\n").filter((l) => l.startsWith("conflict")) };
}

describe.skipIf(skip)("fold: conflict rules and shapes", () => {
    it("newest-wins: the newest change of a path wins (ties: lowest index), every conflict is reported", async () => {
        await withHostNs(async (ns) => {
            const c = sharedCache(
                ns,
                64,
                'mkdir -p "$1/d" && for f in f g h k; do echo base >"$1/d/$f"; done',
                3,
                [
                    'echo n1 >"$1/d/f" && touch -d @1700000000 "$1/d/f"',
                    'echo n2 >"$2/d/f" && touch -d @1700000100 "$2/d/f"',
                    'echo n3 >"$3/d/f" && touch -d @1700000100 "$3/d/f"', // tie with n2: n2 wins
                    'echo n1 >"$1/d/g" && touch -d @1700000000 "$1/d/g"',
                    'rm "$2/d/g"', // the delete is newer than n1's write
                    'echo n2 >"$2/d/h" && touch -d @1600000000 "$2/d/h"',
                    'echo n3 >"$3/d/h" && touch -d @1600000001 "$3/d/h"',
                    // n1 and n2 made the same change (not a conflict), n3 a newer one: both lose
                    'echo same >"$1/d/k" && touch -d @1700000000 "$1/d/k"',
                    'echo same >"$2/d/k" && touch -d @1700000000 "$2/d/k"',
                    'echo n3 >"$3/d/k" && touch -d @1700000200 "$3/d/k"',
                ].join("\n"),
            );
            const views = c.insts.map((i) => walk(ns, i.merged));
            const r = foldOk(ns, c, "newest-wins");
            expect(r.conflicts).toEqual([
                "conflict\td/f\twinner=n2\tothers=n1,n3",
                "conflict\td/g\twinner=n2\tothers=n1",
                "conflict\td/h\twinner=n3\tothers=n2",
                "conflict\td/k\twinner=n3\tothers=n1,n2",
            ]);
            const g2 = `${c.lower}.g2`;
            expect(ns.ok('cat "$1/d/f" "$1/d/h" "$1/d/k"', [g2])).toBe("n2\nn3\nn3\n");
            expect(ns.sh('test -e "$1/d/g"', [g2]).status).not.toBe(0);
            // the losers keep their version of what they changed, and see the winners' elsewhere
            c.insts.forEach((i) => switchInstance(ns, g2, i, `${c.manifests}/${i.name}.manifest`));
            const seen = c.insts.map((i) => ns.ok('for f in f g h k; do cat "$1/d/$f" 2>/dev/null || echo -; done', [i.merged]));
            expect(seen).toEqual(["n1\nn1\nn3\nsame\n", "n2\n-\nn2\nsame\n", "n3\n-\nn3\nn3\n"]);
            expect(asRecord(walk(ns, c.insts[0].merged))["d/f"]).toBe(asRecord(views[0])["d/f"]);
        });
    }, 120_000);

    it("a path that is a file in one upper and a directory in another", async () => {
        await withHostNs(async (ns) => {
            const c = sharedCache(
                ns,
                64,
                'mkdir -p "$1/q" && echo y >"$1/q/y" && echo r >"$1/r"',
                2,
                [
                    'echo file >"$1/p"', // new: a file for n1 ...
                    'mkdir "$2/p" && echo x >"$2/p/x"', // ... a directory for n2
                    'rm -rf "$1/q" && echo file >"$1/q"', // a directory replaced by a file ...
                    'echo z >"$2/q/z"', // ... that n2 writes into
                    'rm "$1/r" && mkdir "$1/r" && echo in >"$1/r/in"', // a file replaced by a directory ...
                    'echo r2 >"$2/r"', // ... that n2 rewrites
                ].join("\n"),
            );
            const current = walk(ns, c.lower);
            const views = c.insts.map((i) => walk(ns, i.merged));
            const m = model(current, views, []);
            const uppers = c.insts.map((i) => walk(ns, i.upper, { hash: false }));
            const r = foldOk(ns, c);
            expect(r.conflicts).toEqual(["conflict\tp\twinner=n1\tothers=n2", "conflict\tq\twinner=n1\tothers=n2", "conflict\tr\twinner=n1\tothers=n2"]);
            const g2 = `${c.lower}.g2`;
            const want: Record<string, string> = {};
            for (const [p, e] of m.lower) if (p !== "") want[p] = describe_(e, { noDirMtime: true });
            expect(asRecord(walk(ns, g2), { noDirMtime: true, skipRoot: true })).toEqual(want);
            c.insts.forEach((i) => switchInstance(ns, g2, i, `${c.manifests}/${i.name}.manifest`));
            c.insts.forEach((i, k) => expectOwnAfterSwitch(ns, m, k, i, views[k], uppers[k]));
            // the loser still has what it wrote below its directory
            expect(ns.ok('cat "$1/p/x" "$1/q/z"', [c.insts[1].merged])).toBe("x\nz\n");
        });
    }, 120_000);

    it("100,000 files: unchanged files are hard links, changes and conflicts all folded", async () => {
        await withHostNs(async (ns) => {
            const c = sharedCache(
                ns,
                1024,
                // 100 directories of 1,000 files of 16 bytes (d<k>/f0000 .. f0999)
                'for k in $(seq 0 99); do mkdir -p "$1/d$k" && head -c 16000 /dev/urandom | (cd "$1/d$k" && split -b 16 -a 4 -d - f); done',
                2,
                // n1 rewrites f0000..f0009 of every dir, deletes f0010..f0014, adds n1-0..n1-4;
                // n2 rewrites f0005..f0019 (f0005..f0014 conflict with n1) and adds n2-0..n2-4
                String.raw`for k in $(seq 0 99); do
                    for j in 0 1 2 3 4 5 6 7 8 9; do printf 'n1 %s
' "$k.$j" >"$1/d$k/f000$j"; done
                    for j in 10 11 12 13 14; do rm "$1/d$k/f00$j"; done
                    for j in 0 1 2 3 4; do echo "n1 new" >"$1/d$k/n1-$j"; done
                    for j in 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19; do printf 'n2 %s
' "$k.$j" >"$2/d$k/f00$j"; done
                    for j in 0 1 2 3 4; do echo "n2 new" >"$2/d$k/n2-$j"; done
                done`,
            );
            const inoBefore = ns.ok('stat -c %i "$1/d42/f0500"', [c.lower]);
            const r = foldOk(ns, c);
            // n1 rewrote f0005..f0009 and deleted f0010..f0014 where n2 wrote: 10 per directory
            expect(r.conflicts.length).toBe(1000);
            expect(r.stdout).toMatch(/folded 2 from 1: files=\d+ bytes=\d+ deleted=500 conflicts=1000 skipped=0\n$/);
            const g2 = `${c.lower}.g2`;
            expect(ns.ok('find "$1" -type f | wc -l', [g2]).trim()).toBe(String(100_000 - 500 + 500 + 500));
            expect(ns.ok('stat -c %i "$1/d42/f0500"', [g2])).toBe(inoBefore);
            expect(ns.ok('cat "$1/d42/f0003" "$1/d42/f0007" "$1/d42/f0017" "$1/d42/n2-1"', [g2])).toBe("n1 42.3\nn1 42.7\nn2 42.17\nn2 new\n");
            expect(ns.sh('test -e "$1/d42/f0012"', [g2]).status).not.toBe(0);
        });
    }, 300_000);

    it("a cache directory with 100,000 entries", async () => {
        await withHostNs(async (ns) => {
            const c = sharedCache(
                ns,
                1024,
                'mkdir -p "$1/big" && head -c 800000 /dev/urandom | (cd "$1/big" && split -b 8 -a 5 -d - e)',
                2,
                [
                    'for j in 00001 00002 00003; do echo n1 >"$1/big/e$j"; done; rm "$1/big/e99999"; echo new >"$1/big/n1new"',
                    // n2 empties the directory and starts over (an opaque directory hiding 100,000 entries)
                    'rm -rf "$2/big" && mkdir "$2/big" && echo only >"$2/big/n2only"',
                ].join("\n"),
            );
            const r = foldOk(ns, c);
            // n2's deletes of the entries n1 changed are conflicts n1 won; all the others are gone
            // (n1's delete of e99999 is the same as n2's, n1's new entry is none of n2's business)
            expect(r.conflicts).toEqual(["00001", "00002", "00003"].map((j) => `conflict\tbig/e${j}\twinner=n1\tothers=n2`));
            expect(r.stdout).toMatch(/deleted=99997 conflicts=3 skipped=0\n$/);
            expect(ns.ok('ls "$1/big"', [`${c.lower}.g2`])).toBe("e00001\ne00002\ne00003\nn1new\nn2only\n");
            expect(ns.ok('ls "$1/big" | wc -l', [c.lower]).trim()).toBe("100000");
        });
    }, 300_000);
});

describe.skipIf(skip)("fold: refusals", () => {
    it("refuses when the changed data does not fit, naming the figures, and changes nothing", async () => {
        await withHostNs(async (ns) => {
            const root = ns.p("small");
            ns.ok('mkdir -p "$1" && mount -t tmpfs -o size=8m tmpfs "$1"', [root]);
            const lower = `${root}/static_cache`;
            ns.ok('mkdir -p "$1/.yfnode/cache" && head -c 1048576 /dev/urandom >"$1/.yfnode/cache/a"', [lower]);
            // the instance's upper is elsewhere (not on the small filesystem)
            const [i1] = instances(ns.p("inst"), 1);
            mountInstance(ns, lower, i1);
            ns.ok('head -c 20971520 /dev/urandom >"$1/.yfnode/cache/big"', [i1.merged]);
            const before = asRecord(walk(ns, root), { skipRoot: true });
            const r = ns.run("fold", foldArgs(lower, 2, `${root}/.overlay-fleet/gen2`, [i1]));
            expect(r.status).not.toBe(0);
            expect(r.stderr).toMatch(
                /^overlay-fleet: not enough free space on .* to fold generation 2: need (\d+) bytes \([\d.]+ MiB.*\), available (\d+) bytes \([\d.]+ MiB\); nothing was changed\n$/,
            );
            const [, need, avail] = r.stderr.match(/need (\d+) bytes .* available (\d+) bytes/)!;
            expect(Number(need)).toBeGreaterThan(20 << 20);
            expect(Number(avail)).toBeLessThan(8 << 20);
            const after = asRecord(walk(ns, root), { skipRoot: true });
            delete after["static_cache.fold.lock"];
            expect(after).toEqual(before);
        });
    }, 120_000);

    it("refuses redirect and metacopy content, and an upper mounted on another generation", async () => {
        await withHostNs(async (ns) => {
            const lower = ns.p("static_cache");
            ns.ok('mkdir -p "$1/d" && echo x >"$1/d/f"', [lower]);
            const [i1, i2] = instances(ns.p("inst"), 2);
            ns.ok(
                'mkdir -p "$1/d2" "$2" && setfattr -n trusted.overlay.redirect -v /d "$1/d2" && echo m >"$2/f2" && setfattr -n trusted.overlay.metacopy "$2/f2"',
                [i1.upper, i2.upper],
            );
            const r1 = ns.run("fold", foldArgs(lower, 2, ns.p("m"), [i1]));
            expect(r1.status).not.toBe(0);
            expect(r1.stderr).toMatch(/overlay-fleet: instance 'n1': '.*d2' has trusted.overlay.redirect/);
            const r2 = ns.run("fold", foldArgs(lower, 2, ns.p("m"), [i2]));
            expect(r2.status).not.toBe(0);
            expect(r2.stderr).toMatch(/overlay-fleet: instance 'n2': '.*f2' has trusted.overlay.metacopy/);
            // an instance running on generation 2 cannot be folded into 3 from generation 1's view
            const [i3] = instances(ns.p("inst3"), 1);
            ns.ok('mkdir -p "$1.g3"', [lower]);
            mountInstance(ns, lower, i3);
            const r3 = ns.run("fold", foldArgs(lower, 2, ns.p("m"), [i3]));
            expect(r3.status).not.toBe(0);
            expect(r3.stderr).toMatch(/generation 3 .* is newer than the target generation 2/);
            ns.ok('rmdir "$1.g3" && mkdir "$1.g2"', [lower]);
            const r4 = ns.run("fold", foldArgs(lower, 3, ns.p("m"), [i3]));
            expect(r4.status).not.toBe(0);
            expect(r4.stderr).toMatch(/is mounted at .* on lower '.*static_cache', but the fold starts from generation 2/);
            expect(ns.sh('ls -d "$1".g3* 2>/dev/null', [lower]).stdout).toBe("");
        });
    }, 120_000);
});

describe.skipIf(skip)("fold: interrupted (kill -9) and re-run", () => {
    // Every point where the fold can be stopped, in the order it passes them, with what a kill -9
    // there leaves: `helper`, after the sh part's checks and cleanup, before the helper starts (the
    // helper given is a wrapper that waits there); then the helper's own pause points (host/foldtool,
    // OVERLAY_FLEET_FOLD_PAUSE_AT): the hard-link farm built; the first directory of the first
    // instance copied, not yet checked (its read-only view mounted); between two levels of its walk;
    // before the second and the third instance; before the manifests; before the sync and rename
    // (the manifests written).
    const none = { staging: false, view: false, manifests: false };
    const staged = { ...none, staging: true };
    const points: Array<[string, typeof none]> = [
        ["helper", none],
        ["farm", staged],
        ["walk", { ...staged, view: true }],
        ["level-2", { ...staged, view: true }],
        ["instance-2", staged],
        ["instance-3", staged],
        ["manifests", staged],
        ["rename", { ...staged, manifests: true }],
    ];
    it.each(points)("killed at %s: current generation and instances intact; re-run completes", async (step, left) => {
        await withHostNs(async (ns) => {
            const c = buildCorpus(ns, { sparseMiB: 64 });
            const current = asRecord(walk(ns, c.lower));
            const views = c.insts.map((i) => walk(ns, i.merged));
            const m = model(walk(ns, c.lower), views, [".yfnode/config"]);
            const args = foldArgs(c.lower, 2, c.manifests, c.insts);
            let env: Record<string, string> = { OVERLAY_FLEET_FOLD_PAUSE_AT: step };
            if (step === "helper") {
                const wrapper = ns.p("foldtool-after-a-pause");
                fs.writeFileSync(wrapper, `#!/bin/sh\necho "overlay-fleet: fold paused at helper" >&2\nsleep 3600 && exec '${foldTool()}' "$@"\n`, { mode: 0o755 });
                env = { OVERLAY_FLEET_FOLDTOOL: wrapper };
            }
            const run = await pausedFold(ns, args, step, env);
            killGroup(run.child.pid!);
            await run.done;
            expect(run.out()).not.toMatch(/^folded/m);
            // what the kill left is what the fold had done by that point
            expect(ns.sh('test -e "$1.g2.partial"', [c.lower]).status === 0).toBe(left.staging);
            expect(ns.sh("grep -c ' - overlay ' /proc/self/mountinfo").stdout.trim()).toBe(left.view ? "4" : "3");
            expect(ns.sh('test -e "$1/n1.manifest"', [c.manifests]).status === 0).toBe(left.manifests);
            // and never a new generation, nor any change to the current one or to what the instances see
            expect(ns.sh('test -e "$1.g2"', [c.lower]).status).not.toBe(0);
            expect(asRecord(walk(ns, c.lower))).toEqual(current);
            c.insts.forEach((i, k) => expect(asRecord(walk(ns, i.merged))).toEqual(asRecord(views[k])));
            // the instances keep working
            ns.ok('echo still >"$1/after-kill" && cat "$1/after-kill" >/dev/null && rm "$1/after-kill"', [c.insts[0].merged]);

            const r = ns.run("fold", args);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            const want: Record<string, string> = {};
            for (const [p, e] of m.lower) if (p !== "") want[p] = describe_(e, { noDirMtime: true });
            expect(asRecord(walk(ns, `${c.lower}.g2`), { noDirMtime: true, skipRoot: true })).toEqual(want);
            expect(ns.sh('ls -d "$1".g2.* 2>/dev/null', [c.lower]).stdout).toBe("");
            expect(ns.ok("grep -c ' - overlay ' /proc/self/mountinfo").trim()).toBe("3");
        });
    }, 300_000);
});

/** Ends a paused fold's pause: kills the `sleep` its process (pid) started. */
function resume(pid: number): void {
    for (const d of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
        try {
            const st = fs.readFileSync(`/proc/${d}/stat`, "utf8");
            const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
            if (Number(f[2]) === pid && st.includes("(sleep)")) process.kill(Number(d), "SIGKILL");
        } catch {
            /* gone */
        }
    }
}

/** Starts a fold that pauses at `step` (by default the helper's pause hook); resolves once it is paused there. */
async function pausedFold(ns: HostNs, args: string[], step: string, env: Record<string, string> = { OVERLAY_FLEET_FOLD_PAUSE_AT: step }) {
    const run = startScript(ns, args, env);
    await until(() => run.err().includes(`paused at ${step}`) || run.child.exitCode !== null, `the fold to pause at ${step}`);
    if (run.child.exitCode !== null) throw new Error(`no pause at ${step}: ${run.err()}`);
    return run;
}

describe.skipIf(skip)("fold: instances keep writing", () => {
    it("a directory an instance replaces by a symlink between two levels of the walk is not followed (issue 24.15)", async () => {
        await withHostNs(async (ns) => {
            const lower = ns.p("static_cache");
            ns.ok('mkdir -p "$1/.yfnode/cache" && echo old >"$1/.yfnode/cache/f"', [lower]);
            const host = ns.p("host-secrets");
            ns.ok('mkdir -p "$1/sub" && echo secret >"$1/own" && echo secret >"$1/hostonly" && echo secret >"$1/sub/deeper"', [host]);
            const [n1] = instances(ns.p("i"), 1);
            mountInstance(ns, lower, n1);
            ns.ok('mkdir "$1/d" && echo mine >"$1/d/own" && echo top >"$1/top"', [n1.merged]);
            const manifests = ns.p("m");
            // paused after the upper's root is folded (d seen as a directory), before d is read
            const run = await pausedFold(ns, foldArgs(lower, 2, manifests, [n1]), "level-2");
            ns.ok('rm -rf "$1/d" && ln -s "$2" "$1/d"', [n1.merged, host]);
            resume(run.child.pid!);
            expect(await run.done).toBe(0);
            const g2 = `${lower}.g2`;
            expect(ns.ok('cat "$1/top"', [g2])).toBe("top\n");
            expect(ns.ok('cd "$1" && grep -rl secret . || :', [g2])).toBe("");
            expect(ns.ok('ls -A "$1/d"', [g2])).toBe("");
            expect(ns.ok('cat "$1/n1.manifest"', [manifests])).not.toMatch(/hostonly|deeper/);
        });
    }, 120_000);

    it("a file that changes while it is folded is skipped and stays in its upper", async () => {
        await withHostNs(async (ns) => {
            const lower = ns.p("static_cache");
            ns.ok('mkdir -p "$1/.yfnode/cache" && echo old >"$1/.yfnode/cache/f"', [lower]);
            const [n1] = instances(ns.p("i"), 1);
            mountInstance(ns, lower, n1);
            ns.ok('echo v1 >"$1/rootfile" && echo other >"$1/other" && echo new >"$1/.yfnode/cache/f"', [n1.merged]);
            const manifests = ns.p("m");
            // pause after the copies of the first directory (the upper's root), before they are checked
            const run = startScript(ns, foldArgs(lower, 2, manifests, [n1]), { OVERLAY_FLEET_FOLD_PAUSE_AT: "walk" });
            const t0 = Date.now();
            while (!run.err().includes("paused at walk")) {
                if (Date.now() - t0 > 60_000 || run.child.exitCode !== null) throw new Error(`no pause: ${run.err()}`);
                await new Promise((r) => setTimeout(r, 50));
            }
            ns.ok('echo v2 >>"$1/rootfile"', [n1.merged]);
            resume(run.child.pid!);
            expect(await run.done).toBe(0);
            expect(run.out()).toContain("skipped\trootfile\tn1\n");
            expect(run.out()).toMatch(/folded 2 from 1: files=2 .* skipped=1\n$/);
            expect(ns.sh('test -e "$1.g2/rootfile"', [lower]).status).not.toBe(0);
            expect(ns.ok('cat "$1.g2/other" "$1.g2/.yfnode/cache/f"', [lower])).toBe("other\nnew\n");
            expect(ns.ok('grep rootfile "$1/n1.manifest"', [manifests])).toMatch(/^K /);
            switchInstance(ns, `${lower}.g2`, n1, `${manifests}/n1.manifest`);
            expect(ns.ok('cat "$1/rootfile"', [n1.merged])).toBe("v1\nv2\n");
            expect(ns.ok('ls -A "$1"', [n1.upper])).toBe("rootfile\n");
        });
    }, 120_000);
});

describe.skipIf(skip)("gc: old generations", () => {
    it("keeps generations in use by a mount or fstab, removes the others and fold leftovers", async () => {
        await withHostNs(async (ns) => {
            const root = ns.p("disk");
            const lower = `${root}/static_cache`;
            ns.ok('mkdir -p "$1/.yfnode/cache" && echo a >"$1/.yfnode/cache/a"', [lower]);
            const insts = instances(root, 2).map((i) => ({ ...i, userxattr: false }));
            for (const i of insts) mountInstance(ns, lower, i);
            ns.ok('echo b >"$1/.yfnode/cache/b"', [insts[0].merged]);
            const fstab = ns.p("fstab");
            fs.writeFileSync(fstab, "# nothing\n");
            expect(ns.run("fold", foldArgs(lower, 2, `${root}/.of/gen2`, insts)).status).toBe(0);

            // generation 1 is still the lower of both instances
            let r = ns.run("gc", [lower, "2", fstab]);
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(new RegExp(`^kept ${lower}: in use by overlay mount ${insts[0].merged} \\(lowerdir\\); overlay mount ${insts[1].merged} \\(lowerdir\\)$`, "m"));
            expect(ns.sh('test -d "$1"', [lower]).status).toBe(0);

            for (const i of insts) switchInstance(ns, `${lower}.g2`, i, `${root}/.of/gen2/${i.name}.manifest`);
            // now only an fstab line names it (with an escaped space in another field)
            fs.writeFileSync(
                fstab,
                `overlay ${insts[0].merged} overlay lowerdir=${lower},upperdir=${insts[0].upper},workdir=${insts[0].work} 0 0\n/dev/sda1 /mnt/my\\040disk ext4 defaults 0 2\n`,
            );
            r = ns.run("gc", [lower, "2", fstab]);
            expect(r.status).toBe(0);
            expect(r.stdout).toMatch(new RegExp(`^kept ${lower}: in use by ${fstab} line 1 \\(lowerdir\\)$`, "m"));

            // unused: removed, with a leftover staging dir of an interrupted fold
            fs.writeFileSync(fstab, `overlay ${insts[0].merged} overlay lowerdir=${lower}.g2,upperdir=${insts[0].upper},workdir=${insts[0].work} 0 0\n`);
            ns.ok('mkdir -p "$1.g1.partial/x"', [lower]);
            r = ns.run("gc", [lower, "2", fstab]);
            expect(r.status).toBe(0);
            expect(r.stdout).toContain(`removed ${lower}\n`);
            expect(r.stdout).toContain(`removed ${lower}.g1.partial\n`);
            // the configured lower names the current generation: a symlink to it, nothing dangles
            expect(r.stdout).toContain(`linked ${lower} -> static_cache.g2\n`);
            expect(ns.ok('readlink "$1"', [lower])).toBe("static_cache.g2\n");
            expect(ns.ok('cat "$1/.yfnode/cache/a" "$1/.yfnode/cache/b"', [lower])).toBe("a\nb\n");
            // the instances are fine; the kept generation is untouched; a second gc does nothing
            expect(ns.ok('cat "$1/.yfnode/cache/a" "$1/.yfnode/cache/b"', [insts[1].merged])).toBe("a\nb\n");
            r = ns.run("gc", [lower, "2", fstab]);
            expect(r.stdout).toMatch(/removed=0 kept=0/);
            // and a generation that does not exist is never a reason to delete the others
            r = ns.run("gc", [lower, "5", fstab]);
            expect(r.status).not.toBe(0);
            expect(r.stderr).toMatch(/generation 5 .* does not exist/);
            expect(ns.sh('test -d "$1.g2"', [lower]).status).toBe(0);

            // the next generation folds from the symlinked lower; gc points the lower at it and
            // removes generation 2 once nothing uses it
            ns.ok('echo c >"$1/.yfnode/cache/c"', [insts[0].merged]);
            expect(ns.run("fold", foldArgs(lower, 3, `${root}/.of/gen3`, insts)).status).toBe(0);
            for (const i of insts) switchInstance(ns, `${lower}.g3`, i, `${root}/.of/gen3/${i.name}.manifest`);
            fs.writeFileSync(fstab, `overlay ${insts[0].merged} overlay lowerdir=${lower}.g3,upperdir=${insts[0].upper},workdir=${insts[0].work} 0 0\n`);
            r = ns.run("gc", [lower, "3", fstab]);
            expect(r.stderr).toBe("");
            expect(r.stdout).toContain(`linked ${lower} -> static_cache.g3\n`);
            expect(r.stdout).toContain(`removed ${lower}.g2\n`);
            expect(ns.ok('readlink "$1" && cat "$1/.yfnode/cache/c"', [lower])).toBe("static_cache.g3\nc\n");
            expect(ns.ok('ls -a "$1"', [root]).split("\n").filter((n) => n.startsWith("static_cache"))).toEqual([
                "static_cache",
                "static_cache.fold.lock",
                "static_cache.g3",
            ]);
        });
    }, 120_000);
});

describe.skipIf(skip || !hasRsync)("the seed's merge script on the same corpus (what goes wrong)", () => {
    it("copies nested whiteouts as devices, resurrects deleted dirs, loses hard links, xattrs, sparseness", async () => {
        await withHostNs(async (ns) => {
            const c = buildCorpus(ns, { diskMiB: 1536 });
            for (const i of c.insts) ns.ok('umount "$1"', [i.merged]);
            // the seed (000_*.txt, step 6), run for each upper in turn, on .yfnode/cache
            // (no set -e: the original has none, so an rsync error does not stop the rm -rf)
            const seed = String.raw`
                lower="$1/.yfnode/cache"
                upper="$2/.yfnode/cache"
                filelist=$(mktemp)
                cd "$upper"
                find ./ -maxdepth 1 -type c > "$filelist"
                cd "$lower"
                xargs -I{} rm -rf {} < "$filelist"
                cd "$upper"
                xargs -I{} rm -rf {} < "$filelist"
                rsync -a "$upper"/* "$lower"
                rm -rf "$upper"
                rm -f "$filelist"`;
            const errors = c.insts.map((i) => ns.sh(seed, [c.lower, i.upper]).stderr).join("");
            // rsync cannot put n2's nested whiteout where a directory is, and its upper is gone anyway
            expect(errors).toMatch(/could not make way for new device file: olddir\/sub/);
            expect(ns.sh('test -e "$1/.yfnode/cache"', [c.insts[1].upper]).status).not.toBe(0);
            const after = walk(ns, c.lower);
            const cache = ".yfnode/cache";
            // a whiteout below depth 1 is copied into the lower as a 0/0 character device
            const wh = after.get(`${cache}/deep/l1/l2/l3/file1`);
            expect(wh?.type).toBe("c");
            expect(wh?.rdev).toBe(0n);
            // the deleted-and-recreated directory (opaque) gets its old content back
            expect(after.has(`${cache}/olddir/fresh`)).toBe(true);
            expect(after.has(`${cache}/olddir/y`)).toBe(true);
            // hard links are split (rsync without -H), xattrs are lost (without -X)
            expect(after.get(`${cache}/hl/one`)!.ino).not.toBe(after.get(`${cache}/hl/two`)!.ino);
            expect(after.get(`${cache}/hl/one`)!.xattrs["user.hl"]).toBeUndefined();
            // n2's xattr-only change is lost: same size and mtime, so rsync skips the file
            expect(after.get(`${cache}/meta/xattrme`)!.xattrs["user.orig"]).toBe("0x6f6e65");
            // a delete at depth 2 is copied as a device as well
            expect(after.get(`${cache}/links/b`)?.type).toBe("c");
            // conflicts are silent: the last instance processed wins
            // (which one depends on rsync's quick check: same size, mtimes within a second: skipped)
            expect(["n1\n", "n2\n", "n3\n"]).toContain(ns.ok('cat "$1"', [`${c.lower}/${cache}/conflict.txt`]));
            // the sparse file is written out in full (rsync without -S)
            expect(Number(after.get(`${cache}/huge.sparse`)!.blocks) * 512).toBeGreaterThan(1000 << 20);
            // a file renamed at depth 1 leaves its whiteout's name deleted: that part works
            expect(after.has(`${cache}/renfile`)).toBe(false);
        });
    }, 300_000);
});
