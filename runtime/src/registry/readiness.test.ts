/** Readiness with a deliberately broken model beside good ones: the good keep serving, the broken say why. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { model, node, valueInfo } from "../../../models/build/onnx.js";
import { buildSimple } from "../../../models/build/simple.js";
import { OnnxRuntimeBackend } from "../backends/onnxruntime.js";
import { describeModelDir } from "../repository/repository.js";
import { addConstantModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";
import { ModelRegistry } from "./registry.js";

const bf16Model = () =>
  model({ name: "bf16", nodes: [node("Identity", ["X"], ["Y"])], inputs: [valueInfo("X", "BFLOAT16", [2])], outputs: [valueInfo("Y", "BFLOAT16", [2])] });

const layout = () => ({
  "good/1/model.onnx": buildSimple(),
  "broken/1/model.onnx": "this is not an ONNX protobuf",
  "bad_settings/1/model.onnx": addConstantModel(1),
  "bad_settings/model-settings.json": JSON.stringify({ max_batch_size: -3, colour: "blue" }),
  "bad_override/1/model.onnx": addConstantModel(1),
  "bad_override/model-settings.json": JSON.stringify({ inputs: [{ name: "INPUT", datatype: "FP32" }] }),
  "empty_version/1/README": "no model file here",
  "bf16/1/model.onnx": bf16Model(),
});

let repo: string;
let strict: RunningServer;
let lenient: RunningServer;

beforeAll(async () => {
  repo = await writeRepository(layout());
  [strict, lenient] = await Promise.all([startTestServer(repo), startTestServer(repo, { strictReadiness: false })]);
});
afterAll(async () => {
  await Promise.all([strict?.close(), lenient?.close()]);
  await removeRepository(repo);
});

describe("a broken model beside a good one", () => {
  it("keeps the server not ready (strict readiness) and says which model and why", async () => {
    const { status, body } = await getJson(`${strict.url}/v2/health/ready`);
    expect(status).toBe(503);
    expect(body.ready).toBe(false);
    expect(body.error).toMatch(/broken\/1 UNAVAILABLE: failed to load/);
    expect(body.error).not.toContain(repo);
  });

  it("is ready with strict readiness off once nothing is still loading", async () => {
    expect((await getJson(`${lenient.url}/v2/health/ready`)).status).toBe(200);
  });

  it("serves the good model all the same", async () => {
    const data = Array.from({ length: 16 }, () => 1);
    const res = await postJson(`${strict.url}/v2/models/good/infer`, { inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data })) });
    expect(res.status).toBe(200);
    expect(res.body.outputs[0].data).toEqual(data.map(() => 2));
    expect((await getJson(`${strict.url}/v2/models/good/ready`)).status).toBe(200);
  });

  it.each([
    ["broken", /failed to load broken\/1\/model\.onnx: /],
    ["bad_settings", /invalid model-settings\.json: max_batch_size: .*; Unrecognized key.*colour/],
    ["bad_override", /input 'INPUT': settings declare FP32 but the model has INT32/],
    ["empty_version", /version 1 has no model\.onnx/],
    ["bf16", /element type|Unsupported data type/],
  ])("reports %s not ready with the reason, in readiness, metadata, inference and the model list", async (name, reason) => {
    const ready = await getJson(`${strict.url}/v2/models/${name}/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ name, ready: false, state: "UNAVAILABLE" });
    expect(ready.body.reason).toMatch(reason);

    const metadata = await getJson(`${strict.url}/v2/models/${name}`);
    expect(metadata.status).toBe(503);
    expect(metadata.body.error).toMatch(new RegExp(`^model '${name}' version 1 is not ready: UNAVAILABLE \\(`));
    expect(metadata.body.error).toMatch(reason);

    const infer = await postJson(`${strict.url}/v2/models/${name}/infer`, { inputs: [{ name: "INPUT", shape: [1], datatype: "INT32", data: [1] }] });
    expect(infer.status).toBe(503);

    // Server paths never reach a client.
    for (const body of [ready.body, metadata.body]) expect(JSON.stringify(body)).not.toContain(repo);

    const list = await getJson(`${strict.url}/v2/models`);
    const state = list.body.states.find((s: { name: string }) => s.name === name);
    expect(state.state).toBe("UNAVAILABLE");
    expect(state.reason).toMatch(reason);
  });
});

describe("registry state transitions", () => {
  it("is LOADING, then READY; a reload keeps the old version serving until the new one is loaded", async () => {
    const registry = new ModelRegistry(new OnnxRuntimeBackend({ executionProviders: ["cpu"] }), pino({ level: "silent" }));
    const descriptor = (await describeModelDir("good", `${repo}/good`))!;
    const loading = registry.load(descriptor);
    expect(registry.find("good").state).toBe("LOADING");
    expect(registry.allReady()).toBe(false);
    await loading;
    expect(registry.find("good").state).toBe("READY");
    expect(registry.allReady()).toBe(true);

    const before = registry.findReady("good").model;
    const reloading = registry.load(descriptor);
    expect(registry.findReady("good").model).toBe(before);
    await reloading;
    expect(registry.findReady("good").model).not.toBe(before);

    await registry.unload("good");
    expect(() => registry.find("good")).toThrow(/^Request for unknown model: 'good' is not found$/);
  });
});
