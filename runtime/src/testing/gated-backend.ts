/**
 * A model backend for tests that need a model run to be slow relative to a
 * timer, without depending on how fast this machine computes. It wraps a real
 * backend (ONNX Runtime on CPU by default; any ModelBackend, e.g. a worker
 * pool) and lets a test take hold of the next run of a named model:
 *
 *   const gate = new GatedBackend();
 *   const server = await startTestServer(repo, { requestTimeoutMs: 200 }, { backend: gate });
 *   const run = gate.hold("slow");          // the next run of "slow" waits at the gate
 *   const answer = fetch(...);              // the request reaches the model ...
 *   await run.entered;                      // ... whose run has started and now waits
 *   // assert what happens while it waits (the request timeout answers 504)
 *   run.release();                          // the run goes on into the real backend
 *   await run.finished;                     // and has finished there
 *
 * `gate.blockLoop("slow", ms)` instead makes the next run hold the event loop:
 * the real run, then a busy-wait until `ms` milliseconds (performance.now()) after
 * the run entered, and only then the answer, as a model computing on the event
 * loop thread does. No timer can fire meanwhile, however fast the machine.
 *
 * Only runs that start after hold()/blockLoop() are taken (warm-up runs at load
 * are long done by then); several holds on one model take its next runs in order.
 * Every run goes through the wrapped backend: real sessions, real tensors.
 */
import type { LoadedModel, ModelBackend, ModelLoadSpec } from "../backends/backend.js";
import { OnnxRuntimeBackend } from "../backends/onnxruntime.js";
import type { Tensor } from "../tensor/tensor.js";

/** One model run a test has taken hold of. */
export interface HeldRun {
  /** Resolves once the run has started (the backend was asked to infer) and is at the gate. */
  readonly entered: Promise<void>;
  /** Resolves once the run has finished in the wrapped backend; rejects with its error if it failed. */
  readonly finished: Promise<void>;
  /** Opens the gate: the run goes on. Idempotent; a no-op for blockLoop() runs (they never wait). */
  release(): void;
}

interface Hold extends HeldRun {
  model: string;
  /** Milliseconds to hold the event loop synchronously; undefined: wait for release(). */
  blockMs?: number;
  opened: Promise<void>;
  enter(): void;
  settle(error?: unknown): void;
}

/** Holds the event loop (this thread) until `ms` milliseconds after `from` (performance.now()). */
export function busyWaitUntil(from: number, ms: number): void {
  const deadline = from + ms;
  while (performance.now() < deadline) {
    // spin: a synchronous computation as far as the event loop can tell
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

export class GatedBackend implements ModelBackend {
  private readonly pending: Hold[] = [];
  private readonly taken = new Set<Hold>();

  constructor(private readonly inner: ModelBackend = new OnnxRuntimeBackend({ executionProviders: ["cpu"] })) {}

  get platform(): string {
    return this.inner.platform;
  }

  /** Takes hold of the next run of `model` (any version): it starts, then waits until release(). */
  hold(model: string): HeldRun {
    return this.add(model, undefined);
  }

  /**
   * The next run of `model` holds the event loop for `ms` milliseconds from when it starts
   * (at least the real run's own time): a run that blocks the loop, deterministically long.
   */
  blockLoop(model: string, ms: number): HeldRun {
    return this.add(model, ms);
  }

  /**
   * Opens the gate of every run held now and drops the holds no run has taken yet (call it in
   * `finally`, so that no run stays held past a test and no stale hold catches a later one).
   */
  releaseAll(): void {
    for (const h of [...this.pending, ...this.taken]) h.release();
    this.pending.length = 0;
  }

  async load(spec: ModelLoadSpec): Promise<LoadedModel> {
    return gatedModel(spec.name, await this.inner.load(spec), this);
  }

  /** For the gated models: the hold waiting for the next run of `model`, if any (taken by that run). */
  take(model: string): Hold | undefined {
    const i = this.pending.findIndex((h) => h.model === model);
    if (i < 0) return undefined;
    const [hold] = this.pending.splice(i, 1);
    this.taken.add(hold!);
    void hold!.finished.finally(() => this.taken.delete(hold!)).catch(() => undefined);
    return hold;
  }

  private add(model: string, blockMs: number | undefined): HeldRun {
    const entered = deferred();
    const opened = deferred();
    const finished = deferred();
    // A failed run is the test's to look at, when it awaits `finished`; never an unhandled rejection.
    finished.promise.catch(() => undefined);
    const hold: Hold = {
      model,
      blockMs,
      entered: entered.promise,
      finished: finished.promise,
      opened: opened.promise,
      release: opened.resolve,
      enter: entered.resolve,
      settle: (error?: unknown) => (error === undefined ? finished.resolve() : finished.reject(error)),
    };
    if (blockMs !== undefined) opened.resolve();
    this.pending.push(hold);
    return hold;
  }
}

/**
 * The wrapped model with its infer() gated; everything else (signature, execution providers,
 * instance counts, unload, whatever a backend adds) is the wrapped model's own.
 */
function gatedModel(name: string, inner: LoadedModel, gates: GatedBackend): LoadedModel {
  const infer = async (...args: Parameters<LoadedModel["infer"]>): Promise<Tensor[]> => {
    const hold = gates.take(name);
    if (!hold) return inner.infer(...args);
    const entered = performance.now();
    hold.enter();
    try {
      await hold.opened;
      const outputs = await inner.infer(...args);
      // The answer leaves in the same tick as the busy-wait ends: nothing else ran in between.
      if (hold.blockMs !== undefined) busyWaitUntil(entered, hold.blockMs);
      hold.settle();
      return outputs;
    } catch (err) {
      hold.settle(err);
      throw err;
    }
  };
  return new Proxy(inner, {
    get(target, property) {
      if (property === "infer") return infer;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
