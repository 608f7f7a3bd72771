/**
 * Pulumi mocks that record every resource registration as the engine would receive it:
 * type, name, parent, dependencies, delete-before-replace, decoded inputs, and the raw
 * serialized inputs (to check what is sent as a secret).
 */
import * as pulumi from "@pulumi/pulumi";

export interface Registration {
    type: string;
    name: string;
    urn: string;
    parent: string;
    dependencies: string[];
    deleteBeforeReplace: boolean;
    inputs: Record<string, any>;
    raw: Record<string, any>;
}

/** The marker Pulumi puts on a serialized secret value. */
export const secretSignature = "1b47061264138c4ac30d75fd1eb44270";

export function installMocks(stack = "test"): Registration[] {
    const registrations: Registration[] = [];
    pulumi.runtime.setMocks(
        {
            newResource: async (args: pulumi.runtime.MockResourceArgs) => ({
                id: `${args.name}-id`,
                state: { ...args.inputs, stdout: "", stderr: "" },
            }),
            call: async () => ({}),
        },
        "overlay-fleet",
        stack,
        false,
        "acme",
    );
    const monitor = (pulumi.runtime as any).getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, callback: (err: any, response: any) => void) => {
        register(req, (err: any, response: any) => {
            if (!err) {
                registrations.push({
                    type: req.getType(),
                    name: req.getName(),
                    urn: response.getUrn(),
                    parent: req.getParent(),
                    dependencies: req.getDependenciesList(),
                    deleteBeforeReplace: req.getDeletebeforereplace(),
                    inputs: pulumi.runtime.deserializeProperties(req.getObject()),
                    raw: req.getObject().toJavaScript(),
                });
            }
            callback(err, response);
        });
    };
    return registrations;
}

/** Resolves once an output has a value (mocks resolve everything). */
export function settle<T>(output: pulumi.Output<T> | pulumi.Input<T>): Promise<T> {
    return new Promise((resolve) => pulumi.output(output).apply((value) => resolve(value as T)));
}

/** Lets every pending registration finish. */
export async function drain(registrations: Registration[]): Promise<void> {
    let seen = -1;
    while (seen !== registrations.length) {
        seen = registrations.length;
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
}

export const byName = (registrations: Registration[], name: string): Registration => {
    const found = registrations.find((r) => r.name === name);
    if (!found) {
        throw new Error(`no resource named ${name}; have ${registrations.map((r) => r.name).join(", ")}`);
    }
    return found;
};
