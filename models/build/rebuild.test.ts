/** Every committed model must be exactly what its build script produces today. */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CATALOG } from "./catalog.js";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("models/ rebuild byte for byte", () => {
  for (const entry of CATALOG) {
    it(`models/${entry.path}`, { timeout: 120_000 }, async () => {
      const committed = await readFile(join(import.meta.dirname, "..", entry.path));
      const rebuilt = await entry.build();
      expect(sha256(rebuilt)).toBe(sha256(committed));
    });
  }
});
