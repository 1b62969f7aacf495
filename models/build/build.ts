/** `npm run models:build`: rebuilds every model in models/ from its script. */
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CATALOG } from "./catalog.js";

const modelsDir = join(dirname(fileURLToPath(import.meta.url)), "..");

for (const entry of CATALOG) {
  const bytes = await entry.build();
  const target = join(modelsDir, entry.path);
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, bytes);
  const digest = createHash("sha256").update(bytes).digest("hex");
  console.log(`${entry.path}  ${bytes.byteLength} bytes  sha256 ${digest}`);
}
