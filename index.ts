/**
 * overlay-fleet program entry: one stack = one host group. Reads the stack config and plans it
 * (invalid config fails `pulumi preview` before any box is touched), then declares one Box per
 * host. Its stack outputs: `summary` (what is deployed where, read by `npm run status`) and
 * `foldReports` (per box whose last apply folded its cache into a new generation, the fold's report:
 * every conflict, then what was folded).
 */
import * as pulumi from "@pulumi/pulumi";
import { Box, BoxSummary } from "./components/box";
import { foldReport, usesFoldTool } from "./components/lowerCache";
import { stageHostLibrary } from "./components/hostLibrary";
import { readFleetConfig } from "./program/stackConfig";

async function main() {
    // Pulumi keeps the construction call stack of every resource in the state. Declared after one
    // turn of the event loop, outside any caller, that stack holds this program's frames only, not
    // those of ts-node and the Pulumi runtime that loaded it: about 0.5 KB less state per resource.
    await Promise.resolve();
    const fleet = readFleetConfig();
    // A box gets the fold helper (most of the library's bytes) once its lower may fold.
    const boxes = fleet.boxes.map(
        (plan) =>
            new Box(plan.settings.name, {
                plan,
                privateKey: fleet.privateKey,
                hostLibrary: stageHostLibrary(undefined, usesFoldTool(plan.settings.generation)),
                stack: fleet.stack,
            }),
    );
    const summary: BoxSummary[] = boxes.map((box) => box.summary);
    const foldReports = pulumi
        .all(boxes.map((box) => box.apply.stdout))
        .apply((outs) => Object.fromEntries(boxes.map((box, i) => [box.summary.name, foldReport(outs[i])]).filter(([, report]) => report !== "")));
    return { summary, foldReports };
}

const program = main();
// The Pulumi runtime awaits the program and reports its failure (e.g. invalid config); this
// handler only keeps Node from warning that the rejection was handled after it happened.
program.catch(() => undefined);
export = program;
