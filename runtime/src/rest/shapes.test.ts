/**
 * Shapes a client can declare but no tensor can hold, and JSON data whose nesting
 * does not fit its declared shape: 400s naming the input over REST (JSON, binary)
 * and CloudEvents, INVALID_ARGUMENT over gRPC (raw_input_contents and typed
 * contents); never a 500.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBinaryRequest } from "../testing/binary-client.js";
import { healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";
import { REQUEST_EVENT_TYPE } from "../cloudevents/constants.js";

let repo: string;
let server: RunningServer;
let client: GrpcTestClient;

beforeAll(async () => {
  repo = await writeRepository(healthyLayout());
  server = await startTestServer(repo, { protocol: "grpc" });
  client = grpcClient(grpcTarget(server.url));
});
afterAll(async () => {
  client?.close();
  await server?.close();
  await removeRepository(repo);
});

const post = (model: string, body: Uint8Array | string, headers: Record<string, string> = {}) =>
  fetch(`${server.url}/v2/models/${model}/infer`, { method: "POST", body, headers });
const errorOf = async (res: Response) => ({ status: res.status, error: ((await res.json()) as { error: string }).error });

/** 2^32 BYTES elements: no JavaScript array can be that long. */
const HUGE = [65536, 65536];
const TOO_FEW = "input 'INPUT': binary_data_size is 4 bytes, too few for the 4294967296 BYTES elements of shape [65536,65536] (each takes at least 4, its length prefix)";
const BEYOND_2_53 = "input 'INPUT': shape [4294967296,4294967296] has more elements than a tensor can hold (the product of its dimensions exceeds 2^53)";

describe("huge shapes are 400 / INVALID_ARGUMENT, never 500", () => {
  it("REST binary: a BYTES input of 2^32 elements", async () => {
    const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype: "BYTES", shape: HUGE, bytes: new Uint8Array(4) }]);
    expect(await errorOf(await post("identity_bytes", body, headers))).toEqual({ status: 400, error: TOO_FEW });
  });

  it("REST binary: any datatype whose element count exceeds 2^53", async () => {
    for (const [model, datatype] of [["identity_bytes", "BYTES"], ["identity_int8", "INT8"], ["identity_fp64", "FP64"]] as const) {
      const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype, shape: [2 ** 32, 2 ** 32], bytes: new Uint8Array(8) }]);
      expect(await errorOf(await post(model, body, headers)), datatype).toEqual({ status: 400, error: BEYOND_2_53 });
    }
  });

  it("REST JSON: a BYTES input of 2^32 elements, and an element count beyond 2^53", async () => {
    const huge = await postJson(`${server.url}/v2/models/identity_bytes/infer`, { inputs: [{ name: "INPUT", datatype: "BYTES", shape: HUGE, data: ["a"] }] });
    expect(huge).toMatchObject({ status: 400, body: { error: "input 'INPUT': shape [65536,65536] has 4294967296 elements but the data has 1" } });
    const beyond = await postJson(`${server.url}/v2/models/identity_int8/infer`, { inputs: [{ name: "INPUT", datatype: "INT8", shape: [2 ** 32, 2 ** 32], data: [1] }] });
    expect(beyond).toMatchObject({ status: 400, body: { error: BEYOND_2_53 } });
  });

  it("gRPC raw_input_contents: a BYTES input of 2^32 elements, and an element count beyond 2^53", async () => {
    const huge = await failure(client.call("ModelInfer", { model_name: "identity_bytes", inputs: [{ name: "INPUT", datatype: "BYTES", shape: HUGE }], raw_input_contents: [Buffer.alloc(4)] }));
    expect(huge.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(huge.details).toBe(TOO_FEW.replace("binary_data_size", "raw_input_contents[0]"));
    const beyond = await failure(client.call("ModelInfer", { model_name: "identity_fp32", inputs: [{ name: "INPUT", datatype: "FP32", shape: [2 ** 32, 2 ** 32] }], raw_input_contents: [Buffer.alloc(4)] }));
    expect(beyond.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(beyond.details).toBe(BEYOND_2_53);
  });

  it("gRPC typed contents: a BYTES input of 2^32 elements, and an element count beyond 2^53", async () => {
    const huge = await failure(client.call("ModelInfer", { model_name: "identity_bytes", inputs: [{ name: "INPUT", datatype: "BYTES", shape: HUGE, contents: { bytes_contents: [Buffer.from("a")] } }] }));
    expect(huge.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(huge.details).toBe("input 'INPUT': shape [65536,65536] has 4294967296 elements but the data has 1");
    const beyond = await failure(client.call("ModelInfer", { model_name: "identity_int32", inputs: [{ name: "INPUT", datatype: "INT32", shape: [2 ** 32, 2 ** 32], contents: { int_contents: [1] } }] }));
    expect(beyond.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(beyond.details).toBe(BEYOND_2_53);
  });
});

describe("JSON data nested deeper or shallower than its shape is a 400 naming the input", () => {
  const cases: [string, number[], unknown, string][] = [
    ["deeper than the shape", [4], [[1, 2], [3, 4]], "input 'INPUT': data nested as […,2] does not fit shape [4]; send it flat or nested like the shape"],
    ["shallower than the shape", [2, 3], [[1, 2, 3, 4, 5, 6]], "input 'INPUT': data nested as […,6] does not fit shape [2,3]; send it flat or nested like the shape"],
    ["rows of the wrong size", [2, 3], [[1, 2], [3, 4], [5, 6]], "input 'INPUT': data nested as […,2] does not fit shape [2,3]; send it flat or nested like the shape"],
    ["ragged", [3, 2], [[1, 2], [3], [4, 5, 6]], "input 'INPUT': the data is ragged: an array at depth 2 has 1 elements where an earlier one has 2"],
    ["partially nested", [2, 3], [[1, 2, 3], 4, 5, 6], "input 'INPUT': the data mixes values and arrays at the same depth; send it flat or nested like the shape"],
  ];

  for (const [label, shape, data, error] of cases) {
    it(`${label}: V2 REST and a CloudEvent alike`, async () => {
      const body = { inputs: [{ name: "INPUT", datatype: "INT32", shape, data }] };
      const model = shape.length === 1 ? "flat" : "identity_int32";
      const rest = await postJson(`${server.url}/v2/models/${model}/infer`, body);
      expect(rest, label).toMatchObject({ status: 400, body: { error } });
      const event = await postJson(`${server.url}/v2/models/${model}/infer`, body, {
        "ce-specversion": "1.0", "ce-id": `nesting-${label}`, "ce-source": "/tests/shapes", "ce-type": REQUEST_EVENT_TYPE,
      });
      expect(event).toMatchObject({ status: 400, body: { error } });
    });
  }

  it("flat data, data nested like the shape, and extra dimensions of 1 (Triton's own tests send 50 levels for shape [1,1]) are accepted", async () => {
    let deep: unknown = ["hello"];
    for (let i = 0; i < 49; i++) deep = [deep];
    const bytes = await postJson(`${server.url}/v2/models/identity_bytes/infer`, { inputs: [{ name: "INPUT", datatype: "BYTES", shape: [1, 1], data: deep }] });
    expect(bytes).toMatchObject({ status: 200, body: { outputs: [{ shape: [1, 1], data: ["hello"] }] } });
    for (const data of [[1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]], [[[1, 2, 3]], [[4, 5, 6]]]]) {
      const res = await postJson(`${server.url}/v2/models/identity_int32/infer`, { inputs: [{ name: "INPUT", datatype: "INT32", shape: [2, 3], data }] });
      expect(res, JSON.stringify(data)).toMatchObject({ status: 200, body: { outputs: [{ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }] } });
    }
  });
});
