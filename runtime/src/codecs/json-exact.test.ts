import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseJsonExact, stringifyExact } from "./json-exact.js";

const utf8 = new TextEncoder();
const parse = (text: string) => parseJsonExact(utf8.encode(text));
const wide = (v: unknown): boolean =>
  typeof v === "number" ? Math.abs(v) >= 2 ** 53 && Math.abs(v) <= 2 ** 64 : typeof v === "object" && v !== null && Object.values(v).some(wide);

describe("parseJsonExact", () => {
  it("gives what JSON.parse gives for any JSON without integers beyond 2^53", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value);
        // Doubles from 2^53 to 2^64 print as integers a double cannot hold: those are the BigInt case below.
        fc.pre(!wide(JSON.parse(text)));
        expect(parse(text)).toEqual(JSON.parse(text));
      }),
      { numRuns: 300, seed: 17 },
    );
  });

  it("keeps integers a double cannot hold as BigInt, wherever they are, and everything else as JSON.parse", () => {
    const value = parse('{"a":[9007199254740993,-4611686018427387907,18446744073709551615],"b":{"c":9007199254740992,"d":1e20,"e":1.5e300,"f":0.1},"__proto__":[9007199254740995]}') as Record<string, unknown>;
    expect(value.a).toEqual([2n ** 53n + 1n, -(2n ** 62n) - 3n, 2n ** 64n - 1n]);
    // Integers spelled out from 2^53 up are BigInt even when a double holds them (it would print
    // back as "9007199254740992" but -2^63 as "-9223372036854776000"); exponent forms stay numbers,
    // and beyond 2^64 nothing is a 64-bit integer.
    expect(value.b).toEqual({ c: 2n ** 53n, d: 1e20, e: 1.5e300, f: 0.1 });
    expect(stringifyExact(parse("[-9223372036854775808,1152921504606846976]"))).toBe("[-9223372036854775808,1152921504606846976]");
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(value, "__proto__")?.value).toEqual([2n ** 53n + 3n]);
    expect(parse("[1e400, 123456789012345678901234567890]")).toEqual([Infinity, 123456789012345678901234567890]);
  });

  it("refuses what JSON.parse refuses, with parseJson's words", () => {
    expect(() => parse("")).toThrow("the request body is empty; expected a JSON inference request");
    expect(() => parse("{nope")).toThrow(/^malformed JSON in the request body: /);
    expect(() => parseJsonExact(Uint8Array.of(0x7b, 0xff), "the event data")).toThrow("the event data is not valid UTF-8");
  });
});

describe("stringifyExact", () => {
  it("writes BigInt as exact digits and everything else as JSON.stringify", () => {
    const value = { predictions: [[2n ** 53n + 1n, -(2n ** 62n) - 3n]], x: "é\u0000", n: null, skip: undefined, nan: [Number.NaN] };
    expect(stringifyExact(value)).toBe('{"predictions":[[9007199254740993,-4611686018427387907]],"x":"é\\u0000","n":null,"nan":[null]}');
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(stringifyExact(v)).toBe(JSON.stringify(v));
      }),
      { numRuns: 200, seed: 3 },
    );
  });
});
