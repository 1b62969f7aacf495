/**
 * The hostile-input battery: random and mutated requests against the real
 * server. Every answer is a 4xx with a JSON error (or a 200 when the mutation
 * happens to be valid), never a 5xx, never a hang, and the server answers a
 * valid request afterwards.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBinaryRequest } from "../testing/binary-client.js";
import { healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;
const MODELS = ["simple", "identity_fp32", "identity_bytes", "identity_int64", "identity_bool", "identity_uint8"];

beforeAll(async () => {
  repo = await writeRepository(healthyLayout());
  server = await startTestServer(repo, { maxRequestBytes: 256 * 1024, requestTimeoutMs: 10_000 });
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

async function send(path: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${server.url}${path}`, { method: "POST", body, headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json };
}

function expectHandled({ status, json }: { status: number; json: unknown }): void {
  expect(status, JSON.stringify(json)).toBeLessThan(500);
  if (status >= 400) {
    expect(json).toMatchObject({ error: expect.any(String) });
    expect((json as { error: string }).error.length).toBeLessThan(1000);
  }
}

const weirdNumber = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(-1, 0, 2 ** 31, 2 ** 53 + 1, -(2 ** 63), 1e308, -0), fc.bigInt().map(String));
const weirdValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    weirdNumber,
    fc.string(),
    fc.constantFrom("NaN", "Infinity", "-Infinity", null, true, false, "", "\u0000"),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 5 }), tie("value"), { maxKeys: 3 }),
  ),
})).value;

const shape = fc.oneof(fc.array(fc.integer({ min: -2, max: 20 }), { maxLength: 4 }), fc.constant([2 ** 31, 2 ** 31]), fc.constant([1e15]), fc.array(weirdValue, { maxLength: 3 }));
const datatype = fc.oneof(fc.constantFrom("BOOL", "UINT8", "UINT64", "INT8", "INT32", "INT64", "FP16", "BF16", "FP32", "FP64", "BYTES"), fc.string({ maxLength: 8 }));

const mutatedInput = fc.record(
  {
    name: fc.oneof(fc.constantFrom("INPUT", "INPUT0", "INPUT1", "text"), fc.string({ maxLength: 10 }), weirdValue),
    shape,
    datatype,
    data: fc.oneof(fc.array(weirdNumber, { maxLength: 40 }), fc.array(fc.array(weirdNumber, { maxLength: 16 }), { maxLength: 4 }), weirdValue),
    parameters: fc.oneof(fc.constant(undefined), fc.dictionary(fc.string({ maxLength: 20 }), weirdValue, { maxKeys: 3 })),
  },
  { requiredKeys: [] },
);
const mutatedRequest = fc.record(
  {
    id: weirdValue,
    inputs: fc.oneof(fc.array(mutatedInput, { maxLength: 3 }), weirdValue),
    outputs: fc.oneof(fc.array(fc.record({ name: fc.string({ maxLength: 8 }), parameters: fc.dictionary(fc.string({ maxLength: 12 }), weirdValue, { maxKeys: 2 }) }), { maxLength: 3 }), weirdValue),
    parameters: fc.oneof(fc.dictionary(fc.string({ maxLength: 20 }), weirdValue, { maxKeys: 3 }), weirdValue),
  },
  { requiredKeys: [] },
);

describe("the hostile-input battery", () => {
  it("random and mutated V2 requests are answered 4xx with a JSON error, never 5xx", { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...MODELS), mutatedRequest, async (model, request) => {
        expectHandled(await send(`/v2/models/${model}/infer`, JSON.stringify(request)));
      }),
      { numRuns: 300, seed: 20261121 },
    );
  });

  it("arbitrary bytes, invalid UTF-8, truncated JSON and deep nesting are 4xx", { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.string().map((s) => `{"inputs": [${s}`),
          fc.integer({ min: 1, max: 50_000 }).map((n) => `{"inputs":[{"name":"INPUT","shape":[1],"datatype":"FP32","data":${"[".repeat(n)}1${"]".repeat(n)}}]}`),
          fc.constant(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])),
          fc.constant('{"inputs":[], "inputs":[{"name":"INPUT","shape":[1,1],"datatype":"FP32","data":[1]}]}'),
        ),
        fc.constantFrom(...MODELS, "../etc", "a%00b"),
        async (body, model) => {
          expectHandled(await send(`/v2/models/${encodeURIComponent(model)}/infer`, body));
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });

  it("binary bodies with lying header lengths and sizes are 4xx", { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: -5, max: 400 }),
        fc.integer({ min: -3, max: 64 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom("FP32", "BYTES", "INT64", "BOOL", "FP16"),
        async (headerDelta, declaredSize, payload, type) => {
          const { body, headers } = buildBinaryRequest([{ name: "INPUT", datatype: type, shape: [1, Math.max(1, payload.length >> 2)], bytes: payload }]);
          const json = JSON.parse(Buffer.from(body.subarray(0, Number(headers["Inference-Header-Content-Length"]))).toString());
          json.inputs[0].parameters.binary_data_size = declaredSize;
          const header = Buffer.from(JSON.stringify(json));
          const full = Buffer.concat([header, payload]);
          const model = `identity_${type === "FP32" ? "fp32" : type === "BYTES" ? "bytes" : type === "INT64" ? "int64" : type === "BOOL" ? "bool" : "fp16"}`;
          expectHandled(await send(`/v2/models/${model}/infer`, new Uint8Array(full), { "Inference-Header-Content-Length": String(header.length + headerDelta) }));
        },
      ),
      { numRuns: 200, seed: 11 },
    );
  });

  it("V1 and repository endpoints hold up too", { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(weirdValue, fc.constantFrom("/v1/models/identity_fp32:predict", "/v1/models/simple:predict", "/v1/models/identity_bytes:predict", "/v2/repository/index"), async (body, path) => {
        expectHandled(await send(path, JSON.stringify(body)));
      }),
      { numRuns: 200, seed: 3 },
    );
  });

  it("still answers a valid request afterwards, and is still ready", async () => {
    const ok = await send("/v2/models/simple/infer", JSON.stringify({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(3) })) }));
    expect(ok.status).toBe(200);
    expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(200);
  });
});
