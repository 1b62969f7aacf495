/** The binary tensor data extension and compression, byte-exact, over real HTTP. */
import { gunzipSync, gzipSync, deflateSync, inflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBinaryRequest, bytesTensor, parseBinaryResponse } from "../testing/binary-client.js";
import { healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;

beforeAll(async () => {
  repo = await writeRepository(healthyLayout());
  server = await startTestServer(repo, { maxRequestBytes: 1024 * 1024 });
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

const post = (model: string, body: Uint8Array | string, headers: Record<string, string> = {}) =>
  fetch(`${server.url}/v2/models/${model}/infer`, { method: "POST", body, headers });
const int32 = (...v: number[]) => new Uint8Array(Int32Array.from(v).buffer);
const range = (n: number, f: (i: number) => number = (i) => i) => Array.from({ length: n }, (_, i) => f(i));

describe("binary requests and responses", () => {
  it("mixes a binary and a JSON input, and answers one output binary and one JSON", async () => {
    const { body, headers } = buildBinaryRequest(
      [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], bytes: int32(...range(16)) },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: range(16, () => 1) },
      ],
      { outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }, { name: "OUTPUT1" }], id: "bin-1" },
    );
    const res = await post("simple", body, headers);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    const { json, outputs } = await parseBinaryResponse(res);
    expect(json.id).toBe("bin-1");
    expect(outputs[0]).toMatchObject({ name: "OUTPUT0", datatype: "INT32", shape: [1, 16], parameters: { binary_data_size: 64 } });
    expect(outputs[0]!.data).toBeUndefined();
    expect(Array.from(new Int32Array(outputs[0]!.bytes!.buffer))).toEqual(range(16, (i) => i + 1));
    expect(outputs[1]).toEqual({ name: "OUTPUT1", datatype: "INT32", shape: [1, 16], data: range(16, (i) => i - 1) });
  });

  it("binary_data_output covers only the outputs the request does not list, as Triton's qa/L0_http asserts", async () => {
    const inputs = ["INPUT0", "INPUT1"].map((name) => ({ name, datatype: "INT32", shape: [1, 16], data: range(16, (i) => i + 1) }));
    // Triton's case: binary_data false on OUTPUT0, nothing on OUTPUT1: both listed, so both JSON.
    const listed = buildBinaryRequest(inputs, { parameters: { binary_data_output: true }, outputs: [{ name: "OUTPUT0", parameters: { binary_data: false } }, { name: "OUTPUT1" }] });
    const json = await post("simple", listed.body, listed.headers);
    expect(json.status).toBe(200);
    expect(json.headers.get("content-type")).toMatch(/^application\/json/);
    expect(json.headers.get("inference-header-content-length")).toBeNull();
    const body = (await json.json()) as { outputs: { name: string; data: number[] }[] };
    expect(body.outputs.map((o) => [o.name, o.data])).toEqual([["OUTPUT0", range(16, (i) => 2 * (i + 1))], ["OUTPUT1", range(16, () => 0)]]);
    // A listed output is binary with its own binary_data true, whatever binary_data_output says.
    for (const parameters of [{ binary_data_output: true }, { binary_data_output: false }, undefined]) {
      const own = buildBinaryRequest(inputs, { ...(parameters && { parameters }), outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }, { name: "OUTPUT1" }] });
      const { outputs } = await parseBinaryResponse(await post("simple", own.body, own.headers));
      expect(outputs[0]!.bytes, JSON.stringify(parameters)).toBeDefined();
      expect(outputs[1]!.data, JSON.stringify(parameters)).toEqual(range(16, () => 0));
    }
    // Without an outputs list, binary_data_output applies to all.
    const all = buildBinaryRequest(inputs, { parameters: { binary_data_output: true } });
    const parsed = await parseBinaryResponse(await post("simple", all.body, all.headers));
    expect(parsed.outputs.every((o) => o.bytes !== undefined)).toBe(true);
  });

  it("round-trips BYTES, BOOL and FP16 as binary, byte for byte", async () => {
    const cases: [string, string, number[], Uint8Array][] = [
      ["identity_bytes", "BYTES", [1, 3], bytesTensor(["", "naïve", "😀 emoji"])],
      ["identity_bool", "BOOL", [1, 4], Uint8Array.of(1, 0, 0, 1)],
      ["identity_fp16", "FP16", [2, 2], new Uint8Array(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001).buffer)],
      ["identity_int64", "INT64", [1, 2], new Uint8Array(BigInt64Array.of(2n ** 62n + 1n, -5n).buffer)],
      ["identity_fp64", "FP64", [1, 2], new Uint8Array(Float64Array.of(Math.PI, -0).buffer)],
    ];
    for (const [model, datatype, shape, bytes] of cases) {
      const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype, shape, bytes }], { outputs: [{ name: "OUTPUT", parameters: { binary_data: true } }] });
      const res = await post(model, body, headers);
      expect(res.status, `${model}`).toBe(200);
      const { outputs } = await parseBinaryResponse(res);
      expect(outputs[0]).toMatchObject({ datatype, shape });
      expect(Array.from(outputs[0]!.bytes!), model).toEqual(Array.from(bytes));
    }
  });

  it("answers FP16 binary input as JSON numbers when the output is not asked as binary", async () => {
    const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype: "FP16", shape: [1, 2], bytes: new Uint8Array(Uint16Array.of(0x3c00, 0x4200).buffer) }]);
    const res = await post("identity_fp16", body, headers);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual([1, 3]);
  });

  it("raw mode: Inference-Header-Content-Length 0 sends the single input's bytes and gets every output binary, as Triton answers", async () => {
    const res = await post("reciprocal", new Uint8Array(Float32Array.of(1, 2, 4, 0.5).buffer), { "Inference-Header-Content-Length": "0" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    const body = Buffer.from(await res.arrayBuffer());
    // The JSON header (model, outputs, binary_data_size), its length in Inference-Header-Content-Length, then the output's bytes.
    const length = Number(res.headers.get("inference-header-content-length"));
    expect(JSON.parse(body.subarray(0, length).toString())).toEqual({
      model_name: "reciprocal",
      model_version: "1",
      outputs: [{ name: "OUTPUT", datatype: "FP32", shape: [4], parameters: { binary_data_size: 16 } }],
    });
    expect(Array.from(new Float32Array(new Uint8Array(body.subarray(length)).buffer))).toEqual([1, 0.5, 0.25, 2]);

    const text = await post("identity_bytes", "raw text ☕", { "Inference-Header-Content-Length": "0" });
    const { outputs } = await parseBinaryResponse(text);
    expect(outputs[0]).toMatchObject({ name: "OUTPUT", datatype: "BYTES", shape: [1, 1] });
    expect(Array.from(outputs[0]!.bytes!)).toEqual(Array.from(bytesTensor(["raw text ☕"])));

    const twoDynamic = await post("identity_fp32", new Uint8Array(16), { "Inference-Header-Content-Length": "0" });
    expect(((await twoDynamic.json()) as { error: string }).error).toMatch(/has 2 dynamic dimensions; send a JSON header/);
    const multi = await post("simple", new Uint8Array(64), { "Inference-Header-Content-Length": "0" });
    expect(multi.status).toBe(400);
    expect(((await multi.json()) as { error: string }).error).toBe("raw binary requests need a model with one input; 'simple' has 2: INPUT0, INPUT1");
  });

  it("answers JSON (no Inference-Header-Content-Length) when every binary output is empty, as Triton does", async () => {
    const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype: "INT32", shape: [0, 2], bytes: new Uint8Array(0) }], {
      outputs: [{ name: "OUTPUT", parameters: { binary_data: true } }],
    });
    const res = await post("identity_int32", body, headers);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("inference-header-content-length")).toBeNull();
    expect(await res.json()).toMatchObject({ outputs: [{ name: "OUTPUT", shape: [0, 2], parameters: { binary_data_size: 0 } }] });
  });

  it("accepts header names in any case and a missing Content-Type", async () => {
    const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype: "INT32", shape: [1, 2], bytes: int32(7, 8) }]);
    const res = await post("identity_int32", body, { "INFERENCE-HEADER-CONTENT-LENGTH": headers["Inference-Header-Content-Length"]! });
    expect(res.status).toBe(200);
  });
});

describe("binary size mismatches are 400s naming the tensor", () => {
  const cases: [string, () => { body: Uint8Array; headers: Record<string, string> }, RegExp][] = [
    [
      "binary_data_size not matching shape × element size",
      () => {
        const r = buildBinaryRequest([{ name: "INPUT", datatype: "INT32", shape: [1, 3], bytes: int32(1, 2) }]);
        return r;
      },
      /^input 'INPUT': binary_data_size is 8 bytes but shape \[1,3\] of INT32 needs 12/,
    ],
    [
      "a header length beyond the body",
      () => ({ body: new Uint8Array(Buffer.from('{"inputs":[]}')), headers: { "Inference-Header-Content-Length": "500" } }),
      /^Inference-Header-Content-Length is 500 but the body has only 13 bytes/,
    ],
    [
      "leftover bytes after the last input",
      () => {
        const r = buildBinaryRequest([{ name: "INPUT", datatype: "INT32", shape: [1, 1], bytes: int32(1) }]);
        return { body: new Uint8Array([...r.body, 0, 0]), headers: r.headers };
      },
      /^the body has 2 bytes of binary data after the last input's binary_data_size/,
    ],
    [
      "binary_data_size running past the end",
      () => {
        const r = buildBinaryRequest([{ name: "INPUT", datatype: "INT32", shape: [1, 2], bytes: int32(1, 2) }]);
        return { body: r.body.subarray(0, r.body.byteLength - 4), headers: r.headers };
      },
      /^input 'INPUT': binary_data_size 8 runs past the end of the body \(4 bytes of binary data left\)/,
    ],
    [
      "binary_data_size without the header",
      () => ({ body: new Uint8Array(Buffer.from(JSON.stringify({ inputs: [{ name: "INPUT", datatype: "INT32", shape: [1, 1], parameters: { binary_data_size: 4 } }] }))), headers: {} }),
      /^input 'INPUT' has binary_data_size but the request has no Inference-Header-Content-Length header/,
    ],
    [
      "both data and binary_data_size",
      () => {
        const json = Buffer.from(JSON.stringify({ inputs: [{ name: "INPUT", datatype: "INT32", shape: [1, 1], data: [1], parameters: { binary_data_size: 4 } }] }));
        return { body: new Uint8Array([...json, 1, 0, 0, 0]), headers: { "Inference-Header-Content-Length": String(json.length) } };
      },
      /^input 'INPUT' has both 'data' and binary_data_size/,
    ],
    ["a header length that is not a number", () => ({ body: new Uint8Array(4), headers: { "Inference-Header-Content-Length": "abc" } }), /^Inference-Header-Content-Length must be a non-negative integer/],
    [
      "malformed JSON in the header",
      () => ({ body: new Uint8Array(Buffer.from("{nope}1234")), headers: { "Inference-Header-Content-Length": "6" } }),
      /^malformed JSON in the JSON header/,
    ],
  ];
  for (const [label, build, message] of cases) {
    it(label, async () => {
      const { body, headers } = build();
      const res = await post("identity_int32", body, headers);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(message);
    });
  }
});

describe("compression", () => {
  const request = JSON.stringify({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [64, 16], datatype: "INT32", data: range(1024) })) });

  it("accepts gzip and deflate request bodies", async () => {
    for (const [encoding, compress] of [["gzip", gzipSync], ["deflate", deflateSync]] as const) {
      const res = await post("simple", new Uint8Array(compress(request)), { "Content-Encoding": encoding });
      expect(res.status, encoding).toBe(200);
      expect(((await res.json()) as { outputs: unknown[] }).outputs).toHaveLength(2);
    }
  });

  it("compresses responses for clients that accept it, and leaves small ones alone", async () => {
    for (const [encoding, decompress] of [["gzip", gunzipSync], ["deflate", inflateSync]] as const) {
      // node:http (not fetch) so the body arrives exactly as sent.
      const { status, headers, body } = await rawPost(`${server.url}/v2/models/simple/infer`, request, { "accept-encoding": encoding });
      expect(status).toBe(200);
      expect(headers["content-encoding"]).toBe(encoding);
      expect(JSON.parse(decompress(body).toString()).outputs[0].data.length).toBe(1024);
    }
    const small = await rawPost(`${server.url}/v2/health/ready`, undefined, { "accept-encoding": "gzip" }, "GET");
    expect(small.headers["content-encoding"]).toBeUndefined();
    const preferDeflate = await rawPost(`${server.url}/v2/models/simple/infer`, request, { "accept-encoding": "gzip;q=0.5, deflate" });
    expect(preferDeflate.headers["content-encoding"]).toBe("deflate");
  });

  it("refuses an unknown Content-Encoding with 415, corrupt data with 400, and a decompression bomb with 413", async () => {
    const unknown = await post("simple", request, { "Content-Encoding": "zstd" });
    expect(unknown.status).toBe(415);
    const corrupt = await post("simple", "definitely not gzip", { "Content-Encoding": "gzip" });
    expect(corrupt.status).toBe(400);
    expect(((await corrupt.json()) as { error: string }).error).toMatch(/^the request body is not valid gzip data/);
    const bomb = await post("simple", new Uint8Array(gzipSync(Buffer.alloc(8 * 1024 * 1024, 32))), { "Content-Encoding": "gzip" });
    expect(bomb.status).toBe(413);
    expect(((await bomb.json()) as { error: string }).error).toBe("request body exceeds the limit of 1048576 bytes once decompressed");
  });
});

import { request as httpRequest } from "node:http";

function rawPost(url: string, body: string | undefined, headers: Record<string, string>, method = "POST"): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
