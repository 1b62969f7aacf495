/**
 * The model configuration extension over REST (GET .../config: Triton's ModelConfig JSON) and
 * Triton's configuration as a load request's `config`, mapped onto the model's settings.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { addConstantModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;

const load = (name: string, config: unknown) => postJson(`${server.url}/v2/repository/models/${name}/load`, { parameters: { config: typeof config === "string" ? config : JSON.stringify(config) } });
const simpleRequest = (rows: number) => ({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [rows, 16], datatype: "INT32", data: Array(16 * rows).fill(1) })) });
const addRequest = { inputs: [{ name: "INPUT", shape: [1], datatype: "INT32", data: [1] }] };

beforeAll(async () => {
  repo = await writeRepository({
    "simple/1/model.onnx": buildSimple(),
    "batched/1/model.onnx": buildSimple(),
    "batched/model-settings.json": JSON.stringify({ max_batch_size: 4, dynamic_batching: { max_queue_delay_microseconds: 100, preferred_batch_size: [2] }, instance_count: 2, parameters: { owner: "tests" } }),
    "renamed/1/model.onnx": addConstantModel(1),
    "renamed/1/graph.onnx": addConstantModel(2),
  });
  server = await startTestServer(repo);
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

describe("GET /v2/models/{name}[/versions/{v}]/config", () => {
  it("answers Triton's model configuration for the loaded model, dims without the batch dimension", async () => {
    const { status, body } = await getJson(`${server.url}/v2/models/batched/config`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      name: "batched", platform: "onnxruntime_onnx", backend: "onnxruntime", max_batch_size: 4,
      version_policy: { latest: { num_versions: 1 } },
      input: [
        { name: "INPUT0", data_type: "TYPE_INT32", format: "FORMAT_NONE", dims: [16], is_shape_tensor: false },
        { name: "INPUT1", data_type: "TYPE_INT32", dims: [16] },
      ],
      output: [{ name: "OUTPUT0", data_type: "TYPE_INT32", dims: [16], label_filename: "" }, { name: "OUTPUT1", data_type: "TYPE_INT32", dims: [16] }],
      dynamic_batching: { preferred_batch_size: [2], max_queue_delay_microseconds: 100, default_queue_policy: { max_queue_size: 0 } },
      instance_group: [{ name: "batched_0", kind: "KIND_CPU", count: 2, gpus: [] }],
      default_model_filename: "model.onnx",
      parameters: { owner: { string_value: "tests" } },
    });
    // Without batching every dimension is in dims, -1 for any size; no dynamic_batching block.
    const simple = (await getJson(`${server.url}/v2/models/simple/versions/1/config`)).body;
    expect(simple).toMatchObject({ name: "simple", max_batch_size: 0, input: [{ name: "INPUT0", dims: [-1, 16] }, { name: "INPUT1", dims: [-1, 16] }] });
    expect(simple).not.toHaveProperty("dynamic_batching");
  });

  it("answers 404 for an unknown model or version", async () => {
    expect(await getJson(`${server.url}/v2/models/ghost/config`)).toMatchObject({ status: 404, body: { error: expect.stringContaining("ghost") } });
    expect((await getJson(`${server.url}/v2/models/simple/versions/7/config`)).status).toBe(404);
  });

  it("answers 400 JSON for a malformed model name or version, and the server keeps answering", async () => {
    const name = await getJson(`${server.url}/v2/models/bad%20name!/config`);
    expect(name).toMatchObject({ status: 400, body: { error: expect.stringContaining("invalid model name") } });
    const version = await getJson(`${server.url}/v2/models/simple/versions/latest/config`);
    expect(version).toMatchObject({ status: 400, body: { error: expect.stringContaining("failed to get model version from specified version string 'latest'") } });
    expect(await getJson(`${server.url}/v2/health/live`)).toMatchObject({ status: 200, body: { live: true } });
  });

  it("round trips: the configuration read back loads again, unchanged", async () => {
    const before = (await getJson(`${server.url}/v2/models/batched/config`)).body;
    expect((await load("batched", before)).status).toBe(200);
    expect((await getJson(`${server.url}/v2/models/batched/config`)).body).toEqual(before);
    expect((await postJson(`${server.url}/v2/models/batched/infer`, simpleRequest(4))).status).toBe(200);
    expect((await postJson(`${server.url}/v2/models/batched/infer`, simpleRequest(5))).status).toBe(400);
  });
});

describe("load with Triton's model configuration", () => {
  it("maps max_batch_size, dynamic_batching, instance_group and input/output dims onto the model", async () => {
    const io = (prefix: string) => [0, 1].map((i) => ({ name: `${prefix}${i}`, data_type: "TYPE_INT32", dims: [16] }));
    const res = await load("simple", {
      name: "simple", platform: "onnxruntime_onnx", max_batch_size: 8, input: io("INPUT"), output: io("OUTPUT"),
      dynamic_batching: { preferred_batch_size: [4], max_queue_delay_microseconds: 200 }, instance_group: [{ kind: "KIND_CPU", count: 3 }],
    });
    expect(res.status).toBe(200);
    const config = (await getJson(`${server.url}/v2/models/simple/config`)).body;
    expect(config).toMatchObject({ max_batch_size: 8, dynamic_batching: { preferred_batch_size: [4], max_queue_delay_microseconds: 200 }, instance_group: [{ count: 3, kind: "KIND_CPU" }], input: [{ dims: [16] }, { dims: [16] }] });
    expect((await getJson(`${server.url}/v2/models/simple`)).body.inputs[0]).toEqual({ name: "INPUT0", datatype: "INT32", shape: [-1, 16] });
    expect((await postJson(`${server.url}/v2/models/simple/infer`, simpleRequest(9))).body.error).toMatch(/batch size 9 exceeds max_batch_size 8/);
    expect((await postJson(`${server.url}/v2/models/simple/infer`, simpleRequest(8))).status).toBe(200);
  });

  it("refuses with 400, naming the key, what this server would not honour; the model keeps serving", async () => {
    const cases: [object, RegExp][] = [
      [{ sequence_batching: { max_sequence_idle_microseconds: 1000 } }, /^invalid parameters\.config: sequence_batching: not supported by this server: sequence batching/],
      [{ ensemble_scheduling: { step: [] } }, /^invalid parameters\.config: ensemble_scheduling: not supported/],
      [{ platform: "tensorflow_savedmodel" }, /^invalid parameters\.config: platform: not supported by this server: this server runs ONNX models/],
      [{ name: "other" }, /^invalid parameters\.config: name: 'other' does not match the model being loaded, 'simple'$/],
      [{ input: [{ name: "INPUT0", data_type: "TYPE_FP32", dims: [16] }], max_batch_size: 8 }, /^failed to load model 'simple': version 1: .*settings declare FP32 but the model has INT32/],
    ];
    for (const [config, error] of cases) {
      const res = await load("simple", config);
      expect(res.status, JSON.stringify(config)).toBe(400);
      expect(res.body.error).toMatch(error);
    }
    expect((await postJson(`${server.url}/v2/models/simple/infer`, simpleRequest(1))).status).toBe(200);
  });

  it("honours default_model_filename: the version files are found again with the new name", async () => {
    expect((await postJson(`${server.url}/v2/models/renamed/infer`, addRequest)).body.outputs[0].data).toEqual([2]);
    expect((await load("renamed", { default_model_filename: "graph.onnx" })).status).toBe(200);
    expect((await postJson(`${server.url}/v2/models/renamed/infer`, addRequest)).body.outputs[0].data).toEqual([3]);
    expect((await getJson(`${server.url}/v2/models/renamed/config`)).body.default_model_filename).toBe("graph.onnx");
    expect((await load("renamed", { default_model_filename: "missing.onnx" })).body.error).toMatch(/has no missing\.onnx/);
  });
});
