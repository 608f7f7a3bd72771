import * as pulumi from "@pulumi/pulumi";
import { BoxPlan, ConfigError, configNamespace, planFleet } from "../model/config";

/** The validated and planned host group of the current stack. */
export interface FleetConfig {
    /** Every box, sorted by name: its settings and the plan of its instances. */
    boxes: BoxPlan[];
    /** `overlay-fleet:sshPrivateKey`, always a secret. */
    privateKey?: pulumi.Output<string>;
    /** The stack, `<organization>/<project>/<stack>`: each of its boxes is claimed for it (host/claim.sh). */
    stack: string;
}

/**
 * Reads `overlay-fleet:*` from the stack, validates and plans it. `requireObject` checks nothing,
 * so every rule lives in model/ (planFleet). Failures become one Pulumi `InputPropertiesError`:
 * its `errors` hold a `{ propertyPath, reason }` per problem (the path is the full stack key),
 * its message lists every `key: message` line, which is what `pulumi preview` prints.
 */
export function readFleetConfig(): FleetConfig {
    const config = new pulumi.Config(configNamespace);
    const keyName = `${configNamespace}:sshPrivateKey`;
    try {
        const { boxes } = planFleet({
            defaults: parseObject(config, "defaults"),
            boxes: parseObject(config, "boxes"),
            presentKeys: Object.keys(pulumi.runtime.allConfig()),
        });
        const privateKeyPresent = config.get("sshPrivateKey") !== undefined;
        if (privateKeyPresent && !isConfigSecret(keyName)) {
            throw new ConfigError([{ key: keyName, message: "is stored in plain text: set it with `pulumi config set --secret`" }]);
        }
        const needsKey = boxes.map((box) => box.settings).filter((box) => !box.ssh.agent);
        if (!privateKeyPresent && needsKey.length > 0) {
            throw new ConfigError(
                needsKey.map((box) => ({
                    key: `${configNamespace}:boxes.${box.name}.ssh`,
                    message: `no SSH credentials: set ${keyName} (--secret) or ssh.agent: true`,
                })),
            );
        }
        return {
            boxes,
            privateKey: privateKeyPresent ? config.requireSecret("sshPrivateKey") : undefined,
            stack: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`,
        };
    } catch (error) {
        if (error instanceof ConfigError) {
            throw inputPropertiesError(error);
        }
        throw error;
    }
}

/**
 * The config problems as one InputPropertiesError. It needs no resource: its constructor takes only
 * the message and the errors. Thrown by a program (not a component provider), Pulumi prints it
 * under "Running program ... failed with an unhandled exception:", followed by the error's stack
 * when it has one; without one, the list of problems is all that follows.
 */
export function inputPropertiesError(error: ConfigError): pulumi.InputPropertiesError {
    const failure = new pulumi.InputPropertiesError({ message: error.message, errors: error.errors });
    failure.stack = undefined;
    return failure;
}

function parseObject(config: pulumi.Config, key: string): unknown {
    const text = config.get(key);
    if (text === undefined) {
        return undefined;
    }
    try {
        return JSON.parse(text);
    } catch {
        // A plain string (e.g. `pulumi config set overlay-fleet:boxes foo`): report it as such.
        return text;
    }
}

/** Whether the stack stores a key as a secret (the SDK knows; its typings hide the helper). */
function isConfigSecret(key: string): boolean {
    const runtime = pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean };
    return runtime.isConfigSecret?.(key) ?? false;
}
