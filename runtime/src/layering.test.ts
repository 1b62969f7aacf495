/**
 * The architecture's one rule about dependencies: transports (REST, gRPC, CloudEvents,
 * the async routes) depend on the core, never the other way round. The data plane,
 * codecs, backends, batching, registry, repository and tensor modules must not import
 * from a transport, so a new transport never has to reach into another one.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = join(import.meta.dirname);
const CORE = ["dataplane", "codecs", "backends", "batching", "registry", "repository", "tensor"];
const TRANSPORTS = ["rest", "grpc", "cloudevents"];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return /\.(ts|mjs)$/.test(name) && !name.endsWith(".test.ts") ? [path] : [];
  });
}

describe("layering", () => {
  it("keeps the core free of imports from any transport", () => {
    const offending: string[] = [];
    for (const area of CORE) {
      for (const file of files(join(SRC, area))) {
        for (const [, spec] of readFileSync(file, "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
          const target = relative(SRC, resolve(dirname(file), spec!));
          if (TRANSPORTS.some((t) => target === t || target.startsWith(`${t}/`))) offending.push(`${relative(SRC, file)} → ${target}`);
        }
      }
    }
    expect(offending).toEqual([]);
  });
});
