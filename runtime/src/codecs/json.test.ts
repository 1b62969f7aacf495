import { describe, expect, it } from "vitest";
import { InferenceError } from "../dataplane/errors.js";
import { decodeJsonTensor, encodeJsonData } from "./json.js";

describe("JSON tensor decoding", () => {
  it("decodes straight into the datatype's TypedArray", () => {
    const t = decodeJsonTensor({ name: "x", datatype: "FP32", shape: [2, 2], data: [1, 2, 3, 4] });
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(Array.from(t.data as Float32Array)).toEqual([1, 2, 3, 4]);
    expect(decodeJsonTensor({ name: "x", datatype: "INT64", shape: [1], data: [5] }).data).toEqual(BigInt64Array.of(5n));
  });

  it("flattens nested data row-major, even very deep nesting, without recursion", () => {
    expect(Array.from(decodeJsonTensor({ name: "x", datatype: "INT32", shape: [2, 3], data: [[1, [2, 3]], [[4], 5, 6]] }).data as Int32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    let deep: unknown = [7];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(Array.from(decodeJsonTensor({ name: "x", datatype: "INT32", shape: [1], data: deep }).data as Int32Array)).toEqual([7]);
  });

  it("treats a scalar as one element", () => {
    expect(decodeJsonTensor({ name: "x", datatype: "FP64", shape: [], data: 2.5 }).data).toEqual(Float64Array.of(2.5));
  });

  it("names the tensor and the element on bad values", () => {
    const bad = () => decodeJsonTensor({ name: "pixels", datatype: "UINT8", shape: [2], data: [1, -1] });
    expect(bad).toThrow(InferenceError);
    expect(bad).toThrow("input 'pixels': element 1 (-1) is not a valid UINT8 value; expected an integer from 0 to 255");
    expect(() => decodeJsonTensor({ name: "t", datatype: "BYTES", shape: [1] })).toThrow("input 't' has no 'data'");
  });

  it("quotes at most a bounded prefix of a hostile value", () => {
    try {
      decodeJsonTensor({ name: "x", datatype: "INT8", shape: [1], data: ["A".repeat(10_000)] });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message.length).toBeLessThan(200);
    }
  });
});

describe("JSON tensor encoding", () => {
  it("writes each datatype as JSON a client parses back to the same values", () => {
    expect(encodeJsonData({ name: "b", datatype: "BOOL", shape: [2], data: Uint8Array.of(1, 0) })).toBe("[true,false]");
    expect(encodeJsonData({ name: "i", datatype: "INT64", shape: [1], data: BigInt64Array.of(-(2n ** 63n)) })).toBe("[-9223372036854775808]");
    expect(encodeJsonData({ name: "s", datatype: "BYTES", shape: [1], data: ['a "quoted" ☕'] })).toBe('["a \\"quoted\\" ☕"]');
    expect(JSON.parse(encodeJsonData({ name: "f", datatype: "FP32", shape: [2], data: Float32Array.of(0.1, -3) }))).toEqual([Math.fround(0.1), -3]);
  });

  it("writes NaN and infinities as null so the document stays valid JSON", () => {
    expect(encodeJsonData({ name: "f", datatype: "FP64", shape: [3], data: Float64Array.of(Number.NaN, 1, Number.NEGATIVE_INFINITY) })).toBe("[null,1,null]");
  });

  it("renders FP16 and BF16 bit patterns as numbers", () => {
    // 0x3c00 = 1.0, 0xc000 = -2.0 in FP16; 0x3f80 = 1.0 in BF16
    expect(encodeJsonData({ name: "h", datatype: "FP16", shape: [2], data: Uint16Array.of(0x3c00, 0xc000) })).toBe("[1,-2]");
    expect(encodeJsonData({ name: "h", datatype: "BF16", shape: [1], data: Uint16Array.of(0x3f80) })).toBe("[1]");
  });
});
