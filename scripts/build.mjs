// Bundles the server (and the model puller) into dist/ so start-up loads one
// file instead of transpiling TypeScript.
//
// The server bundle carries its JavaScript dependencies too (hono, zod, pino,
// prom-client, …): resolving and reading a few hundred small files from
// node_modules took about 100 ms of the 360 ms from process start to ready
// (2-core machine, `npm run bench`). Only
// onnxruntime-node (a native addon that finds its binaries relative to itself)
// and, only with PROTOCOL=grpc, grpc-js and proto-loader are loaded from
// node_modules at run time. Zod's error messages in 40-odd
// languages are left out of it: the server only ever uses English.
// `BUILD_ANALYZE=1 npm run build` prints what takes the space.
import { build } from "esbuild";
import { existsSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";

const common = {
  outdir: "dist",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  logLevel: "warning",
};

/** Zod v4 re-exports every locale from its classic and core APIs; keep English, the one the server configures. */
const englishOnlyZod = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core|mini)$/.test(args.resolveDir)
        ? { path: join(args.resolveDir, "..", "locales", "index.js"), namespace: "zod-english-only" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "zod-english-only" }, (args) => ({
      contents: 'export { default as en } from "./en.js";',
      resolveDir: dirname(args.path),
      loader: "js",
    }));
  },
};

const builds = [];

if (existsSync("runtime/src/main.ts")) {
  builds.push(
    build({
      ...common,
      entryPoints: { "inference-server": "runtime/src/main.ts" },
      // grpc-js and protobufjs are loaded only with PROTOCOL=grpc (runtime/src/grpc/definitions.ts): left in
      // node_modules they cost an HTTP-only server nothing at start-up.
      // Likewise pg, PGlite and ioredis, loaded only with asynchronous inference (runtime/src/async/); PGlite also
      // finds its WebAssembly and data files next to itself, so it cannot be bundled.
      external: ["onnxruntime-node", "@grpc/grpc-js", "@grpc/proto-loader", "pg", "@electric-sql/pglite", "ioredis"],
      plugins: [englishOnlyZod],
      // Mappings only: the image runs with --enable-source-maps, which reads the whole map at
      // start-up (2.2 MB with the sources of every bundled dependency, 0.7 MB without).
      sourcesContent: false,
      // CommonJS dependencies inside an ES module bundle call require() for Node's built-ins.
      banner: { js: 'import { createRequire as __bundleRequire } from "node:module"; const require = __bundleRequire(import.meta.url);' },
      metafile: process.env.BUILD_ANALYZE === "1",
    }).then(async (result) => {
      if (result.metafile) {
        const { analyzeMetafile } = await import("esbuild");
        console.log(await analyzeMetafile(result.metafile, { verbose: false }));
      }
    }),
  );
}

if (existsSync("runtime/src/puller/cli.ts")) {
  builds.push(build({ ...common, entryPoints: { "model-puller": "runtime/src/puller/cli.ts" }, packages: "external" }));
}

// The migration runner (`node bin/migrate.js`, the Kubernetes migration Job); finds runtime/migrations/ at run time.
if (existsSync("runtime/src/async/store/migrate-cli.ts")) {
  builds.push(build({ ...common, entryPoints: { migrate: "runtime/src/async/store/migrate-cli.ts" }, packages: "external" }));
}

// The model instance worker (runtime/src/backends/instance-worker.mjs) starts from its own file: it goes
// beside the bundle, where the server's `new URL("./instance-worker.mjs", import.meta.url)` finds it.
if (existsSync("runtime/src/backends/instance-worker.mjs")) {
  builds.push(mkdir("dist", { recursive: true }).then(() => copyFile("runtime/src/backends/instance-worker.mjs", "dist/instance-worker.mjs")));
}

await Promise.all(builds);
