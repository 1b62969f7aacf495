/**
 * The classification extension through the real server: REST v2 (JSON and binary output),
 * gRPC (the `classification` int64 parameter, what tritonclient's class_count sets) and
 * CloudEvents all answer Triton's top-N "score:index[:label]" BYTES tensor, and refuse a bad
 * request with 400. Score formatting is checked directly against C's "%f".
 */
import * as grpc from "@grpc/grpc-js";
import { CloudEvent, HTTP } from "cloudevents";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildScores } from "../../../models/build/simple-typed.js";
import { buildSimple } from "../../../models/build/simple.js";
import { REQUEST_EVENT_TYPE } from "../cloudevents/constants.js";
import { post as postEvent, replyEvent } from "../cloudevents/testing.js";
import { buildBinaryRequest, parseBinaryResponse } from "../testing/binary-client.js";
import { castToHalfModel, CLASSIFIER_LABELS, identityModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";
import { printfFixed } from "./classification.js";

let repo: string;
let server: RunningServer;
let client: GrpcTestClient;

const batched = (extra: Record<string, unknown> = {}) => JSON.stringify({ max_batch_size: 8, ...extra });

beforeAll(async () => {
  repo = await writeRepository({
    "classifier/1/model.onnx": buildScores(4),
    "classifier/model-settings.json": batched({ labels: CLASSIFIER_LABELS }),
    "unbatched/1/model.onnx": buildScores(4),
    "partial_labels/1/model.onnx": buildScores(4),
    "partial_labels/model-settings.json": batched({ labels: ["cat", "", "bird"] }),
    "simple/1/model.onnx": buildSimple(),
    "int64/1/model.onnx": identityModel("INT64"),
    "int64/model-settings.json": batched(),
    "fp64/1/model.onnx": identityModel("DOUBLE"),
    "fp64/model-settings.json": batched(),
    "bools/1/model.onnx": identityModel("BOOL"),
    "strings/1/model.onnx": identityModel("STRING"),
    "half/1/model.onnx": castToHalfModel(),
  });
  server = await startTestServer(repo, { protocol: "grpc" });
  client = grpcClient(grpcTarget(server.url));
});
afterAll(async () => {
  client?.close();
  await server?.close();
  await removeRepository(repo);
});

/** Two rows of class scores: row 1 has a tie (0.25 at 0 and 1), which keeps index order. */
const ROWS = [[0.1, 0.7, 0.15, 0.05], [0.25, 0.25, 0.5, 0]];
const scoresInput = (rows = ROWS) => ({ name: "INPUT", datatype: "FP32", shape: [rows.length, rows[0]!.length], data: rows.flat() });
const classify = (count: unknown, extra: Record<string, unknown> = {}) => [{ name: "SCORES", parameters: { classification: count, ...extra } }];
const infer = (model: string, body: unknown) => postJson(`${server.url}/v2/models/${model}/infer`, body);

/** The strings of a BYTES tensor in the binary encoding: each a 4-byte little-endian length, then its bytes. */
function lengthPrefixed(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  for (let at = 0; at < bytes.byteLength;) {
    const length = view.getUint32(at, true);
    out.push(Buffer.from(bytes.subarray(at + 4, at + 4 + length)).toString("utf8"));
    at += 4 + length;
  }
  return out;
}

describe("classification over REST v2", () => {
  it("answers the top N of each batch row as BYTES [batch, N], 'score:index:label', best first", async () => {
    const { status, body } = await infer("classifier", { inputs: [scoresInput()], outputs: classify(2) });
    expect(status).toBe(200);
    expect(body.outputs).toEqual([
      { name: "SCORES", datatype: "BYTES", shape: [2, 2], data: ["0.700000:1:dog", "0.150000:2:bird", "0.500000:2:bird", "0.250000:0:cat"] },
    ]);
  });

  it("answers every class, no more, when N exceeds the class count", async () => {
    const { status, body } = await infer("classifier", { inputs: [scoresInput()], outputs: classify(10) });
    expect(status).toBe(200);
    expect(body.outputs[0]).toEqual({
      name: "SCORES", datatype: "BYTES", shape: [2, 4],
      data: ["0.700000:1:dog", "0.150000:2:bird", "0.100000:0:cat", "0.050000:3:fish", "0.500000:2:bird", "0.250000:0:cat", "0.250000:1:dog", "0.000000:3:fish"],
    });
  });

  it("sends the classification as binary data when the output asks for binary_data", async () => {
    const { body, headers } = buildBinaryRequest([{ ...scoresInput() }], { outputs: classify(2, { binary_data: true }) });
    const res = await fetch(`${server.url}/v2/models/classifier/infer`, { method: "POST", body, headers });
    expect(res.status).toBe(200);
    const { outputs } = await parseBinaryResponse(res);
    expect(outputs[0]).toMatchObject({ name: "SCORES", datatype: "BYTES", shape: [2, 2] });
    expect(lengthPrefixed(outputs[0]!.bytes!)).toEqual(["0.700000:1:dog", "0.150000:2:bird", "0.500000:2:bird", "0.250000:0:cat"]);
    expect(outputs[0]!.parameters!.binary_data_size).toBe(outputs[0]!.bytes!.byteLength);
  });

  it("treats the whole output as one row, shape [N], for a model that does not batch", async () => {
    const { status, body } = await infer("unbatched", { inputs: [scoresInput()], outputs: classify(3) });
    expect(status).toBe(200);
    // Indices count through the flattened tensor; no labels: "score:index".
    expect(body.outputs[0]).toEqual({ name: "SCORES", datatype: "BYTES", shape: [3], data: ["0.700000:1", "0.500000:6", "0.250000:4"] });
  });

  it("adds a label only where the model has a non-empty one for that index", async () => {
    const { body } = await infer("partial_labels", { inputs: [scoresInput([ROWS[0]!])], outputs: classify(4) });
    expect(body.outputs[0]).toEqual({ name: "SCORES", datatype: "BYTES", shape: [1, 4], data: ["0.700000:1", "0.150000:2:bird", "0.100000:0:cat", "0.050000:3"] });
  });

  it("classifies the outputs that ask for it and leaves the others as they are; integer scores print as integers", async () => {
    const range = Array.from({ length: 16 }, (_, i) => i);
    const { status, body } = await infer("simple", {
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: range },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: range.map(() => 1) },
      ],
      outputs: [{ name: "OUTPUT0", parameters: { classification: 3 } }, { name: "OUTPUT1" }],
    });
    expect(status).toBe(200);
    expect(body.outputs).toEqual([
      { name: "OUTPUT0", datatype: "BYTES", shape: [3], data: ["16:15", "15:14", "14:13"] },
      { name: "OUTPUT1", datatype: "INT32", shape: [1, 16], data: range.map((i) => i - 1) },
    ]);
  });

  it("prints INT64 scores exactly, beyond 2^53", async () => {
    const body = '{"inputs":[{"name":"INPUT","datatype":"INT64","shape":[1,3],"data":[9007199254740993,-5,0]}],"outputs":[{"name":"OUTPUT","parameters":{"classification":2}}]}';
    const res = await fetch(`${server.url}/v2/models/int64/infer`, { method: "POST", body, headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).outputs[0]).toEqual({ name: "OUTPUT", datatype: "BYTES", shape: [1, 2], data: ["9007199254740993:0", "0:2"] });
  });

  it("prints FP64 scores as C's %f does: every integer digit, ties to even, the sign kept", async () => {
    const { body } = await infer("fp64", { inputs: [{ name: "INPUT", datatype: "FP64", shape: [1, 4], data: [1e22, 0.0078125, -0.5, 2.5e-7] }], outputs: [{ name: "OUTPUT", parameters: { classification: 4 } }] });
    expect(body.outputs[0].data).toEqual(["10000000000000000000000.000000:0", "0.007812:1", "0.000000:3", "-0.500000:2"]);
  });

  it.each([
    ["zero", 0],
    ["a negative count", -1],
    ["a fraction", 1.5],
    ["a string", "3"],
    ["a boolean", true],
  ])("refuses %s as the class count with 400", async (_label, count) => {
    const { status, body } = await infer("classifier", { inputs: [scoresInput()], outputs: classify(count) });
    expect(status).toBe(400);
    expect(body.error).toBe(`output 'SCORES': parameters.classification must be a positive integer (the number of top classes to return), got ${JSON.stringify(count)}`);
  });

  it.each([
    ["BYTES", "strings", { name: "INPUT", datatype: "BYTES", shape: [1, 2], data: ["a", "b"] }, "OUTPUT"],
    ["BOOL", "bools", { name: "INPUT", datatype: "BOOL", shape: [1, 2], data: [true, false] }, "OUTPUT"],
    ["FP16", "half", { name: "INPUT", datatype: "FP32", shape: [2], data: [1, 2] }, "HALF"],
  ])("refuses to classify a %s output with 400", async (datatype, model, input, output) => {
    const { status, body } = await infer(model, { inputs: [input], outputs: [{ name: output, parameters: { classification: 1 } }] });
    expect(status).toBe(400);
    expect(body.error).toBe(`output '${output}' of model '${model}' is ${datatype}: classification needs a numeric output (UINT8–UINT64, INT8–INT64, FP32 or FP64)`);
  });

  it("refuses classification of an output the model does not have with 400", async () => {
    const { status, body } = await infer("classifier", { inputs: [scoresInput()], outputs: [{ name: "PROBS", parameters: { classification: 2 } }] });
    expect(status).toBe(400);
    expect(body.error).toMatch(/^model 'classifier' has no output named 'PROBS'/);
  });
});

describe("classification over gRPC", () => {
  const request = (parameters: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    model_name: "classifier",
    inputs: [{ name: "INPUT", datatype: "FP32", shape: [2, 4], contents: { fp32_contents: ROWS.flat() } }],
    outputs: [{ name: "SCORES", parameters }],
    ...extra,
  });

  it("answers the 'classification' int64 parameter (tritonclient's class_count) in raw_output_contents", async () => {
    const { response } = await client.call<any>("ModelInfer", request({ classification: { int64_param: 2 } }));
    expect(response.outputs).toEqual([{ name: "SCORES", datatype: "BYTES", shape: ["2", "2"] }]);
    expect(lengthPrefixed(response.raw_output_contents[0])).toEqual(["0.700000:1:dog", "0.150000:2:bird", "0.500000:2:bird", "0.250000:0:cat"]);
  });

  it("answers it as bytes_contents when the request asks for typed contents", async () => {
    const { response } = await client.call<any>("ModelInfer", request({ classification: { int64_param: 5 } }, { parameters: { raw_output_contents: { bool_param: false } } }));
    expect(response.outputs[0]).toMatchObject({ name: "SCORES", datatype: "BYTES", shape: ["2", "4"] });
    expect(response.outputs[0].contents.bytes_contents.map((b: Buffer) => b.toString("utf8"))).toEqual(
      ["0.700000:1:dog", "0.150000:2:bird", "0.100000:0:cat", "0.050000:3:fish", "0.500000:2:bird", "0.250000:0:cat", "0.250000:1:dog", "0.000000:3:fish"],
    );
  });

  it.each([
    ["zero", { int64_param: 0 }],
    ["a string", { string_param: "2" }],
    ["a boolean", { bool_param: true }],
  ])("refuses %s as the class count with INVALID_ARGUMENT", async (_label, parameter) => {
    const err = await failure(client.call("ModelInfer", request({ classification: parameter })));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^output 'SCORES': parameters\.classification must be a positive integer/);
  });
});

describe("classification over CloudEvents", () => {
  it("answers a V2 request event with the classification in the reply's data", async () => {
    const event = new CloudEvent<unknown>({
      type: REQUEST_EVENT_TYPE, source: "/tests/classification", datacontenttype: "application/json", model: "classifier",
      data: { inputs: [scoresInput()], outputs: classify(1) },
    });
    const reply = await postEvent(server.url, HTTP.binary(event));
    expect(reply.status, reply.body).toBe(200);
    expect(replyEvent(reply).data.outputs).toEqual([{ name: "SCORES", datatype: "BYTES", shape: [2, 1], data: ["0.700000:1:dog", "0.500000:2:bird"] }]);
  });
});

describe("printfFixed: a float as C's printf(\"%f\") writes it (std::to_string)", () => {
  it.each([
    [0.7, "0.700000"],
    [Math.fround(0.7), "0.700000"],
    [Math.fround(0.1), "0.100000"],
    [1.5, "1.500000"],
    [123456.0000004, "123456.000000"],
    [0.0078125, "0.007812"], // an exact tie: half to even, down
    [0.0234375, "0.023438"], // an exact tie: half to even, up
    [0.00000049999, "0.000000"],
    [-0.5, "-0.500000"],
    [-0, "-0.000000"],
    [-1e-9, "-0.000000"],
    [1e21, "1000000000000000000000.000000"],
    [-1e22, "-10000000000000000000000.000000"],
    [Infinity, "inf"],
    [-Infinity, "-inf"],
    [NaN, "nan"],
  ])("%s → %s", (value, text) => {
    expect(printfFixed(value)).toBe(text);
  });
});
