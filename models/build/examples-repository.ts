/**
 * `npx tsx models/build/examples-repository.ts DIR`: writes the model repository that
 * Triton's stock client examples expect (simple, simple_string, simple_int8, and the
 * other models of runtime/src/testing/fixtures.ts's tritonClientLayout()) into DIR,
 * replacing the model folders it writes. Built fresh each time, never committed;
 * scripts/triton-examples.sh serves it.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { tritonClientLayout } from "../../runtime/src/testing/fixtures.js";

const target = process.argv[2];
if (!target) {
  console.error("usage: tsx models/build/examples-repository.ts DIR");
  process.exit(2);
}
const root = resolve(target);
const layout = tritonClientLayout();
for (const model of new Set(Object.keys(layout).map((path) => path.split("/")[0]!))) await rm(join(root, model), { recursive: true, force: true });
for (const [path, content] of Object.entries(layout)) {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content);
}
console.log(`${Object.keys(layout).length} files written under ${root}`);
