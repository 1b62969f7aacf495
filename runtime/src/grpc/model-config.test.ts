/**
 * Triton's ModelConfig RPC and RepositoryModelLoad with files (bytes_param), as tritonclient.grpc's
 * get_model_config and load_model(config=..., files=...) call them, over a real grpc-js client.
 */
import * as grpc from "@grpc/grpc-js";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;
let client: GrpcTestClient;

const io = (prefix: string) => [0, 1].map((i) => ({ name: `${prefix}${i}`, data_type: "TYPE_INT32", dims: [16] }));
const simpleConfig = (name: string) => JSON.stringify({ name, backend: "onnxruntime", max_batch_size: 8, input: io("INPUT"), output: io("OUTPUT") });
const loadRequest = (name: string, parameters: Record<string, object>) => ({ model_name: name, parameters });
const simpleRequest = { inputs: ["INPUT0", "INPUT1"].map((name, i) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(i + 2) })) };

beforeAll(async () => {
  repo = await writeRepository({ "simple/1/model.onnx": buildSimple(), "simple/model-settings.json": JSON.stringify({ max_batch_size: 4 }) });
  server = await startTestServer(repo, { protocol: "grpc" });
  client = grpcClient(grpcTarget(server.url));
});
afterAll(async () => {
  client?.close();
  await server?.close();
  await removeRepository(repo);
});

describe("ModelConfig", () => {
  it("answers Triton's ModelConfig message for the loaded model", async () => {
    const { response } = await client.call("ModelConfig", { name: "simple" });
    // 64-bit fields decode as decimal text (the test client's loader options).
    expect(response.config).toMatchObject({
      name: "simple", platform: "onnxruntime_onnx", backend: "onnxruntime", max_batch_size: 4,
      version_policy: { latest: { num_versions: 1 } },
      input: [{ name: "INPUT0", data_type: "TYPE_INT32", dims: ["16"] }, { name: "INPUT1", data_type: "TYPE_INT32", dims: ["16"] }],
      output: [{ name: "OUTPUT0", data_type: "TYPE_INT32", dims: ["16"] }, { name: "OUTPUT1", data_type: "TYPE_INT32", dims: ["16"] }],
      instance_group: [{ name: "simple_0", kind: "KIND_CPU" }],
      default_model_filename: "model.onnx",
    });
  });

  it("answers NOT_FOUND for an unknown model", async () => {
    const err = await failure(client.call("ModelConfig", { name: "ghost" }));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
  });

  it("round trips: the message, as protobuf JSON, loads again", async () => {
    const { response } = await client.call("ModelConfig", { name: "simple" });
    // protobuf's JSON form has no oneof names: the loader's `oneofs` option adds them to decoded messages.
    const json = JSON.stringify(response.config, (key, value) => (key.endsWith("_choice") ? undefined : value));
    await client.call("RepositoryModelLoad", loadRequest("simple", { config: { string_param: json } }));
    expect((await client.call("ModelConfig", { name: "simple" })).response).toEqual(response);
  });
});

describe("RepositoryModelLoad with files", () => {
  it("loads the model from bytes_param files and serves it", async () => {
    const model = Buffer.from(buildSimple());
    const { response } = await client.call("RepositoryModelLoad", loadRequest("uploaded", { config: { string_param: simpleConfig("uploaded") }, "file:1/model.onnx": { bytes_param: model } }));
    expect(response).toMatchObject({ model_name: "uploaded", isLoaded: true });
    expect((await postJson(`${server.url}/v2/models/uploaded/infer`, simpleRequest)).body.outputs[0].data).toEqual(Array(16).fill(5));
    expect(await readFile(join(repo, "uploaded/1/model.onnx"))).toEqual(model);
  });

  it("refuses files without config, bad paths and wrongly typed parameters with INVALID_ARGUMENT", async () => {
    const file = { bytes_param: Buffer.from(buildSimple()) };
    const cases: [Record<string, object>, string][] = [
      [{ "file:1/model.onnx": file }, "parameters.config is required with model files (file:1/model.onnx)"],
      [{ config: { string_param: "{}" }, "file:../x": file }, "parameter 'file:../x': "],
      [{ config: { string_param: "{}" }, "file:1/model.onnx": { string_param: "abc" } }, "parameter 'file:1/model.onnx': must be a bytes_param"],
      [{ config: { bytes_param: Buffer.from("{}") } }, "parameters.config must be a string_param"],
      [{ colour: { string_param: "blue" } }, "unrecognized load parameter 'colour'"],
    ];
    for (const [parameters, message] of cases) {
      const err = await failure(client.call("RepositoryModelLoad", loadRequest("bad", parameters)));
      expect(err.code, message).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toContain(message);
    }
  });
});
