/**
 * Temp dirs for unit tests, each removed when the test or the file that made it is done (passed
 * or failed): a test run leaves nothing in the OS temp dir.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, onTestFinished } from "vitest";

function made(prefix: string, removeWhenDone: (remove: () => void) => void): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    const remove = () => fs.rmSync(dir, { recursive: true, force: true });
    try {
        removeWhenDone(remove);
    } catch (error) {
        remove();
        throw error;
    }
    return dir;
}

/** A temp dir for the running test, removed when it finishes. Only inside a test. */
export function testTempDir(prefix: string): string {
    return made(prefix, (remove) => onTestFinished(remove));
}

/** A temp dir for a whole test file, removed after its tests. At the file's top level. */
export function fileTempDir(prefix: string): string {
    return made(prefix, (remove) => afterAll(remove));
}
