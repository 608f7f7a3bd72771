import { createHash } from "crypto";

/** Parses a dotted-quad IPv4 address into a 32-bit unsigned number, or undefined if malformed. */
export function parseIPv4(text: string): number | undefined {
    const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
    if (!match) {
        return undefined;
    }
    const octets = match.slice(1).map((part) => (part.length > 1 && part.startsWith("0") ? NaN : Number(part)));
    if (octets.some((octet) => !Number.isInteger(octet) || octet > 255)) {
        return undefined;
    }
    return ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
}

export function formatIPv4(value: number): string {
    return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/** An IPv4 subnet in CIDR form. */
export interface Subnet {
    network: number;
    prefix: number;
    broadcast: number;
}

/** Parses `a.b.c.d/n` whose address is the network address itself; undefined if malformed. */
export function parseSubnet(text: string): Subnet | undefined {
    const match = /^([^/]+)\/(\d{1,2})$/.exec(text);
    if (!match) {
        return undefined;
    }
    const address = parseIPv4(match[1]);
    const prefix = Number(match[2]);
    if (address === undefined || prefix < 8 || prefix > 30) {
        return undefined;
    }
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    if ((address & mask) >>> 0 !== address) {
        return undefined;
    }
    return { network: address, prefix, broadcast: (address | (~mask >>> 0)) >>> 0 };
}

export function subnetContains(subnet: Subnet, address: number): boolean {
    return address >= subnet.network && address <= subnet.broadcast;
}

/** Normalises a MAC address to lower-case colon form, or undefined if malformed. */
export function normaliseMac(text: string): string | undefined {
    const match = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(
        text,
    );
    if (!match) {
        return undefined;
    }
    return [match[1], match[3], match[4], match[5], match[6], match[7]].join(":").toLowerCase();
}

/** True when the MAC's first octet has the group (multicast) bit set. */
export function isMulticastMac(mac: string): boolean {
    return (parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

/**
 * A stable, locally administered unicast MAC for one instance, derived only from the box name
 * and the instance index: renaming the stack or reordering boxes never changes it.
 */
export function derivedMac(boxName: string, index: number): string {
    const digest = createHash("sha256").update(`overlay-fleet/${boxName}/${index}`).digest();
    // 0x02: locally administered (bit 1 set), unicast (bit 0 clear).
    const octets = [0x02, digest[0], digest[1], digest[2], digest[3], digest[4]];
    return octets.map((octet) => octet.toString(16).padStart(2, "0")).join(":");
}

/** The known_hosts line that pins a box's host key for the local `ssh` client. */
export function knownHostsLine(host: string, port: number, hostKey: string): string {
    return `${port === 22 ? host : `[${host}]:${port}`} ${hostKey}\n`;
}
