/**
 * The one entry from a stack config to the plan of its host group. The flow is one-way:
 * schema.ts parses and resolves each box (the schema is the only description of the config),
 * plan.ts plans each box's instances, validate.ts checks the rules that need the whole group
 * planned. Everything here is pure, so `pulumi preview` fails before any box is touched.
 */
import { ConfigError } from "./issues";
import { BoxPlan, planBox } from "./plan";
import { parseFleetConfig, RawFleetConfig, ResolvedBox } from "./schema";
import { validatePlan } from "./validate";

export { configNamespace } from "./constants";
export { ConfigError } from "./issues";
export type { ConfigIssue, PropertyError } from "./issues";
export type { BoxPlan, InstancePlan } from "./plan";
export type {
    BoxSettings,
    ConflictRule,
    ContainerSettings,
    InstanceOverride,
    NetworkSettings,
    RawFleetConfig,
    ResolvedBox,
    ResolvedContainer,
    ResolvedNetwork,
    ServiceBox,
    SshSettings,
} from "./schema";

/** The plan of a host group: every box, sorted by name, with its instances. */
export interface FleetPlan {
    boxes: BoxPlan[];
}

/**
 * Validates the whole stack config, resolves and plans every box and checks the group-wide rules.
 * Throws ConfigError listing every problem.
 */
export function planFleet(raw: RawFleetConfig): FleetPlan {
    const boxes = parseFleetConfig(raw).map(planBox);
    const issues = validatePlan(boxes);
    if (issues.length > 0) {
        throw new ConfigError(issues);
    }
    return { boxes };
}

/** The resolved settings of every box of a valid stack config (see planFleet). */
export function resolveFleetConfig(raw: RawFleetConfig): ResolvedBox[] {
    return planFleet(raw).boxes.map((box) => box.settings);
}
