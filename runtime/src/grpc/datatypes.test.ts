/**
 * Every datatype through a real ONNX identity model over gRPC: typed `contents`
 * and raw_input_contents in, raw_output_contents (the default) and typed contents
 * (parameter raw_output_contents false) out, byte-exact and value-exact, with the
 * same refusals REST gives for values a type cannot hold.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bytesTensor } from "../testing/binary-client.js";
import { SERVED_DATATYPES, healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";

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

const utf8 = (s: string) => Buffer.from(s, "utf8");
const bytesOf = (view: ArrayBufferView) => Buffer.from(view.buffer, view.byteOffset, view.byteLength);

/**
 * Per datatype: the typed-contents field, values at the edges of its range as the
 * client sends them (64-bit integers as decimal text, exact beyond 2^53), and the
 * same values in the raw (binary tensor) layout.
 */
const CASES: Record<string, { field: string; values: unknown[]; raw: Buffer }> = {
  BOOL: { field: "bool_contents", values: [true, false, true, true], raw: Buffer.from([1, 0, 1, 1]) },
  UINT8: { field: "uint_contents", values: [0, 1, 128, 255], raw: bytesOf(Uint8Array.of(0, 1, 128, 255)) },
  UINT16: { field: "uint_contents", values: [0, 1, 32768, 65535], raw: bytesOf(Uint16Array.of(0, 1, 32768, 65535)) },
  UINT32: { field: "uint_contents", values: [0, 1, 2147483648, 4294967295], raw: bytesOf(Uint32Array.of(0, 1, 2147483648, 4294967295)) },
  UINT64: {
    field: "uint64_contents",
    values: ["0", "1", "9007199254740993", "18446744073709551615"],
    raw: bytesOf(BigUint64Array.of(0n, 1n, 9007199254740993n, 18446744073709551615n)),
  },
  INT8: { field: "int_contents", values: [-128, -1, 0, 127], raw: bytesOf(Int8Array.of(-128, -1, 0, 127)) },
  INT16: { field: "int_contents", values: [-32768, -1, 0, 32767], raw: bytesOf(Int16Array.of(-32768, -1, 0, 32767)) },
  INT32: { field: "int_contents", values: [-2147483648, -1, 0, 2147483647], raw: bytesOf(Int32Array.of(-2147483648, -1, 0, 2147483647)) },
  INT64: {
    field: "int64_contents",
    values: ["-9223372036854775808", "-9007199254740993", "0", "9223372036854775807"],
    raw: bytesOf(BigInt64Array.of(-9223372036854775808n, -9007199254740993n, 0n, 9223372036854775807n)),
  },
  FP32: { field: "fp32_contents", values: [-1.5, 0, 0.25, 3.4028234663852886e38], raw: bytesOf(Float32Array.of(-1.5, 0, 0.25, 3.4028234663852886e38)) },
  FP64: { field: "fp64_contents", values: [-1.7976931348623157e308, 0, 0.1, 5e-324], raw: bytesOf(Float64Array.of(-1.7976931348623157e308, 0, 0.1, 5e-324)) },
  BYTES: {
    field: "bytes_contents",
    values: ["", "hello", "naïve café ☕", "😀 emoji"].map(utf8),
    raw: Buffer.from(bytesTensor(["", "hello", "naïve café ☕", "😀 emoji"])),
  },
};

/** Half-precision bit patterns: 1, -2, 65504 (max), the smallest subnormal, +Infinity, a NaN. */
const FP16_RAW = bytesOf(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x7e00));

const typedOutputs = { raw_output_contents: { bool_param: false } };
const modelOf = (datatype: string) => `identity_${datatype.toLowerCase()}`;
const typed = (datatype: string, shape: number[], values: unknown[], extra: Record<string, unknown> = {}) => ({
  model_name: modelOf(datatype),
  inputs: [{ name: "INPUT", datatype, shape, contents: { [CASES[datatype]!.field]: values } }],
  ...extra,
});
const raw = (datatype: string, shape: number[], bytes: Uint8Array, extra: Record<string, unknown> = {}) => ({
  model_name: modelOf(datatype),
  inputs: [{ name: "INPUT", datatype, shape }],
  raw_input_contents: [bytes],
  ...extra,
});

describe("every datatype round-trips through a real model", () => {
  it("covers every datatype ONNX Runtime serves", () => {
    expect(SERVED_DATATYPES.map(([d]) => d).filter((d) => d !== "FP16").sort()).toEqual(Object.keys(CASES).sort());
  });

  for (const [datatype] of SERVED_DATATYPES.filter(([d]) => d !== "FP16")) {
    const { field, values, raw: rawBytes } = CASES[datatype]!;

    it(`${datatype}: typed contents in, typed contents out`, async () => {
      const { response } = await client.call("ModelInfer", typed(datatype, [2, 2], values, { parameters: typedOutputs }));
      expect(response).toEqual({
        model_name: modelOf(datatype),
        model_version: "1",
        outputs: [{ name: "OUTPUT", datatype, shape: ["2", "2"], contents: { [field]: values } }],
      });
    });

    it(`${datatype}: typed contents in, raw_output_contents out, byte for byte`, async () => {
      const { response } = await client.call("ModelInfer", typed(datatype, [2, 2], values));
      expect(response.outputs).toEqual([{ name: "OUTPUT", datatype, shape: ["2", "2"] }]);
      expect(response.raw_output_contents).toHaveLength(1);
      expect(Buffer.from(response.raw_output_contents[0]).equals(rawBytes), `${datatype}: ${Buffer.from(response.raw_output_contents[0]).toString("hex")}`).toBe(true);
    });

    it(`${datatype}: raw_input_contents in, raw and typed out`, async () => {
      const asRaw = await client.call("ModelInfer", raw(datatype, [4, 1], rawBytes));
      expect(asRaw.response.outputs).toEqual([{ name: "OUTPUT", datatype, shape: ["4", "1"] }]);
      expect(Buffer.from(asRaw.response.raw_output_contents[0]).equals(rawBytes)).toBe(true);
      const asTyped = await client.call("ModelInfer", raw(datatype, [4, 1], rawBytes, { parameters: typedOutputs }));
      expect(asTyped.response.raw_output_contents).toBeUndefined();
      expect(asTyped.response.outputs).toEqual([{ name: "OUTPUT", datatype, shape: ["4", "1"], contents: { [field]: values } }]);
    });
  }

  it("FP16 travels raw only, byte for byte, NaN and Infinity included", async () => {
    const { response } = await client.call("ModelInfer", raw("FP16", [2, 3], FP16_RAW));
    expect(response.outputs).toEqual([{ name: "OUTPUT", datatype: "FP16", shape: ["2", "3"] }]);
    expect(Buffer.from(response.raw_output_contents[0]).equals(FP16_RAW)).toBe(true);
  });

  it("answers FP16 outputs raw even when typed contents are asked for, and then every output of the response raw", async () => {
    const fp16 = await client.call("ModelInfer", raw("FP16", [1, 6], FP16_RAW, { parameters: typedOutputs }));
    expect(fp16.response.outputs).toEqual([{ name: "OUTPUT", datatype: "FP16", shape: ["1", "6"] }]);
    expect(Buffer.from(fp16.response.raw_output_contents[0]).equals(FP16_RAW)).toBe(true);

    // cast_fp16: FP32 in, HALF (FP16) and SAME (FP32) out: the protocol does not mix raw and typed in one response.
    const { response } = await client.call("ModelInfer", {
      model_name: "cast_fp16",
      inputs: [{ name: "INPUT", datatype: "FP32", shape: [3], contents: { fp32_contents: [1.5, -2, 65504] } }],
      parameters: typedOutputs,
    });
    expect(response.outputs).toEqual([
      { name: "HALF", datatype: "FP16", shape: ["3"] },
      { name: "SAME", datatype: "FP32", shape: ["3"] },
    ]);
    expect(Buffer.from(response.raw_output_contents[0]).equals(bytesOf(Uint16Array.of(0x3e00, 0xc000, 0x7bff)))).toBe(true);
    expect(Buffer.from(response.raw_output_contents[1]).equals(bytesOf(Float32Array.of(1.5, -2, 65504)))).toBe(true);
    // Asking only for the FP32 output gets typed contents.
    const only = await client.call("ModelInfer", {
      model_name: "cast_fp16",
      inputs: [{ name: "INPUT", datatype: "FP32", shape: [3], contents: { fp32_contents: [1.5, -2, 65504] } }],
      outputs: [{ name: "SAME" }],
      parameters: typedOutputs,
    });
    expect(only.response.outputs).toEqual([{ name: "SAME", datatype: "FP32", shape: ["3"], contents: { fp32_contents: [1.5, -2, 65504] } }]);
    expect(only.response.raw_output_contents).toBeUndefined();
  });

  it("refuses typed contents for FP16 and BF16, which have no typed field", async () => {
    for (const datatype of ["FP16", "BF16"]) {
      const err = await failure(
        client.call("ModelInfer", { model_name: "identity_fp16", inputs: [{ name: "INPUT", datatype, shape: [1, 1], contents: { fp32_contents: [1] } }] }),
      );
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toBe(`input 'INPUT': ${datatype} has no typed contents in the protocol; send it in raw_input_contents`);
    }
  });
});

describe("64-bit integers beyond 2^53 and non-ASCII text stay exact", () => {
  it("INT64 and UINT64: decimal text in, the same bits raw out, the same text typed out", async () => {
    const int64 = ["9007199254740993", "-9007199254740993", "9223372036854775807", "-9223372036854775808"];
    const out = await client.call("ModelInfer", typed("INT64", [1, 4], int64));
    expect(Array.from(new BigInt64Array(new Uint8Array(out.response.raw_output_contents[0]).slice().buffer), String)).toEqual(int64);
    const back = await client.call("ModelInfer", raw("INT64", [1, 4], out.response.raw_output_contents[0], { parameters: typedOutputs }));
    expect(back.response.outputs[0].contents.int64_contents).toEqual(int64);

    const uint64 = ["18446744073709551615", "18446744073709551614", "9007199254740993"];
    const u = await client.call("ModelInfer", typed("UINT64", [1, 3], uint64, { parameters: typedOutputs }));
    expect(u.response.outputs[0].contents.uint64_contents).toEqual(uint64);
  });

  it("BYTES: multi-byte UTF-8 and empty elements, typed and raw, both ways", async () => {
    const texts = ["日本語", "", "ünï çødé", "a\tb\nc", "\u{1F600}\u{1F680}", "x".repeat(1000)];
    const typedIn = await client.call("ModelInfer", typed("BYTES", [2, 3], texts.map(utf8)));
    expect(Buffer.from(typedIn.response.raw_output_contents[0]).equals(Buffer.from(bytesTensor(texts)))).toBe(true);
    const rawIn = await client.call("ModelInfer", raw("BYTES", [3, 2], bytesTensor(texts), { parameters: typedOutputs }));
    expect(rawIn.response.outputs[0].contents.bytes_contents.map((b: Buffer) => b.toString("utf8"))).toEqual(texts);
    // And what REST answers for the same tensor.
    const rest = await postJson(`${server.url}/v2/models/identity_bytes/infer`, { inputs: [{ name: "INPUT", datatype: "BYTES", shape: [3, 2], data: texts }] });
    expect(rest.body.outputs[0].data).toEqual(texts);
  });
});

describe("values a datatype cannot hold are refused as REST refuses them", () => {
  // The wire types are 32 bits wide: INT8/INT16 travel in int_contents, UINT8/UINT16 in uint_contents.
  const cases: [string, unknown[], number][] = [
    ["INT8", [-128, 0, 128], 128],
    ["INT8", [-129, 0, 1], -129],
    ["INT16", [0, -32769, 1], -32769],
    ["INT16", [0, 1, 32768], 32768],
    ["UINT8", [0, 256, 1], 256],
    ["UINT16", [65536, 0, 1], 65536],
  ];
  for (const [datatype, values, bad] of cases) {
    it(`${datatype} ${bad}`, async () => {
      const err = await failure(client.call("ModelInfer", typed(datatype, [1, 3], values)));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      const rest = await postJson(`${server.url}/v2/models/${modelOf(datatype)}/infer`, { inputs: [{ name: "INPUT", datatype, shape: [1, 3], data: values }] });
      expect(rest.status).toBe(400);
      expect(err.details).toBe(rest.body.error);
      expect(err.details).toMatch(new RegExp(`^input 'INPUT': element ${values.indexOf(bad)} \\(${bad}\\) is not a valid ${datatype} value; expected an integer from -?\\d+ to \\d+$`));
    });
  }
});
