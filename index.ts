/**
 * overlay-fleet program entry: one stack = one host group. Reads and validates the stack config,
 * then declares one Box per host. Invalid config fails `pulumi preview` before any box is touched.
 */
import { Box, BoxSummary } from "./components/box";
import { readFleetConfig } from "./program/stackConfig";

const fleet = readFleetConfig();
const boxes = fleet.boxes.map((plan) => new Box(plan.settings.name, { plan, privateKey: fleet.privateKey }));

/** What is deployed where: read by `npm run status`. */
export const summary: BoxSummary[] = boxes.map((box) => box.summary);
export const foldReports = Object.fromEntries(boxes.map((box) => [box.summary.name, box.lowerCache.report]));
