/**
 * The wording clients match on, through the real server over REST and gRPC: an unknown model
 * or version reads as Triton's ("Request for unknown model: 'x' is not found", tritonclient's
 * examples check the prefix) with KServe's 404 / NOT_FOUND; a model that failed to load says
 * "failed to load" in every reason and 503 answer, whatever failed.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;
let client: GrpcTestClient;

/** Every way a model can fail to load: the backend refuses the file, bad settings, no file, a policy that selects nothing. */
const FAILED = {
  garbage: /^failed to load garbage\/1\/model\.onnx: /,
  bad_settings: /^failed to load: model-settings\.json is not valid JSON: /,
  no_file: /^failed to load: no model\.onnx found in no_file$/,
  empty_version: /^failed to load: version 1 has no model\.onnx \(nor a single other \.onnx file to take instead\)$/,
  no_version_selected: /^failed to load: the version policy selects none of the versions on disk \(1\)$/,
};

beforeAll(async () => {
  repo = await writeRepository({
    "simple/1/model.onnx": buildSimple(),
    "garbage/1/model.onnx": "garbage",
    "bad_settings/1/model.onnx": buildSimple(),
    "bad_settings/model-settings.json": "{not json",
    "no_file/model-settings.json": "{}",
    "empty_version/1/README": "no model here",
    "empty_version/model-settings.json": "{}",
    "no_version_selected/1/model.onnx": buildSimple(),
    "no_version_selected/model-settings.json": JSON.stringify({ version_policy: { specific: { versions: [5] } } }),
  });
  server = await startTestServer(repo, { protocol: "grpc", strictReadiness: false });
  client = grpcClient(grpcTarget(server.url));
});
afterAll(async () => {
  client?.close();
  await server?.close();
  await removeRepository(repo);
});

const simpleInputs = [
  { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array(16).fill(1) },
  { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: Array(16).fill(1) },
];
const grpcInfer = (model: string, version = "") => ({
  model_name: model,
  model_version: version,
  inputs: simpleInputs.map(({ data, ...t }) => ({ ...t, contents: { int_contents: data } })),
});

describe("an unknown model reads as Triton's, with KServe's 404", () => {
  const UNKNOWN = "Request for unknown model: 'ghost' is not found";

  it("over REST: inference, metadata and readiness", async () => {
    expect(await postJson(`${server.url}/v2/models/ghost/infer`, { inputs: simpleInputs })).toMatchObject({ status: 404, body: { error: UNKNOWN } });
    expect(await getJson(`${server.url}/v2/models/ghost`)).toEqual({ status: 404, body: { error: UNKNOWN } });
    expect(await getJson(`${server.url}/v2/models/ghost/ready`)).toEqual({ status: 404, body: { error: UNKNOWN } });
    expect(await postJson(`${server.url}/v1/models/ghost:predict`, { instances: [1] })).toMatchObject({ status: 404, body: { error: UNKNOWN } });
  });

  it("over gRPC: NOT_FOUND with the same message", async () => {
    for (const [rpc, request] of [["ModelInfer", grpcInfer("ghost")], ["ModelMetadata", { name: "ghost" }], ["ModelReady", { name: "ghost" }]] as const) {
      const err = await failure(client.call(rpc, request));
      expect(err.code, rpc).toBe(grpc.status.NOT_FOUND);
      expect(err.details, rpc).toBe(UNKNOWN);
    }
  });

  it("a load of a model the repository does not hold starts the same way", async () => {
    const { status, body } = await postJson(`${server.url}/v2/repository/models/ghost/load`, {});
    expect(status).toBe(404);
    expect(body.error).toBe("Request for unknown model: 'ghost' is not found in the model repository");
  });
});

describe("an unknown version reads as Triton's, with KServe's 404", () => {
  const UNKNOWN_VERSION = /^Request for unknown model: 'simple' version 3 is not found \(versions: 1\)$/;

  it("over REST", async () => {
    const infer = await postJson(`${server.url}/v2/models/simple/versions/3/infer`, { inputs: simpleInputs });
    expect(infer.status).toBe(404);
    expect(infer.body.error).toMatch(UNKNOWN_VERSION);
    const ready = await getJson(`${server.url}/v2/models/simple/versions/3/ready`);
    expect(ready.status).toBe(404);
    expect(ready.body.error).toMatch(UNKNOWN_VERSION);
  });

  it("over gRPC", async () => {
    const err = await failure(client.call("ModelInfer", grpcInfer("simple", "3")));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toMatch(UNKNOWN_VERSION);
  });
});

describe("a model that failed to load says so", () => {
  const entries = Object.entries(FAILED);
  const reasonOf = async (model: string): Promise<string> => (await getJson(`${server.url}/v2/models/${model}/ready`)).body.reason;

  it.each(entries)("%s: its model-ready reason starts with 'failed to load'", async (model, reason) => {
    const { status, body } = await getJson(`${server.url}/v2/models/${model}/ready`);
    expect(status).toBe(503);
    expect(body).toMatchObject({ name: model, ready: false, state: "UNAVAILABLE" });
    expect(body.reason).toMatch(reason);
  });

  it.each(entries)("%s: inference answers 503 with the reason", async (model, reason) => {
    const { status, body } = await postJson(`${server.url}/v2/models/${model}/infer`, { inputs: simpleInputs });
    expect(status).toBe(503);
    expect(body.error).toBe(`model '${model}' version 1 is not ready: UNAVAILABLE (${await reasonOf(model)})`);
    expect(await reasonOf(model)).toMatch(reason);
  });

  it("the repository index gives every failed model's reason, over REST and gRPC alike", async () => {
    const rest = (await postJson(`${server.url}/v2/repository/index`, {})).body as { name: string; reason?: string }[];
    const grpcIndex = (await client.call<any>("RepositoryIndex", {})).response.models as { name: string; reason: string }[];
    for (const [model, reason] of entries) {
      expect(rest.find((e) => e.name === model)?.reason, model).toMatch(reason);
      expect(grpcIndex.find((e) => e.name === model)?.reason, model).toMatch(reason);
    }
  });

  it("the server's readiness answer names each failed model with its reason", async () => {
    const strict = await startTestServer(repo);
    try {
      const { status, body } = await getJson(`${strict.url}/v2/health/ready`);
      expect(status).toBe(503);
      for (const [model] of entries) expect(body.error).toContain(`${model}/1 UNAVAILABLE: ${await reasonOf(model)}`);
    } finally {
      await strict.close();
    }
  });
});
