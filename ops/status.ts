/**
 * What is on each box of a deployed stack: per instance mounted or not, fstab line present,
 * upper size, and its container as the engine reports it (running, IP, MAC, and whether they
 * match the plan); per box the shared lower's size. Exits 1 when anything differs from the plan. Reads the stack's `summary` output and asks
 * each box over SSH (pinned host key) with the read-only host/status.sh.
 *
 *   npm run status -- [--stack lab] [--json]
 */
import type { BoxSummary } from "../components/box";
import { hostInvocation, shQuote } from "../components/hostScripts";
import { hostLibraryCurrent } from "../components/hostLibrary";
import { boxClaimFile } from "../model/constants";
import { deployedBoxes, onBox, parseOperatorArgs, pulumi, runCommand, stackPrivateKey, UsageError, useStack } from "./stack";

/** A container as the box's engine reports it, beside its plan. */
export interface ContainerStatus {
    state: "running" | "stopped" | "absent" | "engine down";
    ip: string;
    mac: string;
    hostname: string;
    /** IP, MAC and hostname equal the plan. */
    matchesPlan: boolean;
}

export interface InstanceStatus {
    box: string;
    instance: string;
    mounted: boolean;
    fstab: boolean;
    upperBytes: number;
    /** Absent for cache-only boxes. */
    container?: ContainerStatus;
}
export interface BoxStatus {
    box: string;
    reachable: boolean;
    /** The box has its host library (a wiped box has lost it: see libraryRecovery). */
    library: boolean;
    /** The machine's claim as the box has it (host/claim.sh), "" when there is none. */
    claim: string;
    error?: string;
    lower: string;
    lowerBytes: number;
    instances: InstanceStatus[];
}

/**
 * What status runs on a box: whether the box still has its host library, then the status scripts
 * themselves, inline (they need no library: a wiped box is told so). Given to the box's `sh -s` on
 * its stdin, not as the command of the SSH session: the login shell gets that as one argument,
 * which Linux takes up to 128 KiB (MAX_ARG_STRLEN), and the two scripts with the instances of a
 * big box come close. Each script is one argument of its own `sh -c` there (hostInvocation).
 */
export function statusCommand(box: BoxSummary): string {
    const args = [box.fstab, box.lower, ...box.instances.flatMap((i) => [i.id, i.merged, i.upper])];
    // Whether the box still has its host library, first: the rest does not need it.
    const libraryMark = shQuote(`${hostLibraryCurrent}/SHA256SUMS`);
    const claim = shQuote(boxClaimFile);
    let remote =
        `{ if [ -f ${libraryMark} ]; then printf 'library\tok\n'; else printf 'library\tmissing\n'; fi; } && ` +
        `{ if [ -f ${claim} ]; then printf 'claim\t%s\n' "$(head -n 1 ${claim})"; fi; } && ${hostInvocation("status", args)}`;
    if (!box.cacheOnly && box.network) {
        remote += " && " + hostInvocation("container", ["status", box.network, ...box.instances.map((i) => i.name)]);
    }
    return remote;
}

/** Runs host/status.sh on one box over SSH and parses its TSV. */
export function boxStatus(box: BoxSummary, privateKey: string | undefined): BoxStatus {
    // Read whole before it runs (one group), the scripts reading /dev/null, not the rest of it.
    const result = onBox(box, privateKey, "sh -s", `{\n${statusCommand(box)}\n} </dev/null\n`);
    const status: BoxStatus = { box: box.name, reachable: result.status === 0, library: false, claim: "", lower: box.lower, lowerBytes: 0, instances: [] };
    if (result.status !== 0) {
        status.error = (result.stderr || result.error?.message || `ssh exited ${result.status}`).trim();
        return status;
    }
    const containers = new Map<string, string[]>();
    let engineDown = false;
    for (const line of result.stdout.split("\n")) {
        const fields = line.split("\t");
        if (fields[0] === "instance") {
            status.instances.push({ box: box.name, instance: fields[1], mounted: fields[2] === "1", fstab: fields[3] === "1", upperBytes: Number(fields[4]) });
        } else if (fields[0] === "library") {
            status.library = fields[1] === "ok";
        } else if (fields[0] === "claim") {
            status.claim = fields.slice(1).join("\t");
        } else if (fields[0] === "lower") {
            status.lowerBytes = Number(fields[2]);
        } else if (fields[0] === "container") {
            containers.set(fields[1], fields);
        } else if (fields[0] === "engine") {
            engineDown = true;
        }
    }
    if (!box.cacheOnly && box.network) {
        for (const instance of status.instances) {
            const plan = box.instances.find((i) => i.id === instance.instance)!;
            const [, , state, ip, mac, hostname] = engineDown
                ? ["", "", "engine down", "", "", ""]
                : (containers.get(plan.name) ?? ["container", plan.name, "absent", "", "", ""]);
            instance.container = {
                state: state as ContainerStatus["state"],
                ip,
                mac,
                hostname,
                matchesPlan: ip === plan.ip && mac === plan.mac && hostname === plan.hostname,
            };
        }
    }
    return status;
}

export function formatBytes(bytes: number): string {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit++;
    }
    return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatTable(statuses: BoxStatus[]): string {
    const rows = [["BOX", "INSTANCE", "MOUNTED", "FSTAB", "UPPER", "CONTAINER", "IP", "MAC", "PLAN", "SHARED LOWER"]];
    for (const box of statuses) {
        if (!box.reachable) {
            rows.push([box.box, "-", "?", "?", "?", "?", "", "", "", `unreachable: ${box.error ?? ""}`]);
            continue;
        }
        if (box.instances.length === 0) {
            rows.push([box.box, "(none)", "-", "-", "-", "-", "", "", "", `${box.lower} ${formatBytes(box.lowerBytes)}`]);
        }
        box.instances.forEach((i, n) => {
            const c = i.container;
            rows.push([
                box.box,
                i.instance,
                i.mounted ? "yes" : "NO",
                i.fstab ? "yes" : "NO",
                formatBytes(i.upperBytes),
                c ? c.state : "-",
                c?.ip || "-",
                c?.mac || "-",
                c ? (c.matchesPlan ? "ok" : "DIFFERS") : "-",
                n === 0 ? `${box.lower} ${formatBytes(box.lowerBytes)}` : "",
            ]);
        });
    }
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
    return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd()).join("\n");
}

/** The urns of the resources named `names` in the output of `pulumi stack --show-urns`. */
function urnsNamed(showUrns: string, names: string[]): string[] {
    return showUrns
        .split("\n")
        .map((line) => /URN: (\S+)/.exec(line)?.[1])
        .filter((urn): urn is string => urn !== undefined && names.some((name) => urn.endsWith(`::${name}`)));
}

/**
 * The `pulumi up` arguments that put a wiped box back (README: A wiped box), from the output of
 * `pulumi stack --show-urns`: a new copy of its host library and a new run of the box's apply
 * (install, lower, overlays and fstab lines), and with `containers` a new run of its containers
 * command.
 */
export function libraryRecovery(showUrns: string, box: string, containers = false): string[] {
    const urns = urnsNamed(showUrns, [`${box}-host-copy`, `${box}-apply`, ...(containers ? [`${box}-containers-run`] : [])]);
    return urns.flatMap((urn) => ["--replace", urn]);
}

/**
 * Whether every container of a box with containers is gone while its engine answers (a new
 * `/var/lib/docker`): then replacing the box's containers command (its delete removes what is
 * left of them first) makes them all again and takes nothing down. With some containers still
 * there it is not suggested: the replacement would take those down too (see containersMissing).
 */
export function containersLost(s: BoxStatus): boolean {
    const containers = s.instances.flatMap((i) => (i.container ? [i.container] : []));
    return containers.length > 0 && containers.every((c) => c.state === "absent");
}

/**
 * The instances of a box with its library whose containers are gone while others of the box's
 * still exist: `npm run repair` makes them again and keeps the others (ops/repair.ts). Empty when
 * none is gone, or all (containersLost).
 */
export function containersMissing(s: BoxStatus): string[] {
    const gone = s.instances.filter((i) => i.container?.state === "absent").map((i) => i.instance);
    return s.library && !containersLost(s) ? gone : [];
}

/**
 * Another box's claim on the machine (host/claim.sh): the deployed box's own claim (BoxSummary.claim)
 * differs from the one the machine holds, or undefined. A machine without a claim, or a summary of
 * a stack deployed before claims, says nothing.
 */
export function claimedByOther(box: Pick<BoxSummary, "claim">, s: Pick<BoxStatus, "reachable" | "claim">): string | undefined {
    return s.reachable && box.claim !== undefined && s.claim !== "" && s.claim !== box.claim ? s.claim : undefined;
}

/** The `pulumi up` arguments that make a box's containers again (all of them lost: containersLost). */
/**
 * A box as its stack planned it: reachable, its library there, every instance mounted with its
 * fstab line (without it the instance is gone after the next boot), every container running as
 * planned. `npm run status` exits 1 otherwise.
 */
export function boxHealthy(s: BoxStatus): boolean {
    return s.reachable && s.library && s.instances.every((i) => i.mounted && i.fstab && (!i.container || (i.container.state === "running" && i.container.matchesPlan)));
}

export function containersRecovery(showUrns: string, box: string): string[] {
    return urnsNamed(showUrns, [`${box}-containers-run`]).flatMap((urn) => ["--replace", urn]);
}

function main(): void {
    const { stack, flags, names } = parseOperatorArgs(process.argv.slice(2), ["json"]);
    if (names.length > 0) {
        throw new UsageError(`status takes no names, got ${names.map((n) => JSON.stringify(n)).join(" ")}`);
    }
    const json = flags.has("json");
    useStack(stack);
    const summary = deployedBoxes(stack);
    const privateKey = stackPrivateKey(stack);
    const statuses = summary.map((box) => boxStatus(box, privateKey));
    console.log(json ? JSON.stringify(statuses, null, 2) : formatTable(statuses));
    // A machine another box claims shows that box's instances: no recovery is offered for it.
    const claimed = new Set<string>();
    summary.forEach((box, i) => {
        const other = claimedByOther(box, statuses[i]);
        if (other !== undefined) {
            claimed.add(box.name);
            console.error(`overlay-fleet: the machine of ${box.name} is claimed by another box (${other}: stack, box), not by this stack's; see README, One machine, one stack`);
        }
    });
    const ours = statuses.filter((s) => s.reachable && !claimed.has(s.box));
    const wiped = ours.filter((s) => !s.library);
    const lost = ours.filter((s) => s.library && containersLost(s));
    if (wiped.length + lost.length > 0) {
        const urns = pulumi(["stack", "--show-urns", "--stack", stack]);
        for (const s of wiped) {
            const recovery = libraryRecovery(urns, s.box, containersLost(s));
            if (recovery.length === 0) {
                console.error(`overlay-fleet: ${s.box} has no host library (${hostLibraryCurrent}), and the stack has no library copy of it (${s.box}-host-copy): run pulumi up`);
                continue;
            }
            const args = ["up", "--stack", stack, ...recovery];
            console.error(`overlay-fleet: ${s.box} has no host library (${hostLibraryCurrent}); put it back with:\n  pulumi ${args.map(shQuote).join(" ")}`);
        }
        for (const s of lost) {
            const recovery = containersRecovery(urns, s.box);
            if (recovery.length > 0) {
                const args = ["up", "--stack", stack, ...recovery];
                console.error(`overlay-fleet: the containers of ${s.box} are gone; make them again with:\n  pulumi ${args.map(shQuote).join(" ")}`);
            }
        }
    }
    for (const s of ours) {
        const missing = containersMissing(s);
        if (missing.length > 0) {
            console.error(
                `overlay-fleet: the containers of ${missing.join(", ")} are gone; make them again, keeping the box's others, with:\n  npm run repair -- --stack ${shQuote(stack)} ${s.box}`,
            );
        }
    }
    if (statuses.some((s) => claimed.has(s.box) || !boxHealthy(s))) {
        process.exitCode = 1;
    }
}

if (require.main === module) {
    runCommand(main, "usage: npm run status -- [--stack <stack>] [--json]");
}
