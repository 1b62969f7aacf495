/**
 * Triton's dynamic batcher, per model version: requests wait in one queue and
 * run together, concatenated along the first (batch) dimension, in a single
 * model execution; each gets back exactly its own rows and its own outputs.
 *
 * Forming a batch (whenever an instance of this version is free):
 *   - the oldest request leads; later requests join in arrival order when their
 *     non-batch dimensions match its own and their rows still fit max_batch_size
 *     (a request that cannot join waits for a later batch, never longer than
 *     until it is the oldest);
 *   - a batch of max_batch_size rows runs at once; with preferred_batch_size,
 *     the largest preferred size that the waiting requests make up runs at once;
 *   - otherwise the batch waits until the oldest request has waited
 *     max_queue_delay_microseconds (0: not at all), then runs as large as it is.
 * As many executions run at once as the model has instances (worker threads,
 * runtime/src/backends/instances.ts): a batch forms whenever an instance is
 * free, and requests arriving while every instance is busy form the next batch.
 *
 * A request that cannot be batched (an input without a batch dimension, inputs
 * that disagree on it, zero rows) runs alone. When a batched run fails, every
 * request in it is run alone, so each gets the answer, or the error, it would
 * have got without batching: one client's bad input cannot fail its neighbours.
 */
import type { Logger } from "pino";
import type { InferOptions, LoadedModel } from "../backends/backend.js";
import type { Parameters } from "../tensor/tensor.js";
import { InferenceError } from "../dataplane/errors.js";
import type { ModelStatistics } from "../registry/statistics.js";
import type { DynamicBatching } from "../repository/settings.js";
import { formatShape, type Tensor } from "../tensor/tensor.js";
import { batchKey, batchRows, concatRows, sliceRows, splittable } from "./tensors.js";

export interface BatcherOptions {
  model: string;
  version: string;
  maxBatchSize: number;
  batching: DynamicBatching;
  statistics: ModelStatistics;
  logger: Logger;
}

export interface BatchedResult {
  outputs: Tensor[];
  /** Milliseconds from enqueue until its execution started. */
  queueMs: number;
  /** Milliseconds the execution that served it took (shared by every request in a batch). */
  computeMs: number;
}

interface Pending {
  /** Inputs in the model's input order. */
  inputs: Tensor[];
  outputNames: readonly string[];
  /** Passed on when the request runs alone; a batch of several runs without request parameters. */
  parameters: Parameters | undefined;
  /** The caller lets go of its input arrays (InferOptions.transfer). */
  transfer: boolean;
  /** Rows along the batch dimension; undefined: runs alone. */
  rows: number | undefined;
  key: string;
  enqueued: number;
  resolve(result: BatchedResult): void;
  reject(err: unknown): void;
}

/** Thrown at load when the settings ask for batching that the graph cannot do. */
export class BatchingConfigError extends Error {}

export class DynamicBatcher {
  private queue: Pending[] = [];
  /** Executions in progress; at most `concurrency`. */
  private running = 0;
  private readonly concurrency: number;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private readonly delayMs: number;
  private readonly preferred: ReadonlySet<number>;
  private readonly inputOrder: readonly string[];
  private warnedUnsplittable = false;
  private closed = false;

  constructor(
    private readonly model: LoadedModel,
    private readonly options: BatcherOptions,
  ) {
    const { maxBatchSize } = options;
    if (!(maxBatchSize > 0)) throw new BatchingConfigError("dynamic batching needs max_batch_size > 0");
    // Triton's contract: with max_batch_size > 0 every input and output is batch-first.
    for (const [kind, tensors] of [["input", model.inputs], ["output", model.outputs]] as const) {
      for (const t of tensors) {
        if (t.shape.length > 0 && t.shape[0] !== -1) {
          throw new BatchingConfigError(
            `dynamic batching needs a variable first (batch) dimension on every input and output; ${kind} '${t.name}' has shape ${formatShape(t.shape)}`,
          );
        }
      }
    }
    this.delayMs = options.batching.max_queue_delay_microseconds / 1000;
    this.preferred = new Set(options.batching.preferred_batch_size);
    this.inputOrder = model.inputs.map((t) => t.name);
    this.concurrency = Math.max(1, model.instanceCount ?? 1);
  }

  /** Requests waiting for an execution (not counting those in the running one). */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Runs one request's (validated) inputs, batched with others when possible.
   * Rejects with 503 and Retry-After when the queue is full.
   */
  infer(inputs: readonly Tensor[], outputNames: readonly string[], parameters?: Parameters, options: InferOptions = {}): Promise<BatchedResult> {
    const limit = this.options.batching.max_queue_size;
    if (this.closed) {
      return Promise.reject(new InferenceError(503, `model '${this.options.model}' version ${this.options.version} is unloading; retry shortly`, { "retry-after": "1" }));
    }
    if (limit > 0 && this.queue.length >= limit) {
      return Promise.reject(
        new InferenceError(503, `model '${this.options.model}' version ${this.options.version}: the batch queue is full (${limit} requests waiting); retry shortly`, {
          "retry-after": "1",
        }),
      );
    }
    const ordered = this.inModelOrder(inputs);
    return new Promise<BatchedResult>((resolve, reject) => {
      this.queue.push({ inputs: ordered, outputNames, parameters, transfer: options.transfer === true, rows: batchRows(ordered), key: batchKey(ordered), enqueued: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  /** Stops taking requests. Those already queued still run (the registry unloads once they have). */
  close(): void {
    this.closed = true;
  }

  private inModelOrder(inputs: readonly Tensor[]): Tensor[] {
    if (inputs.length !== this.inputOrder.length) return inputs.slice();
    const out = new Array<Tensor>(inputs.length);
    for (const t of inputs) {
      const i = this.inputOrder.indexOf(t.name);
      if (i < 0 || out[i]) return inputs.slice();
      out[i] = t;
    }
    return out;
  }

  private clearWait(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  private schedule(): void {
    if (this.running >= this.concurrency || this.queue.length === 0) return;
    const now = performance.now();
    const batch = this.pick(now);
    if (batch) {
      this.clearWait();
      void this.execute(batch);
      // Another instance may be free for the next batch.
      this.schedule();
      return;
    }
    if (this.timer || this.immediate) return;
    // Wait for the oldest request's deadline (or more requests, which call schedule() again).
    const wait = this.queue[0]!.enqueued + this.delayMs - now;
    const fire = () => {
      this.timer = undefined;
      this.immediate = undefined;
      this.schedule();
    };
    // Timers have millisecond resolution; the last fraction is waited out in event-loop turns.
    if (wait >= 1) this.timer = setTimeout(fire, Math.floor(wait));
    else this.immediate = setImmediate(fire);
  }

  /** The next batch to run now, or undefined to keep waiting. */
  private pick(now: number): Pending[] | undefined {
    const queue = this.queue;
    const head = queue[0]!;
    if (head.rows === undefined) {
      queue.shift();
      return [head];
    }
    const max = this.options.maxBatchSize;
    const batch = [head];
    const taken = [0];
    let rows = head.rows;
    // Largest prefix of the batch whose rows are a preferred size.
    let preferredCount = this.preferred.has(rows) ? 1 : 0;
    for (let i = 1; i < queue.length && rows < max; i++) {
      const p = queue[i]!;
      if (p.rows === undefined || p.key !== head.key || rows + p.rows > max) continue;
      batch.push(p);
      taken.push(i);
      rows += p.rows;
      if (this.preferred.has(rows)) preferredCount = batch.length;
    }
    let count: number;
    if (rows === max) count = batch.length;
    else if (preferredCount > 0) count = preferredCount;
    else if (now - head.enqueued >= this.delayMs) count = batch.length;
    else return undefined;
    const chosen = batch.slice(0, count);
    const remove = new Set(taken.slice(0, count));
    this.queue = remove.size === queue.length ? [] : queue.filter((_, i) => !remove.has(i));
    return chosen;
  }

  private async execute(batch: Pending[]): Promise<void> {
    this.running++;
    try {
      if (batch.length === 1) await this.runAlone(batch[0]!);
      else await this.runTogether(batch);
    } catch (err) {
      // A fault in the batcher itself: no request may be left waiting (settled ones ignore this).
      for (const p of batch) p.reject(err);
    } finally {
      this.running--;
      this.schedule();
    }
  }

  /** One request in one execution: exactly the unbatched path. */
  private async runAlone(p: Pending): Promise<void> {
    const started = performance.now();
    this.options.statistics.executionCount++;
    try {
      const outputs = await this.model.infer(p.inputs, p.outputNames, p.parameters, { transfer: p.transfer });
      const computeMs = performance.now() - started;
      this.options.statistics.executed(p.rows ?? 1, computeMs);
      p.resolve({ outputs, queueMs: started - p.enqueued, computeMs });
    } catch (err) {
      p.reject(err);
    }
  }

  private async runTogether(batch: Pending[]): Promise<void> {
    const started = performance.now();
    const inputs = batch[0]!.inputs.map((_, i) => concatRows(batch.map((p) => p.inputs[i]!)));
    const union: string[] = [];
    for (const p of batch) for (const name of p.outputNames) if (!union.includes(name)) union.push(name);
    let outputs: Tensor[];
    this.options.statistics.executionCount++;
    try {
      // The concatenated inputs are the batcher's own: handed over without a copy.
      outputs = await this.model.infer(inputs, union, undefined, { transfer: true });
    } catch {
      // Some request in the batch is one the model refuses: let each find out for itself.
      await this.runEachAlone(batch);
      return;
    }
    const computeMs = performance.now() - started;
    const totalRows = inputs[0]!.shape[0]!;
    this.options.statistics.executed(totalRows, computeMs);
    if (!outputs.every((t) => splittable(t, totalRows))) {
      if (!this.warnedUnsplittable) {
        this.warnedUnsplittable = true;
        const shapes = outputs.map((t) => `${t.name} ${formatShape(t.shape)}`).join(", ");
        this.options.logger.warn(
          { model: this.options.model, version: this.options.version, rows: totalRows, outputs: shapes },
          "batched outputs are not batch-first; running such batches one request at a time",
        );
      }
      await this.runEachAlone(batch);
      return;
    }
    const byName = new Map(outputs.map((t) => [t.name, t]));
    let start = 0;
    for (const p of batch) {
      const rows = p.rows!;
      const own = p.outputNames.map((name) => sliceRows(byName.get(name)!, totalRows, start, rows));
      start += rows;
      p.resolve({ outputs: own, queueMs: started - p.enqueued, computeMs });
    }
  }

  private async runEachAlone(batch: Pending[]): Promise<void> {
    for (const p of batch) await this.runAlone(p);
  }
}
