/** Small `docker save`-shaped archives for tests (only what the checks read: manifest.json). */
import * as fs from "fs";
import * as path from "path";
import { testTempDir } from "./tempDirs";

function tarEntry(name: string, body: Buffer): Buffer {
    const header = Buffer.alloc(512);
    header.write(name, 0, "utf8");
    header.write("0000644\0", 100);
    header.write("0000000\0", 108);
    header.write("0000000\0", 116);
    header.write(body.length.toString(8).padStart(11, "0") + "\0", 124);
    header.write("00000000000\0", 136);
    header.write("        ", 148);
    header.write("0", 156);
    header.write("ustar\0" + "00", 257);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
    body.copy(padded);
    return Buffer.concat([header, padded]);
}

/** Writes a tar with a manifest.json tagging the given images; returns its path (removed after the test). */
export function writeImageArchive(repoTags: string[], extra: Record<string, string> = {}): string {
    const dir = testTempDir("overlay-fleet-image-");
    const file = path.join(dir, "image.tar");
    const manifest = JSON.stringify([{ Config: "config.json", RepoTags: repoTags, Layers: ["layer.tar"] }]);
    const members = [...Object.entries(extra), ["manifest.json", manifest]].map(([name, text]) => tarEntry(name, Buffer.from(text)));
    fs.writeFileSync(file, Buffer.concat([...members, Buffer.alloc(1024)]));
    return file;
}
