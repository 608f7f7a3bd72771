/**
 * Makes a box's containers as last deployed again, keeping the ones that run: runs the box's
 * containers command (`<box>-containers-run`) once more, with the command text and the records
 * the stack's state holds for it, over SSH. The command converges (host/containers.sh `set`): it
 * makes a container that is gone with its planned hostname, IP and MAC, and keeps each one that is
 * as planned. For a box some of whose containers were removed behind Pulumi's back (`npm run
 * status` shows them absent and prints this command); `pulumi up --replace` of the command would
 * take the others down too. Nothing in the state changes: it runs what the state already says.
 *
 *   npm run repair -- [--stack lab] <box>...
 */
import type { BoxSummary } from "../components/box";
import { shQuote } from "../components/hostScripts";
import { boxClaimFile } from "../model/constants";
import { deployedBoxes, onBox, parseOperatorArgs, pulumi, runCommand, stackPrivateKey, UsageError, useStack } from "./stack";

/** A resource of `pulumi stack export` (the fields read here). */
interface StateResource {
    urn: string;
    type: string;
    /** A resource replaced create-before-delete whose delete has not run yet. */
    delete?: boolean;
    inputs?: Record<string, unknown>;
}

/** What the state holds for a box's containers command: its command text and its stdin (the records). */
export interface ContainersRun {
    create: string;
    stdin: string;
}

/**
 * The box's containers command in a stack export (the JSON of `pulumi stack export`), or why
 * there is none to run: none in the state, not plain text there, or operations pending (an
 * update running, or one cut short: its commands may be running on the boxes).
 */
export function containersRun(exported: string, box: string): ContainersRun | string {
    const deployment = JSON.parse(exported)?.deployment ?? {};
    if ((deployment.pending_operations ?? []).length > 0) {
        return "the stack has operations pending (an update running, or one cut short): let it finish, or run pulumi up, then repair";
    }
    const resources: StateResource[] = deployment.resources ?? [];
    const found = resources.find((r) => r.type === "command:remote:Command" && !r.delete && r.urn.endsWith(`::${box}-containers-run`));
    if (!found) {
        return `the stack has no containers command for box ${JSON.stringify(box)} (${box}-containers-run): a cache-only box, or not deployed`;
    }
    const { create, stdin } = found.inputs ?? {};
    if (typeof create !== "string" || typeof stdin !== "string") {
        return `the state holds the containers command of ${box} as a secret or in another form than plain text, which repair does not run`;
    }
    return { create, stdin };
}

/**
 * The lines that stop the session when the machine is claimed for another box (host/claim.sh):
 * its containers are that box's. None for a box of a stack deployed before claims.
 */
export function claimGuard(box: Pick<BoxSummary, "name" | "claim">): string {
    if (box.claim === undefined) {
        return "";
    }
    const file = shQuote(boxClaimFile);
    const message = shQuote(`overlay-fleet: the machine of ${box.name} is claimed by another box (`);
    return [
        `of_claim=$(head -n 1 ${file} 2>/dev/null) || of_claim=`,
        `if [ -n "$of_claim" ] && [ "$of_claim" != ${shQuote(box.claim)} ]; then printf '%s%s: stack, box); repair changes nothing there\n' ${message} "$of_claim" >&2; exit 1; fi`,
        "",
    ].join("\n");
}

const usage = "usage: npm run repair -- [--stack <stack>] <box>...";

function main(): void {
    const { stack, names } = parseOperatorArgs(process.argv.slice(2), []);
    if (names.length === 0) {
        throw new UsageError("name at least one box");
    }
    useStack(stack);
    const boxes = deployedBoxes(stack);
    const exported = pulumi(["stack", "export", "--stack", stack]);
    // Every name checked before any box is touched.
    const runs = names.map((name) => {
        const box = boxes.find((b) => b.name === name);
        const run = box ? containersRun(exported, name) : `stack ${JSON.stringify(stack)} has no box ${JSON.stringify(name)} (it has: ${boxes.map((b) => b.name).join(", ") || "none"})`;
        if (typeof run === "string") {
            throw new Error(run);
        }
        return { box: box!, run };
    });
    const privateKey = stackPrivateKey(stack);
    for (const { box, run } of runs) {
        console.error(`overlay-fleet: ${box.name}: running its containers command as last deployed`);
        // As the command plugin runs it: the text as the session's command, the records on its stdin;
        // first, on a machine another box claims, nothing (host/claim.sh).
        const result = onBox(box, privateKey, `${claimGuard(box)}${run.create}`, run.stdin, ["pipe", "inherit", "inherit"]);
        if (result.status !== 0) {
            console.error(`overlay-fleet: ${box.name}: the containers command failed (${result.error?.message ?? `exit ${result.status}`})`);
            process.exitCode = 1;
        }
    }
}

if (require.main === module) {
    runCommand(main, usage);
}
