import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { LoadedModel } from "../backends/backend.js";
import { validateInputs } from "../dataplane/dataplane.js";
import { InferenceError } from "../dataplane/errors.js";
import type { Datatype } from "../tensor/datatypes.js";
import { parseJsonExact } from "./json-exact.js";
import { toInferenceRequest } from "./v2.js";
import { decodeV2Request, V2RequestDecoder, type DecodedV2Request, type V2DecoderOptions } from "./v2-decoder.js";

const utf8 = new TextEncoder();

/** Feeds `bytes` cut at `cuts` (any positions), then ends. */
function decodeChunked(bytes: Uint8Array, cuts: number[], options?: V2DecoderOptions): DecodedV2Request {
  const decoder = new V2RequestDecoder(options);
  let start = 0;
  for (const cut of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    decoder.write(bytes.subarray(start, cut));
    start = cut;
  }
  decoder.write(bytes.subarray(start));
  return decoder.end();
}

function decodeBytewise(text: string | Uint8Array, options?: V2DecoderOptions): DecodedV2Request {
  const bytes = typeof text === "string" ? utf8.encode(text) : text;
  const decoder = new V2RequestDecoder(options);
  for (let i = 0; i < bytes.length; i++) decoder.write(bytes.subarray(i, i + 1));
  return decoder.end();
}

/** The non-streaming path (CloudEvents, queued requests): parseJsonExact, zod, decodeJsonTensor. */
function reference(text: string) {
  return toInferenceRequest(parseJsonExact(utf8.encode(text)), "m", undefined);
}

function comparable(decoded: DecodedV2Request) {
  const out: Record<string, unknown> = { modelName: "m", modelVersion: undefined, inputs: decoded.inputs.map((i) => i.tensor) };
  if (decoded.id !== undefined) out.id = decoded.id;
  if (decoded.parameters) out.parameters = decoded.parameters;
  if (decoded.outputs) out.outputs = decoded.outputs;
  return out;
}

function errorOf(run: () => unknown): InferenceError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(InferenceError);
    return err as InferenceError;
  }
  throw new Error("expected a 400");
}

function refused(text: string | Uint8Array, options?: V2DecoderOptions): string {
  const bytes = typeof text === "string" ? utf8.encode(text) : text;
  const err = errorOf(() => decodeV2Request(bytes, options));
  expect(err.status).toBe(400);
  // Whole or byte by byte, the same answer.
  expect(errorOf(() => decodeBytewise(bytes, options)).message).toBe(err.message);
  return err.message;
}

/** JSON text where bigints are written as plain numbers (exact digits). */
function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `@@${v}@@` : v)).replace(/"@@(-?\d+)@@"/g, "$1");
}

// ---- random valid requests ----

const JSON_TYPES: Datatype[] = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP32", "FP64", "BYTES"];
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function element(datatype: Datatype): fc.Arbitrary<unknown> {
  switch (datatype) {
    case "BOOL":
      return fc.oneof(fc.boolean(), fc.constantFrom(0, 1));
    case "UINT8":
      return fc.integer({ min: 0, max: 255 });
    case "UINT16":
      return fc.integer({ min: 0, max: 0xffff });
    case "UINT32":
      return fc.integer({ min: 0, max: 0xffffffff });
    case "INT8":
      return fc.integer({ min: -128, max: 127 });
    case "INT16":
      return fc.integer({ min: -0x8000, max: 0x7fff });
    case "INT32":
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case "UINT64":
      // As numbers within 2^53 (where JSON.parse is exact), as decimal strings beyond.
      return fc.oneof(fc.bigInt({ min: 0n, max: SAFE }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String));
    case "INT64":
      return fc.oneof(fc.bigInt({ min: -SAFE, max: SAFE }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String));
    case "FP32":
      return fc.oneof(fc.float({ noDefaultInfinity: true, noNaN: true }), fc.integer(), fc.constantFrom(0.1, 1e-7, 123456.789));
    case "FP64":
      return fc.oneof(fc.double({ noDefaultInfinity: true, noNaN: true }), fc.constantFrom(5e-324, 1.7976931348623157e308, 0.30000000000000004, 1e21, 123e-20));
    default:
      return fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom("", '"\\/\b\f\n\r\t', "\u0000\u001f", "\ud800", "日本語 🚀"));
  }
}

function nest(flat: unknown[], shape: number[]): unknown {
  if (shape.length <= 1) return flat;
  const [first, ...rest] = shape;
  const size = rest.reduce((a, b) => a * b, 1);
  return Array.from({ length: first! }, (_, i) => nest(flat.slice(i * size, (i + 1) * size), rest));
}

const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 });
const parametersArb = fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true })), { maxKeys: 3 });
const extraArb = fc.dictionary(fc.string({ maxLength: 6 }).map((k) => `x_${k}`), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 2 });

const inputArb = fc
  .record({ datatype: fc.constantFrom(...JSON_TYPES), shape: shapeArb, nested: fc.boolean(), scalar: fc.boolean(), parameters: fc.option(parametersArb, { nil: undefined }), extra: extraArb })
  .chain(({ datatype, shape, nested, scalar, parameters, extra }) => {
    const count = shape.reduce((a, b) => a * b, 1);
    return fc.array(element(datatype), { minLength: count, maxLength: count }).map((flat) => {
      let data: unknown = nested ? nest(flat, shape) : flat;
      if (shape.length === 0 && scalar) data = flat[0];
      return { ...extra, datatype, shape, data, ...(parameters ? { parameters } : {}) };
    });
  });

const requestArb = fc
  .record({
    inputs: fc.array(inputArb, { minLength: 1, maxLength: 3 }),
    id: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
    parameters: fc.option(parametersArb, { nil: undefined }),
    outputs: fc.option(fc.array(fc.record({ name: fc.string({ minLength: 1, maxLength: 6 }) }), { maxLength: 2 }), { nil: undefined }),
    extra: extraArb,
    order: fc.array(fc.nat(), { minLength: 16, maxLength: 16 }),
  })
  .map(({ inputs, id, parameters, outputs, extra, order }) => {
    let k = 0;
    const shuffle = (o: Record<string, unknown>): Record<string, unknown> => {
      const keys = Object.keys(o).sort((a, b) => ((order[k++ % 16]! + a.length) % 7) - ((order[k++ % 16]! + b.length) % 7));
      return Object.fromEntries(keys.map((key) => [key, o[key]]));
    };
    const request: Record<string, unknown> = {
      ...extra,
      inputs: inputs.map((input, i) => shuffle({ name: `INPUT${i}`, ...input })),
    };
    if (id !== undefined) request.id = id;
    if (parameters) request.parameters = parameters;
    if (outputs) request.outputs = outputs;
    return toJson(shuffle(request));
  });

const cutsArb = fc.oneof(fc.array(fc.nat(), { maxLength: 12 }), fc.constant([] as number[]));

describe("parity with JSON.parse + toInferenceRequest", () => {
  it("random valid requests of every JSON datatype, flat and nested, any key order, any chunking", () => {
    fc.assert(
      fc.property(requestArb, cutsArb, (text, cuts) => {
        const expected = reference(text);
        const bytes = utf8.encode(text);
        expect(comparable(decodeV2Request(bytes))).toEqual(expected);
        expect(comparable(decodeChunked(bytes, cuts))).toEqual(expected);
      }),
      { numRuns: 400, seed: 42 },
    );
  });

  it("the same requests one byte at a time", () => {
    fc.assert(
      fc.property(requestArb, (text) => {
        expect(comparable(decodeBytewise(text))).toEqual(reference(text));
      }),
      { numRuns: 60, seed: 7 },
    );
  });

  const corruptions: Array<[string, (text: string, at: number) => string]> = [
    ["truncated", (t, at) => t.slice(0, at % t.length)],
    ["an object in data", (t) => t.replace('"data":[', '"data":[{},')],
    ["null in data", (t) => t.replace('"data":[', '"data":[null,')],
    ["an extra element", (t) => t.replace('"data":[', '"data":[1,')],
    ["an unknown datatype", (t) => t.replace(/"datatype":"[A-Z0-9]+"/, '"datatype":"FLOAT32"')],
    ["a negative dimension", (t) => t.replace('"shape":[', '"shape":[-1,')],
    ["a fractional dimension", (t) => t.replace('"shape":[', '"shape":[1.5,')],
    ["no name", (t) => t.replace(/"name":"INPUT0",?/, "")],
    ["no inputs", (t) => t.replace(/"inputs":/, '"inputs":[],"x":')],
    ["a numeric id", (t) => `{"id":7,${t.slice(1)}`],
    ["a bad parameter", (t) => `{"parameters":{"a":[1]},${t.slice(1)}`],
    ["a stray byte", (t, at) => `${t.slice(0, at % t.length)}#${t.slice(at % t.length)}`],
  ];

  it.each(corruptions)("%s: a 400 from both", (_label, corrupt) => {
    fc.assert(
      fc.property(requestArb, fc.nat(), cutsArb, (text, at, cuts) => {
        const bad = corrupt(text, at);
        fc.pre(bad !== text);
        let referenceFailed = false;
        try {
          reference(bad);
        } catch {
          referenceFailed = true;
        }
        fc.pre(referenceFailed);
        const err = errorOf(() => decodeChunked(utf8.encode(bad), cuts));
        expect(err.status).toBe(400);
      }),
      { numRuns: 100, seed: 3 },
    );
  });
});

describe("exact 64-bit integers", () => {
  const int64 = (data: string, datatype = "INT64", shape = "[1]") => decodeV2Request(utf8.encode(`{"inputs":[{"name":"x","shape":${shape},"datatype":"${datatype}","data":${data}}]}`)).inputs[0]!.tensor!.data;

  it("keeps JSON numbers beyond 2^53 exact, where JSON.parse rounds", () => {
    expect(int64("[9007199254740993]")).toEqual(BigInt64Array.of(9007199254740993n));
    expect(int64("[-4611686018427387907]")).toEqual(BigInt64Array.of(-4611686018427387907n));
    expect(int64("[9223372036854775807,-9223372036854775808]", "INT64", "[2]")).toEqual(BigInt64Array.of(2n ** 63n - 1n, -(2n ** 63n)));
    expect(int64("[18446744073709551615]", "UINT64")).toEqual(BigUint64Array.of(2n ** 64n - 1n));
    expect(int64('["9007199254740993"]')).toEqual(BigInt64Array.of(9007199254740993n));
    expect(JSON.parse("9007199254740993")).toBe(9007199254740992);
  });

  it("accepts integral values written with a fraction or exponent, exactly", () => {
    expect(int64("[1.0]")).toEqual(BigInt64Array.of(1n));
    expect(int64("[1e2]")).toEqual(BigInt64Array.of(100n));
    expect(int64("[9007199254740993.000]")).toEqual(BigInt64Array.of(9007199254740993n));
    expect(int64("[92233720368547758.07e2]")).toEqual(BigInt64Array.of(2n ** 63n - 1n));
    expect(int64("[-0]", "UINT64")).toEqual(BigUint64Array.of(0n));
    expect(int64("[0e999999999999]")).toEqual(BigInt64Array.of(0n));
  });

  it("refuses out-of-range and non-integral values with today's messages, also when data comes first", () => {
    expect(() => int64("[9223372036854775808]")).toThrow("input 'x': element 0 (9223372036854775808) is not a valid INT64 value; expected an integer from -2^63 to 2^63-1");
    expect(() => int64("[18446744073709551616]", "UINT64")).toThrow("expected an integer from 0 to 2^64-1");
    expect(() => int64("[-1]", "UINT64")).toThrow("element 0 (-1) is not a valid UINT64 value");
    expect(() => int64('["18446744073709551616"]', "UINT64")).toThrow("is not a valid UINT64 value");
    expect(() => int64("[1.5]")).toThrow("element 0 (1.5) is not a valid INT64 value");
    expect(() => int64("[9007199254740993.5]")).toThrow("is not a valid INT64 value");
    expect(() => int64("[1e400]")).toThrow("is not a valid INT64 value");
    const late = decodeV2Request(utf8.encode('{"inputs":[{"data":[9007199254740993,"-9007199254740993",1e2],"name":"x","datatype":"INT64","shape":[3]}]}'));
    expect(late.inputs[0]!.tensor!.data).toEqual(BigInt64Array.of(9007199254740993n, -9007199254740993n, 100n));
    expect(() => decodeV2Request(utf8.encode('{"inputs":[{"data":[1,2.5],"shape":[2],"datatype":"INT64","name":"x"}]}'))).toThrow("element 1 (2.5) is not a valid INT64 value");
  });
});

describe("early rejection", () => {
  it("refuses the 63 MB [{},{},…] body on its first 64 KiB chunk", () => {
    const head = utf8.encode('{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[');
    const element = utf8.encode("{},");
    const total = 63 * 1024 * 1024;
    const body = new Uint8Array(total);
    body.set(head);
    for (let i = head.length; i + 3 <= total; i += 3) body.set(element, i);
    const decoder = new V2RequestDecoder();
    let written = 0;
    let error: unknown;
    for (let at = 0; at < total; at += 64 * 1024) {
      try {
        decoder.write(body.subarray(at, at + 64 * 1024));
        written++;
      } catch (err) {
        error = err;
        break;
      }
    }
    expect(written).toBe(0);
    expect((error as InferenceError).message).toBe("input 'INPUT0': element 0 ({…}) is not a valid INT32 value; expected an integer from -2147483648 to 2147483647");
    // And it stays refused.
    expect(() => decoder.write(utf8.encode("1"))).toThrow(InferenceError);
  });

  it("refuses objects and null in data even before the datatype and shape are known", () => {
    expect(refused('{"inputs":[{"name":"x","data":[1,null]')).toBe("input 'x': element 1 (null) is not a valid tensor element; expected a number, a string or true/false");
    expect(refused('{"inputs":[{"data":[[{}]]')).toMatch(/^inputs\[0\]: element 0 \(\{…\}\) is not a valid tensor element/);
  });

  it("refuses more elements than the shape holds at the first one too many", () => {
    expect(refused('{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2,3')).toBe("input 'x': shape [2] has 2 elements but the data has more");
    expect(refused('{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4],[5')).toMatch(/^input 'x': /);
  });

  it("refuses too few elements with today's message", () => {
    expect(refused('{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]}')).toBe(
      "input 'INPUT0': shape [1,16] has 16 elements but the data has 15",
    );
    expect(refused('{"inputs":[{"data":[1],"name":"x","shape":[2],"datatype":"BOOL"}]}')).toBe("input 'x': shape [2] has 2 elements but the data has 1");
  });

  it("refuses nesting deeper or shallower than the shape, and ragged rows", () => {
    expect(refused('{"inputs":[{"name":"x","shape":[2,3],"datatype":"INT32","data":[[1,2,3],[4,5,6,7')).toMatch(/ragged/);
    expect(refused('{"inputs":[{"name":"x","shape":[2,3],"datatype":"INT32","data":[[1,2],[3,4],[5,6]]}]}')).toMatch(/data nested as \[…,2\] does not fit shape \[2,3\]/);
    expect(refused('{"inputs":[{"name":"x","shape":[4],"datatype":"INT32","data":[[1,2],[3,4]]}]}')).toBe("input 'x': data nested as […,2] does not fit shape [4]; send it flat or nested like the shape");
    expect(refused('{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[[1,2]],[[3,4],[5,6]]]}]}')).toMatch(/ragged/);
    expect(refused('{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[1,2],3,4]}]}')).toMatch(/mixes values and arrays/);
    expect(refused('{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[1,[2,3]]}]}')).toMatch(/mixes values and arrays/);
    expect(refused('{"inputs":[{"data":[[1,2],[3,4]],"name":"x","shape":[4],"datatype":"INT32"}]}')).toMatch(/does not fit shape \[4\]/);
    const deep = `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${"[".repeat(50_000)}1${"]".repeat(50_000)}}]}`;
    expect(refused(deep)).toMatch(/nests deeper than 64 levels/);
  });

  it("the non-streaming path (CloudEvents, queued requests) refuses the same nesting in the same words", () => {
    const cases: [number[], string][] = [
      [[4], "[[1,2],[3,4]]"],
      [[2, 3], "[[1,2,3,4,5,6]]"],
      [[2, 3], "[[1,2],[3,4],[5,6]]"],
      [[3, 2], "[[1,2],[3],[4,5,6]]"],
      [[2, 2], "[[[1,2]],[[3,4],[5,6]]]"],
      [[2, 2], "[[1,2],3,4]"],
      [[2, 2], "[1,[2,3]]"],
    ];
    for (const [shape, data] of cases) {
      const text = `{"inputs":[{"name":"x","shape":${JSON.stringify(shape)},"datatype":"INT32","data":${data}}]}`;
      const streamed = refused(text);
      expect(errorOf(() => reference(text)).message, data).toBe(streamed);
    }
  });

  it("accepts flat data, data nested like the shape, and extra dimensions of 1 (as today)", () => {
    const rows = decodeV2Request(utf8.encode('{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[[1,2]],[[3,4]]]}]}'));
    expect(rows.inputs[0]!.tensor!.data).toEqual(Int32Array.of(1, 2, 3, 4));
    expect(decodeV2Request(utf8.encode('{"inputs":[{"name":"x","shape":[],"datatype":"FP64","data":2.5}]}')).inputs[0]!.tensor!.data).toEqual(Float64Array.of(2.5));
    expect(decodeV2Request(utf8.encode('{"inputs":[{"name":"x","shape":[2,0],"datatype":"FP32","data":[[],[]]}]}')).inputs[0]!.tensor!.data).toEqual(new Float32Array(0));
  });

  it("refuses a string in INT32 and 2^31 with today's messages", () => {
    expect(refused('{"inputs":[{"name":"INPUT0","shape":[2],"datatype":"INT32","data":[1,"x"')).toBe(
      "input 'INPUT0': element 1 (\"x\") is not a valid INT32 value; expected an integer from -2147483648 to 2147483647",
    );
    expect(refused('{"inputs":[{"name":"INPUT0","shape":[2],"datatype":"INT32","data":[1,2147483648,')).toMatch(/element 1 \(2147483648\) is not a valid INT32/);
    expect(refused('{"inputs":[{"name":"p","shape":[2],"datatype":"UINT8","data":[1,-1]}]}')).toBe("input 'p': element 1 (-1) is not a valid UINT8 value; expected an integer from 0 to 255");
    expect(refused('{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":[7]}]}')).toBe("input 't': element 0 (7) is not a valid BYTES value; expected a string");
    expect(refused('{"inputs":[{"name":"b","shape":[1],"datatype":"BOOL","data":[2]}]}')).toMatch(/element 0 \(2\) is not a valid BOOL value; expected true or false/);
  });

  it("accepts what Number.isInteger accepts for 8-32-bit integers, as today", () => {
    const t = decodeV2Request(utf8.encode('{"inputs":[{"name":"x","shape":[3],"datatype":"INT32","data":[1.0,1e2,-0]}]}'));
    expect(t.inputs[0]!.tensor!.data).toEqual(Int32Array.of(1, 100, 0));
    expect(refused('{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}]}')).toMatch(/element 0 \(1.5\)/);
  });

  it("refuses FP16 and BF16 data with today's message, whatever the key order", () => {
    const message = "input 'INPUT': FP16 tensors cannot be sent as JSON numbers; send them as binary data (the binary_tensor_data extension)";
    expect(refused('{"inputs":[{"name":"INPUT","shape":[1,1],"datatype":"FP16","data":[1')).toBe(message);
    expect(refused('{"inputs":[{"name":"INPUT","data":[1],"datatype":"FP16"')).toBe(message);
    expect(refused('{"inputs":[{"name":"INPUT","shape":[1],"datatype":"BF16"}]}')).toMatch(/^input 'INPUT': BF16 tensors cannot be sent as JSON/);
  });

  it("refuses an input with neither data nor binary_data_size as today", () => {
    expect(refused('{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES"}]}')).toBe("input 't' has no 'data'");
  });

  it("returns binary_data_size inputs without a tensor, for the caller to slice", () => {
    const decoded = decodeV2Request(utf8.encode('{"inputs":[{"name":"x","shape":[2],"datatype":"FP16","parameters":{"binary_data_size":4}}]}'));
    expect(decoded.inputs).toEqual([{ name: "x", datatype: "FP16", shape: [2], parameters: { binary_data_size: 4 } }]);
  });
});

describe("64-bit integers beyond 2^53", () => {
  it("data and parameters keep their exact digits, streamed or parsed whole (parseJsonExact)", () => {
    const text =
      '{"parameters":{"sequence_id":9007199254740993,"small":5,"float":1.5e300,"exact":1e20},' +
      '"inputs":[{"name":"x","shape":[3],"datatype":"INT64","data":[9007199254740993,-4611686018427387907,1e3]},' +
      '{"name":"u","shape":[1],"datatype":"UINT64","data":[18446744073709551615]},{"name":"f","shape":[1],"datatype":"FP64","data":[9007199254740993]}]}';
    const decoded = comparable(decodeV2Request(utf8.encode(text)));
    expect(decoded.parameters).toEqual({ sequence_id: "9007199254740993", small: 5, float: 1.5e300, exact: 1e20 });
    const [x, u, f] = decoded.inputs as { data: unknown }[];
    expect(x!.data).toEqual(BigInt64Array.of(2n ** 53n + 1n, -(2n ** 62n) - 3n, 1000n));
    expect(u!.data).toEqual(BigUint64Array.of(2n ** 64n - 1n));
    expect(f!.data).toEqual(Float64Array.of(2 ** 53));
    expect(reference(text)).toEqual(decoded);
  });
});

describe("robustness", () => {
  it("a huge declared shape allocates only what is sent", () => {
    expect(refused('{"inputs":[{"name":"x","shape":[1000000000000],"datatype":"FP64","data":[1,2]}]}')).toBe("input 'x': shape [1000000000000] has 1000000000000 elements but the data has 2");
    expect(refused('{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"INT64","data":[1]}]}')).toBe(
      "input 'x': shape [4294967296,4294967296] has more elements than a tensor can hold (the product of its dimensions exceeds 2^53)",
    );
    // Infinity × 0: no exact count either.
    const dims = Array.from({ length: 20 }, () => 2 ** 52);
    expect(refused(`{"inputs":[{"name":"x","shape":[${dims.join(",")},0],"datatype":"INT32","data":[]}]}`)).toMatch(/^input 'x': shape \[.*,0\] has more elements than a tensor can hold/);
  });

  it("any mutation of a valid request is decoded or refused with a 400, never another error", () => {
    const mutated = fc.tuple(requestArb, fc.array(fc.tuple(fc.nat(), fc.constantFrom("", "[", "]", "{", "}", ",", ":", '"', "\\", "-", "0", "e", "null", "{}", "\\u00", "\xff", "\u00e9")), { minLength: 1, maxLength: 4 })).map(([text, edits]) => {
      let out = text;
      for (const [at, piece] of edits) {
        const p = at % (out.length + 1);
        out = out.slice(0, p) + piece + out.slice(p + (at % 3 === 0 ? 1 : 0));
      }
      return out;
    });
    fc.assert(
      fc.property(mutated, cutsArb, (text, cuts) => {
        const bytes = Buffer.from(text, "latin1");
        try {
          decodeChunked(bytes, cuts);
        } catch (err) {
          expect(err).toBeInstanceOf(InferenceError);
          expect((err as InferenceError).status).toBe(400);
        }
      }),
      { numRuns: 1500, seed: 11 },
    );
  });
});

describe("the model's signature, checked as soon as known", () => {
  const options: V2DecoderOptions = { modelName: "simple", signature: [{ name: "INPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "INPUT1", datatype: "INT32", shape: [-1, 16] }] };

  it("refuses an unknown name, a datatype or shape mismatch and a duplicate, in validateInputs' words", () => {
    expect(refused('{"inputs":[{"name":"INPUT9","data":[', options)).toBe("model 'simple' has no input named 'INPUT9'; its inputs are: INPUT0, INPUT1");
    expect(refused('{"inputs":[{"datatype":"INT64","name":"INPUT1",', options)).toBe("input 'INPUT1': datatype INT64 does not match model 'simple', which expects INT32");
    expect(refused('{"inputs":[{"name":"INPUT0","shape":[2,8],"datatype":"INT32",', options)).toBe("input 'INPUT0': shape [2,8] does not match model 'simple' shape [-1,16]");
    const one = '{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}';
    expect(refused(`{"inputs":[${one},{"name":"INPUT0",`, options)).toBe("input 'INPUT0' appears more than once in the request");
    expect(decodeV2Request(utf8.encode(`{"inputs":[${one},${one.replace("INPUT0", "INPUT1")}]}`), options).inputs).toHaveLength(2);
  });

  it("refuses exactly what validateInputs refuses, for random requests against random signatures", () => {
    const perturbed = requestArb.chain((text) => {
      const inputs = (JSON.parse(text) as { inputs: Array<{ name: string; datatype: Datatype; shape: number[] }> }).inputs;
      const entry = (input: (typeof inputs)[number]) =>
        fc.record({
          name: fc.oneof({ weight: 6, arbitrary: fc.constant(input.name) }, { weight: 1, arbitrary: fc.constant("OTHER") }),
          datatype: fc.oneof({ weight: 6, arbitrary: fc.constant(input.datatype) }, { weight: 1, arbitrary: fc.constantFrom(...JSON_TYPES) }),
          shape: fc.oneof(
            { weight: 4, arbitrary: fc.tuple(...input.shape.map((d) => fc.constantFrom(d, d, -1, d + 1))) },
            { weight: 1, arbitrary: fc.array(fc.integer({ min: -1, max: 4 }), { maxLength: 3 }) },
          ),
        });
      return fc.record({
        text: fc.constant(text),
        signature: fc.tuple(...inputs.map(entry)).chain((entries) => fc.subarray(entries, { minLength: 0 })),
        extra: fc.option(fc.record({ name: fc.constant("EXTRA"), datatype: fc.constant<Datatype>("FP32"), shape: fc.constant([1]) }), { nil: undefined }),
        maxBatchSize: fc.constantFrom(0, 0, 1, 2, 3),
        duplicate: fc.boolean(),
      });
    });
    fc.assert(
      fc.property(perturbed, cutsArb, ({ text: original, signature, extra, maxBatchSize, duplicate }, cuts) => {
        const text = duplicate ? original.replace('"INPUT1"', '"INPUT0"') : original;
        const model = { inputs: extra ? [...signature, extra] : signature } as unknown as LoadedModel;
        let expected: string | undefined;
        try {
          validateInputs("m", model, reference(text).inputs, maxBatchSize);
        } catch (err) {
          expected = (err as Error).message;
        }
        const options: V2DecoderOptions = { signature: model.inputs, modelName: "m", maxBatchSize };
        let actual: string | undefined;
        try {
          decodeChunked(utf8.encode(text), cuts, options);
        } catch (err) {
          actual = (err as Error).message;
        }
        expect(actual === undefined).toBe(expected === undefined);
      }),
      { numRuns: 400, seed: 5 },
    );
  });

  it("checks max_batch_size and missing inputs too", () => {
    const one = '{"name":"INPUT0","shape":[5,16],"datatype":"INT32","data":[]}';
    expect(refused(`{"inputs":[${one}]}`, { ...options, maxBatchSize: 4 })).toBe("input 'INPUT0': batch size 5 exceeds max_batch_size 4 of model 'simple'");
    const ok = `{"name":"INPUT0","shape":[0,16],"datatype":"INT32","data":[]}`;
    expect(refused(`{"inputs":[${ok}]}`, options)).toBe("missing input 'INPUT1' for model 'simple', which requires: INPUT0, INPUT1");
  });

  it("waits for the datatype before judging the shape, as validateInputs does", () => {
    // Shape mismatched but datatype wrong too: validateInputs names the datatype.
    expect(refused('{"inputs":[{"name":"INPUT0","shape":[3],"datatype":"FP32"}]}', options)).toMatch(/datatype FP32 does not match/);
  });
});

describe("everything outside data, as InferenceRequestSchema says it", () => {
  it.each([
    ["[1,2]", "invalid inference request: the request body must be a JSON object with an 'inputs' array"],
    ["null", "invalid inference request: the request body must be a JSON object with an 'inputs' array"],
    ["{}", "invalid inference request: inputs: must be an array of input tensors"],
    ['{"inputs":5}', "invalid inference request: inputs: must be an array of input tensors"],
    ['{"inputs":[]}', "invalid inference request: inputs: must hold at least one input tensor"],
    ['{"inputs":[5]}', "invalid inference request: inputs[0]: Invalid input: expected object, received number"],
    ['{"inputs":[null]}', "invalid inference request: inputs[0]: Invalid input: expected object, received null"],
    ['{"inputs":[{}]}', "invalid inference request: inputs[0].name: must be a string"],
    ['{"inputs":[{"name":""}]}', "invalid inference request: inputs[0].name: must not be empty"],
    ['{"inputs":[{"name":"a","shape":5}]}', "invalid inference request: inputs[0].shape: must be an array of dimensions"],
    ['{"inputs":[{"name":"a","shape":[1,-16]}]}', "invalid inference request: inputs[0].shape[1]: must not be negative"],
    ['{"inputs":[{"name":"a","shape":[1.5]}]}', "invalid inference request: inputs[0].shape[0]: must be an integer"],
    ['{"inputs":[{"name":"a","shape":[9007199254740992]}]}', "invalid inference request: inputs[0].shape[0]: must be an integer"],
    ['{"inputs":[{"name":"a","shape":["1"]}]}', "invalid inference request: inputs[0].shape[0]: must be a number"],
    ['{"inputs":[{"name":"a","shape":[1],"datatype":"FLOAT32"}]}', 'invalid inference request: inputs[0].datatype: invalid datatype "FLOAT32"; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES'],
    ['{"inputs":[{"name":"a","shape":[1]}]}', "invalid inference request: inputs[0].datatype: invalid datatype undefined; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES"],
    ['{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1],"parameters":[]}]}', "invalid inference request: inputs[0].parameters: must be an object of parameters"],
    ['{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1],"parameters":{"k":null}}]}', "invalid inference request: inputs[0].parameters.k: parameter values must be strings, numbers or booleans"],
    ['{"id":7,"inputs":[]}', "invalid inference request: id: must be a string"],
    ['{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{}]}', "invalid inference request: outputs[0].name: must be a string"],
    ['{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}],"outputs":{}}', "invalid inference request: outputs: must be an array of requested outputs"],
    ['{"parameters":5}', "invalid inference request: parameters: must be an object of parameters"],
  ])("%s", (text, message) => {
    expect(refused(text)).toBe(message);
  });

  it("matches zod on what it accepts: unknown keys skipped, a repeated parameter's last value, __proto__ left out", () => {
    const text = '{"x":{"deep":[1,{"a":null}]},"parameters":{"a":null,"a":true,"__proto__":{"x":1},"n":1.5},"inputs":[{"y":[{}],"name":"a","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"o","z":null}]}';
    expect(comparable(decodeV2Request(utf8.encode(text)))).toEqual(reference(text));
  });

  it("refuses a known key given twice rather than letting the last win", () => {
    expect(refused('{"inputs":[{"name":"a","shape":[1],"shape":[1]')).toBe('invalid inference request: inputs[0]: the key "shape" appears more than once');
    expect(refused('{"inputs":[],"inputs":[')).toMatch(/inputs: must hold at least one input tensor|appears more than once/);
  });

  it("an empty body, whitespace, trailing data and malformed JSON", () => {
    expect(errorOf(() => new V2RequestDecoder().end()).message).toBe("the request body is empty; expected a JSON inference request");
    expect(errorOf(() => decodeV2Request(new Uint8Array(0), { what: "the JSON header" })).message).toBe("the JSON header is empty; expected a JSON inference request");
    expect(refused("  ")).toMatch(/^malformed JSON in the request body: unexpected end of the data at byte 2$/);
    expect(refused('{"inputs": [')).toMatch(/^malformed JSON in the request body: /);
    expect(refused('{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}]} x')).toMatch(/^malformed JSON in the request body: unexpected 'x' \(after the end of the JSON value\) at byte 67$/);
    expect(refused('{"inputs" 1')).toMatch(/expected ':'/);
    expect(refused('{"inputs":[1,]}')).toMatch(/^invalid inference request|^malformed JSON/);
  });

  it("a leading byte-order mark is dropped, as TextDecoder drops it before JSON.parse", () => {
    const text = '{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}]}';
    const body = new Uint8Array([0xef, 0xbb, 0xbf, ...utf8.encode(text)]);
    expect(comparable(decodeBytewise(body))).toEqual(reference(text));
  });
});

describe("tokens split anywhere", () => {
  const wrap = (data: string, datatype = "FP64", shape = "[1]") => `{"inputs":[{"name":"x","shape":${shape},"datatype":"${datatype}","data":${data}}]}`;

  it("refuses NaN-ish and non-JSON number tokens", () => {
    for (const token of ["NaN", "Infinity", "-Infinity", "+1", ".5", "1.", "01", "-", "1e", "1e+", "0x10", "1_000", "--1", "1.5.2", "tru", "nul", "True"]) {
      expect(refused(wrap(`[${token}]`)), token).toMatch(/^malformed JSON in the request body: /);
    }
  });

  it("reads numbers exactly as JSON.parse does", () => {
    const tokens = ["0", "-0", "1e2", "1E-2", "0.1", "-0.000123", "123456789012345678901234567890", "1.7976931348623157e308", "1e309", "-1e-400", "5e-324", "2.2250738585072014e-308", "0.30000000000000004", "9007199254740993", "1e22", "1e23", "123.456e-5", "0.0000000000000000000001234"];
    const text = wrap(`[${tokens.join(",")}]`, "FP64", `[${tokens.length}]`);
    expect(decodeBytewise(text).inputs[0]!.tensor!.data).toEqual(Float64Array.from(tokens.map((t) => JSON.parse(t) as number)));
  });

  it("decodes escapes split across chunks, \\u escapes and surrogates included", () => {
    const strings = ['a\\"b', "\\\\", "\\/", "\\b\\f\\n\\r\\t", "\\u00e9\\u65E5", "\\ud83d\\ude80", "\\ud800", "é日🚀"];
    const text = wrap(`[${strings.map((s) => `"${s}"`).join(",")}]`, "BYTES", `[${strings.length}]`);
    expect(decodeBytewise(text).inputs[0]!.tensor!.data).toEqual(strings.map((s) => JSON.parse(`"${s}"`) as string));
    expect(refused(wrap('["\\x"]', "BYTES"))).toMatch(/bad escape/);
    expect(refused(wrap('["\\u12G4"]', "BYTES"))).toMatch(/bad \\u escape/);
    expect(refused(wrap('["a\nb"]', "BYTES"))).toMatch(/unescaped control character/);
  });

  it("refuses invalid UTF-8, split across chunks or not, as parseJson words it", () => {
    const bad = [[0xc3], [0xe6, 0x97], [0xed, 0xa0, 0x80], [0xf0, 0x82, 0x82, 0xac], [0xff], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80]];
    for (const seq of bad) {
      const head = utf8.encode('{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a');
      const tail = utf8.encode('"]}]}');
      const body = new Uint8Array([...head, ...seq, ...tail]);
      expect(refused(body), seq.join(",")).toBe("the request body is not valid UTF-8");
    }
    const truncated = new Uint8Array([...utf8.encode('{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["'), 0xe6]);
    expect(errorOf(() => decodeBytewise(truncated, { what: "the JSON header" })).message).toBe("the JSON header is not valid UTF-8");
  });
});
