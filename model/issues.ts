/**
 * How a problem in the stack config is reported: one issue per problem, each naming the full stack
 * key and the offending value. Pure; the Pulumi side (program/stackConfig.ts) turns a
 * ConfigError into one `InputPropertiesError`.
 */

/** One problem found in the stack config. */
export interface ConfigIssue {
    /** Full stack key, e.g. `overlay-fleet:boxes.nas.network.firstAddress`. */
    key: string;
    message: string;
}

/** One issue in the form Pulumi reports input errors in (`InputPropertyErrorDetails`). */
export interface PropertyError {
    /** The full stack key. */
    propertyPath: string;
    reason: string;
}

/** Thrown when the stack config is invalid; lists every problem, each naming its key and value. */
export class ConfigError extends Error {
    constructor(readonly issues: ConfigIssue[]) {
        super(
            `invalid overlay-fleet stack config:\n` + issues.map((issue) => `  - ${issue.key}: ${issue.message}`).join("\n"),
        );
        this.name = "ConfigError";
    }

    /** The issues as Pulumi's `{ propertyPath, reason }` list. */
    get errors(): PropertyError[] {
        return this.issues.map(({ key, message }) => ({ propertyPath: key, reason: message }));
    }
}

/** A value as it appears in messages: JSON, so strings are quoted and control characters visible. */
export const show = (value: unknown): string => JSON.stringify(value);

/** Levenshtein distance, for "did you mean" hints on typos. */
function editDistance(a: string, b: string): number {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let previous = row[0];
        row[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const current = row[j];
            row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
            previous = current;
        }
    }
    return row[b.length];
}

/** `unknown key "x" (did you mean "y"?); allowed: ...` */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
    const best = allowed
        .map((candidate) => ({ candidate, distance: editDistance(key.toLowerCase(), candidate.toLowerCase()) }))
        .sort((x, y) => x.distance - y.distance)[0];
    const hint = best && best.distance <= 3 ? ` (did you mean "${best.candidate}"?)` : "";
    return `unknown key ${show(key)}${hint}; allowed: ${allowed.join(", ")}`;
}
