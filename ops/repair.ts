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
import { deployedBoxes, onBox, pulumi, stackFromArgs, stackPrivateKey } from "./stack";

/** A resource of `pulumi stack export` (the fields read here). */
interface StateResource {
    urn: string;
    type: string;
    inputs?: Record<string, unknown>;
}

/** What the state holds for a box's containers command: its command text and its stdin (the records). */
export interface ContainersRun {
    create: string;
    stdin: string;
}

/**
 * The box's containers command in a stack export (the JSON of `pulumi stack export`), or why
 * there is none to run.
 */
export function containersRun(exported: string, box: string): ContainersRun | string {
    const resources: StateResource[] = JSON.parse(exported)?.deployment?.resources ?? [];
    const found = resources.find((r) => r.type === "command:remote:Command" && r.urn.endsWith(`::${box}-containers-run`));
    if (!found) {
        return `the stack has no containers command for box ${JSON.stringify(box)} (${box}-containers-run): a cache-only box, or not deployed`;
    }
    const { create, stdin } = found.inputs ?? {};
    if (typeof create !== "string" || typeof stdin !== "string") {
        return `the state holds the containers command of ${box} in a form this command cannot run (not plain text); run pulumi up`;
    }
    return { create, stdin };
}

function main(): void {
    const argv = process.argv.slice(2);
    const stack = stackFromArgs(argv);
    const names = argv.filter((arg, i) => !arg.startsWith("-") && argv[i - 1] !== "--stack");
    if (names.length === 0) {
        console.error("usage: npm run repair -- [--stack <stack>] <box>...");
        process.exit(2);
    }
    let boxes: BoxSummary[];
    let exported: string;
    try {
        boxes = deployedBoxes(stack);
        exported = pulumi(["stack", "export", "--stack", stack]);
    } catch (error) {
        console.error(`overlay-fleet: cannot read stack ${JSON.stringify(stack)}: ${(error as { stderr?: string }).stderr ?? error}`);
        process.exit(1);
    }
    // Every name checked before any box is touched.
    const runs = names.map((name) => {
        const box = boxes.find((b) => b.name === name);
        const run = box ? containersRun(exported, name) : `stack ${JSON.stringify(stack)} has no box ${JSON.stringify(name)} (it has: ${boxes.map((b) => b.name).join(", ") || "none"})`;
        if (typeof run === "string") {
            console.error(`overlay-fleet: ${run}`);
            process.exit(1);
        }
        return { box: box!, run };
    });
    const privateKey = stackPrivateKey(stack);
    for (const { box, run } of runs) {
        console.error(`overlay-fleet: ${box.name}: running its containers command as last deployed`);
        // As the command plugin runs it: the text as the session's command, the records on its stdin.
        const result = onBox(box, privateKey, run.create, run.stdin, ["pipe", "inherit", "inherit"]);
        if (result.status !== 0) {
            console.error(`overlay-fleet: ${box.name}: the containers command failed (${result.error?.message ?? `exit ${result.status}`})`);
            process.exitCode = 1;
        }
    }
}

if (require.main === module) {
    main();
}
