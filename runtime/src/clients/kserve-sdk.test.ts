/**
 * KServe's own Python SDK (kserve, pinned in requirements.txt) against the real server (issue 17):
 * InferenceRESTClient with protocol v1 (liveness at `GET /`, model readiness, :predict) and v2
 * (health, infer as JSON and binary, INT64/UINT64 exactness), InferenceGRPCClient (health,
 * infer), and ModelMetadata / ServerMetadata through KServe's generated gRPC stubs. The calls
 * are made by py/kserve_sdk.py, in a process of its own (kserve and tritonclient.grpc cannot
 * share one); expected values are computed from the inputs (plan.ts).
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeRepository, tritonClientLayout, writeRepository } from "../testing/fixtures.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import { A, B, INT64, SCORES, UINT64, clientPlan, diff, sum } from "./plan.js";
import { PREPARE_TIMEOUT_MS, caseError, caseValue, runClientScript, type CaseResults } from "./python.js";

let repo: string;
let server: RunningServer;
let results: CaseResults;

beforeAll(async () => {
  repo = await writeRepository(tritonClientLayout());
  server = await startTestServer(repo, { protocol: "grpc" });
  results = await runClientScript("kserve_sdk.py", clientPlan(`127.0.0.1:${server.port}`, join(repo, "simple", "1", "model.onnx"), "unused"));
}, PREPARE_TIMEOUT_MS + 120_000);

afterAll(async () => {
  await server?.close();
  if (repo) await removeRepository(repo);
});

interface Outputs {
  model_name: string;
  values: Record<string, unknown[]>;
  datatypes: Record<string, string>;
  shapes: Record<string, number[]>;
}

function expectSumAndDifference(outputs: Outputs) {
  expect(outputs.model_name).toBe("simple");
  expect(outputs.values).toEqual({ OUTPUT0: [sum(A, B)], OUTPUT1: [diff(A, B)] });
  expect(outputs.datatypes).toEqual({ OUTPUT0: "INT32", OUTPUT1: "INT32" });
  expect(outputs.shapes).toEqual({ OUTPUT0: [1, 16], OUTPUT1: [1, 16] });
}

const UNKNOWN_MODEL = "Request for unknown model: 'no_such_model' is not found";
const MODELS = { simple: true, simple_string: true, simple_int8: true, classifier: true };

describe("KServe InferenceRESTClient, protocol v1", () => {
  it("is_server_live: GET / answers {\"status\": \"alive\"} (issue 17, item 5)", () => {
    expect(caseValue(results, "v1_server_live")).toBe(true);
  });

  it("is_model_ready", () => {
    expect(caseValue(results, "v1_model_ready")).toBe(true);
  });

  it("predict: the classifier's scores for each instance", () => {
    expect(caseValue(results, "v1_predict")).toEqual({ predictions: SCORES });
  });

  it("an unknown model: 404 with Triton's message (issue 17, item 8)", () => {
    const error = caseError(results, "v1_unknown_model");
    expect(error).toContain("'404 Not Found'");
    expect(error).toMatch(new RegExp(`^HTTPStatusError: ${UNKNOWN_MODEL}`));
  });
});

describe("KServe InferenceRESTClient, protocol v2", () => {
  it("health and model readiness", () => {
    expect(caseValue(results, "v2_health")).toEqual({ live: true, ready: true, models: MODELS, no_such_model: false });
  });

  it("infer with JSON data and with binary data", () => {
    expectSumAndDifference(caseValue(results, "v2_infer_json"));
    expectSumAndDifference(caseValue(results, "v2_infer_binary"));
  });

  it("INT64 and UINT64 beyond 2^53 round-trip exactly as JSON (issue 17, item 1)", () => {
    expect(caseValue<Outputs>(results, "v2_int64_json").values.OUTPUT).toEqual([INT64]);
    expect(caseValue<Outputs>(results, "v2_uint64_json").values.OUTPUT).toEqual([UINT64]);
  });

  it("an unknown model: 404 with Triton's message (issue 17, item 8)", () => {
    const error = caseError(results, "v2_unknown_model");
    expect(error).toContain("'404 Not Found'");
    expect(error).toMatch(new RegExp(`^HTTPStatusError: ${UNKNOWN_MODEL}`));
  });
});

describe("KServe InferenceGRPCClient", () => {
  it("is_server_live, is_server_ready, is_model_ready", () => {
    expect(caseValue(results, "grpc_health")).toEqual({ live: true, ready: true, models: MODELS });
  });

  it("infer, and INT64 beyond 2^53", () => {
    expectSumAndDifference(caseValue(results, "grpc_infer"));
    expect(caseValue<Outputs>(results, "grpc_int64").values.OUTPUT).toEqual([INT64]);
  });

  it("model and server metadata through KServe's gRPC stubs", () => {
    expect(caseValue(results, "grpc_model_metadata")).toMatchObject({
      name: "simple",
      versions: ["1"],
      inputs: [{ name: "INPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "INPUT1", datatype: "INT32", shape: [-1, 16] }],
      outputs: [{ name: "OUTPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "OUTPUT1", datatype: "INT32", shape: [-1, 16] }],
    });
    expect(caseValue(results, "grpc_server_metadata").extensions).toContain("binary_tensor_data");
  });

  it("an unknown model: NOT_FOUND with Triton's message (issue 17, item 8)", () => {
    for (const name of ["grpc_unknown_model", "grpc_unknown_model_metadata"]) {
      expect(caseError(results, name)).toMatch(new RegExp(`^AioRpcError: \\[StatusCode.NOT_FOUND\\] ${UNKNOWN_MODEL}`));
    }
  });
});
