import * as pulumi from "@pulumi/pulumi";
import { ConfigError, configNamespace, resolveFleetConfig, ResolvedBox } from "../model/config";

/** The validated host group of the current stack. */
export interface FleetConfig {
    boxes: ResolvedBox[];
    /** `overlay-fleet:sshPrivateKey`, always a secret. */
    privateKey?: pulumi.Output<string>;
}

/**
 * Reads `overlay-fleet:*` from the stack and validates it. `requireObject` checks nothing, so
 * every rule lives in resolveFleetConfig; failures become a RunError that names each key and
 * value, which Pulumi prints without a stack trace.
 */
export function readFleetConfig(): FleetConfig {
    const config = new pulumi.Config(configNamespace);
    const keyName = `${configNamespace}:sshPrivateKey`;
    try {
        const boxes = resolveFleetConfig({
            defaults: parseObject(config, "defaults"),
            boxes: parseObject(config, "boxes"),
            presentKeys: Object.keys(pulumi.runtime.allConfig()),
        });
        const privateKeyPresent = config.get("sshPrivateKey") !== undefined;
        if (privateKeyPresent && !isConfigSecret(keyName)) {
            throw new ConfigError([{ key: keyName, message: "is stored in plain text: set it with `pulumi config set --secret`" }]);
        }
        const needsKey = boxes.filter((box) => !box.ssh.agent);
        if (!privateKeyPresent && needsKey.length > 0) {
            throw new ConfigError(
                needsKey.map((box) => ({
                    key: `${configNamespace}:boxes.${box.name}.ssh`,
                    message: `no SSH credentials: set ${keyName} (--secret) or ssh.agent: true`,
                })),
            );
        }
        return { boxes, privateKey: privateKeyPresent ? config.requireSecret("sshPrivateKey") : undefined };
    } catch (error) {
        if (error instanceof ConfigError) {
            throw new pulumi.RunError(error.message);
        }
        throw error;
    }
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
