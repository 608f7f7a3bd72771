/**
 * Image archives (`docker save` format) shipped to boxes without registry access: a tar holding
 * `manifest.json` (`[{ Config, RepoTags, Layers }]`). Read here once, before anything on a box
 * changes, so a missing file or a file that is not such an archive fails `pulumi preview`.
 */
import * as crypto from "crypto";
import * as fs from "fs";

/** An image archive found valid: where it is, its content hash and the images it tags. */
export interface ImageArchive {
    path: string;
    sha256: string;
    repoTags: string[];
}

const TAR_BLOCK = 512;

/** Parses a NUL-terminated octal field of a tar header. */
function octal(header: Buffer, offset: number, length: number): number {
    const text = header.subarray(offset, offset + length).toString("latin1").replace(/\0.*$/s, "").trim();
    return text === "" ? 0 : parseInt(text, 8);
}

/** Reads one member of a tar file without loading the rest (ustar and GNU long names). */
function readTarMember(fd: number, wanted: string): Buffer | undefined {
    const header = Buffer.alloc(TAR_BLOCK);
    let position = 0;
    let longName: string | undefined;
    for (;;) {
        if (fs.readSync(fd, header, 0, TAR_BLOCK, position) !== TAR_BLOCK || header.every((b) => b === 0)) {
            return undefined;
        }
        const size = octal(header, 124, 12);
        const checksum = octal(header, 148, 8);
        let sum = 0;
        for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
        if (Number.isNaN(size) || sum !== checksum) {
            throw new Error("is not a tar archive");
        }
        const type = String.fromCharCode(header[156]);
        const prefix = header.toString("latin1", 345, 500).replace(/\0.*$/s, "");
        const base = header.toString("latin1", 0, 100).replace(/\0.*$/s, "");
        const name = (longName ?? (prefix ? `${prefix}/${base}` : base)).replace(/^\.\//, "");
        const body = position + TAR_BLOCK;
        longName = undefined;
        if (type === "L") {
            const data = Buffer.alloc(size);
            fs.readSync(fd, data, 0, size, body);
            longName = data.toString("utf8").replace(/\0.*$/s, "");
        } else if (name === wanted && (type === "0" || type === "\0")) {
            const data = Buffer.alloc(size);
            if (fs.readSync(fd, data, 0, size, body) !== size) throw new Error("is truncated");
            return data;
        }
        position = body + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    }
}

/** The full reference docker gives a tag-less image name (`name` means `name:latest`). */
export function withDefaultTag(image: string): string {
    const lastSegment = image.slice(image.lastIndexOf("/") + 1);
    return lastSegment.includes(":") || lastSegment.includes("@") ? image : `${image}:latest`;
}

/** Archives already checked, by path, with the identity of the file they were read from. */
const inspected = new Map<string, { identity: string; archive: ImageArchive }>();

/**
 * Checks an image archive and returns what it holds; throws an Error whose message completes
 * "<key>: <path> ..." (e.g. "does not exist", "is not a docker image archive ..."). An archive
 * named by `defaults` is checked for every box: the same unchanged file is read and hashed once.
 */
export function inspectImageArchive(file: string): ImageArchive {
    let fd: number;
    try {
        fd = fs.openSync(file, "r");
    } catch {
        throw new Error("does not exist or cannot be read");
    }
    try {
        const stat = fs.fstatSync(fd, { bigint: true });
        if (!stat.isFile()) throw new Error("is not a file");
        const identity = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
        const known = inspected.get(file);
        if (known?.identity === identity) {
            return known.archive;
        }
        let manifest: Buffer | undefined;
        try {
            manifest = readTarMember(fd, "manifest.json");
        } catch (error) {
            throw new Error(`is not a docker image archive (\`docker save\` output): it ${(error as Error).message}`);
        }
        if (manifest === undefined) throw new Error("is not a docker image archive (`docker save` output): it has no manifest.json");
        let entries: Array<{ RepoTags?: string[] }>;
        try {
            entries = JSON.parse(manifest.toString("utf8"));
        } catch {
            throw new Error("is not a docker image archive: its manifest.json is not JSON");
        }
        const repoTags = Array.isArray(entries) ? entries.flatMap((e) => e.RepoTags ?? []) : [];
        const hash = crypto.createHash("sha256");
        const chunk = Buffer.alloc(1 << 20);
        for (let position = 0, n; (n = fs.readSync(fd, chunk, 0, chunk.length, position)) > 0; position += n) {
            hash.update(chunk.subarray(0, n));
        }
        const archive = { path: file, sha256: hash.digest("hex"), repoTags };
        inspected.set(file, { identity, archive });
        return archive;
    } finally {
        fs.closeSync(fd);
    }
}
