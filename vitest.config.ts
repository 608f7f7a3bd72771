import { defineConfig } from "vitest/config";

/**
 * Four tiers, run in this order by `npm test`:
 *   unit  pure model and the resource graph with Pulumi mocks: no root, seconds (`npm run test:unit`);
 *   host  the host scripts on real overlayfs, each test in its own private mount namespace (root);
 *   lab   the lab itself (tools/lab.sh): boxes, SSH, engines (root);
 *   e2e   the real Pulumi engine against the lab boxes (root, the toolchain).
 * Host and end-to-end tests share namespaces, loop devices and the lab: one file at a time.
 */
export default defineConfig({
    test: {
        testTimeout: 300_000,
        hookTimeout: 600_000,
        reporters: ["default"],
        fileParallelism: false,
        projects: [
            { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], sequence: { groupOrder: 0 } } },
            { extends: true, test: { name: "host", include: ["test/host/**/*.test.ts"], sequence: { groupOrder: 1 } } },
            { extends: true, test: { name: "lab", include: ["test/lab/**/*.test.ts"], sequence: { groupOrder: 2 } } },
            { extends: true, test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], sequence: { groupOrder: 3 } } },
        ],
    },
});
