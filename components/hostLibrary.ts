import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostScript, HostScriptName, hostScriptNames, shQuote } from "./hostScripts";

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
}

let staged: HostLibraryBundle | undefined;

/**
 * Writes the host library into `.overlay-fleet/hostlib/<hash>/` of the project (once per
 * content): `<name>` = host/lib.sh + the libraries it needs + host/<name>.sh, and SHA256SUMS so a
 * box can prove it has the whole library. Returns the project-relative directory.
 */
export function stageHostLibrary(projectDir = path.join(__dirname, "..")): HostLibraryBundle {
    if (staged !== undefined) {
        return staged;
    }
    const files = hostScriptNames.map((name) => ({ name, text: hostScript(name) }));
    const sums = files.map((f) => `${crypto.createHash("sha256").update(f.text).digest("hex")}  ${f.name}\n`).join("");
    const hash = crypto.createHash("sha256").update(sums).digest("hex").slice(0, 16);
    const absolute = path.join(projectDir, ".overlay-fleet", "hostlib", hash);
    if (!fs.existsSync(path.join(absolute, "SHA256SUMS"))) {
        const tmp = `${absolute}.tmp-${process.pid}`;
        fs.rmSync(tmp, { recursive: true, force: true });
        fs.mkdirSync(tmp, { recursive: true });
        for (const f of files) {
            fs.writeFileSync(path.join(tmp, f.name), f.text);
        }
        fs.writeFileSync(path.join(tmp, "SHA256SUMS"), sums);
        fs.rmSync(absolute, { recursive: true, force: true });
        fs.renameSync(tmp, absolute);
    }
    staged = { hash, dir: path.relative(process.cwd(), absolute) || "." };
    return staged;
}

/**
 * The command line that runs installed host commands on a box, each with quoted arguments and
 * each only if the one before succeeded: `{ cd /var/lib/overlay-fleet/host || ...; } && sh mount 'arg1' ...`.
 * It names no library version, so an upgrade of overlay-fleet changes only each box's library
 * resource, not these commands; a box without the library fails saying so.
 */
export function hostCalls(...calls: Array<[HostScriptName, readonly string[]]>): string {
    const enter = `{ cd ${hostLibraryCurrent} 2>/dev/null || { echo "overlay-fleet: ${missingLibrary}" >&2; exit 3; }; }`;
    return [enter, ...calls.map(([name, args]) => ["sh", name, ...args.map(shQuote)].join(" "))].join(" && ");
}

/** What a box without the host library says (no double quotes: it is echoed inside them). */
export const missingLibrary = `no host library on this box (${hostLibraryCurrent}): replace the box's HostLibrary, see README: A wiped box`;

/** One installed host command (see hostCalls). */
export function hostCall(name: HostScriptName, args: readonly string[]): string {
    return hostCalls([name, args]);
}

/**
 * Removes a box's library when its install resource goes: only the current version, and only
 * once no managed fstab line is left on the box (destroy removes the instances first). A
 * replacement of the same version (a wiped box) runs this after the new install, while the
 * box's instances still exist, so it keeps what it just installed.
 */
export function removalScript(hash: string, fstab: string): string {
    return [
        "set -eu",
        `root=${shQuote(hostLibraryRoot)}`,
        `current=${shQuote(hostLibraryCurrent)}`,
        `hash=${shQuote(hash)}`,
        `fstab=${shQuote(fstab)}`,
        '[ "$(readlink "$current" 2>/dev/null)" = "lib/$hash" ] || exit 0',
        'if grep -q "x-overlay-fleet=" "$fstab" 2>/dev/null; then echo "host library $hash kept: instances remain"; exit 0; fi',
        'rm -f -- "$current"',
        'rm -rf -- "${root:?}/$hash"',
        'rmdir -- "$root" 2>/dev/null || :',
    ].join("\n");
}

/**
 * Installs a staged library on a box and makes it current (run after the copy): every file is
 * checked against SHA256SUMS, `host` is switched to it with one rename, and other versions are
 * removed (the commands that used them have finished: Pulumi runs this before any of the box's
 * commands of the new version, and a box runs one deployment at a time).
 */
export function activationScript(hash: string): string {
    return [
        "set -eu",
        "umask 022",
        `root=${shQuote(hostLibraryRoot)}`,
        `current=${shQuote(hostLibraryCurrent)}`,
        `hash=${shQuote(hash)}`,
        'cd "$root/$hash" 2>/dev/null || { echo "overlay-fleet: host library $hash was not copied to $root" >&2; exit 1; }',
        'sha256sum -c --quiet SHA256SUMS >&2 || { echo "overlay-fleet: host library $hash on this box is incomplete" >&2; exit 1; }',
        'ln -sfn "lib/$hash" "$current.new" && mv -f -T "$current.new" "$current"',
        'for d in "$root"/*; do [ "$d" = "$root/$hash" ] || rm -rf -- "$d"; done',
        'echo "ok: host library $hash"',
    ].join("\n");
}

/** Arguments of a box's host library. */
export interface HostLibraryArgs {
    /** SSH connection to the box (secret: it holds the private key). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** The staged library (see stageHostLibrary). */
    bundle: HostLibraryBundle;
    /** The box's fstab: the library is removed only when no managed line is left in it. */
    fstab: string;
}

/**
 * overlay-fleet's host library on one box, installed once at `/var/lib/overlay-fleet/lib/<hash>`
 * (copied with the command plugin's CopyToRemote over SFTP, then checked and made current), so
 * every other command of the box is a short call into it. The state keeps the library's hash,
 * not its text; a new overlay-fleet version shows as one update of this resource per box.
 */
export class HostLibrary extends pulumi.ComponentResource {
    public readonly copy: command.remote.CopyToRemote;
    public readonly install: command.remote.Command;

    constructor(name: string, args: HostLibraryArgs, opts?: pulumi.ComponentResourceOptions) {
        super("overlay-fleet:host:HostLibrary", name, {}, opts);
        const { bundle } = args;
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
        this.install = new command.remote.Command(
            `${name}-install`,
            { connection: args.connection, addPreviousOutputInEnv: false, create: activationScript(bundle.hash),
              delete: removalScript(bundle.hash, args.fstab),
              triggers: [bundle.hash] },
            { parent: this, dependsOn: [this.copy] },
        );
        this.registerOutputs({ hash: bundle.hash });
    }
}
