/**
 * The e2e harness's run() (test/e2e/engine.ts) with children that do not read their stdin: an
 * early exit must not crash the run with an unhandled `write EPIPE`, nor hide the child's status.
 * Runs without the lab: only `sh` is started.
 */
import { describe, expect, it } from "vitest";
import { run } from "../e2e/engine";

// More than a pipe buffer (64 KiB), so the write is still pending when the child exits.
const BIG = "x".repeat(4 * 1024 * 1024);

describe("e2e run() with a child that exits before reading stdin", () => {
    it("resolves with the child's failure status and output (no unhandled EPIPE)", async () => {
        for (let k = 0; k < 20; k++) {
            const r = await run("sh", ["-c", "echo started; echo oops >&2; exit 3"], { input: BIG });
            expect(r).toEqual({ status: 3, stdout: "started\n", stderr: "oops\n" });
        }
    });

    it("resolves a success of a child that ignores its stdin, and still passes input to one that reads it", async () => {
        const r = await run("sh", ["-c", "exec 0<&-; echo done"], { input: BIG });
        expect(r).toEqual({ status: 0, stdout: "done\n", stderr: "" });
        const cat = await run("sh", ["-c", "wc -c"], { input: BIG });
        expect(cat.stdout.trim()).toBe(String(BIG.length));
    });

    it("still rejects when the command cannot be started", async () => {
        await expect(run("/nonexistent/of-test-command", [])).rejects.toThrow(/ENOENT/);
    });
});
