import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostScript, HostScriptName, hostScriptNames, shQuote } from "./hostScripts";
import { boxClaimFile } from "../model/constants";

/** Where boxes keep installed host libraries, one directory per content hash. */
export const hostLibraryRoot = "/var/lib/overlay-fleet/lib";
/** The box's current library: a symlink to `lib/<hash>`, switched atomically by the installer. */
export const hostLibraryCurrent = "/var/lib/overlay-fleet/host";

/** The host library as it is copied to a box: one self-contained sh file per host command. */
export interface HostLibraryBundle {
    /** Content hash (16 hex digits): names the directory on the box. */
    hash: string;
    /** Local directory holding the files (named by the hash, so the copy lands in `lib/<hash>`). */
    dir: string;
    /** Why the library lacks the fold helper (no Go here): deploys work, folds fail saying so. */
    warning?: string;
}

/** Staged libraries by project directory and fold helper or not: a program stages each once. */
const staged = new Map<string, HostLibraryBundle>();

/**
 * The fold helper (host/foldtool, Go, standard library only) as static Linux binaries, one per
 * box architecture: GOARCH -> the `uname -m` names it serves. The box's install picks its own.
 */
export const foldToolArches: Record<string, string[]> = {
    amd64: ["x86_64"],
    arm64: ["aarch64", "arm64"],
    arm: ["armv7l", "armv6l", "armv7", "armv6"],
    "386": ["i686", "i586", "i386"],
    riscv64: ["riscv64"],
};

/**
 * Builds host/foldtool for every architecture in foldToolArches, once per source content, into
 * `.overlay-fleet/foldtool/<hash>/` of the project, each binary beside its gzipped copy (made
 * once too: gzip -9 of five binaries would cost every preview about a second); returns
 * `{ name, file }` per gzipped binary. Needs Go on the operator's machine (the toolchain has it);
 * fails naming what is missing otherwise.
 */
export function buildFoldTool(projectDir: string): Array<{ name: string; file: string }> {
    const src = path.join(projectDir, "host", "foldtool");
    if (!fs.existsSync(path.join(src, "go.mod"))) {
        return [];
    }
    const sources = fs.readdirSync(src).filter((f) => f.endsWith(".go") || f === "go.mod" || f === "go.sum").sort();
    const hash = crypto.createHash("sha256");
    for (const f of sources) hash.update(f).update("\0").update(fs.readFileSync(path.join(src, f)));
    const outDir = path.join(projectDir, ".overlay-fleet", "foldtool", hash.digest("hex").slice(0, 16));
    return Object.keys(foldToolArches).map((goarch) => {
        const file = path.join(outDir, `foldtool-${goarch}`);
        if (!fs.existsSync(file)) {
            fs.mkdirSync(outDir, { recursive: true });
            const env = { ...process.env, CGO_ENABLED: "0", GOOS: "linux", GOARCH: goarch, GOARM: "6", GOFLAGS: "-mod=mod", GOTOOLCHAIN: "local" };
            // Go's usual install place, when it is not on PATH.
            const go = spawnSync("go", ["version"]).error && fs.existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go";
            const result = spawnSync(go, ["build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", `${file}.tmp`, "."], { cwd: src, env, encoding: "utf8" });
            if (result.error || result.status !== 0) {
                throw new Error(
                    `cannot build the fold helper host/foldtool for linux/${goarch}: ${result.error?.message ?? result.stderr.trim()}\n` +
                        "overlay-fleet builds it once with Go (https://go.dev/dl, 1.25 or later) on the machine that runs pulumi",
                );
            }
            fs.renameSync(`${file}.tmp`, file);
        }
        const gz = `${file}.gz`;
        if (!fs.existsSync(gz)) {
            fs.writeFileSync(`${gz}.tmp`, zlib.gzipSync(fs.readFileSync(file), { level: 9 }));
            fs.renameSync(`${gz}.tmp`, gz);
        }
        return { name: `foldtool-${goarch}.gz`, file: gz };
    });
}

/**
 * Writes the host library into `.overlay-fleet/hostlib/<hash>/` of the project (once per
 * content): `<name>` = host/lib.sh + the libraries it needs + host/<name>.sh, and SHA256SUMS so a
 * box can prove it has the whole library. With `foldTool` (a box whose lower folds, see
 * usesFoldTool) it also holds the fold helper for every architecture, nine tenths of its bytes.
 * Returns the project-relative directory.
 */
export function stageHostLibrary(projectDir = path.join(__dirname, ".."), foldTool = true): HostLibraryBundle {
    const key = `${projectDir}\0${foldTool}`;
    const done = staged.get(key);
    if (done !== undefined) {
        return done;
    }
    let helpers: Array<{ name: string; file: string }> = [];
    let warning: string | undefined;
    try {
        helpers = foldTool ? buildFoldTool(projectDir) : [];
    } catch (error) {
        warning = `${(error as Error).message}; until then the host library of a box at generation 2 or later has no fold helper and its fold fails on the box`;
    }
    const files: Array<{ name: string; text: string | Buffer }> = [
        ...hostScriptNames.map((name) => ({ name, text: hostScript(name) })),
        { name: "activate", text: activationScript() },
        { name: "uninstall", text: removalScript() },
        // Compressed (about half the size to copy and to check); the box unpacks its own architecture's.
        ...helpers.map(({ name, file }) => ({ name, text: fs.readFileSync(file) })),
    ];
    const sums = files.map((f) => `${crypto.createHash("sha256").update(f.text).digest("hex")}  ${f.name}\n`).join("");
    const hash = crypto.createHash("sha256").update(sums).digest("hex").slice(0, 16);
    const absolute = path.join(projectDir, ".overlay-fleet", "hostlib", hash);
    if (!fs.existsSync(path.join(absolute, "SHA256SUMS"))) {
        const tmp = `${absolute}.tmp-${process.pid}`;
        fs.rmSync(tmp, { recursive: true, force: true });
        fs.mkdirSync(tmp, { recursive: true });
        for (const f of files) {
            fs.writeFileSync(path.join(tmp, f.name), f.text, { mode: 0o644 });
        }
        fs.writeFileSync(path.join(tmp, "SHA256SUMS"), sums);
        fs.rmSync(absolute, { recursive: true, force: true });
        fs.renameSync(tmp, absolute);
    }
    const bundle = { hash, dir: path.relative(process.cwd(), absolute) || ".", ...(warning ? { warning } : {}) };
    staged.set(key, bundle);
    return bundle;
}

/**
 * The command line that runs installed host commands on a box, each with quoted arguments and
 * each only if the one before succeeded: `{ cd /var/lib/overlay-fleet/host || ...; } && sh mount 'arg1' ...`.
 * It names no library version, so an upgrade of overlay-fleet changes only each box's library
 * resource, not these commands; a box without the library fails saying so.
 */
export function hostCalls(...calls: HostCall[]): string {
    // Byte for byte as in every command of existing stacks: a new text would update (re-run) them all.
    const enter = `{ cd ${hostLibraryCurrent} 2>/dev/null || { echo "overlay-fleet: ${missingLibrary}" >&2; exit 3; }; }`;
    return [enter, ...calls.map(([name, args]) => callLine(name, args))].join(" && ");
}

/** One call of an installed host command: `sh <name> 'arg' ...`, each argument single-quoted. */
function callLine(name: LibraryCommand, args: readonly string[]): string {
    return ["sh", name, ...args.map(shQuote)].join(" ");
}

/** One call of an installed host command: the script's name and its arguments. */
export type HostCall = [LibraryCommand, readonly string[]];

/** The commands of an installed library: the host scripts, and its own `activate` and `uninstall`. */
export type LibraryCommand = HostScriptName | "activate" | "uninstall";

/**
 * What a box without the host library says (no double quotes: it is echoed inside them). Part of
 * every command's text (hostCalls), so kept word for word although the recovery is now the
 * command `npm run status` prints (README: A wiped box): a new text would update every command.
 */
export const missingLibrary = `no host library on this box (${hostLibraryCurrent}): replace the box's HostLibrary, see README: A wiped box`;

/** One installed host command (see hostCalls). */
export function hostCall(name: HostScriptName, args: readonly string[]): string {
    return hostCalls([name, args]);
}

/** The first lines of the library's own scripts (activate, uninstall): usage, strict mode, its places. */
function libraryScriptHead(usage: string): string[] {
    return [`# overlay-fleet: ${usage}`, "set -eu", `root=${shQuote(hostLibraryRoot)}`, `current=${shQuote(hostLibraryCurrent)}`];
}

/**
 * The library's `uninstall <fstab>`: removes the box's current library once no managed fstab line
 * is left on the box (after its teardown took the instances down) and no box claims the machine
 * (its own teardown gave its claim up: one left is another stack's box, see host/claim.sh). It
 * names no version: whatever library the box runs now, itself included (the shell has it open).
 */
export function removalScript(): string {
    return [
        ...libraryScriptHead("uninstall <fstab>"),
        'fstab=$1',
        `claim=${shQuote(boxClaimFile)}`,
        'target=$(readlink "$current" 2>/dev/null) || exit 0',
        'case $target in lib/?*) ;; *) exit 0 ;; esac',
        'if grep -q "x-overlay-fleet=" "$fstab" 2>/dev/null; then echo "host library ${target#lib/} kept: instances remain"; exit 0; fi',
        // A box's own teardown gave up its claim before (host/apply.sh): a claim is another box's.
        'if [ -e "$claim" ]; then echo "host library ${target#lib/} kept: the machine is claimed ($claim)"; exit 0; fi',
        'cd /',
        'rm -f -- "$current"',
        'rm -rf -- "${root:?}/${target#lib/}"',
        'rmdir -- "$root" 2>/dev/null || :',
        "",
    ].join("\n");
}

/**
 * The library's `activate <hash> <box> <stack>`: installs it on a box and makes it current (run
 * after the copy): every file the box uses is checked against SHA256SUMS (of the fold helpers, if
 * the library has them, its own architecture's, named in foldtool.arch for the first fold to
 * unpack), the machine is claimed for the box of its stack (host/claim.sh: another stack's
 * machine is refused here, before anything changes), `host` is switched to it with one rename,
 * and other versions are removed (no command uses them: the box's other commands run after its
 * apply, and a machine runs one stack's deployment at a time).
 */
export function activationScript(): string {
    return [
        ...libraryScriptHead("activate <hash> <box> <stack>, in the library's directory"),
        "hash=$1",
        "box=$2",
        "stack=$3",
        "umask 022",
        // The fold helper of this box's architecture, if the library has them.
        "arch=",
        "if ls foldtool-*.gz >/dev/null 2>&1; then",
        "  case $(uname -m) in",
        ...Object.entries(foldToolArches).map(([goarch, names]) => `    ${names.join(" | ")}) arch=${goarch} ;;`),
        '    *) echo "overlay-fleet: no fold helper for this box\'s architecture $(uname -m)" >&2; exit 1 ;;',
        "  esac",
        "fi",
        // Every file this box uses checked (not the other architectures' helpers).
        `{ grep -v '  foldtool-' SHA256SUMS; [ -z "$arch" ] || grep "  foldtool-$arch.gz\$" SHA256SUMS; } | sha256sum -c --quiet - >&2 ||`,
        '  { echo "overlay-fleet: host library $hash on this box is incomplete" >&2; exit 1; }',
        // Unpacked by the first fold that runs it (host/fold.sh): most applies fold nothing.
        '[ -z "$arch" ] || [ -x foldtool ] || printf \'%s\\n\' "$arch" >foldtool.arch',
        // Before the other versions go: they may be another stack's, which the claim refuses.
        'sh claim "$box" "$stack" </dev/null',
        'ln -sfn "lib/$hash" "$current.new" && mv -f -T "$current.new" "$current"',
        'for d in "$root"/*; do [ "$d" = "$root/$hash" ] || rm -rf -- "$d"; done',
        'echo "ok: host library $hash"',
        "",
    ].join("\n");
}

/**
 * A box's whole deployment as one command text: the library `hash` installed and made current
 * for the box of its stack `claim` (its `activate`, activationScript), then each call on its own line in the library
 * (`sh <name> 'arg' ...`), the script stopping at the first that fails. Only the calls named in `stdinFor` read the command's
 * stdin; the others get /dev/null. The text is known at preview (it names no output of the
 * copy), so the stack diff shows it even when the library changes. A box without the library is
 * told the command that copies it again and re-runs the whole: `pulumi up --replace` of the
 * resources `replace` names by urn (the box's library copy and this command).
 */
export function installAndRun(hash: string, replace: string[], claim: BoxClaim, calls: HostCall[], stdinFor: ReadonlySet<LibraryCommand>): string {
    // Said with printf of one single-quoted word: an urn holds `$`.
    const notCopied =
        `overlay-fleet: host library ${hash} is not on this box (${hostLibraryRoot}/${hash}): ` +
        `copy it again with: pulumi up ${replace.map((urn) => `--replace '${urn}'`).join(" ")} (README: A wiped box)`;
    return [
        `# overlay-fleet host library ${hash}`,
        "set -eu",
        `cd ${shQuote(`${hostLibraryRoot}/${hash}`)} 2>/dev/null || { printf '%s\\n' ${shQuote(notCopied)} >&2; exit 1; }`,
        `${callLine("activate", [hash, claim.box, claim.stack])} </dev/null`,
        `cd ${shQuote(hostLibraryCurrent)}`,
        ...calls.map(([name, args]) => (stdinFor.has(name) ? callLine(name, args) : `${callLine(name, args)} </dev/null`)),
    ].join("\n");
}

/** Whose a box is: its name, and the stack that deploys it (host/claim.sh). */
export interface BoxClaim {
    box: string;
    /** `<organization>/<project>/<stack>`. */
    stack: string;
}

/** The claim as the machine holds it (host/claim.sh writes it): `<stack> <box>`. */
export function claimText(claim: BoxClaim): string {
    return `${claim.stack} ${claim.box}`;
}

/** Arguments of a box's host library. */
export interface HostLibraryArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** The staged library (see stageHostLibrary). */
    bundle: HostLibraryBundle;
}

/**
 * overlay-fleet's host library on one box, copied once to `/var/lib/overlay-fleet/lib/<hash>`
 * with the command plugin's CopyToRemote over SFTP; the box's apply command checks it and makes
 * it current (installAndRun), so every other step is a short call into it. The state keeps the
 * library's hash, not its text; a new overlay-fleet version shows as a new copy per box and an
 * update of the box's apply.
 */
export class HostLibrary extends pulumi.ComponentResource {
    public readonly copy: command.remote.CopyToRemote;
    public readonly hash: string;

    constructor(name: string, args: HostLibraryArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:host:HostLibrary", name, {}, opts);
        const { bundle } = args;
        this.hash = bundle.hash;
        if (bundle.warning) {
            pulumi.log.warn(bundle.warning, this);
        }
        this.copy = new command.remote.CopyToRemote(
            `${name}-copy`,
            {
                connection: args.connection,
                source: new pulumi.asset.FileArchive(bundle.dir),
                remotePath: hostLibraryRoot,
                triggers: [bundle.hash],
            },
            { parent: this },
        );
        this.registerOutputs({ hash: bundle.hash });
    }
}
