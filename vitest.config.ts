import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["runtime/**/*.test.ts", "models/**/*.test.ts", "test/**/*.test.ts", "knative/**/*.test.ts", "kserve/**/*.test.ts"],
    // onnxruntime-node is a native addon: child processes isolate it better than worker threads.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
