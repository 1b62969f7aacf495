/**
 * Triton's own Python client, tritonclient[all] (pinned in requirements.txt), against the real
 * server (issue 17: fidelity to Triton's and KServe's clients): tritonclient.http (sync,
 * async_infer, aio), tritonclient.grpc (sync, async_infer with a callback, aio), explicit typed
 * gRPC contents through tritonclient.grpc's service_pb2, and plain HTTP decoded by tritonclient
 * for what the client cannot send itself (raw binary requests, binary_data_output). The calls
 * are made by py/tritonclient_http.py and py/tritonclient_grpc.py (one process each, run side
 * by side); every expected value is computed here from the inputs (plan.ts).
 *
 * The Python environment comes from scripts/python-clients.sh (cached; .ci/run prepares it):
 * when it cannot be prepared these tests fail with its reason, they are not skipped.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeRepository, tritonClientLayout, writeRepository } from "../testing/fixtures.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import { A, B, CLASS_COUNT, I8A, I8B, INT64, SCORES, UINT64, clientPlan, diff, int8, parseClasses, sum, topClasses } from "./plan.js";
import { PREPARE_TIMEOUT_MS, caseError, caseValue, runClientScript, type CaseResults } from "./python.js";

let repo: string;
let server: RunningServer;
let http: CaseResults;
let grpc: CaseResults;

beforeAll(async () => {
  repo = await writeRepository(tritonClientLayout());
  server = await startTestServer(repo, { protocol: "grpc" });
  const address = `127.0.0.1:${server.port}`;
  const modelFile = join(repo, "simple", "1", "model.onnx");
  [http, grpc] = await Promise.all([
    runClientScript("tritonclient_http.py", clientPlan(address, modelFile, "loaded_by_http")),
    runClientScript("tritonclient_grpc.py", clientPlan(address, modelFile, "loaded_by_grpc")),
  ]);
}, PREPARE_TIMEOUT_MS + 180_000);

afterAll(async () => {
  await server?.close();
  if (repo) await removeRepository(repo);
});

interface Outputs {
  values: Record<string, unknown[]>;
  binary?: Record<string, boolean>;
  shapes: Record<string, number[]>;
}

/** OUTPUT0 = x + y and OUTPUT1 = x - y, one row of 16. */
function expectSumAndDifference(outputs: Outputs, x = A, y = B, asText = false) {
  const render = (v: number[]) => (asText ? v.map(String) : v);
  expect(outputs.values.OUTPUT0).toEqual([render(sum(x, y))]);
  expect(outputs.values.OUTPUT1).toEqual([render(diff(x, y))]);
  expect(outputs.shapes).toEqual({ OUTPUT0: [1, 16], OUTPUT1: [1, 16] });
}

/** The classification extension's answer: the top CLASS_COUNT classes of each row, "score:index:label". */
function expectTopClasses(outputs: Outputs) {
  expect(outputs.shapes.SCORES).toEqual([SCORES.length, CLASS_COUNT]);
  const got = parseClasses(outputs.values.SCORES as string[][]);
  const want = topClasses();
  expect(got.map((row) => row.map(([, index, label]) => [index, label]))).toEqual(want.map((row) => row.map(([, index, label]) => [index, label])));
  got.forEach((row, r) => row.forEach(([score], c) => expect(score).toBeCloseTo(want[r]![c]![0], 6)));
}

/** Triton's configuration of `simple` as the fixture declares it (max_batch_size 8: dims without the batch). */
function expectSimpleConfig(config: any, name = "simple") {
  const dims = (tensors: any[]) => tensors.map((t) => ({ name: t.name, data_type: t.data_type, dims: t.dims.map(Number) }));
  expect(config.name).toBe(name);
  expect(Number(config.max_batch_size)).toBe(8);
  const io = (prefix: string) => [0, 1].map((i) => ({ name: `${prefix}${i}`, data_type: "TYPE_INT32", dims: [16] }));
  expect(dims(config.input)).toEqual(io("INPUT"));
  expect(dims(config.output)).toEqual(io("OUTPUT"));
}

const UNKNOWN_MODEL = /Request for unknown model: 'no_such_model' is not found/;

describe("tritonclient.http", () => {
  it("health: server live and ready, every fixture model ready, an unknown one not", () => {
    expect(caseValue(http, "health")).toEqual({
      live: true,
      ready: true,
      models: { simple: true, simple_string: true, simple_int8: true, classifier: true },
      no_such_model: false,
    });
  });

  it("server metadata lists the binary tensor extension; model metadata describes simple", () => {
    expect(caseValue(http, "server_metadata").extensions).toContain("binary_tensor_data");
    expect(caseValue(http, "model_metadata")).toMatchObject({
      name: "simple",
      inputs: [{ name: "INPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "INPUT1", datatype: "INT32", shape: [-1, 16] }],
      outputs: [{ name: "OUTPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "OUTPUT1", datatype: "INT32", shape: [-1, 16] }],
    });
  });

  it("get_inference_statistics answers one entry for the model (as the stock examples check)", () => {
    const stats = caseValue(http, "statistics");
    expect(stats.model_stats).toHaveLength(1);
    expect(stats.model_stats[0].name).toBe("simple");
  });

  it("get_model_config: Triton's model configuration (issue 17, item 6)", () => {
    expectSimpleConfig(caseValue(http, "model_config"));
  });

  it("infer: INPUT0 as JSON and INPUT1 binary, OUTPUT0 asked binary and OUTPUT1 JSON", () => {
    const outputs = caseValue<Outputs>(http, "infer_mixed");
    expectSumAndDifference(outputs);
    expect(outputs.binary).toEqual({ OUTPUT0: true, OUTPUT1: false });
  });

  it("infer without outputs: every output comes back (binary, as the client asks)", () => {
    const outputs = caseValue<Outputs>(http, "infer_all_outputs");
    expectSumAndDifference(outputs);
    expect(outputs.binary).toEqual({ OUTPUT0: true, OUTPUT1: true });
  });

  it("simple_string: BYTES numbers in (binary and JSON), their sum and difference out as text", () => {
    const outputs = caseValue<Outputs>(http, "infer_string");
    expectSumAndDifference(outputs, A, B, true);
    expect(outputs.binary).toEqual({ OUTPUT0: true, OUTPUT1: false });
  });

  it("simple_int8: INT8 sum and difference", () => {
    expectSumAndDifference(caseValue<Outputs>(http, "infer_int8"), I8A, I8B);
    expect(caseValue<Outputs>(http, "infer_int8").values.OUTPUT0).toEqual([int8(sum(I8A, I8B))]);
  });

  it("async_infer: two requests in flight, each AsyncInferResult answers its own inputs", () => {
    const [first, second] = caseValue<Outputs[]>(http, "async_infer");
    expectSumAndDifference(first!, A, B);
    expectSumAndDifference(second!, B, A);
  });

  it("INT64 beyond 2^53 round-trips exactly as JSON (binary_data=False) (issue 17, item 1)", () => {
    const outputs = caseValue<Outputs>(http, "int64_json");
    expect(outputs.binary).toEqual({ OUTPUT: false });
    expect(outputs.values.OUTPUT).toEqual([INT64]);
  });

  it("UINT64 up to 2^64-1 round-trips exactly as JSON (issue 17, item 1)", () => {
    const outputs = caseValue<Outputs>(http, "uint64_json");
    expect(outputs.binary).toEqual({ OUTPUT: false });
    expect(outputs.values.OUTPUT).toEqual([UINT64]);
  });

  it("an unknown model: 404 with Triton's message (issue 17, item 8)", () => {
    for (const name of ["unknown_model_infer", "unknown_model_metadata"]) {
      const error = caseError(http, name);
      expect(error).toMatch(/^InferenceServerException: \[404\] /);
      expect(error.replace(/^InferenceServerException: \[404\] /, "")).toMatch(new RegExp(`^${UNKNOWN_MODEL.source}`));
    }
  });

  it("load_model with config and files: the model is served from the uploaded bytes (issue 17, item 4)", () => {
    const loaded = caseValue(http, "load_model");
    expect(loaded.ready).toBe(true);
    expectSumAndDifference(loaded);
    expectSimpleConfig(loaded.config, "loaded_by_http");
  });

  it("class_count: the top classes as 'score:index:label' BYTES, binary and JSON (issue 17, item 7)", () => {
    expectTopClasses(caseValue<Outputs>(http, "class_count_binary"));
    expectTopClasses(caseValue<Outputs>(http, "class_count_json"));
  });

  it("a raw binary request (Inference-Header-Content-Length: 0) gets a binary answer (issue 17, item 2)", () => {
    const answer = caseValue(http, "raw_binary");
    expect(answer.status).toBe(200);
    expect(answer.inference_header_content_length).toMatch(/^\d+$/);
    expect(answer.binary).toEqual({ SCORES: true });
    expect(answer.values.SCORES).toEqual(SCORES);
  });

  it("binary_data_output without outputs listed: every output binary", () => {
    const answer = caseValue(http, "binary_data_output_all");
    expect(answer.status).toBe(200);
    expect(answer.binary).toEqual({ OUTPUT0: true, OUTPUT1: true });
    expectSumAndDifference(answer);
  });

  it("binary_data_output covers only outputs not listed: a listed output without binary_data is JSON (issue 17, item 3)", () => {
    const answer = caseValue(http, "binary_data_output_listed");
    expect(answer.status).toBe(200);
    expect(answer.binary).toEqual({ OUTPUT0: false, OUTPUT1: true });
    expectSumAndDifference(answer);
  });
});

describe("tritonclient.http.aio", () => {
  it("infer, and two requests gathered", () => {
    expectSumAndDifference(caseValue<Outputs>(http, "aio_infer"));
    const [first, second] = caseValue<Outputs[]>(http, "aio_gather");
    expectSumAndDifference(first!, A, B);
    expectSumAndDifference(second!, B, A);
  });

  it("health, metadata and statistics", () => {
    expect(caseValue(http, "aio_health_metadata")).toMatchObject({ live: true, ready: true, metadata: { name: "simple" }, statistics_models: 1 });
  });

  it("an unknown model: Triton's message (issue 17, item 8)", () => {
    expect(caseError(http, "aio_unknown_model")).toMatch(new RegExp(`^InferenceServerException: \\[404\\] ${UNKNOWN_MODEL.source}`));
  });
});

describe("tritonclient.grpc", () => {
  it("health: server live and ready, every fixture model ready", () => {
    expect(caseValue(grpc, "health")).toEqual({ live: true, ready: true, models: { simple: true, simple_string: true, simple_int8: true, classifier: true } });
  });

  it("server and model metadata", () => {
    expect(caseValue(grpc, "server_metadata").extensions).toContain("binary_tensor_data");
    const metadata = caseValue(grpc, "model_metadata");
    expect(metadata.name).toBe("simple");
    expect(metadata.inputs.map((t: any) => [t.name, t.datatype, t.shape.map(Number)])).toEqual([["INPUT0", "INT32", [-1, 16]], ["INPUT1", "INT32", [-1, 16]]]);
  });

  it("get_inference_statistics answers one entry for the model", () => {
    expect(caseValue(grpc, "statistics").model_stats).toHaveLength(1);
  });

  it("get_model_config: ModelConfig (issue 17, item 6)", () => {
    expectSimpleConfig(caseValue(grpc, "model_config").config);
  });

  it("infer with outputs and headers; infer without outputs", () => {
    expectSumAndDifference(caseValue<Outputs>(grpc, "infer"));
    expectSumAndDifference(caseValue<Outputs>(grpc, "infer_all_outputs"));
  });

  it("simple_string and simple_int8", () => {
    expectSumAndDifference(caseValue<Outputs>(grpc, "infer_string"), A, B, true);
    expectSumAndDifference(caseValue<Outputs>(grpc, "infer_int8"), I8A, I8B);
  });

  it("async_infer: the callback gets the result", () => {
    expectSumAndDifference(caseValue<Outputs>(grpc, "async_infer"));
  });

  it("INT64 beyond 2^53 round-trips exactly", () => {
    expect(caseValue<Outputs>(grpc, "int64").values.OUTPUT).toEqual([INT64]);
  });

  it("an unknown model: NOT_FOUND with Triton's message (issue 17, item 8)", () => {
    for (const name of ["unknown_model_infer", "unknown_model_metadata"]) {
      expect(caseError(grpc, name)).toMatch(new RegExp(`^InferenceServerException: \\[StatusCode.NOT_FOUND\\] ${UNKNOWN_MODEL.source}`));
    }
  });

  it("load_model with config and files (issue 17, item 4)", () => {
    const loaded = caseValue(grpc, "load_model");
    expect(loaded.ready).toBe(true);
    expectSumAndDifference(loaded);
    expectSimpleConfig(loaded.config.config, "loaded_by_grpc");
  });

  it("class_count: the top classes as 'score:index:label' (issue 17, item 7)", () => {
    expectTopClasses(caseValue<Outputs>(grpc, "class_count"));
  });
});

describe("tritonclient.grpc explicit contents (service_pb2)", () => {
  const typed = (outputs: any) => ({ values: { OUTPUT0: outputs.OUTPUT0.values, OUTPUT1: outputs.OUTPUT1.values }, shapes: { OUTPUT0: outputs.OUTPUT0.shape, OUTPUT1: outputs.OUTPUT1.shape } });

  it("INT32 in int_contents (simple)", () => {
    const outputs = caseValue(grpc, "explicit_int");
    expect(outputs.OUTPUT0.datatype).toBe("INT32");
    expectSumAndDifference(typed(outputs));
  });

  it("BYTES in bytes_contents (simple_string)", () => {
    const outputs = caseValue(grpc, "explicit_bytes");
    expect(outputs.OUTPUT0.datatype).toBe("BYTES");
    expectSumAndDifference(typed(outputs), A, B, true);
  });

  it("INT8 in int_contents (simple_int8)", () => {
    const outputs = caseValue(grpc, "explicit_int8");
    expect(outputs.OUTPUT0.datatype).toBe("INT8");
    expectSumAndDifference(typed(outputs), I8A, I8B);
  });

  it("contents beside raw_input_contents: INVALID_ARGUMENT with the message grpc_explicit_int_content_client.py expects", () => {
    const error = caseError(grpc, "explicit_mixed_contents");
    expect(error).toContain("[StatusCode.INVALID_ARGUMENT]");
    expect(error).toContain("contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'");
  });

  it("a malformed version: the message grpc_explicit_int8_content_client.py expects", () => {
    expect(caseError(grpc, "explicit_wrong_version")).toContain("failed to get model version from specified version string 'wrong_specification'");
  });
});

describe("tritonclient.grpc.aio", () => {
  it("infer, and two requests gathered", () => {
    expectSumAndDifference(caseValue<Outputs>(grpc, "aio_infer"));
    const [first, second] = caseValue<Outputs[]>(grpc, "aio_gather");
    expectSumAndDifference(first!, A, B);
    expectSumAndDifference(second!, B, A);
  });

  it("health, metadata and statistics", () => {
    expect(caseValue(grpc, "aio_health_metadata")).toMatchObject({ live: true, ready: true, metadata: { name: "simple" }, statistics_models: 1 });
  });

  it("an unknown model: NOT_FOUND with Triton's message (issue 17, item 8)", () => {
    expect(caseError(grpc, "aio_unknown_model")).toMatch(new RegExp(`^InferenceServerException: \\[StatusCode.NOT_FOUND\\] ${UNKNOWN_MODEL.source}`));
  });
});
