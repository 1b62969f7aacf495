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
    expect(Array.from(decodeJsonTensor({ name: "x", datatype: "INT32", shape: [2, 3], data: [[1, 2, 3], [4, 5, 6]] }).data as Int32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    // Extra dimensions of 1, as Triton's own tests send (data 50 levels deep for shape [1,1]).
    expect(Array.from(decodeJsonTensor({ name: "x", datatype: "INT32", shape: [2, 3], data: [[[1, 2, 3]], [[4, 5, 6]]] }).data as Int32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    let deep: unknown = [7];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(Array.from(decodeJsonTensor({ name: "x", datatype: "INT32", shape: [1], data: deep }).data as Int32Array)).toEqual([7]);
  });

  it("refuses nesting that does not fit the shape as the streaming decoder does, naming the input", () => {
    const decode = (shape: number[], data: unknown) => () => decodeJsonTensor({ name: "x", datatype: "INT32", shape, data });
    // Deeper and shallower than the shape.
    expect(decode([4], [[1, 2], [3, 4]])).toThrow("input 'x': data nested as […,2] does not fit shape [4]; send it flat or nested like the shape");
    expect(decode([2, 3], [[1, 2, 3, 4, 5, 6]])).toThrow("input 'x': data nested as […,6] does not fit shape [2,3]; send it flat or nested like the shape");
    expect(decode([2, 3], [[1, 2], [3, 4], [5, 6]])).toThrow("input 'x': data nested as […,2] does not fit shape [2,3]");
    // Ragged rows, and values mixed with arrays at one depth.
    expect(decode([3, 2], [[1, 2], [3], [4, 5, 6]])).toThrow("input 'x': the data is ragged: an array at depth 2 has 1 elements where an earlier one has 2");
    expect(decode([2, 3], [[1, [2, 3]], [[4], 5, 6]])).toThrow("input 'x': the data mixes values and arrays at the same depth; send it flat or nested like the shape");
    expect(decode([2, 2], [[1, 2], 3, 4])).toThrow(/mixes values and arrays/);
    // The element count first, in the streaming decoder's words.
    expect(decode([2, 2], [[1, 2], [3, 4], [5, 6]])).toThrow("input 'x': shape [2,2] has 4 elements but the data has 6");
  });

  it("takes parseJsonExact's BigInt: exact for INT64/UINT64, the nearest double for floats, refused elsewhere", () => {
    const big = 2n ** 53n + 1n;
    expect(decodeJsonTensor({ name: "x", datatype: "INT64", shape: [2], data: [big, -(2n ** 62n) - 3n] }).data).toEqual(BigInt64Array.of(big, -(2n ** 62n) - 3n));
    expect(decodeJsonTensor({ name: "x", datatype: "UINT64", shape: [1], data: [2n ** 64n - 1n] }).data).toEqual(BigUint64Array.of(2n ** 64n - 1n));
    expect(decodeJsonTensor({ name: "x", datatype: "FP64", shape: [1], data: [big] }).data).toEqual(Float64Array.of(2 ** 53));
    expect(() => decodeJsonTensor({ name: "x", datatype: "INT32", shape: [1], data: [big] })).toThrow("input 'x': element 0 (9007199254740993) is not a valid INT32 value");
    expect(() => decodeJsonTensor({ name: "x", datatype: "UINT64", shape: [1], data: [-big] })).toThrow("input 'x': element 0 (-9007199254740993) is not a valid UINT64 value");
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
