/**
 * `npm run manifests`: writes the generated YAML (and the Grafana dashboard)
 * under knative/ and kserve/. `npm run manifests -- --check` writes nothing and
 * exits 1 when a committed file differs from what the generator produces.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { generatedFiles } from "./files.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Files whose committed content differs from the generator's output (missing ones included). */
export async function staleFiles(root = REPO_ROOT): Promise<string[]> {
  const stale: string[] = [];
  for (const [path, content] of generatedFiles()) {
    const current = await readFile(join(root, path), "utf8").catch(() => undefined);
    if (current !== content) stale.push(path);
  }
  return stale;
}

async function main(): Promise<void> {
  if (process.argv.includes("--check")) {
    const stale = await staleFiles();
    if (stale.length > 0) {
      process.stderr.write(`stale generated files (run \`npm run manifests\`):\n${stale.map((p) => `  ${p}`).join("\n")}\n`);
      process.exit(1);
    }
    process.stdout.write("generated manifests are up to date\n");
    return;
  }
  for (const [path, content] of generatedFiles()) {
    const target = join(REPO_ROOT, path);
    await mkdir(dirname(target), { recursive: true });
    const current = await readFile(target, "utf8").catch(() => undefined);
    if (current !== content) {
      await writeFile(target, content);
      process.stdout.write(`wrote ${path}\n`);
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`manifests: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
