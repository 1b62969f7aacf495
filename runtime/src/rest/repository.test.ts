/** The model repository and statistics extensions over real HTTP, including load and unload under traffic. */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { addConstantModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;

const addRequest = (n: number) => ({ inputs: [{ name: "INPUT", shape: [1], datatype: "INT32", data: [n] }] });
const simpleRequest = (rows = 1) => ({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [rows, 16], datatype: "INT32", data: Array(16 * rows).fill(1) })) });

beforeAll(async () => {
  repo = await writeRepository({
    "simple/1/model.onnx": buildSimple(),
    "adder/1/model.onnx": addConstantModel(10),
    "counted/1/model.onnx": addConstantModel(0),
  });
  server = await startTestServer(repo);
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

describe("model repository extension", () => {
  it("indexes every model with version and state, filtered by ready", async () => {
    await writeFile(join(repo, "broken.txt"), "not a model directory");
    const all = await postJson(`${server.url}/v2/repository/index`, {});
    expect(all.status).toBe(200);
    expect(all.body).toEqual([
      { name: "adder", version: "1", state: "READY" },
      { name: "counted", version: "1", state: "READY" },
      { name: "simple", version: "1", state: "READY" },
    ]);
    const noBody = await fetch(`${server.url}/v2/repository/index`, { method: "POST" });
    expect(noBody.status).toBe(200);
    const bad = await postJson(`${server.url}/v2/repository/index`, { ready: "yes" });
    expect(bad).toMatchObject({ status: 400, body: { error: "invalid repository index request: ready: must be true or false" } });
  });

  it("unloads a model (UNAVAILABLE 'unloaded' in the index, 404 to inference) and loads it back", async () => {
    expect(await postJson(`${server.url}/v2/repository/models/adder/unload`, {})).toMatchObject({ status: 200, body: { name: "adder", unload: true } });
    expect((await postJson(`${server.url}/v2/repository/index`, {})).body).toContainEqual({ name: "adder", state: "UNAVAILABLE", reason: "unloaded" });
    expect((await postJson(`${server.url}/v2/repository/index`, { ready: true })).body.map((e: { name: string }) => e.name)).toEqual(["counted", "simple"]);
    expect((await postJson(`${server.url}/v2/models/adder/infer`, addRequest(1))).status).toBe(404);
    // An explicitly unloaded model does not hold the server's readiness down.
    expect((await getJson(`${server.url}/v2/health/ready`)).status).toBe(200);

    expect(await postJson(`${server.url}/v2/repository/models/adder/load`, {})).toMatchObject({ status: 200, body: { name: "adder", load: true } });
    expect((await postJson(`${server.url}/v2/models/adder/infer`, addRequest(1))).body.outputs[0].data).toEqual([11]);
  });

  it("reloads a model that changed on disk without failing a single in-flight or concurrent request", async () => {
    await writeFile(join(repo, "adder/1/model.onnx"), addConstantModel(20));
    let stop = false;
    const statuses: number[] = [];
    const results = new Set<number>();
    const traffic = (async () => {
      while (!stop) {
        const batch = await Promise.all(Array.from({ length: 8 }, () => postJson(`${server.url}/v2/models/adder/infer`, addRequest(1))));
        for (const r of batch) {
          statuses.push(r.status);
          if (r.status === 200) results.add(r.body.outputs[0].data[0]);
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 30));
    const reload = await postJson(`${server.url}/v2/repository/models/adder/load`, {});
    await new Promise((r) => setTimeout(r, 30));
    stop = true;
    await traffic;
    expect(reload.status).toBe(200);
    expect(statuses.length).toBeGreaterThan(8);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(results.has(21)).toBe(true);
    expect((await postJson(`${server.url}/v2/models/adder/infer`, addRequest(1))).body.outputs[0].data).toEqual([21]);
  });

  it("unload waits for in-flight requests, which complete", async () => {
    const inflight = Array.from({ length: 16 }, () => postJson(`${server.url}/v2/models/simple/infer`, simpleRequest(64)));
    const unload = postJson(`${server.url}/v2/repository/models/simple/unload`, {});
    const done = await Promise.all(inflight);
    expect((await unload).status).toBe(200);
    // Requests accepted before the unload answered 200; any that arrived after it see 404 or 503, never a 500.
    expect(done.every((r) => [200, 404, 503].includes(r.status))).toBe(true);
    expect(done.some((r) => r.status === 200)).toBe(true);
    expect((await postJson(`${server.url}/v2/repository/models/simple/load`, {})).status).toBe(200);
  });

  it("fails to load a missing or broken model with a clear error while the others keep serving", async () => {
    const missing = await postJson(`${server.url}/v2/repository/models/ghost/load`, {});
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe("Request for unknown model: 'ghost' is not found in the model repository");

    await writeFile(join(repo, "adder/1/model.onnx"), "corrupted");
    const broken = await postJson(`${server.url}/v2/repository/models/adder/load`, {});
    expect(broken.status).toBe(400);
    expect(broken.body.error).toMatch(/^failed to load model 'adder': version 1: failed to load adder\/1\/model\.onnx: .*; the versions already serving keep serving$/);
    expect(broken.body.error).not.toContain(repo);
    // The working version it was meant to replace still answers.
    expect((await postJson(`${server.url}/v2/models/adder/infer`, addRequest(1))).body.outputs[0].data).toEqual([21]);
    expect((await postJson(`${server.url}/v2/models/simple/infer`, simpleRequest())).status).toBe(200);
    await writeFile(join(repo, "adder/1/model.onnx"), addConstantModel(20));
  });

  it("loads with settings given as parameters.config, validated", async () => {
    const ok = await postJson(`${server.url}/v2/repository/models/simple/load`, { parameters: { config: JSON.stringify({ max_batch_size: 2 }) } });
    expect(ok.status).toBe(200);
    expect((await getJson(`${server.url}/v2/models/simple`)).body.parameters).toEqual({ max_batch_size: 2 });
    const bad = await postJson(`${server.url}/v2/repository/models/simple/load`, { parameters: { config: '{"max_batch_size": "two"}' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^invalid parameters\.config: max_batch_size: /);
    const notJson = await postJson(`${server.url}/v2/repository/models/simple/load`, { parameters: { config: "{" } });
    expect(notJson.body.error).toMatch(/^parameters\.config is not valid JSON/);
    await postJson(`${server.url}/v2/repository/models/simple/load`, {});
  });

  it("refuses bad names and bodies", async () => {
    expect((await postJson(`${server.url}/v2/repository/models/..%2F..%2Fetc/load`, {})).status).toBe(400);
    const malformed = await postJson(`${server.url}/v2/repository/models/simple/load`, "{");
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toMatch(/^malformed JSON/);
  });
});

describe("statistics extension", () => {
  it("counts successes, failures, executions and inferences for real", async () => {
    const before = (await getJson(`${server.url}/v2/models/counted/stats`)).body.model_stats[0];
    expect(before).toMatchObject({ name: "counted", version: "1", inference_count: 0, execution_count: 0, last_inference: 0 });
    const started = Date.now();
    for (let i = 0; i < 5; i++) expect((await postJson(`${server.url}/v2/models/counted/infer`, addRequest(i))).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await postJson(`${server.url}/v2/models/counted/infer`, { inputs: [{ name: "WRONG", shape: [1], datatype: "INT32", data: [1] }] })).status).toBe(400);
    const { status, body } = await getJson(`${server.url}/v2/models/counted/versions/1/stats`);
    expect(status).toBe(200);
    const s = body.model_stats[0];
    expect(s).toMatchObject({ name: "counted", version: "1", inference_count: 5, execution_count: 5 });
    expect(s.last_inference).toBeGreaterThanOrEqual(started);
    expect(s.inference_stats.success.count).toBe(5);
    expect(s.inference_stats.fail.count).toBe(2);
    expect(s.inference_stats.compute_infer.count).toBe(5);
    expect(s.inference_stats.success.ns).toBeGreaterThan(0);
    expect(s.inference_stats.success.ns).toBeGreaterThanOrEqual(s.inference_stats.compute_infer.ns);
  });

  it("lists every loaded model at /v2/models/stats and 404s an unknown one", async () => {
    const { body } = await getJson(`${server.url}/v2/models/stats`);
    expect(body.model_stats.map((m: { name: string }) => m.name)).toEqual(["adder", "counted", "simple"]);
    expect((await getJson(`${server.url}/v2/models/ghost/stats`)).status).toBe(404);
  });
});

describe("repository API access control", () => {
  let locked: RunningServer;
  let disabled: RunningServer;
  const token = "s3cret-token-from-a-Secret";
  beforeAll(async () => {
    [locked, disabled] = await Promise.all([startTestServer(repo, { repositoryApiToken: token }), startTestServer(repo, { repositoryApi: "disabled" })]);
  });
  afterAll(() => Promise.all([locked?.close(), disabled?.close()]));

  it("needs the bearer token when one is configured", async () => {
    const none = await postJson(`${locked.url}/v2/repository/models/adder/unload`, {});
    expect(none).toMatchObject({ status: 401, body: { error: "the model repository API needs a valid bearer token" } });
    expect((await postJson(`${locked.url}/v2/repository/index`, {}, { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await postJson(`${locked.url}/v2/repository/index`, {}, { authorization: `Bearer ${token}` })).status).toBe(200);
  });

  it("refuses load and unload with 403 when disabled, and stops advertising the extension", async () => {
    const res = await postJson(`${disabled.url}/v2/repository/models/adder/unload`, {});
    expect(res).toMatchObject({ status: 403, body: { error: "model load and unload are disabled on this server (REPOSITORY_API=disabled)" } });
    expect((await getJson(`${disabled.url}/v2`)).body.extensions).toEqual(["binary_tensor_data", "classification", "model_configuration", "statistics"]);
    expect((await postJson(`${disabled.url}/v2/models/adder/infer`, addRequest(0))).status).toBe(200);
  });
});

// Keep the linter honest about unused helpers in this file.
void rm;
