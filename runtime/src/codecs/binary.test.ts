import { describe, expect, it } from "vitest";
import { decodeBinaryTensor, encodeBinaryData, rawInputShape, splitBinaryBody } from "./binary.js";
import { encodeJsonData } from "./json.js";
import { bytesTensor } from "../testing/binary-client.js";

const bytesElements = (...items: string[]) => bytesTensor(items);

describe("binary tensor decoding", () => {
  it("views the request buffer in place when aligned (no copy)", () => {
    const body = new Uint8Array(64);
    new Float32Array(body.buffer, 16, 4).set([1, 2, 3, 4]);
    const t = decodeBinaryTensor({ name: "x", datatype: "FP32", shape: [2, 2] }, body.subarray(16, 32));
    expect(t.data).toBeInstanceOf(Float32Array);
    expect((t.data as Float32Array).buffer).toBe(body.buffer);
    expect(Array.from(t.data as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  it("copies when the offset is not aligned to the element size", () => {
    const body = new Uint8Array(20);
    new DataView(body.buffer).setFloat32(3, 2.5, true);
    const t = decodeBinaryTensor({ name: "x", datatype: "FP32", shape: [1] }, body.subarray(3, 7));
    expect((t.data as Float32Array).buffer).not.toBe(body.buffer);
    expect(Array.from(t.data as Float32Array)).toEqual([2.5]);
  });

  it("reads BYTES as 4-byte little-endian lengths followed by UTF-8", () => {
    const t = decodeBinaryTensor({ name: "s", datatype: "BYTES", shape: [3] }, bytesElements("", "héllo", "😀"));
    expect(t.data).toEqual(["", "héllo", "😀"]);
  });

  it("keeps FP16 and BF16 as raw 16-bit patterns", () => {
    const fp16 = decodeBinaryTensor({ name: "h", datatype: "FP16", shape: [2] }, new Uint8Array(Uint16Array.of(0x3c00, 0xc000).buffer));
    expect(encodeJsonData(fp16)).toBe("[1,-2]");
    const bf16 = decodeBinaryTensor({ name: "b", datatype: "BF16", shape: [1] }, new Uint8Array(Uint16Array.of(0x4049).buffer));
    expect(JSON.parse(encodeJsonData(bf16))[0]).toBeCloseTo(3.140625);
    expect(Array.from(encodeBinaryData(bf16))).toEqual([0x49, 0x40]);
  });

  it.each([
    ["too few bytes for the shape", { name: "x", datatype: "INT32" as const, shape: [4] }, new Uint8Array(12), "input 'x': binary_data_size is 12 bytes but shape [4] of INT32 needs 16 (4 × 4)"],
    ["a BYTES length running past the data", { name: "s", datatype: "BYTES" as const, shape: [1] }, Uint8Array.of(9, 0, 0, 0, 65), "input 's': BYTES element 0 declares 9 bytes but only 1 remain"],
    ["a truncated BYTES length prefix", { name: "s", datatype: "BYTES" as const, shape: [2] }, Uint8Array.of(1, 0, 0, 0, 65, 1, 0, 0), "input 's': binary data ends inside the length prefix of BYTES element 1 of 2"],
    ["fewer bytes than BYTES length prefixes", { name: "s", datatype: "BYTES" as const, shape: [2] }, Uint8Array.of(1, 0, 0, 0, 65, 1), "input 's': binary_data_size is 6 bytes, too few for the 2 BYTES elements of shape [2] (each takes at least 4, its length prefix)"],
    ["a BYTES shape of 2^32 elements (no array can hold them)", { name: "s", datatype: "BYTES" as const, shape: [65536, 65536] }, Uint8Array.of(0, 0, 0, 0), "input 's': binary_data_size is 4 bytes, too few for the 4294967296 BYTES elements of shape [65536,65536]"],
    ["a shape whose element count exceeds 2^53", { name: "x", datatype: "INT8" as const, shape: [2 ** 32, 2 ** 32] }, Uint8Array.of(0), "input 'x': shape [4294967296,4294967296] has more elements than a tensor can hold (the product of its dimensions exceeds 2^53)"],
    ["bytes left after the BYTES elements", { name: "s", datatype: "BYTES" as const, shape: [1] }, Uint8Array.of(1, 0, 0, 0, 65, 66), "input 's': binary_data_size is 6 but its 1 BYTES elements take 5"],
    ["invalid UTF-8 in BYTES", { name: "s", datatype: "BYTES" as const, shape: [1] }, Uint8Array.of(2, 0, 0, 0, 0xc3, 0x28), "input 's': BYTES element 0 is not valid UTF-8"],
  ])("refuses %s, naming the tensor", (_label, input, bytes, message) => {
    expect(() => decodeBinaryTensor(input, bytes)).toThrow(message);
  });
});

describe("binary tensor encoding", () => {
  it("writes numeric outputs as a view of their TypedArray and BYTES with length prefixes", () => {
    const data = Int32Array.of(1, -2);
    const bytes = encodeBinaryData({ name: "o", datatype: "INT32", shape: [2], data });
    expect(bytes.buffer).toBe(data.buffer);
    expect(Array.from(bytes)).toEqual([1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
    expect(Array.from(encodeBinaryData({ name: "s", datatype: "BYTES", shape: [2], data: ["a", "é"] }))).toEqual(Array.from(bytesElements("a", "é")));
  });
});

describe("splitting the body and raw mode", () => {
  it("splits at Inference-Header-Content-Length and refuses lengths beyond the body or not a number", () => {
    const { header, binary } = splitBinaryBody(new Uint8Array(10), "4");
    expect([header.byteLength, binary.byteLength]).toEqual([4, 6]);
    expect(() => splitBinaryBody(new Uint8Array(10), "11")).toThrow("Inference-Header-Content-Length is 11 but the body has only 10 bytes");
    expect(() => splitBinaryBody(new Uint8Array(10), "-1")).toThrow("Inference-Header-Content-Length must be a non-negative integer");
  });

  it("infers the one dynamic dimension of a raw input from the byte count", () => {
    expect(rawInputShape("x", "FP32", [-1, 4], 64)).toEqual([4, 4]);
    expect(rawInputShape("x", "FP32", [2, 2], 16)).toEqual([2, 2]);
    expect(() => rawInputShape("x", "FP32", [-1, 4], 20)).toThrow("raw binary input: 20 bytes do not fit input 'x' of shape [-1,4] and datatype FP32");
    expect(() => rawInputShape("x", "FP32", [-1, -1], 16)).toThrow("has 2 dynamic dimensions");
  });
});
