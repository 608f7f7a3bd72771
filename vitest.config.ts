import { defineConfig } from "vitest/config";

export default defineConfig({
    test: {
        include: ["test/**/*.test.ts"],
        testTimeout: 300_000,
        hookTimeout: 600_000,
        // Host and end-to-end tests share namespaces, loop devices and the lab: one file at a time.
        fileParallelism: false,
        reporters: ["default"],
    },
});
