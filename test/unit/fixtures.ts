/** Realistic stack configs for the tests: a two-box home setup as in stacks/Pulumi.home.yaml. */
import type { RawFleetConfig } from "../../model/config";

export const hostKeyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJlYWxseS1ub3QtYS1rZXktYnV0LXZhbGlkLWI2NA";
export const hostKeyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFub3RoZXItZmFrZS1ob3N0LWtleS1mb3ItdGVzdA";

export function homeConfig(): { defaults: any; boxes: any } {
    return {
        defaults: {
            disk: "/mnt/usbdisk",
            lower: "/mnt/usbdisk/static_cache",
            instanceRoot: "/mnt/usbdisk",
            privatePaths: [".yfnode/config"],
            network: { parent: "eth0", subnet: "192.168.1.0/24", gateway: "192.168.1.1" },
            container: { image: "ericwang2006/ttnode", dns: ["192.168.1.1"], privileged: true, restart: "always" },
        },
        boxes: {
            nas: {
                ssh: { host: "192.168.1.10", hostKey: hostKeyA },
                instances: 3,
                network: { firstAddress: "192.168.1.201" },
            },
            minipc: {
                ssh: { host: "192.168.1.11", hostKey: hostKeyB },
                instances: 2,
                network: { parent: "enp1s0", firstAddress: "192.168.1.211" },
            },
        },
    };
}

export function raw(config: { defaults?: any; boxes?: any }, presentKeys?: string[]): RawFleetConfig {
    return { defaults: config.defaults, boxes: config.boxes, presentKeys };
}
