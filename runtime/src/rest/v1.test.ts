/** KServe V1 on the same data plane: list, readiness, :predict for single- and multi-input models. */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { identityModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;

beforeAll(async () => {
  repo = await writeRepository({
    "sentiment/1/model.onnx": await readFile(join(import.meta.dirname, "../../../models/sentiment/1/model.onnx")),
    "simple/1/model.onnx": buildSimple(),
    "matrix/1/model.onnx": identityModel("FLOAT"),
    "broken/1/model.onnx": "garbage",
  });
  server = await startTestServer(repo);
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

const predict = (model: string, body: unknown) => postJson(`${server.url}/v1/models/${model}:predict`, body);

describe("KServe V1", () => {
  it("GET / answers KServe's liveness, {\"status\": \"alive\"}, which InferenceRESTClient(protocol=\"v1\").is_server_live reads", async () => {
    expect(await getJson(`${server.url}/`)).toEqual({ status: 200, body: { status: "alive" } });
  });

  it("lists every model the server knows, ready or not, as KServe lists its registry", async () => {
    expect(await getJson(`${server.url}/v1/models`)).toEqual({ status: 200, body: { models: ["broken", "matrix", "sentiment", "simple"] } });
  });

  it("GET /v1/models/{name}: 200 {name, ready: true} when ready", async () => {
    expect(await getJson(`${server.url}/v1/models/sentiment`)).toEqual({ status: 200, body: { name: "sentiment", ready: true } });
  });

  it("GET /v1/models/{name}: 503 when not ready (is_model_ready reads it as false), saying it failed to load", async () => {
    const { status, body } = await getJson(`${server.url}/v1/models/broken`);
    expect(status).toBe(503);
    expect(body).toMatchObject({ name: "broken", ready: false });
    expect(body.error).toMatch(/^model 'broken' version 1 is not ready: UNAVAILABLE \(failed to load broken\/1\/model\.onnx: /);
  });

  it("GET /v1/models/{name}: 404 with Triton's unknown-model wording for a model it does not know", async () => {
    expect(await getJson(`${server.url}/v1/models/ghost`)).toEqual({ status: 404, body: { error: "Request for unknown model: 'ghost' is not found" } });
  });

  it("predicts sentiment from a list of sentences, one prediction per instance", async () => {
    const { status, body } = await predict("sentiment", { instances: ["This movie was fantastic!", "Terrible, boring and far too long."] });
    expect(status).toBe(200);
    expect(body.predictions).toHaveLength(2);
    expect(body.predictions[0].label).toBe("positive");
    expect(body.predictions[1].label).toBe("negative");
    expect(body.predictions[0].probabilities[1]).toBeGreaterThan(0.5);
    expect(body.predictions[0].probabilities[0] + body.predictions[0].probabilities[1]).toBeCloseTo(1, 5);
  });

  it("accepts 'inputs' in place of 'instances'", async () => {
    const { body } = await predict("sentiment", { inputs: ["Great food and friendly staff."] });
    expect(body.predictions[0].label).toBe("positive");
  });

  it("stacks rows for a single-input tensor model and splits the output back into rows", async () => {
    const { status, body } = await predict("matrix", { instances: [[1, 2, 3], [4, 5, 6]] });
    expect(status).toBe(200);
    expect(body).toEqual({ predictions: [[1, 2, 3], [4, 5, 6]] });
  });

  it("takes instances keyed by input name for a multi-input model", async () => {
    const row = (k: number) => ({ INPUT0: Array(16).fill(k), INPUT1: Array(16).fill(1) });
    const { status, body } = await predict("simple", { instances: [row(1), row(5)] });
    expect(status).toBe(200);
    expect(body.predictions).toEqual([
      { OUTPUT0: Array(16).fill(2), OUTPUT1: Array(16).fill(0) },
      { OUTPUT0: Array(16).fill(6), OUTPUT1: Array(16).fill(4) },
    ]);
  });

  it.each([
    ["a non-list instances", "sentiment", { instances: "This movie was fantastic!" }, 400, /^'instances' must be a list of instances, got "This movie/],
    ["an empty instances", "sentiment", { instances: [] }, 400, /^'instances' is empty/],
    ["no instances at all", "sentiment", { data: [1] }, 400, /^invalid V1 request: the body needs an 'instances'/],
    ["ragged instances", "matrix", { instances: [[1, 2], [3]] }, 400, /^instances: instance 1 has shape \[1\] but instance 0 has \[2\]/],
    ["a non-string sentence", "sentiment", { instances: ["ok", 7] }, 400, /^input 'text': element 1 \(7\) is not a valid BYTES value/],
    ["array rows for a multi-input model", "simple", { instances: [[1]] }, 400, /^model 'simple' has 2 inputs, so each instance must be an object keyed by input name/],
    ["a missing input in a row", "simple", { instances: [{ INPUT0: Array(16).fill(1) }] }, 400, /^instance 0 has no value for input 'INPUT1'/],
    ["an unknown model", "ghost", { instances: [1] }, 404, /^Request for unknown model: 'ghost' is not found$/],
    ["a model that is not ready", "broken", { instances: [1] }, 503, /^model 'broken' version 1 is not ready/],
  ])("%s is answered with its status and message", async (_label, model, body, status, message) => {
    const res = await predict(model, body);
    expect(res.status).toBe(status);
    expect(res.body.error).toMatch(message);
  });

  it("answers :explain with 501 and an unknown verb with 400", async () => {
    expect((await postJson(`${server.url}/v1/models/sentiment:explain`, { instances: ["x"] })).status).toBe(501);
    const verb = await postJson(`${server.url}/v1/models/sentiment:classify`, { instances: ["x"] });
    expect(verb).toMatchObject({ status: 400, body: { error: 'unknown V1 verb in "sentiment:classify"; use /v1/models/sentiment:predict' } });
  });

  it("keeps serving after every bad V1 request", async () => {
    expect((await predict("sentiment", { instances: ["fine"] })).status).toBe(200);
  });
});
