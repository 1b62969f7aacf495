/**
 * Dynamic batching through the real server and ONNX Runtime: concurrent
 * requests to a batching model get byte for byte the responses the same
 * requests get one at a time from the same model without batching (JSON and
 * binary outputs, BYTES tensors, different outputs and batch sizes per
 * request); statistics count one execution per batch; a full queue answers 503.
 * Nothing here measures time: long queue delays make the batches form, and
 * every assertion holds however the requests happen to be grouped.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { model, node, valueInfo } from "../../../models/build/onnx.js";
import { buildSimple } from "../../../models/build/simple.js";
import { bytesTensor, buildBinaryRequest } from "../testing/binary-client.js";
import { identityModel, removeRepository, writeRepository, type RepositoryLayout } from "../testing/fixtures.js";
import { getJson, startTestServer, type RunningServer } from "../testing/server.js";

const batching = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 2_000_000, ...extra } });
const plain = JSON.stringify({ max_batch_size: 8 });

function layout(settings: (name: string) => string): RepositoryLayout {
  return {
    "simple/1/model.onnx": buildSimple(),
    "simple/model-settings.json": settings("simple"),
    "strings/1/model.onnx": identityModel("STRING"),
    "strings/model-settings.json": settings("strings"),
  };
}

let batchedRepo: string;
let plainRepo: string;
let batched: RunningServer;
let unbatched: RunningServer;

beforeAll(async () => {
  batchedRepo = await writeRepository({
    ...layout(() => batching()),
    "one_slot/1/model.onnx": buildSimple(),
    "one_slot/model-settings.json": batching({ max_queue_delay_microseconds: 1_000_000, max_queue_size: 1 }),
    "fixed_batch/1/model.onnx": model({
      name: "fixed",
      nodes: [node("Identity", ["X"], ["Y"])],
      inputs: [valueInfo("X", "FLOAT", [4, 2])],
      outputs: [valueInfo("Y", "FLOAT", [4, 2])],
    }),
    "fixed_batch/model-settings.json": batching(),
    "no_max/1/model.onnx": buildSimple(),
    "no_max/model-settings.json": JSON.stringify({ dynamic_batching: {} }),
  });
  plainRepo = await writeRepository(layout(() => plain));
  [batched, unbatched] = await Promise.all([startTestServer(batchedRepo, { strictReadiness: false }), startTestServer(plainRepo)]);
});

afterAll(async () => {
  await Promise.all([batched?.close(), unbatched?.close()]);
  await Promise.all([removeRepository(batchedRepo), removeRepository(plainRepo)]);
});

interface Raw {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

async function post(base: string, modelName: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<Raw> {
  const res = await fetch(`${base}/v2/models/${modelName}/infer`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
  const keep = ["content-type", "inference-header-content-length", "retry-after"];
  return {
    status: res.status,
    headers: Object.fromEntries(keep.flatMap((k) => (res.headers.has(k) ? [[k, res.headers.get(k)!]] : []))),
    body: Buffer.from(await res.arrayBuffer()),
  };
}

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

/** A `simple` request of `rows` rows whose values are unique to `seed`. */
function simple(seed: number, rows: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    id: `req-${seed}`,
    inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [rows, 16], data: range(rows * 16, (i) => seed * 1000 + i) },
      { name: "INPUT1", datatype: "INT32", shape: [rows, 16], data: range(rows * 16, (i) => (i * 7) % 13 - seed) },
    ],
    ...extra,
  });
}

type Case = { model: string; body: Uint8Array | string; headers?: Record<string, string> };

/** Sends the cases concurrently to the batching server and one at a time to the plain one; the answers must be identical. */
async function expectSameAsAlone(cases: Case[]): Promise<Raw[]> {
  const together = await Promise.all(cases.map((c) => post(batched.url, c.model, c.body, c.headers)));
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    const alone = await post(unbatched.url, c.model, c.body, c.headers);
    expect(together[i]!.status, `case ${i}: ${together[i]!.body.toString("utf8").slice(0, 300)}`).toBe(alone.status);
    expect(together[i]!.headers).toEqual(alone.headers);
    expect(together[i]!.body.equals(alone.body), `case ${i} body differs:\n${together[i]!.body.toString("utf8").slice(0, 400)}\n${alone.body.toString("utf8").slice(0, 400)}`).toBe(true);
  }
  return together;
}

async function stats(modelName: string) {
  const { body } = await getJson(`${batched.url}/v2/models/${modelName}/stats`);
  return body.model_stats[0] as { inference_count: number; execution_count: number; inference_stats: Record<string, { count: number; ns: number }> };
}

describe("dynamic batching", () => {
  it("answers concurrent requests exactly as it answers each alone: batch sizes, output selection, binary outputs", async () => {
    const before = await stats("simple");
    expect(before.execution_count).toBe(0); // the warm-up inference is not counted
    const cases: Case[] = [
      { model: "simple", body: simple(1, 1) },
      { model: "simple", body: simple(2, 2, { outputs: [{ name: "OUTPUT1" }] }) },
      { model: "simple", body: simple(3, 3, { outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }] }) },
      { model: "simple", body: simple(4, 2, { outputs: [{ name: "OUTPUT1" }, { name: "OUTPUT0" }], parameters: { binary_data_output: true } }) },
    ];
    const answers = await expectSameAsAlone(cases);
    expect(answers.every((a) => a.status === 200)).toBe(true);

    const after = await stats("simple");
    expect(after.inference_count - before.inference_count).toBe(8);
    // Fewer executions than inferences: requests shared a run (8 rows is max_batch_size, so at least one).
    expect(after.execution_count - before.execution_count).toBeGreaterThanOrEqual(1);
    expect(after.execution_count - before.execution_count).toBeLessThan(8);
    expect(after.inference_stats.success!.count).toBe(4);
    expect(after.inference_stats.queue!.count).toBe(4);
    expect(after.inference_stats.compute_infer!.count).toBe(4);
  });

  it("batches BYTES tensors, and keeps requests whose non-batch dimensions differ apart, all answered as alone", async () => {
    const strings = (rows: string[][], binaryOut = false) =>
      JSON.stringify({
        inputs: [{ name: "INPUT", datatype: "BYTES", shape: [rows.length, rows[0]!.length], data: rows.flat() }],
        ...(binaryOut ? { parameters: { binary_data_output: true } } : {}),
      });
    const binaryInput = buildBinaryRequest([{ name: "INPUT", datatype: "BYTES", shape: [2, 3], bytes: bytesTensor(["é", "", "日本語", "a\tb", "\u{1F600}", "last"]) }]);
    const cases: Case[] = [
      { model: "strings", body: strings([["a", "b"]]) },
      { model: "strings", body: strings([["x", ""], ["ünï", "çødé"]], true) },
      { model: "strings", body: strings([["three", "wide", "row"]]) },
      { model: "strings", body: binaryInput.body, headers: binaryInput.headers },
      { model: "strings", body: strings([["q", "r"], ["s", "t"], ["u", "v"]]) },
    ];
    await expectSameAsAlone(cases);
    const s = await stats("strings");
    expect(s.inference_count).toBe(1 + 2 + 1 + 2 + 3);
    expect(s.execution_count).toBeLessThan(5);
  });

  it("gives each request in a batch its own error or answer: a request the model refuses does not fail the others", async () => {
    const bad = JSON.stringify({ inputs: [{ name: "INPUT", datatype: "BYTES", shape: [1, 2], data: ["ok", "nul\u0000inside"] }] });
    const good = JSON.stringify({ inputs: [{ name: "INPUT", datatype: "BYTES", shape: [1, 2], data: ["fine", "too"] }] });
    const answers = await expectSameAsAlone([
      { model: "strings", body: good },
      { model: "strings", body: bad },
      { model: "strings", body: good },
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 400, 200]);
  });

  it("answers 503 with Retry-After once the batch queue is full", async () => {
    const answers = await Promise.all([post(batched.url, "one_slot", simple(1, 1)), post(batched.url, "one_slot", simple(2, 1))]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 503]);
    const refused = answers.find((a) => a.status === 503)!;
    expect(refused.headers["retry-after"]).toBe("1");
    expect(JSON.parse(refused.body.toString("utf8")).error).toMatch(/^model 'one_slot' version 1: the batch queue is full \(1 requests waiting\); retry shortly$/);
  });

  it("refuses rows above max_batch_size before they reach the queue", async () => {
    const res = await post(batched.url, "simple", simple(9, 9));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString("utf8")).error).toMatch(/batch size 9 exceeds max_batch_size 8/);
  });

  it("makes a model UNAVAILABLE, with the reason, when its settings ask for batching it cannot do", async () => {
    const fixed = await getJson(`${batched.url}/v2/models/fixed_batch/ready`);
    expect(fixed.status).toBe(503);
    expect(fixed.body.reason).toMatch(/dynamic batching needs a variable first \(batch\) dimension on every input and output; input 'X' has shape \[4,2\]/);
    const noMax = await getJson(`${batched.url}/v2/models/no_max/ready`);
    expect(noMax.status).toBe(503);
    expect(noMax.body.reason).toMatch(/dynamic_batching: dynamic batching needs max_batch_size > 0/);
  });
});
