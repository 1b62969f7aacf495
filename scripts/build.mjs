// Bundles the server (and the model puller) into dist/ so start-up loads one
// file instead of transpiling TypeScript. Native and large runtime dependencies
// stay external and are resolved from node_modules at run time.
import { build } from "esbuild";
import { existsSync } from "node:fs";

const entries = {
  "inference-server": "runtime/src/main.ts",
  "model-puller": "runtime/src/puller/cli.ts",
};

const entryPoints = Object.fromEntries(Object.entries(entries).filter(([, path]) => existsSync(path)));

await build({
  entryPoints,
  outdir: "dist",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  packages: "external",
  logLevel: "warning",
});
