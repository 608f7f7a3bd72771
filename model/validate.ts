/**
 * Group-wide rules, checked on the plan of the whole host group once every box parsed: one box entry
 * per SSH host and port, unique IPs, MACs and hostnames, derived addresses inside the subnet, mount option data that fits the
 * kernel's one page. Pure.
 */
import { configNamespace, maxMountDataLength } from "./constants";
import { ConfigIssue, show } from "./issues";
import { parseIPv4 } from "./net";
import { BoxPlan } from "./plan";
import { instanceAddressProblem } from "./schema";

/** Every problem of the host group's plan (empty when it is valid). */
export function validatePlan(boxes: BoxPlan[]): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const seen = { ip: new Map<string, string>(), mac: new Map<string, string>(), hostname: new Map<string, string>() };
    const boxAt = new Map<string, string>();
    for (const { settings: box, instances } of boxes) {
        // Two entries for one machine would share its host library, fstab and docker engine: the
        // teardown of one would uninstall the library the other runs from.
        const at = `${box.ssh.host.toLowerCase()}:${box.ssh.port}`;
        const first = boxAt.get(at);
        if (first !== undefined) {
            issues.push({
                key: `${configNamespace}:boxes.${box.name}.ssh.host`,
                message: `${show(at)} is box ${first} already: declare one box per machine (a box runs all its instances)`,
            });
        } else {
            boxAt.set(at, box.name);
        }
        for (const instance of instances) {
            const optionBytes = Buffer.byteLength(instance.fstabOptions);
            if (optionBytes + instance.id.length + 20 > maxMountDataLength) {
                issues.push({
                    key: `${configNamespace}:boxes.${box.name}.lower`,
                    message: `the mount options of ${instance.id} would be ${optionBytes} bytes; the kernel takes at most ${maxMountDataLength}: use shorter paths`,
                });
            }
            if (box.network && instance.ip !== undefined && !instance.ipOverridden) {
                const message = instanceAddressProblem(parseIPv4(instance.ip)!, box.network);
                if (message !== undefined) {
                    issues.push({ key: `${instance.key}.ip (derived from ${configNamespace}:…network.firstAddress ${box.network.firstAddress})`, message });
                }
            }
            const values: Array<[keyof typeof seen, string | undefined]> = [
                ["ip", instance.ip],
                ["mac", instance.mac],
                ["hostname", instance.hostname.toLowerCase()],
            ];
            for (const [kind, value] of values) {
                if (value === undefined) {
                    continue;
                }
                const other = seen[kind].get(value);
                if (other !== undefined) {
                    issues.push({ key: `${instance.key}.${kind}`, message: `${kind} ${show(value)} of ${instance.id} is already used by ${other} in this host group` });
                } else {
                    seen[kind].set(value, instance.id);
                }
            }
        }
    }
    return issues;
}
