/** Every datatype the protocol lists, round-tripped through a real ONNX identity model over HTTP. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SERVED_DATATYPES, healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;

beforeAll(async () => {
  repo = await writeRepository(healthyLayout());
  server = await startTestServer(repo);
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

/** Values at the edges of each type's range, as a JSON client would send them. */
const SAMPLES: Record<string, unknown[]> = {
  BOOL: [true, false, true, true],
  UINT8: [0, 1, 128, 255],
  UINT16: [0, 1, 32768, 65535],
  UINT32: [0, 1, 2147483648, 4294967295],
  UINT64: [0, 1, 9007199254740991, 4],
  INT8: [-128, -1, 0, 127],
  INT16: [-32768, -1, 0, 32767],
  INT32: [-2147483648, -1, 0, 2147483647],
  INT64: [-9007199254740991, -1, 0, 9007199254740991],
  FP32: [-1.5, 0, 0.25, 3.4028234663852886e38],
  FP64: [-1.7976931348623157e308, 0, 0.1, 5e-324],
  BYTES: ["", "hello", "naïve café ☕", "😀 emoji"],
};

const OUT_OF_RANGE: Record<string, unknown> = {
  UINT8: 256, UINT16: -1, UINT32: 4294967296, INT8: 128, INT16: -32769, INT32: 2.5,
  UINT64: -1, INT64: "9223372036854775808", BOOL: "yes", FP32: "NaN", FP64: null, BYTES: 12,
};

describe("every datatype round-trips through a real model", () => {
  for (const [datatype] of SERVED_DATATYPES.filter(([d]) => d !== "FP16")) {
    it(`${datatype}`, async () => {
      const data = SAMPLES[datatype]!;
      const model = `identity_${datatype.toLowerCase()}`;
      const { status, body } = await postJson(`${server.url}/v2/models/${model}/infer`, {
        inputs: [{ name: "INPUT", shape: [2, 2], datatype, data: [data.slice(0, 2), data.slice(2)] }],
      });
      expect(status).toBe(200);
      expect(body.outputs).toEqual([{ name: "OUTPUT", datatype, shape: [2, 2], data }]);
    });

    it(`${datatype} refuses a value it cannot hold`, async () => {
      const model = `identity_${datatype.toLowerCase()}`;
      const data = [...SAMPLES[datatype]!.slice(0, 3), OUT_OF_RANGE[datatype]];
      const { status, body } = await postJson(`${server.url}/v2/models/${model}/infer`, { inputs: [{ name: "INPUT", shape: [1, 4], datatype, data }] });
      expect(status).toBe(400);
      expect(body.error).toMatch(new RegExp(`^input 'INPUT': element 3 \\(.*\\) is not a valid ${datatype} value`));
    });
  }

  it("64-bit integers beyond 2^53 travel exactly as decimal strings and come back exact", async () => {
    const big = ["9223372036854775807", "-9223372036854775808"];
    const { status, body } = await postJson(`${server.url}/v2/models/identity_int64/infer`, { inputs: [{ name: "INPUT", shape: [1, 2], datatype: "INT64", data: big }] });
    expect(status).toBe(200);
    // The response is parsed here with JSON.parse, which rounds; the raw text must hold the exact digits.
    const raw = await fetch(`${server.url}/v2/models/identity_uint64/infer`, {
      method: "POST",
      body: JSON.stringify({ inputs: [{ name: "INPUT", shape: [1, 1], datatype: "UINT64", data: ["18446744073709551615"] }] }),
    }).then((r) => r.text());
    expect(raw).toContain('"data":[18446744073709551615]');
    expect(body.outputs[0].shape).toEqual([1, 2]);
  });

  it("BOOL accepts 0 and 1 as well as true and false", async () => {
    const { body } = await postJson(`${server.url}/v2/models/identity_bool/infer`, { inputs: [{ name: "INPUT", shape: [1, 2], datatype: "BOOL", data: [1, 0] }] });
    expect(body.outputs[0].data).toEqual([true, false]);
  });
});

describe("what ONNX Runtime cannot take is a 400, not a 500", () => {
  it("refuses a string with a NUL character instead of silently cutting it", async () => {
    const { status, body } = await postJson(`${server.url}/v2/models/identity_bytes/infer`, { inputs: [{ name: "INPUT", shape: [1, 2], datatype: "BYTES", data: ["ok", "a\u0000 hidden"] }] });
    expect(status).toBe(400);
    expect(body.error).toBe("input 'INPUT': BYTES element 1 contains a NUL character, which ONNX Runtime string tensors cannot hold");
  });

  it("answers a graph that refuses the values with a 400 naming the model", async () => {
    // Add broadcasting fails: the shapes fit the declared [-1,16] only when both batch sizes agree.
    const { status, body } = await postJson(`${server.url}/v2/models/simple/infer`, {
      inputs: [
        { name: "INPUT0", shape: [2, 16], datatype: "INT32", data: Array(32).fill(1) },
        { name: "INPUT1", shape: [3, 16], datatype: "INT32", data: Array(48).fill(1) },
      ],
    });
    expect(status).toBe(400);
    expect(body.error).toMatch(/^model 'simple' could not run on this input: /);
  });
});
