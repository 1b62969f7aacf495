/**
 * Every RPC of inference.GRPCInferenceService and grpc.health.v1.Health over a
 * real grpc-js client and a real server (PROTOCOL=grpc), answering what the REST
 * API answers on the same port for the same question.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addConstantModel, healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;
let client: GrpcTestClient;

beforeAll(async () => {
  repo = await writeRepository({ ...healthyLayout(), "adder/1/model.onnx": addConstantModel(10) });
  server = await startTestServer(repo, { protocol: "grpc" });
  client = grpcClient(grpcTarget(server.url));
});
afterAll(async () => {
  client?.close();
  await server?.close();
  await removeRepository(repo);
});

const range = <T = number>(n: number, f: (i: number) => T = (i) => i as T): T[] => Array.from({ length: n }, (_, i) => f(i));
const int32Bytes = (values: number[]) => Buffer.from(Int32Array.from(values).buffer);
const int32Of = (bytes: Uint8Array) => Array.from(new Int32Array(Uint8Array.from(bytes).buffer));

/** `simple` (OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1) with typed contents. */
function simpleRequest(a: number[] = range(16), b: number[] = range(16, () => 1), extra: Record<string, unknown> = {}) {
  return {
    model_name: "simple",
    inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [1, a.length], contents: { int_contents: a } },
      { name: "INPUT1", datatype: "INT32", shape: [1, b.length], contents: { int_contents: b } },
    ],
    ...extra,
  };
}
const typedOutputs = { raw_output_contents: { bool_param: false } };
const adderRequest = (n: number, model = "adder") => ({ model_name: model, inputs: [{ name: "INPUT", datatype: "INT32", shape: [1], contents: { int_contents: [n] } }] });

describe("server health and metadata", () => {
  it("ServerLive and ServerReady answer true once every model has loaded", async () => {
    expect((await client.call("ServerLive", {})).response).toEqual({ live: true });
    expect((await client.call("ServerReady", {})).response).toEqual({ ready: true });
  });

  it("ServerMetadata reports what GET /v2 reports", async () => {
    const rest = await getJson(`${server.url}/v2`);
    const { response } = await client.call("ServerMetadata", {});
    expect(response).toEqual(rest.body);
    expect(response.extensions).toEqual(["binary_tensor_data", "classification", "model_configuration", "model_repository", "statistics"]);
  });
});

describe("model readiness and metadata", () => {
  it("ModelReady answers for a model and for a version", async () => {
    expect((await client.call("ModelReady", { name: "simple" })).response).toEqual({ ready: true });
    expect((await client.call("ModelReady", { name: "versioned", version: "1" })).response).toEqual({ ready: true });
    expect((await client.call("ModelReady", { name: "versioned", version: "3" })).response).toEqual({ ready: true });
  });

  it("ModelReady is NOT_FOUND for an unknown model or version, with the REST message", async () => {
    const unknown = await failure(client.call("ModelReady", { name: "nosuchmodel" }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toBe((await getJson(`${server.url}/v2/models/nosuchmodel/ready`)).body.error);
    expect(unknown.details).toBe("Request for unknown model: 'nosuchmodel' is not found");
    const version = await failure(client.call("ModelReady", { name: "simple", version: "7" }));
    expect(version.code).toBe(grpc.status.NOT_FOUND);
    expect(version.details).toBe("Request for unknown model: 'simple' version 7 is not found (versions: 1)");
  });

  it("ModelMetadata describes inputs and outputs, -1 for dynamic dimensions", async () => {
    const { response } = await client.call("ModelMetadata", { name: "simple" });
    expect(response).toEqual({
      name: "simple",
      versions: ["1"],
      platform: "onnx_onnxv1",
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: ["-1", "16"] },
        { name: "INPUT1", datatype: "INT32", shape: ["-1", "16"] },
      ],
      outputs: [
        { name: "OUTPUT0", datatype: "INT32", shape: ["-1", "16"] },
        { name: "OUTPUT1", datatype: "INT32", shape: ["-1", "16"] },
      ],
    });
  });

  it("ModelMetadata for one version lists that version; without one, every loaded version", async () => {
    expect((await client.call("ModelMetadata", { name: "versioned", version: "2" })).response.versions).toEqual(["2"]);
    expect((await client.call("ModelMetadata", { name: "versioned" })).response.versions).toEqual(["1", "2", "3"]);
    // "007" is version 7, as over REST.
    const missing = await failure(client.call("ModelMetadata", { name: "versioned", version: "007" }));
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    expect(missing.details).toBe((await getJson(`${server.url}/v2/models/versioned/versions/007`)).body.error);
  });
});

describe("ModelInfer", () => {
  it("answers with raw_output_contents by default, echoing the request id", async () => {
    const { response } = await client.call("ModelInfer", simpleRequest(undefined, undefined, { id: "req-42" }));
    expect(response).toEqual({
      model_name: "simple",
      model_version: "1",
      id: "req-42",
      outputs: [
        { name: "OUTPUT0", datatype: "INT32", shape: ["1", "16"] },
        { name: "OUTPUT1", datatype: "INT32", shape: ["1", "16"] },
      ],
      raw_output_contents: [int32Bytes(range(16, (i) => i + 1)), int32Bytes(range(16, (i) => i - 1))],
    });
  });

  it("answers typed contents when the request parameter raw_output_contents is false", async () => {
    const { response } = await client.call("ModelInfer", simpleRequest(undefined, undefined, { parameters: typedOutputs }));
    expect(response).toEqual({
      model_name: "simple",
      model_version: "1",
      outputs: [
        { name: "OUTPUT0", datatype: "INT32", shape: ["1", "16"], contents: { int_contents: range(16, (i) => i + 1) } },
        { name: "OUTPUT1", datatype: "INT32", shape: ["1", "16"], contents: { int_contents: range(16, (i) => i - 1) } },
      ],
    });
  });

  it("takes raw_input_contents, one entry per input in input order", async () => {
    const { response } = await client.call("ModelInfer", {
      model_name: "simple",
      inputs: [
        { name: "INPUT1", datatype: "INT32", shape: [2, 16] },
        { name: "INPUT0", datatype: "INT32", shape: [2, 16] },
      ],
      raw_input_contents: [int32Bytes(range(32, () => 5)), int32Bytes(range(32))],
    });
    expect(response.outputs.map((o: { shape: string[] }) => o.shape)).toEqual([["2", "16"], ["2", "16"]]);
    expect(int32Of(response.raw_output_contents[0])).toEqual(range(32, (i) => i + 5));
    expect(int32Of(response.raw_output_contents[1])).toEqual(range(32, (i) => i - 5));
  });

  it("returns only the requested outputs, as REST does", async () => {
    const { response } = await client.call("ModelInfer", simpleRequest(undefined, undefined, { outputs: [{ name: "OUTPUT1" }] }));
    expect(response.outputs).toEqual([{ name: "OUTPUT1", datatype: "INT32", shape: ["1", "16"] }]);
    expect(response.raw_output_contents).toHaveLength(1);
    expect(int32Of(response.raw_output_contents[0])).toEqual(range(16, (i) => i - 1));
    const both = await client.call("ModelInfer", simpleRequest(undefined, undefined, { outputs: [{ name: "OUTPUT1" }, { name: "OUTPUT0" }] }));
    const rest = await postJson(`${server.url}/v2/models/simple/infer`, {
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: range(16) },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: range(16, () => 1) },
      ],
      outputs: [{ name: "OUTPUT1" }, { name: "OUTPUT0" }],
    });
    expect(both.response.outputs.map((o: { name: string }) => o.name)).toEqual(rest.body.outputs.map((o: { name: string }) => o.name));
  });

  it("selects model_version, and the newest loaded version without one", async () => {
    const request = (version?: string) => ({
      model_name: "versioned",
      ...(version ? { model_version: version } : {}),
      inputs: [{ name: "INPUT", datatype: "INT32", shape: [2], contents: { int_contents: [10, 20] } }],
      parameters: typedOutputs,
    });
    for (const v of ["1", "2", "3"]) {
      const { response } = await client.call("ModelInfer", request(v));
      expect(response.model_version).toBe(v);
      expect(response.outputs[0].contents.int_contents).toEqual([10 + Number(v), 20 + Number(v)]);
    }
    expect((await client.call("ModelInfer", request())).response.model_version).toBe("3");
    const old = await failure(client.call("ModelInfer", { ...adderRequest(0, "latest_only"), model_version: "1" }));
    expect(old.code).toBe(grpc.status.NOT_FOUND);
    expect(old.details).toBe("Request for unknown model: 'latest_only' version 1 is not found (versions: 2)");
  });

  it("serves the flat layout as version 1 and answers request and output parameters", async () => {
    const { response } = await client.call("ModelInfer", {
      ...adderRequest(1, "flat"),
      parameters: { ...typedOutputs, note: { string_param: "ignored" }, big: { int64_param: "9007199254740993" } },
    });
    expect(response).toMatchObject({ model_name: "flat", model_version: "1", outputs: [{ contents: { int_contents: [101] } }] });
  });
});

describe("ModelStreamInfer", () => {
  it("answers each message in order on one stream; a failed one is an error_message and the stream goes on", async () => {
    const messages = [
      { ...adderRequest(1), id: "a" },
      { ...adderRequest(2), id: "b", parameters: typedOutputs },
      { model_name: "adder", id: "c", inputs: [{ name: "WRONG", datatype: "INT32", shape: [1], contents: { int_contents: [3] } }] },
      { ...adderRequest(4, "nosuchmodel"), id: "d" },
      { ...adderRequest(5), id: "e", parameters: typedOutputs },
    ];
    const { responses, status, metadata } = await client.stream(messages);
    expect(status.code).toBe(grpc.status.OK);
    expect(metadata.get("x-request-id")[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(responses).toHaveLength(5);
    expect(responses[0].infer_response).toMatchObject({ model_name: "adder", model_version: "1", id: "a", outputs: [{ name: "OUTPUT", datatype: "INT32", shape: ["1"] }] });
    expect(int32Of(responses[0].infer_response.raw_output_contents[0])).toEqual([11]);
    expect(responses[0].error_message).toBeUndefined();
    expect(responses[1].infer_response.outputs[0].contents.int_contents).toEqual([12]);
    const rest = await postJson(`${server.url}/v2/models/adder/infer`, { inputs: [{ name: "WRONG", datatype: "INT32", shape: [1], data: [3] }] });
    expect(responses[2]).toEqual({ error_message: rest.body.error, infer_response: { id: "c", model_name: "adder", model_version: "" } });
    expect(responses[2].error_message).toBe("model 'adder' has no input named 'WRONG'; its inputs are: INPUT");
    expect(responses[3]).toEqual({ error_message: "Request for unknown model: 'nosuchmodel' is not found", infer_response: { id: "d", model_name: "nosuchmodel", model_version: "" } });
    expect(responses[4].infer_response).toMatchObject({ id: "e", outputs: [{ contents: { int_contents: [15] } }] });
  });

  it("ends with OK and no answers when the client sends nothing", async () => {
    const { responses, status } = await client.stream([]);
    expect(responses).toEqual([]);
    expect(status.code).toBe(grpc.status.OK);
  });
});

describe("ModelStatistics", () => {
  it("counts successes, failures, inferences and executions as GET /v2/models/{name}/stats does", async () => {
    const name = "identity_int16";
    const before = (await client.call("ModelStatistics", { name })).response.model_stats[0];
    expect(before).toMatchObject({ name, version: "1", inference_count: "0", execution_count: "0" });
    const ok = { model_name: name, inputs: [{ name: "INPUT", datatype: "INT16", shape: [2, 1], contents: { int_contents: [1, 2] } }] };
    for (let i = 0; i < 3; i++) await client.call("ModelInfer", ok);
    await failure(client.call("ModelInfer", { model_name: name, inputs: [{ name: "INPUT", datatype: "INT32", shape: [1, 1], contents: { int_contents: [1] } }] }));
    const { response } = await client.call("ModelStatistics", { name, version: "1" });
    const s = response.model_stats[0];
    // Without max_batch_size a request is one inference, whatever its first dimension.
    expect(s).toMatchObject({ name, version: "1", inference_count: "3", execution_count: "3" });
    expect(s.inference_stats.success.count).toBe("3");
    expect(s.inference_stats.fail.count).toBe("1");
    expect(s.inference_stats.compute_infer.count).toBe("3");
    expect(Number(s.inference_stats.success.ns)).toBeGreaterThan(0);
    expect(Number(s.last_inference)).toBeGreaterThan(Date.now() - 60_000);

    const rest = (await getJson(`${server.url}/v2/models/${name}/stats`)).body.model_stats[0];
    expect(Number(s.inference_count)).toBe(rest.inference_count);
    expect(Number(s.execution_count)).toBe(rest.execution_count);
    expect(Number(s.last_inference)).toBe(rest.last_inference);
    for (const [key, d] of Object.entries(rest.inference_stats as Record<string, { count: number; ns: number }>)) {
      expect(Number(s.inference_stats[key].count), key).toBe(d.count);
      expect(Math.abs(Number(s.inference_stats[key].ns) - d.ns), key).toBeLessThanOrEqual(1);
    }
  });

  it("lists every loaded version without a name, and is NOT_FOUND for an unknown model", async () => {
    const all = (await client.call("ModelStatistics", {})).response.model_stats.map((m: { name: string; version: string }) => `${m.name}/${m.version}`);
    const rest = (await getJson(`${server.url}/v2/models/stats`)).body.model_stats.map((m: { name: string; version: string }) => `${m.name}/${m.version}`);
    expect(all).toEqual(rest);
    expect(all).toContain("versioned/2");
    const ghost = await failure(client.call("ModelStatistics", { name: "ghost" }));
    expect(ghost.code).toBe(grpc.status.NOT_FOUND);
    expect(ghost.details).toBe("Request for unknown model: 'ghost' is not found");
  });
});

describe("model repository", () => {
  const index = async (ready = false) => (await client.call("RepositoryIndex", { ready })).response.models as { name: string; version: string; state: string; reason: string }[];
  /** The REST index entry in the gRPC message's shape (empty strings where REST leaves a field out). */
  const restIndex = async (ready = false) =>
    ((await postJson(`${server.url}/v2/repository/index`, { ready })).body as Record<string, string>[]).map((e) => ({ name: e.name, version: e.version ?? "", state: e.state, reason: e.reason ?? "" }));

  it("RepositoryIndex lists what POST /v2/repository/index lists", async () => {
    const models = await index();
    expect(models).toEqual(await restIndex());
    expect(models).toContainEqual({ name: "simple", version: "1", state: "READY", reason: "" });
    expect(models.filter((m) => m.name === "versioned").map((m) => m.version)).toEqual(["1", "2", "3"]);
  });

  it("unloads and loads a model (Triton's model_name field), changing what inference sees", async () => {
    expect((await client.call("RepositoryModelUnload", { model_name: "adder" })).response).toEqual({ model_name: "adder", isUnloaded: true });
    expect(await index()).toContainEqual({ name: "adder", version: "", state: "UNAVAILABLE", reason: "unloaded" });
    expect((await index(true)).map((m) => m.name)).not.toContain("adder");
    expect(await index(true)).toEqual(await restIndex(true));
    const gone = await failure(client.call("ModelInfer", adderRequest(1)));
    expect(gone.code).toBe(grpc.status.NOT_FOUND);
    expect(gone.details).toBe("Request for unknown model: 'adder' is not found");

    expect((await client.call("RepositoryModelLoad", { model_name: "adder" })).response).toEqual({ model_name: "adder", isLoaded: true });
    expect(int32Of((await client.call("ModelInfer", adderRequest(1))).response.raw_output_contents[0])).toEqual([11]);
  });

  it("takes the model name in repository_name too (KServe's clients)", async () => {
    expect((await client.call("RepositoryModelUnload", { repository_name: "adder" })).response).toEqual({ model_name: "adder", isUnloaded: true });
    expect((await client.call("RepositoryModelLoad", { repository_name: "adder" })).response).toEqual({ model_name: "adder", isLoaded: true });
    expect((await client.call("ModelReady", { name: "adder" })).response).toEqual({ ready: true });
  });

  it("loads with settings in the config parameter, validated as over REST", async () => {
    const load = (config: object) => client.call("RepositoryModelLoad", { model_name: "simple", parameters: { config } });
    expect((await load({ string_param: JSON.stringify({ max_batch_size: 2 }) })).response).toEqual({ model_name: "simple", isLoaded: true });
    expect((await getJson(`${server.url}/v2/models/simple`)).body.parameters).toEqual({ max_batch_size: 2 });
    const rows = (n: number) => simpleRequest(range(16 * n), range(16 * n)).inputs.map((i) => ({ ...i, shape: [n, 16] }));
    const tooMany = await failure(client.call("ModelInfer", { model_name: "simple", inputs: rows(3) }));
    expect(tooMany.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(tooMany.details).toBe("input 'INPUT0': batch size 3 exceeds max_batch_size 2 of model 'simple'");

    const bad = await failure(load({ string_param: '{"max_batch_size": "two"}' }));
    const restBad = await postJson(`${server.url}/v2/repository/models/simple/load`, { parameters: { config: '{"max_batch_size": "two"}' } });
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toBe(restBad.body.error);
    expect(bad.details).toMatch(/^invalid parameters\.config: max_batch_size: /);
    const notJson = await failure(load({ string_param: "{" }));
    expect(notJson.details).toMatch(/^parameters\.config is not valid JSON/);
    const notString = await failure(load({ bool_param: true }));
    expect(notString.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(notString.details).toBe("parameters.config must be a string_param holding a Triton model configuration or model-settings JSON");

    expect((await client.call("RepositoryModelLoad", { model_name: "simple" })).response.isLoaded).toBe(true);
    expect((await client.call("ModelInfer", { model_name: "simple", inputs: rows(3) })).response.outputs[0].shape).toEqual(["3", "16"]);
  });

  it("is NOT_FOUND for a model not in the repository, and INVALID_ARGUMENT for a bad name, with the REST messages", async () => {
    for (const rpc of ["RepositoryModelLoad", "RepositoryModelUnload"]) {
      const ghost = await failure(client.call(rpc, { model_name: "ghost" }));
      expect(ghost.code).toBe(grpc.status.NOT_FOUND);
      expect(ghost.details).toBe("Request for unknown model: 'ghost' is not found in the model repository");
      const path = await failure(client.call(rpc, { model_name: "../../etc" }));
      expect(path.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(path.details).toBe((await postJson(`${server.url}/v2/repository/models/..%2F..%2Fetc/load`, {})).body.error);
      const none = await failure(client.call(rpc, {}));
      expect(none.code).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect((await postJson(`${server.url}/v2/repository/models/ghost/load`, {})).body.error).toBe("Request for unknown model: 'ghost' is not found in the model repository");
  });
});

describe("grpc.health.v1.Health", () => {
  it("Check answers SERVING for readiness ('' and the inference service) and liveness", async () => {
    expect(await client.check("")).toBe("SERVING");
    expect(await client.check("inference.GRPCInferenceService")).toBe("SERVING");
    expect(await client.check("liveness")).toBe("SERVING");
  });

  it("Check is NOT_FOUND for a service it does not know", async () => {
    const err = await failure(client.check("some.other.Service"));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toBe("unknown service 'some.other.Service'");
  });

  it("Watch sends the current status first, SERVICE_UNKNOWN for an unknown service, and ends when cancelled", async () => {
    const watch = (service: string) =>
      new Promise<{ statuses: string[]; code: number }>((resolve) => {
        const statuses: string[] = [];
        const call = client.health.Watch({ service }) as grpc.ClientReadableStream<{ status: string }>;
        call.on("data", (m) => {
          statuses.push(m.status);
          call.cancel();
        });
        call.on("error", (e: grpc.ServiceError) => resolve({ statuses, code: e.code }));
        call.on("status", (s: grpc.StatusObject) => s.code === grpc.status.OK && resolve({ statuses, code: s.code }));
      });
    expect(await watch("")).toEqual({ statuses: ["SERVING"], code: grpc.status.CANCELLED });
    expect(await watch("liveness")).toEqual({ statuses: ["SERVING"], code: grpc.status.CANCELLED });
    expect(await watch("nope")).toEqual({ statuses: ["SERVICE_UNKNOWN"], code: grpc.status.CANCELLED });
  });
});
