/**
 * Load with files into a read-only repository: 403 naming it. A read-only volume (how a
 * repository is usually mounted in a pod) refuses writes with EROFS even to root, which these
 * tests may run as; creating the upload directory is made to fail that way for this repository.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { removeRepository, writeRepository } from "../testing/fixtures.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";

const readOnly = vi.hoisted(() => ({ root: "" }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...actual,
    mkdtemp: (prefix: string, ...rest: []) => {
      if (readOnly.root && prefix.startsWith(readOnly.root)) return Promise.reject(Object.assign(new Error("EROFS: read-only file system, mkdtemp"), { code: "EROFS" }));
      return actual.mkdtemp(prefix, ...rest);
    },
  };
});

let repo: string;
let server: RunningServer;
beforeAll(async () => {
  repo = await writeRepository({ "simple/1/model.onnx": buildSimple() });
  readOnly.root = repo;
  server = await startTestServer(repo);
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

describe("load with model files into a read-only repository", () => {
  it("answers 403 saying the repository is read-only, and plain loads still work", async () => {
    const config = JSON.stringify({ max_batch_size: 8 });
    const res = await postJson(`${server.url}/v2/repository/models/uploaded/load`, { parameters: { config, "file:1/model.onnx": Buffer.from(buildSimple()).toString("base64") } });
    expect(res).toMatchObject({ status: 403, body: { error: `the model repository ${repo} is read-only (EROFS): model files cannot be loaded into it` } });
    expect((await postJson(`${server.url}/v2/repository/models/simple/load`, { parameters: { config } })).status).toBe(200);
  });
});
