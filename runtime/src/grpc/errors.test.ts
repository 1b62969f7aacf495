/**
 * Every class of mistake as a gRPC status: the code that matches the HTTP status
 * REST gives, and the very message REST gives for the same mistake (each compared
 * against a REST call on the same server), plus the errors only gRPC has.
 */
import * as grpc from "@grpc/grpc-js";
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { buildBinaryRequest, bytesTensor } from "../testing/binary-client.js";
import { healthyLayout, removeRepository, slowInput, slowModel, writeRepository } from "../testing/fixtures.js";
import { GatedBackend } from "../testing/gated-backend.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let quickRepo: string;
let lockedRepo: string;
let server: RunningServer;
let quick: RunningServer;
let locked: RunningServer;
let client: GrpcTestClient;
let quickClient: GrpcTestClient;
let lockedClient: GrpcTestClient;
const token = "s3cret-token-from-a-Secret";
/** The quick server's model runs go through this backend, so a test can hold one past the timeout. */
const gate = new GatedBackend();
/** Short, yet ample for the quick calls the timeout tests make around a held run on a busy machine. */
const QUICK_TIMEOUT_MS = 200;

beforeAll(async () => {
  [repo, quickRepo, lockedRepo] = await Promise.all([
    writeRepository({
      ...healthyLayout(),
      "broken/1/model.onnx": "this is not an ONNX protobuf",
      // One request may wait in the batch queue (for 300 ms); a second is refused with 503 and Retry-After.
      "one_slot/1/model.onnx": buildSimple(),
      "one_slot/model-settings.json": JSON.stringify({ max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 300_000, max_queue_size: 1 } }),
    }),
    writeRepository({ "slow/1/model.onnx": slowModel(), "simple/1/model.onnx": buildSimple() }),
    writeRepository({ "slow/1/model.onnx": slowModel(), "simple/1/model.onnx": buildSimple() }),
  ]);
  [server, quick, locked] = await Promise.all([
    startTestServer(repo, { protocol: "grpc", maxRequestBytes: 64 * 1024, strictReadiness: false }),
    startTestServer(quickRepo, { protocol: "grpc", requestTimeoutMs: QUICK_TIMEOUT_MS }, { backend: gate }),
    startTestServer(lockedRepo, { protocol: "grpc", repositoryApi: "disabled", repositoryApiToken: token }),
  ]);
  client = grpcClient(grpcTarget(server.url));
  quickClient = grpcClient(grpcTarget(quick.url));
  lockedClient = grpcClient(grpcTarget(locked.url));
});
afterAll(async () => {
  gate.releaseAll();
  for (const c of [client, quickClient, lockedClient]) c?.close();
  await Promise.all([server?.close(), quick?.close(), locked?.close()]);
  await Promise.all([removeRepository(repo), removeRepository(quickRepo), removeRepository(lockedRepo)]);
});

const range = (n: number, f: (i: number) => number = (i) => i): number[] => Array.from({ length: n }, (_, i) => f(i));
const int32Bytes = (values: number[]) => Buffer.from(Int32Array.from(values).buffer);

/** A tensor as both wires carry it: typed contents for gRPC, JSON data for REST. */
interface Input {
  name: string;
  datatype: string;
  shape: number[];
  data: number[] | string[];
}
const FIELD: Record<string, string> = { INT32: "int_contents", INT64: "int64_contents", FP32: "fp32_contents", BYTES: "bytes_contents" };
const grpcInput = (i: Input) => ({
  name: i.name,
  datatype: i.datatype,
  shape: i.shape,
  contents: { [FIELD[i.datatype]!]: i.datatype === "BYTES" ? (i.data as string[]).map((s) => Buffer.from(s)) : i.datatype === "INT64" ? i.data.map(String) : i.data },
});
const simpleInputs = (): Input[] => [
  { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: range(16) },
  { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: range(16, () => 1) },
];

/**
 * The same inference over gRPC and REST; returns both errors after checking the gRPC
 * code matches the REST status and the messages are identical.
 */
async function sameError(model: string, inputs: Input[], expected: { code: number; status: number; message?: string }, extra: { outputs?: { name: string }[]; version?: string } = {}) {
  const err = await failure(
    client.call("ModelInfer", { model_name: model, ...(extra.version ? { model_version: extra.version } : {}), inputs: inputs.map(grpcInput), ...(extra.outputs ? { outputs: extra.outputs } : {}) }),
  );
  const path = extra.version ? `${model}/versions/${encodeURIComponent(extra.version)}` : encodeURIComponent(model);
  const rest = await postJson(`${server.url}/v2/models/${path}/infer`, { inputs, ...(extra.outputs ? { outputs: extra.outputs } : {}) });
  expect(rest.status).toBe(expected.status);
  expect(err.code).toBe(expected.code);
  expect(err.details).toBe(rest.body.error);
  if (expected.message !== undefined) expect(err.details).toBe(expected.message);
  return err;
}

const INVALID = { code: grpc.status.INVALID_ARGUMENT, status: 400 };

describe("errors from the data plane carry the REST message and the matching code", () => {
  it("an unknown model is NOT_FOUND whatever the tensors hold", async () => {
    await sameError("nosuchmodel", simpleInputs(), { code: grpc.status.NOT_FOUND, status: 404, message: "Request for unknown model: 'nosuchmodel' is not found" });
    // Even with tensors the codec would refuse.
    const err = await failure(client.call("ModelInfer", { model_name: "nosuchmodel", inputs: [{ name: "", datatype: "NOPE" }] }));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
  });

  it("an unknown version is NOT_FOUND", async () => {
    await sameError("simple", simpleInputs(), { code: grpc.status.NOT_FOUND, status: 404, message: "Request for unknown model: 'simple' version 7 is not found (versions: 1)" }, { version: "7" });
  });

  it("a model name or version that is not a plain name is INVALID_ARGUMENT", async () => {
    const name = await sameError("../../etc", simpleInputs(), INVALID);
    expect(name.details).toBe('invalid model name "../../etc"');
    const version = await sameError("simple", simpleInputs(), INVALID, { version: "latest" });
    expect(version.details).toBe("failed to get model version from specified version string 'latest': versions are positive integers");
    const empty = await failure(client.call("ModelInfer", { inputs: simpleInputs().map(grpcInput) }));
    expect(empty.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(empty.details).toBe('invalid model name ""');
  });

  it("an unknown input", async () => {
    await sameError("simple", [...simpleInputs(), { name: "INPUT9", datatype: "INT32", shape: [1, 16], data: range(16) }], {
      ...INVALID,
      message: "model 'simple' has no input named 'INPUT9'; its inputs are: INPUT0, INPUT1",
    });
  });

  it("a missing input", async () => {
    await sameError("simple", simpleInputs().slice(0, 1), { ...INVALID, message: "missing input 'INPUT1' for model 'simple', which requires: INPUT0, INPUT1" });
    // REST refuses an empty inputs list in its schema; over gRPC the data plane names what is missing.
    const err = await failure(client.call("ModelInfer", { model_name: "simple", inputs: [] }));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("missing inputs 'INPUT0', 'INPUT1' for model 'simple', which requires: INPUT0, INPUT1");
  });

  it("a duplicate input", async () => {
    const inputs = simpleInputs();
    inputs[1]!.name = "INPUT0";
    await sameError("simple", inputs, { ...INVALID, message: "input 'INPUT0' appears more than once in the request" });
  });

  it("a datatype that does not match the model", async () => {
    const inputs = simpleInputs();
    inputs[1]!.datatype = "INT64";
    await sameError("simple", inputs, { ...INVALID, message: "input 'INPUT1': datatype INT64 does not match model 'simple', which expects INT32" });
  });

  it("a shape that does not match the model", async () => {
    const inputs = simpleInputs().map((i) => ({ ...i, shape: [2, 8] }));
    await sameError("simple", inputs, { ...INVALID, message: "input 'INPUT0': shape [2,8] does not match model 'simple' shape [-1,16]" });
  });

  it("an element count that does not match the shape", async () => {
    const inputs = simpleInputs();
    inputs[0]!.data = range(15);
    await sameError("simple", inputs, { ...INVALID, message: "input 'INPUT0': shape [1,16] has 16 elements but the data has 15" });
  });

  it("rows above max_batch_size", async () => {
    const inputs = simpleInputs().map((i) => ({ ...i, shape: [5, 16], data: range(80) }));
    await sameError("batched", inputs, { ...INVALID, message: "input 'INPUT0': batch size 5 exceeds max_batch_size 4 of model 'batched'" });
  });

  it("an unknown or duplicate requested output", async () => {
    await sameError("simple", simpleInputs(), { ...INVALID, message: "model 'simple' has no output named 'OUTPUT7'; its outputs are: OUTPUT0, OUTPUT1" }, { outputs: [{ name: "OUTPUT7" }] });
    await sameError("simple", simpleInputs(), { ...INVALID, message: "output 'OUTPUT0' is requested more than once" }, { outputs: [{ name: "OUTPUT0" }, { name: "OUTPUT0" }] });
  });

  it("a string ONNX Runtime cannot hold (NUL)", async () => {
    await sameError("identity_bytes", [{ name: "INPUT", datatype: "BYTES", shape: [1, 2], data: ["ok", "a\u0000 hidden"] }], {
      ...INVALID,
      message: "input 'INPUT': BYTES element 1 contains a NUL character, which ONNX Runtime string tensors cannot hold",
    });
  });

  it("a graph that refuses the values", async () => {
    const err = await sameError(
      "simple",
      [
        { name: "INPUT0", datatype: "INT32", shape: [2, 16], data: range(32) },
        { name: "INPUT1", datatype: "INT32", shape: [3, 16], data: range(48) },
      ],
      INVALID,
    );
    expect(err.details).toMatch(/^model 'simple' could not run on this input: /);
  });

  it("a model that is not ready is UNAVAILABLE for inference and metadata, and not ready to ModelReady", async () => {
    const err = await sameError("broken", [{ name: "INPUT", datatype: "INT32", shape: [1], data: [1] }], { code: grpc.status.UNAVAILABLE, status: 503 });
    expect(err.details).toMatch(/^model 'broken' version 1 is not ready: UNAVAILABLE \(failed to load broken\/1\/model\.onnx: /);
    expect(err.details).not.toContain(repo);
    const metadata = await failure(client.call("ModelMetadata", { name: "broken" }));
    expect(metadata.code).toBe(grpc.status.UNAVAILABLE);
    expect(metadata.details).toBe((await getJson(`${server.url}/v2/models/broken`)).body.error);
    expect((await client.call("ModelReady", { name: "broken" })).response).toEqual({ ready: false });
    expect((await getJson(`${server.url}/v2/models/broken/ready`)).status).toBe(503);
  });

  it("a full batch queue is UNAVAILABLE with retry-after in the trailing metadata, as REST's Retry-After", async () => {
    const request = (seed: number) => ({ model_name: "one_slot", inputs: simpleInputs().map((i) => grpcInput({ ...i, data: range(16, () => seed) })) });
    const answers = await Promise.allSettled([client.call("ModelInfer", request(1)), client.call("ModelInfer", request(2))]);
    expect(answers.map((a) => a.status).sort()).toEqual(["fulfilled", "rejected"]);
    const refused = (answers.find((a) => a.status === "rejected") as PromiseRejectedResult).reason as grpc.ServiceError;
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.details).toBe("model 'one_slot' version 1: the batch queue is full (1 requests waiting); retry shortly");
    expect(refused.metadata.get("retry-after")).toEqual(["1"]);
  });
});

describe("errors of the gRPC encoding", () => {
  const call = (request: object) => failure(client.call("ModelInfer", request));

  it("raw_input_contents with a different count than the inputs", async () => {
    const err = await call({
      model_name: "simple",
      inputs: simpleInputs().map(({ name, datatype, shape }) => ({ name, datatype, shape })),
      raw_input_contents: [int32Bytes(range(16))],
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("raw_input_contents has 1 entries but the request has 2 inputs; send one per input, in input order");
  });

  it("raw and typed contents mixed in one request", async () => {
    const err = await call({
      model_name: "simple",
      inputs: [grpcInput(simpleInputs()[0]!), { name: "INPUT1", datatype: "INT32", shape: [1, 16] }],
      raw_input_contents: [int32Bytes(range(16)), int32Bytes(range(16))],
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'; use one or the other for all inputs");
  });

  it("typed contents in the field of another datatype", async () => {
    const err = await call({ model_name: "identity_int32", inputs: [{ name: "INPUT", datatype: "INT32", shape: [1, 2], contents: { int64_contents: ["1", "2"] } }] });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("input 'INPUT' is INT32 but its contents are in int64_contents; INT32 goes in int_contents");
    const bool = await call({ model_name: "identity_bool", inputs: [{ name: "INPUT", datatype: "BOOL", shape: [1, 1], contents: { int_contents: [1] } }] });
    expect(bool.details).toBe("input 'INPUT' is BOOL but its contents are in int_contents; BOOL goes in bool_contents");
  });

  it("no contents at all for a non-empty shape", async () => {
    const err = await call({ model_name: "identity_int32", inputs: [{ name: "INPUT", datatype: "INT32", shape: [1, 2] }] });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("input 'INPUT': shape [1,2] has 2 elements but the data has 0");
  });

  it("BYTES contents that are not UTF-8", async () => {
    const err = await call({ model_name: "identity_bytes", inputs: [{ name: "INPUT", datatype: "BYTES", shape: [1, 2], contents: { bytes_contents: [Buffer.from("ok"), Buffer.from([0xc3, 0x28])] } }] });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("input 'INPUT': BYTES element 1 is not valid UTF-8 (ONNX Runtime string tensors hold text)");
    const raw = await call({ model_name: "identity_bytes", inputs: [{ name: "INPUT", datatype: "BYTES", shape: [1, 1] }], raw_input_contents: [bytesTensor(["x"]).map((b) => (b === 0x78 ? 0xff : b))] });
    expect(raw.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(raw.details).toMatch(/^input 'INPUT': .*UTF-8/);
  });

  it("raw contents whose size does not fit the shape name raw_input_contents where REST names binary_data_size", async () => {
    const err = await call({ model_name: "identity_int32", inputs: [{ name: "INPUT", datatype: "INT32", shape: [1, 3] }], raw_input_contents: [int32Bytes([1, 2])] });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("input 'INPUT': raw_input_contents[0] is 8 bytes but shape [1,3] of INT32 needs 12 (3 × 4)");
    const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype: "INT32", shape: [1, 3], bytes: int32Bytes([1, 2]) }]);
    const rest = await fetch(`${server.url}/v2/models/identity_int32/infer`, { method: "POST", body, headers });
    expect(((await rest.json()) as { error: string }).error).toBe(err.details.replace("raw_input_contents[0]", "binary_data_size"));
  });

  it("BF16 raw contents for an FP16 model: the datatype mismatch REST reports for the same binary tensor", async () => {
    const bits = Buffer.from(Uint16Array.of(0x3f80, 0x4000).buffer);
    const err = await call({ model_name: "identity_fp16", inputs: [{ name: "INPUT", datatype: "BF16", shape: [1, 2] }], raw_input_contents: [bits] });
    const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype: "BF16", shape: [1, 2], bytes: bits }]);
    const rest = await fetch(`${server.url}/v2/models/identity_fp16/infer`, { method: "POST", body, headers });
    expect(rest.status).toBe(400);
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe(((await rest.json()) as { error: string }).error);
    expect(err.details).toBe("input 'INPUT': datatype BF16 does not match model 'identity_fp16', which expects FP16");
  });

  it("an unknown datatype, a negative dimension, a nameless input or output, a parameter without a value", async () => {
    const cases: [object, string][] = [
      [{ inputs: [{ name: "INPUT", datatype: "FLOAT32", shape: [1, 1], contents: { fp32_contents: [1] } }] }, 'input \'INPUT\': invalid datatype "FLOAT32"; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES'],
      [{ inputs: [{ name: "INPUT", datatype: "FP32", shape: [1, -1], contents: { fp32_contents: [1] } }] }, "input 'INPUT': shape dimension 1 is \"-1\"; dimensions are non-negative integers"],
      [{ inputs: [{ datatype: "FP32", shape: [1, 1], contents: { fp32_contents: [1] } }] }, "input 0 has no name"],
      [{ inputs: [{ name: "INPUT", datatype: "FP32", shape: [1, 1], contents: { fp32_contents: [1] } }], outputs: [{}] }, "requested output 0 has no name"],
      [{ inputs: [{ name: "INPUT", datatype: "FP32", shape: [1, 1], contents: { fp32_contents: [1] } }], parameters: { empty: {} } }, "parameter 'empty' has no value; set one of bool_param, int64_param, string_param, double_param, uint64_param"],
    ];
    for (const [request, message] of cases) {
      const err = await call({ model_name: "identity_fp32", ...request });
      expect(err.code, message).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toBe(message);
    }
  });

  it("a message over the size limit is RESOURCE_EXHAUSTED, and the connection keeps serving", async () => {
    const err = await call({ model_name: "simple", id: "x".repeat(70 * 1024), inputs: simpleInputs().map(grpcInput) });
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/^Received message larger than max \(\d+ vs 65536\)$/);
    // REST refuses the same body with 413.
    const rest = await postJson(`${server.url}/v2/models/simple/infer`, { id: "x".repeat(70 * 1024), inputs: simpleInputs() });
    expect(rest.status).toBe(413);
    expect((await client.call("ModelInfer", { model_name: "simple", inputs: simpleInputs().map(grpcInput) })).response.model_name).toBe("simple");
  });

  it("an RPC the server does not have is UNIMPLEMENTED", async () => {
    const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
      client.inference.makeUnaryRequest(
        "/inference.GRPCInferenceService/CudaSharedMemoryStatus",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (e: grpc.ServiceError | null) => (e ? resolve(e) : reject(new Error("CudaSharedMemoryStatus answered"))),
      ),
    );
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err.details).toBe("The server does not implement the method /inference.GRPCInferenceService/CudaSharedMemoryStatus");
    const otherService = await new Promise<grpc.ServiceError>((resolve, reject) =>
      client.inference.makeUnaryRequest("/tensorflow.serving.PredictionService/Predict", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e: grpc.ServiceError | null) =>
        e ? resolve(e) : reject(new Error("answered")),
      ),
    );
    expect(otherService.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("a request message that is not protobuf is INTERNAL (grpc-js' own answer), and the server keeps serving", async () => {
    const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
      client.inference.makeUnaryRequest("/inference.GRPCInferenceService/ModelInfer", (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff, 0xff, 0xff]), (e: grpc.ServiceError | null) =>
        e ? resolve(e) : reject(new Error("answered")),
      ),
    );
    // grpc-js refuses it before any handler runs, with the code gRPC servers use for it.
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).toBe("Error deserializing request");
    expect((await client.call("ServerLive", {})).response).toEqual({ live: true });
  });
});

describe("timeouts and faults", () => {
  // Runs of "slow" are held at a gate (testing/gated-backend.ts): slow relative to the timeout for certain.
  const slow = (rows: number) => ({ model_name: "slow", inputs: [{ name: "INPUT", datatype: "FP32", shape: [rows, 512] }], raw_input_contents: [slowInput(rows)] });
  const successes = async () => Number((await quickClient.call("ModelStatistics", { name: "slow" })).response.model_stats[0].inference_stats.success.count ?? 0);

  it("past the request timeout the answer is DEADLINE_EXCEEDED with REST's 504 message; the late run still finishes", async () => {
    const before = await successes();
    const grpcRun = gate.hold("slow");
    const restRun = gate.hold("slow");
    try {
      const call = failure(quickClient.call("ModelInfer", slow(4)));
      await grpcRun.entered;
      const err = await call;
      expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(err.details).toBe(`the request did not finish within ${QUICK_TIMEOUT_MS} ms`);
      const rest = await fetch(`${quick.url}/v2/models/slow/infer`, { method: "POST", body: slowInput(4), headers: { "inference-header-content-length": "0" } });
      await restRun.entered;
      expect(rest.status).toBe(504);
      expect(((await rest.json()) as { error: string }).error).toBe(err.details);
      // Both runs are still held: the server keeps serving, and has not counted them yet.
      expect((await quickClient.call("ModelInfer", { model_name: "simple", inputs: simpleInputs().map(grpcInput) })).response.model_name).toBe("simple");
      expect(await successes()).toBe(before);
      grpcRun.release();
      restRun.release();
      await Promise.all([grpcRun.finished, restRun.finished]);
      expect(await successes()).toBe(before + 2);
    } finally {
      gate.releaseAll();
    }
  });

  it("a run that holds the event loop past the timeout (so the timer cannot fire) is DEADLINE_EXCEEDED all the same", async () => {
    const before = await successes();
    const run = gate.blockLoop("slow", 2 * QUICK_TIMEOUT_MS);
    const err = await failure(quickClient.call("ModelInfer", slow(4)));
    await run.finished;
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(err.details).toBe(`the request did not finish within ${QUICK_TIMEOUT_MS} ms`);
    expect(await successes()).toBe(before + 1);
    // An unheld run answers.
    expect((await quickClient.call("ModelInfer", slow(4))).response.model_name).toBe("slow");
  });

  it("a client deadline cancels the call on the client; the server drops the late answer and keeps serving", async () => {
    const before = await successes();
    const run = gate.hold("slow");
    try {
      // The server's own timeout is later: the client gives up first, while the run is held.
      const err = await failure(quickClient.call("ModelInfer", slow(4), { deadlineMs: QUICK_TIMEOUT_MS / 2 }));
      expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(err.details).not.toBe(`the request did not finish within ${QUICK_TIMEOUT_MS} ms`);
      await run.entered;
      expect((await quickClient.call("ServerReady", {})).response).toEqual({ ready: true });
      run.release();
      await run.finished;
      expect(await successes()).toBe(before + 1);
    } finally {
      gate.releaseAll();
    }
  });

  it("a genuine fault is INTERNAL with REST's 500 message and no details", async () => {
    // The repository directory disappears under the server: the index cannot be read.
    await rm(quickRepo, { recursive: true, force: true });
    const err = await failure(quickClient.call("RepositoryIndex", {}));
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).toBe("internal server error");
    const rest = await postJson(`${quick.url}/v2/repository/index`, {});
    expect(rest).toMatchObject({ status: 500, body: { error: "internal server error" } });
    // The models already loaded keep serving.
    expect((await quickClient.call("ModelInfer", { model_name: "simple", inputs: simpleInputs().map(grpcInput) })).response.model_name).toBe("simple");
  });
});

describe("repository API access control", () => {
  const bearer = (t: string) => ({ metadata: { authorization: `Bearer ${t}` } });

  it("needs the bearer token in the authorization metadata, as REST needs the header", async () => {
    for (const rpc of ["RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"]) {
      for (const options of [{}, bearer("wrong"), { metadata: { authorization: token } }]) {
        const err = await failure(lockedClient.call(rpc, { model_name: "simple" }, options));
        expect(err.code, rpc).toBe(grpc.status.UNAUTHENTICATED);
        expect(err.details).toBe("the model repository API needs a valid bearer token");
      }
    }
    const rest = await postJson(`${locked.url}/v2/repository/index`, {});
    expect(rest).toMatchObject({ status: 401, body: { error: "the model repository API needs a valid bearer token" } });
    const { response } = await lockedClient.call("RepositoryIndex", {}, bearer(token));
    expect(response.models.map((m: { name: string }) => m.name)).toEqual(["simple", "slow"]);
  });

  it("refuses load and unload with PERMISSION_DENIED when the API is disabled, whatever the token", async () => {
    for (const rpc of ["RepositoryModelLoad", "RepositoryModelUnload"]) {
      const err = await failure(lockedClient.call(rpc, { model_name: "simple" }, bearer(token)));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toBe("model load and unload are disabled on this server (REPOSITORY_API=disabled)");
    }
    const rest = await postJson(`${locked.url}/v2/repository/models/simple/unload`, {}, { authorization: `Bearer ${token}` });
    expect(rest).toMatchObject({ status: 403, body: { error: "model load and unload are disabled on this server (REPOSITORY_API=disabled)" } });
    expect((await lockedClient.call("ServerMetadata", {})).response.extensions).toEqual(["binary_tensor_data", "classification", "model_configuration", "statistics"]);
    expect((await lockedClient.call("ModelReady", { name: "simple" })).response).toEqual({ ready: true });
  });

  it("does not guard the rest of the service", async () => {
    expect((await lockedClient.call("ModelInfer", { model_name: "simple", inputs: simpleInputs().map(grpcInput) })).response.model_name).toBe("simple");
    expect((await lockedClient.call("ModelStatistics", { name: "simple" })).response.model_stats).toHaveLength(1);
  });
});
