import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { hostTestsUnavailable, HostNs, instancePaths, PINNED, withHostNs } from "./harness";

const unavailable = hostTestsUnavailable();

/** The seed's cache layout: .yfnode/cache shared, .yfnode/config private to each node. */
function seedCache(ns: HostNs): string {
    const lower = ns.p("usbdisk", "static_cache");
    const cache = path.join(lower, ".yfnode", "cache");
    fs.mkdirSync(cache, { recursive: true });
    for (const ext of ["", ".chr", ".mem", ".task", ".tn", ".torrent"]) {
        fs.writeFileSync(path.join(cache, `00318F7338ACA0DDB4205ACA2B2C5A9CE11990F0${ext}`), `data${ext}\n`);
    }
    fs.mkdirSync(path.join(lower, ".yfnode", "config"), { recursive: true });
    fs.writeFileSync(path.join(lower, ".yfnode", "config", "node.json"), '{"id":"first-node"}\n');
    return lower;
}

function tree(ns: HostNs, dir: string): string {
    return ns.ok('cd "$1" && find . -printf "%p %y %s %m %T@\\n" | sort', [dir]);
}

describe.skipIf(unavailable)("host lower", () => {
    it("moves .yfnode/config aside with its content, keeps the cache, and is a no-op the second time", async () => {
        await withHostNs((ns) => {
            const lower = seedCache(ns);
            const stash = ns.p("usbdisk", ".overlay-fleet", "private", "static_cache");
            let r = ns.run("lower", [lower, ".yfnode/config"]);
            expect(r.stderr).toBe("");
            expect(r.status).toBe(0);
            expect(r.stdout).toContain(`moved ${lower}/.yfnode/config -> ${stash}/.yfnode/config`);
            expect(fs.existsSync(path.join(lower, ".yfnode", "config"))).toBe(false);
            expect(fs.readFileSync(path.join(stash, ".yfnode", "config", "node.json"), "utf8")).toBe('{"id":"first-node"}\n');
            expect(fs.readdirSync(path.join(lower, ".yfnode", "cache"))).toHaveLength(6);

            const before = tree(ns, ns.p("usbdisk"));
            r = ns.run("lower", [lower, ".yfnode/config"]);
            expect(r.status).toBe(0);
            expect(r.stdout).toBe(`ok lower ${lower}: unchanged\n`);
            expect(tree(ns, ns.p("usbdisk"))).toBe(before);

            // A node that ran without the overlay wrote a new identity into the lower: stashed
            // beside the older one, which is kept.
            fs.mkdirSync(path.join(lower, ".yfnode", "config"));
            fs.writeFileSync(path.join(lower, ".yfnode", "config", "node.json"), '{"id":"second-node"}\n');
            r = ns.run("lower", [lower, ".yfnode/config", "not/there"]);
            expect(r.status).toBe(0);
            expect(fs.readFileSync(path.join(stash, ".yfnode", "config", "node.json"), "utf8")).toBe('{"id":"first-node"}\n');
            expect(fs.readFileSync(path.join(stash, ".yfnode", "config.1", "node.json"), "utf8")).toBe('{"id":"second-node"}\n');
        });
    });

    it("creates a missing lower, refuses a file, refuses to change a mounted lower", async () => {
        await withHostNs((ns) => {
            const fresh = ns.p("disk2", "static_cache");
            let r = ns.run("lower", [fresh, ".yfnode/config"]);
            expect(r.status).toBe(0);
            expect(fs.statSync(fresh).isDirectory()).toBe(true);

            fs.writeFileSync(ns.p("afile"), "x");
            r = ns.run("lower", [ns.p("afile")]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`lower dir '${ns.p("afile")}' exists and is not a directory`);

            const lower = seedCache(ns);
            expect(ns.run("lower", [lower, ".yfnode/config"]).status).toBe(0);
            const i = instancePaths(ns.p("usbdisk"), "ttnode1");
            expect(ns.run("mount", [lower, i.upper, i.work, i.merged, PINNED, "-", "-"]).status).toBe(0);
            // Mounted and clean: fine.
            expect(ns.run("lower", [lower, ".yfnode/config"]).status).toBe(0);
            // Mounted, and a private path (re)appeared in it: refused, nothing moved.
            fs.mkdirSync(path.join(lower, ".yfnode", "config"));
            r = ns.run("lower", [lower, ".yfnode/config"]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain(`private path '${lower}/.yfnode/config' is still in the lower`);
            expect(r.stderr).toContain(`${i.merged} (lowerdir)`);
            expect(fs.existsSync(path.join(lower, ".yfnode", "config"))).toBe(true);
        });
    });

    it("never follows a symlink out of the lower and rejects paths with ..", async () => {
        await withHostNs((ns) => {
            const lower = ns.p("disk", "static_cache");
            fs.mkdirSync(lower, { recursive: true });
            fs.mkdirSync(ns.p("outside", "config"), { recursive: true });
            fs.symlinkSync(ns.p("outside"), path.join(lower, ".yfnode"));
            let r = ns.run("lower", [lower, ".yfnode/config"]);
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("is a symlink");
            expect(fs.existsSync(ns.p("outside", "config"))).toBe(true);
            r = ns.run("lower", [lower, "../outside/config"]);
            expect(r.status).toBe(2);
            expect(r.stderr).toContain("'../outside/config'");
            r = ns.run("lower", [lower, "/etc/passwd"]);
            expect(r.status).toBe(2);
        });
    });
});
