/**
 * The batcher against a scripted model: which requests share an execution,
 * in what order, and what each gets back. Executions are held open by the
 * test, so nothing here depends on timing; queue delays use fake timers.
 */
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { LoadedModel, TensorMetadata } from "../backends/backend.js";
import { InferenceError } from "../dataplane/errors.js";
import { ModelStatistics } from "../registry/statistics.js";
import type { DynamicBatching } from "../repository/settings.js";
import type { Tensor } from "../tensor/tensor.js";
import { BatchingConfigError, DynamicBatcher } from "./batcher.js";

interface Call {
  rows: number;
  inputs: Tensor[];
  outputNames: readonly string[];
  release(): void;
  fail(err: Error): void;
}

/**
 * X: INT32 [-1, n] and S: BYTES [-1]; DOUBLE = 2·X, UPPER = S upper-cased, SUM = row sums of X.
 * Each call waits for the test to release (or fail) it.
 */
class ScriptedModel implements LoadedModel {
  readonly platform = "test";
  readonly executionProviders = ["cpu"];
  readonly inputs: TensorMetadata[] = [
    { name: "X", datatype: "INT32", shape: [-1, -1] },
    { name: "S", datatype: "BYTES", shape: [-1] },
  ];
  readonly outputs: TensorMetadata[] = [
    { name: "DOUBLE", datatype: "INT32", shape: [-1, -1] },
    { name: "UPPER", datatype: "BYTES", shape: [-1] },
    { name: "SUM", datatype: "INT32", shape: [-1] },
  ];
  readonly calls: Call[] = [];
  /** Rows whose X starts with this value make the whole execution fail, as a graph would. */
  poison = -1;
  /** Make SUM come back without a batch dimension (a model breaking the batch-first contract). */
  scalarSum = false;
  private waiters: (() => void)[] = [];

  infer(inputs: readonly Tensor[], outputNames: readonly string[]): Promise<Tensor[]> {
    const x = inputs.find((t) => t.name === "X")!;
    const s = inputs.find((t) => t.name === "S")!;
    return new Promise((resolve, reject) => {
      const compute = () => {
        const [rows, n] = x.shape as [number, number];
        const xs = x.data as Int32Array;
        for (let r = 0; r < rows; r++) if (xs[r * n] === this.poison) return reject(new InferenceError(400, `row starting ${this.poison}`));
        const all: Record<string, Tensor> = {
          DOUBLE: { name: "DOUBLE", datatype: "INT32", shape: [rows, n], data: Int32Array.from(xs, (v) => v * 2) },
          UPPER: { name: "UPPER", datatype: "BYTES", shape: [rows], data: (s.data as string[]).map((v) => v.toUpperCase()) },
          SUM: this.scalarSum
            ? { name: "SUM", datatype: "INT32", shape: [], data: Int32Array.of(xs.reduce((a, v) => a + v, 0)) }
            : { name: "SUM", datatype: "INT32", shape: [rows], data: Int32Array.from({ length: rows }, (_, r) => xs.subarray(r * n, r * n + n).reduce((a, v) => a + v, 0)) },
        };
        resolve(outputNames.map((name) => all[name]!));
      };
      this.calls.push({ rows: x.shape[0]!, inputs: [...inputs], outputNames, release: compute, fail: reject });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves once `count` executions have started. */
  async started(count: number): Promise<void> {
    while (this.calls.length < count) await new Promise<void>((r) => this.waiters.push(r));
  }

  async unload(): Promise<void> {}
}

const logger = pino({ level: "silent" });

function batcher(model: LoadedModel, maxBatchSize: number, batching: Partial<DynamicBatching> = {}) {
  const statistics = new ModelStatistics();
  const b = new DynamicBatcher(model, {
    model: "m", version: "1", maxBatchSize, statistics, logger,
    batching: { max_queue_delay_microseconds: 0, preferred_batch_size: [], max_queue_size: 0, ...batching },
  });
  return { b, statistics };
}

/** A request of `rows` rows: X rows [start+r, …] of width n, S = "s<start+r>". */
function request(start: number, rows: number, n = 2): Tensor[] {
  const x = new Int32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) x[r * n + c] = (start + r) * 10 + c;
  return [
    { name: "S", datatype: "BYTES", shape: [rows], data: Array.from({ length: rows }, (_, r) => `s${start + r}`) },
    { name: "X", datatype: "INT32", shape: [rows, n], data: x },
  ];
}

const flush = () => new Promise<void>((r) => setImmediate(r));
const plain = (tensors: Tensor[]) => tensors.map((t) => ({ ...t, data: Array.from(t.data as ArrayLike<unknown>) }));

afterEach(() => {
  vi.useRealTimers();
});

describe("forming batches", () => {
  it("runs requests that queue during an execution as one batch, and gives each exactly its own rows", async () => {
    const model = new ScriptedModel();
    const { b, statistics } = batcher(model, 16);
    const first = b.infer(request(0, 1), ["DOUBLE", "UPPER"]);
    await model.started(1);
    const rest = [b.infer(request(1, 2), ["DOUBLE", "UPPER"]), b.infer(request(3, 1), ["UPPER"]), b.infer(request(4, 3), ["SUM", "DOUBLE"])];
    expect(b.queued).toBe(3);
    model.calls[0]!.release();
    await model.started(2);
    const call = model.calls[1]!;
    expect(call.rows).toBe(6);
    // The run computes the union of what the batch asked for.
    expect([...call.outputNames].sort()).toEqual(["DOUBLE", "SUM", "UPPER"]);
    call.release();
    const results = await Promise.all([first, ...rest]);

    // What each request gets is what it gets alone.
    const alone = new ScriptedModel();
    const expected = [
      [request(0, 1), ["DOUBLE", "UPPER"]], [request(1, 2), ["DOUBLE", "UPPER"]], [request(3, 1), ["UPPER"]], [request(4, 3), ["SUM", "DOUBLE"]],
    ] as const;
    for (let i = 0; i < expected.length; i++) {
      const [inputs, names] = expected[i]!;
      const pending = alone.infer(inputs, names);
      alone.calls.at(-1)!.release();
      expect(plain(results[i]!.outputs)).toEqual(plain(await pending));
    }
    expect(results[2]!.outputs.map((t) => t.name)).toEqual(["UPPER"]);
    expect(results[3]!.outputs.map((t) => t.name)).toEqual(["SUM", "DOUBLE"]);
    expect(statistics.executionCount).toBe(2);
  });

  it("never puts more than max_batch_size rows in one execution", async () => {
    const model = new ScriptedModel();
    const { b, statistics } = batcher(model, 4);
    const all = [b.infer(request(0, 1), ["SUM"])];
    await model.started(1);
    for (let i = 1; i < 12; i++) all.push(b.infer(request(i, i % 3 === 0 ? 3 : 1), ["SUM"]));
    for (let k = 0; model.calls.some((c) => !("done" in c)) && k < 20; k++) {
      const open = model.calls.filter((c) => !("done" in c));
      for (const c of open) {
        Object.assign(c, { done: true });
        c.release();
      }
      await flush();
    }
    const results = await Promise.all(all);
    expect(model.calls.every((c) => c.rows <= 4)).toBe(true);
    expect(statistics.executionCount).toBe(model.calls.length);
    expect(model.calls.length).toBeLessThan(12);
    results.forEach((r, i) => expect(r.outputs[0]!.shape[0]).toBe(i > 0 && i % 3 === 0 ? 3 : 1));
  });

  it("keeps requests whose non-batch dimensions differ in separate executions, each in arrival order", async () => {
    const model = new ScriptedModel();
    const { b } = batcher(model, 16);
    const first = b.infer(request(0, 1, 2), ["DOUBLE"]);
    await model.started(1);
    const a = b.infer(request(1, 1, 2), ["DOUBLE"]);
    const wide = b.infer(request(2, 1, 3), ["DOUBLE"]);
    const c = b.infer(request(3, 1, 2), ["DOUBLE"]);
    const wide2 = b.infer(request(4, 2, 3), ["DOUBLE"]);
    model.calls[0]!.release();
    await model.started(2);
    expect(model.calls[1]!.inputs.find((t) => t.name === "X")!.shape).toEqual([2, 2]);
    model.calls[1]!.release();
    await model.started(3);
    expect(model.calls[2]!.inputs.find((t) => t.name === "X")!.shape).toEqual([3, 3]);
    model.calls[2]!.release();
    const results = await Promise.all([first, a, wide, c, wide2]);
    expect(results.map((r) => r.outputs[0]!.shape)).toEqual([[1, 2], [1, 2], [1, 3], [1, 2], [2, 3]]);
    expect(Array.from(results[4]!.outputs[0]!.data as Int32Array)).toEqual([80, 82, 84, 100, 102, 104]);
  });

  it("runs a request without a usable batch dimension alone", async () => {
    const model = new ScriptedModel();
    const { b } = batcher(model, 8);
    const first = b.infer(request(0, 1), ["SUM"]);
    await model.started(1);
    const mismatched = request(1, 2);
    mismatched[0] = { ...mismatched[0]!, shape: [1], data: ["only one"] };
    const odd = b.infer(mismatched, ["SUM"]);
    const normal = b.infer(request(5, 1), ["SUM"]);
    const normal2 = b.infer(request(6, 1), ["SUM"]);
    model.calls[0]!.release();
    await model.started(2);
    expect(model.calls[1]!.rows).toBe(2);
    expect(model.calls[1]!.inputs.find((t) => t.name === "S")!.shape).toEqual([1]);
    model.calls[1]!.release();
    await model.started(3);
    expect(model.calls[2]!.rows).toBe(2);
    model.calls[2]!.release();
    await Promise.all([first, odd, normal, normal2]);
  });
});

describe("preferred sizes and queue delay", () => {
  it("waits up to max_queue_delay for more requests, then runs what it has", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "clearImmediate", "performance"] });
    const model = new ScriptedModel();
    const { b } = batcher(model, 8, { max_queue_delay_microseconds: 50_000 });
    const one = b.infer(request(0, 1), ["SUM"]);
    await vi.advanceTimersByTimeAsync(20);
    expect(model.calls.length).toBe(0);
    const two = b.infer(request(1, 1), ["SUM"]);
    await vi.advanceTimersByTimeAsync(29);
    expect(model.calls.length).toBe(0);
    await vi.advanceTimersByTimeAsync(2);
    expect(model.calls.length).toBe(1);
    expect(model.calls[0]!.rows).toBe(2);
    model.calls[0]!.release();
    const [r1, r2] = await Promise.all([one, two]);
    expect(r1.queueMs).toBeGreaterThanOrEqual(50);
    expect(r2.queueMs).toBeGreaterThanOrEqual(30);
  });

  it("runs at once when the batch reaches max_batch_size or a preferred size, taking the largest preferred size", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "clearImmediate", "performance"] });
    const model = new ScriptedModel();
    const { b } = batcher(model, 8, { max_queue_delay_microseconds: 10_000_000, preferred_batch_size: [2, 4] });
    const all = [b.infer(request(0, 1), ["SUM"])];
    await vi.advanceTimersByTimeAsync(1);
    expect(model.calls.length).toBe(0);
    all.push(b.infer(request(1, 1), ["SUM"]));
    await vi.advanceTimersByTimeAsync(0);
    expect(model.calls.map((c) => c.rows)).toEqual([2]);
    // Five wait while that runs: the largest preferred size they make up (4) goes next, the fifth waits.
    for (let i = 2; i < 7; i++) all.push(b.infer(request(i, 1), ["SUM"]));
    model.calls[0]!.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(model.calls.map((c) => c.rows)).toEqual([2, 4]);
    model.calls[1]!.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(model.calls.length).toBe(2);
    // A full batch never waits: 7 more rows make 8 with the one waiting.
    all.push(b.infer(request(7, 7), ["SUM"]));
    await vi.advanceTimersByTimeAsync(0);
    expect(model.calls.map((c) => c.rows)).toEqual([2, 4, 8]);
    model.calls[2]!.release();
    const results = await Promise.all(all);
    expect(results.map((r) => Array.from(r.outputs[0]!.data as Int32Array))).toEqual([
      [1], [21], [41], [61], [81], [101], [121], [141, 161, 181, 201, 221, 241, 261],
    ]);
  });
});

describe("failures and limits", () => {
  it("answers 503 with Retry-After when the queue is full", async () => {
    const model = new ScriptedModel();
    const { b } = batcher(model, 8, { max_queue_size: 2 });
    const running = b.infer(request(0, 1), ["SUM"]);
    await model.started(1);
    const queued = [b.infer(request(1, 1), ["SUM"]), b.infer(request(2, 1), ["SUM"])];
    const refused = await b.infer(request(3, 1), ["SUM"]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InferenceError);
    expect((refused as InferenceError).status).toBe(503);
    expect((refused as InferenceError).headers).toEqual({ "retry-after": "1" });
    expect((refused as InferenceError).message).toMatch(/batch queue is full/);
    model.calls[0]!.release();
    await model.started(2);
    model.calls[1]!.release();
    await Promise.all([running, ...queued]);
  });

  it("when a batched run fails, runs each of its requests alone: only the bad one fails", async () => {
    const model = new ScriptedModel();
    model.poison = 20; // request(2, …) starts with X = 20
    const { b, statistics } = batcher(model, 8);
    const first = b.infer(request(0, 1), ["SUM"]);
    await model.started(1);
    const good = b.infer(request(1, 1), ["SUM"]);
    const bad = b.infer(request(2, 1), ["SUM"]).catch((e: unknown) => e);
    const good2 = b.infer(request(3, 2), ["SUM"]);
    model.calls[0]!.release();
    for (let n = 2; n <= 5; n++) {
      await model.started(n);
      model.calls[n - 1]!.release();
    }
    expect(model.calls.map((c) => c.rows)).toEqual([1, 4, 1, 1, 2]);
    expect(Array.from((await good).outputs[0]!.data as Int32Array)).toEqual([21]);
    expect(Array.from((await good2).outputs[0]!.data as Int32Array)).toEqual([61, 81]);
    expect(await bad).toMatchObject({ status: 400, message: "row starting 20" });
    await first;
    expect(statistics.executionCount).toBe(5);
  });

  it("falls back to one request per execution when outputs come back without the batch dimension", async () => {
    const model = new ScriptedModel();
    model.scalarSum = true;
    const { b } = batcher(model, 8);
    const first = b.infer(request(0, 1), ["SUM"]);
    await model.started(1);
    const a = b.infer(request(1, 1), ["SUM"]);
    const c = b.infer(request(2, 1), ["SUM"]);
    model.calls[0]!.release();
    for (let n = 2; n <= 4; n++) {
      await model.started(n);
      model.calls[n - 1]!.release();
    }
    expect(model.calls.map((call) => call.rows)).toEqual([1, 2, 1, 1]);
    expect(Array.from((await a).outputs[0]!.data as Int32Array)).toEqual([21]);
    expect(Array.from((await c).outputs[0]!.data as Int32Array)).toEqual([41]);
    await first;
  });

  it("refuses a model whose inputs or outputs have a fixed first dimension", () => {
    const model = new ScriptedModel();
    model.outputs[2] = { name: "SUM", datatype: "INT32", shape: [4] };
    expect(() => batcher(model, 4)).toThrow(BatchingConfigError);
    expect(() => batcher(model, 4)).toThrow(/output 'SUM' has shape \[4\]/);
  });

  it("still runs what was queued after close(), and refuses new requests", async () => {
    const model = new ScriptedModel();
    const { b } = batcher(model, 8);
    const running = b.infer(request(0, 1), ["SUM"]);
    await model.started(1);
    const queued = b.infer(request(1, 1), ["SUM"]);
    b.close();
    await expect(b.infer(request(2, 1), ["SUM"])).rejects.toMatchObject({ status: 503 });
    model.calls[0]!.release();
    await model.started(2);
    model.calls[1]!.release();
    await Promise.all([running, queued]);
  });
});
