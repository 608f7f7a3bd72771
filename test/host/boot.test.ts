import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { fstabOptions, hostTestsUnavailable, withHostNs } from "./harness";

const GENERATOR = "/lib/systemd/system-generators/systemd-fstab-generator";
const unavailable = hostTestsUnavailable() ?? (fs.existsSync(GENERATOR) ? undefined : `no ${GENERATOR}`);

/** Unit name systemd gives a mount point (systemd-escape --path --suffix=mount). */
function mountUnit(where: string): string {
    return (
        where
            .replace(/^\/+|\/+$/g, "")
            .split("/")
            .map((c) => c.replace(/[^A-Za-z0-9:_.]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`).replace(/^\./, "\\x2e"))
            .join("-") + ".mount"
    );
}

describe.skipIf(unavailable)("boot order from the fstab the scripts write", () => {
    it("systemd-fstab-generator orders each overlay after the disk and before docker, wanted (not required) by local-fs", async () => {
        await withHostNs((ns) => {
            const fstab = ns.p("fstab");
            const disk = "/mnt/usbdisk";
            fs.writeFileSync(
                fstab,
                "# <file system> <mount point> <type> <options> <dump> <pass>\n" +
                    "UUID=0a1b2c3d-1111-2222-3333-444455556666 / ext4 errors=remount-ro 0 1\n" +
                    `LABEL=usbdisk ${disk} ext4 defaults,nofail 0 2\n`,
            );
            const names = ["ttnode1", "ttnode2"];
            for (const n of names) {
                const upper = `${disk}/${n}/upper`;
                const work = `${disk}/${n}/work`;
                // The targets do not exist on this machine: findmnt --verify reports that, and the
                // script must not refuse because of it.
                const r = ns.run("fstab", ["set", fstab, `box1/${n}`, `${disk}/${n}/mnts`, fstabOptions(`${disk}/static_cache`, upper, work, disk)]);
                expect(r.stderr).toBe("");
                expect(r.status).toBe(0);
            }

            const out = ["normal", "early", "late"].map((d) => ns.p("gen", d));
            for (const d of out) fs.mkdirSync(d, { recursive: true });
            // systemd 252: the generator reads SYSTEMD_FSTAB instead of /etc/fstab; the kernel
            // command line (fstab=, systemd.*) is replaced by SYSTEMD_PROC_CMDLINE; not in an initrd.
            const r = ns.sh(`"$1" "$2" "$3" "$4"`, [GENERATOR, ...out], {
                env: { SYSTEMD_FSTAB: fstab, SYSTEMD_PROC_CMDLINE: "", SYSTEMD_IN_INITRD: "0", SYSTEMD_LOG_LEVEL: "info" },
            });
            expect(r.status).toBe(0);
            expect(r.stderr).not.toMatch(/Failed|Invalid|error/i);
            const [normal] = out;

            const diskUnit = fs.readFileSync(path.join(normal, mountUnit(disk)), "utf8");
            expect(diskUnit).toContain(`Where=${disk}`);
            for (const n of names) {
                const where = `${disk}/${n}/mnts`;
                const unit = mountUnit(where);
                expect(unit).toBe(`mnt-usbdisk-${n}-mnts.mount`);
                const text = fs.readFileSync(path.join(normal, unit), "utf8");
                expect(text).toMatch(/^Before=docker\.service$/m);
                expect(text).toMatch(new RegExp(`^RequiresMountsFor=${disk}$`, "m"));
                expect(text).toMatch(/^Type=overlay$/m);
                expect(text).toMatch(new RegExp(`^Options=.*lowerdir=${disk}/static_cache,upperdir=${disk}/${n}/upper,workdir=${disk}/${n}/work,index=off,nfs_export=off,redirect_dir=off,metacopy=off,.*x-overlay-fleet=box1/${n}$`, "m"));
                // nofail: not part of local-fs.target's hard requirements, and not ordered before it.
                expect(text).not.toMatch(/^Before=.*local-fs\.target/m);
                expect(fs.existsSync(path.join(normal, "local-fs.target.requires", unit))).toBe(false);
                expect(fs.existsSync(path.join(normal, "local-fs.target.wants", unit))).toBe(true);
                for (const d of out.slice(1)) {
                    expect(fs.readdirSync(d)).toEqual([]);
                }
            }
        });
    });
});
