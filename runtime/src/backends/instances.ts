/**
 * Model instances on worker threads (Triton's instance_group): each model version
 * runs on N workers, each owning its own ONNX Runtime session
 * (instance-worker.mjs). The HTTP thread only hands tensors over and back, so a
 * model run of any length never delays another request or a probe, and N runs
 * proceed in parallel on N cores.
 *
 * An instance runs one execution at a time and holds up to PIPELINE_DEPTH runs
 * (the next ones already sent, so it never waits for the main thread); a request
 * goes to the instance holding the fewest, and waits in arrival order when all are
 * full (bounded upstream: the per-model in-flight limit and the batch queue).
 * Tensors cross without a copy when the caller lets go of them (`transfer`) and
 * the array owns its whole buffer; otherwise only the array's own bytes are
 * copied (never the body buffer a binary tensor is a view into).
 *
 * A worker that dies (an uncaught error in it, process.exit in it) fails only
 * the runs it held, with a 500 naming the instance; it is logged, counted and
 * started again while the other instances keep serving. A native abort inside
 * ONNX Runtime takes the whole process, threads cannot contain that (neither can
 * a worker's resourceLimits: its heap and ONNX Runtime's allocations are not
 * separable): Kubernetes restarts the pod.
 */
import { Worker } from "node:worker_threads";
import { InferenceError, invalidInput, unsupported } from "../dataplane/errors.js";
import { truncate } from "../tensor/datatypes.js";
import type { Tensor } from "../tensor/tensor.js";
import { warmupInputs } from "./warmup-inputs.js";
import type { InferOptions, LoadedModel, ModelLoadSpec, TensorMetadata, UnservedOutput } from "./backend.js";
import { DATATYPE_TO_ORT, ModelLoadError, ONNX_PLATFORM, ORT_TO_DATATYPE, rejectNul, signature, type OrtValueMetadata } from "./ort-session.js";

/** Told when an instance died and is being started again (metrics, tests). */
export type InstanceExitListener = (event: { model: string; version: string; instance: number; reason: string }) => void;

interface WireTensor {
  name: string;
  type: string;
  dims: number[];
  data: Tensor["data"];
}

type FromWorker =
  | {
      type: "ready";
      inputs: OrtValueMetadata[];
      outputs: OrtValueMetadata[];
      executionProviders: string[];
      fallback?: string;
      /** Labels of the ZipMap outputs served as probability tensors, by output. */
      classLabels?: Record<string, string[]>;
      /** ONNX types of the outputs that are still not tensors, by output. */
      outputTypes?: Record<string, string>;
    }
  | { type: "results"; results: Array<{ id: number; outputs?: WireTensor[]; message?: string }> }
  | { type: "released" };

interface Run {
  id: number;
  resolve(outputs: WireTensor[]): void;
  reject(err: unknown): void;
}

/** A run with its inputs in wire form, waiting for or posted to an instance. */
interface Job {
  run: Run;
  feeds: WireTensor[];
  outputNames: readonly string[];
  transfer: ArrayBuffer[];
}

/**
 * Runs one instance may hold at once: the one it is running and the next ones, already sent,
 * so the worker never waits for the main thread between runs. Runs posted in the same
 * event-loop turn travel in one message (one wake-up of the worker for several requests):
 * measured on `simple` at 32 connections, one message per run cost the HTTP thread about
 * 30 µs per request in postMessage alone.
 */
export const PIPELINE_DEPTH = 4;

const RESTART_BACKOFF_MS = [100, 1_000, 5_000, 30_000];

/** One worker thread and the runs it holds. */
class Instance {
  /** Undefined until first started. */
  worker!: Worker | undefined;
  /** Starting (or waiting to start again), serving, or stopped for good or until a restart. */
  phase: "starting" | "ready" | "stopped" = "starting";
  /** Runs sent (or about to be) and not yet answered, by id. */
  readonly runs = new Map<number, Run>();
  private outbox: Job[] = [];
  /** Why the worker failed, when it reported an error before exiting. */
  private failure: string | undefined;
  exits = 0;

  constructor(
    readonly index: number,
    private readonly pool: InstancePool,
    private readonly start: () => Worker,
  ) {}

  /** A serving instance is busy while it holds runs, idle otherwise. */
  get state(): "starting" | "idle" | "busy" | "stopped" {
    return this.phase === "ready" ? (this.runs.size > 0 ? "busy" : "idle") : this.phase;
  }

  /**
   * Starts the worker; resolves with its ready message, rejects when it fails to load.
   * `warm`: the instance runs the warm-up inference before it takes its first request.
   */
  spawn(warm = false): Promise<Extract<FromWorker, { type: "ready" }>> {
    this.phase = "starting";
    this.failure = undefined;
    const worker = this.start();
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on("message", (message: FromWorker) => {
        if (message.type === "ready") {
          ready = true;
          resolve(message);
          this.phase = "ready";
          // The warm-up run's answer hands the instance to the first waiters.
          if (warm && this.pool.warm(this)) return;
          this.pool.instanceFree(this);
        } else if (message.type === "results") {
          for (const result of message.results) {
            const run = this.runs.get(result.id);
            if (!run) continue;
            this.runs.delete(result.id);
            if (result.outputs) run.resolve(result.outputs);
            else run.reject({ message: result.message });
          }
          this.pool.instanceFree(this);
        }
      });
      worker.on("error", (err) => {
        this.failure = String(err?.message ?? err);
      });
      worker.on("exit", (code) => {
        if (!ready) {
          this.phase = "stopped";
          reject(new ModelLoadError(this.failure ?? `the model instance exited with code ${code} while loading`));
          return;
        }
        if (this.phase === "stopped") return; // released on purpose
        this.phase = "stopped";
        this.exits++;
        const reason = this.failure ?? `exit code ${code}`;
        const lost = [...this.runs.values()];
        this.runs.clear();
        this.outbox = [];
        this.pool.instanceDied(this, reason, lost);
      });
    });
  }

  /** Whether the instance can take another run now. */
  get open(): boolean {
    return this.phase === "ready" && this.runs.size < PIPELINE_DEPTH;
  }

  /** Hands a run to the worker: with the others of this event-loop turn, in one message. */
  post(job: Job): void {
    this.runs.set(job.run.id, job.run);
    this.outbox.push(job);
    if (this.outbox.length === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const jobs = this.outbox;
    this.outbox = [];
    if (jobs.length === 0 || this.phase === "stopped" || !this.worker) return;
    const transfer = jobs.flatMap((j) => j.transfer);
    this.worker.postMessage({ type: "run", runs: jobs.map(({ run, feeds, outputNames }) => ({ id: run.id, feeds, outputNames })) }, transfer);
  }

  /**
   * Releases the session and ends the thread. Called once the instance is idle (the registry
   * waits for in-flight requests), so the worker reads the message at once. Never
   * Worker.terminate() a worker inside a run: onnxruntime-node then throws from native code
   * into a dying isolate, which aborts the whole process; only a worker still loading its
   * session (no run yet) is terminated, when it does not answer in time.
   */
  async release(graceMs = 5_000): Promise<void> {
    if (this.phase === "stopped" || !this.worker) {
      this.phase = "stopped";
      return;
    }
    const wasRunning = this.runs.size > 0;
    this.phase = "stopped";
    const worker = this.worker;
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.postMessage({ type: "release" });
    const timer = wasRunning ? undefined : setTimeout(() => void worker.terminate(), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Wire form of an input: its own bytes only, handed over without a copy when allowed. */
function toWire(t: Tensor, transfer: boolean, list: ArrayBuffer[]): WireTensor {
  const type = DATATYPE_TO_ORT[t.datatype];
  if (!type) throw unsupported(`datatype ${t.datatype} cannot be fed to ONNX Runtime`);
  if (type === "string") {
    rejectNul(t.name, t.data as string[]);
    return { name: t.name, type, dims: t.shape, data: t.data };
  }
  const view = t.data as Exclude<Tensor["data"], string[]>;
  const owned = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer;
  // A view into a larger buffer (a binary body) would be cloned whole: copy just its bytes.
  const data = transfer && owned ? view : view.slice();
  list.push(data.buffer as ArrayBuffer);
  return { name: t.name, type, dims: t.shape, data };
}

/** The class labels the graph declares, when its ZipMaps (usually one) agree on them. */
function modelLabels(byOutput: Record<string, string[]> | undefined): string[] | undefined {
  const lists = Object.values(byOutput ?? {});
  if (lists.length === 0) return undefined;
  const first = lists[0]!;
  return lists.every((l) => l.length === first.length && l.every((label, i) => label === first[i])) ? first : undefined;
}

export class InstancePool implements LoadedModel {
  readonly platform = ONNX_PLATFORM;
  readonly instances: Instance[] = [];
  /** Runs that found every instance full, in arrival order (bounded upstream: in-flight limit, batch queue). */
  private readonly waiting: Job[] = [];
  private nextId = 1;
  private closed = false;
  inputs: TensorMetadata[] = [];
  outputs: TensorMetadata[] = [];
  executionProviders: string[] = [];
  labels: string[] | undefined;
  unservedOutputs: UnservedOutput[] = [];

  constructor(
    private readonly spec: ModelLoadSpec,
    readonly instanceCount: number,
    private readonly start: () => Worker,
    private readonly onExit?: InstanceExitListener,
  ) {}

  /**
   * Starts the first instance, whose session gives the signature; the model can serve (and the
   * registry warm it and call it READY) as soon as that one is up. The others start meanwhile and
   * join once each has run its own warm-up, so a cold start waits for one session, not N.
   */
  async load(): Promise<void> {
    for (let i = 0; i < this.instanceCount; i++) this.instances.push(new Instance(i, this, this.start));
    let ready: Extract<FromWorker, { type: "ready" }>;
    try {
      ready = await this.instances[0]!.spawn();
    } catch (err) {
      await this.unload();
      throw err;
    }
    if (ready.fallback !== undefined) {
      this.spec.logger.warn(
        { model: this.spec.name, version: this.spec.version, requested: this.spec.settings.execution_providers, error: ready.fallback },
        "execution providers unavailable; falling back to cpu",
      );
    }
    try {
      this.inputs = signature("input", ready.inputs, this.spec.settings.inputs);
      this.outputs = signature("output", ready.outputs, this.spec.settings.outputs);
      this.unservedOutputs = ready.outputs.filter((o) => !o.isTensor).map((o) => ({ name: o.name, type: ready.outputTypes?.[o.name] ?? "a non-tensor value" }));
      const unserved = this.unservedOutputs.map((o) => `'${o.name}' (${o.type})`).join(", ");
      if (this.outputs.length === 0) {
        throw new ModelLoadError(`the model has no tensor outputs${unserved ? `: ${unserved} cannot be served, ONNX Runtime's Node.js API returns tensors only` : ""}`);
      }
      // Served without them rather than refused: the tensor outputs work, and a model that loaded before
      // keeps loading. Said in the log, the metadata (parameters.unserved_outputs) and to a request naming one.
      if (unserved) {
        this.spec.logger.warn({ model: this.spec.name, version: this.spec.version, outputs: this.unservedOutputs }, "model outputs that are not tensors cannot be served; serving the others");
      }
    } catch (err) {
      await this.unload();
      throw err;
    }
    this.labels = modelLabels(ready.classLabels);
    this.executionProviders = ready.executionProviders;
    for (const instance of this.instances.slice(1)) this.startAgain(instance, 0);
  }

  /**
   * Posts the warm-up inference (zeros, empty strings) to an instance that just started;
   * false when the model takes no warm-up. A graph that refuses zeros still serves: the
   * failure is only logged, as the registry does for the first instance.
   */
  warm(instance: Instance): boolean {
    if (!this.spec.warmup || this.closed) return false;
    const transfer: ArrayBuffer[] = [];
    const feeds = warmupInputs(this.inputs).map((t) => toWire(t, true, transfer));
    const run: Run = {
      id: this.nextId++,
      resolve: () => undefined,
      reject: (err: unknown) => {
        this.spec.logger.debug({ model: this.spec.name, version: this.spec.version, instance: instance.index, error: (err as { message?: string }).message }, "warm-up inference failed on an instance; it serves anyway");
      },
    };
    instance.post({ run, feeds, outputNames: this.outputs.map((o) => o.name), transfer });
    return true;
  }

  /** Starts an instance (again) after `delay` ms, retrying with back-off while the model is loaded. */
  private startAgain(instance: Instance, attempt: number, delay = 0): void {
    const { name, version } = this.spec;
    instance.phase = "starting";
    setTimeout(() => {
      if (this.closed) return;
      instance.spawn(true).then(
        () => {
          if (attempt > 0 || instance.exits > 0) this.spec.logger.info({ model: name, version, instance: instance.index }, "model instance restarted");
        },
        (err: unknown) => {
          this.spec.logger.error({ model: name, version, instance: instance.index, error: (err as Error).message }, "model instance failed to start; trying again");
          // Nothing can serve the requests waiting for an instance: they get a 503 rather than wait on.
          if (this.liveInstances() === 0) this.refuseWaiting();
          this.startAgain(instance, attempt + 1, RESTART_BACKOFF_MS[Math.min(attempt, RESTART_BACKOFF_MS.length - 1)]!);
        },
      );
    }, delay).unref();
  }

  /** Instances able to run now or after their current run (not starting again after a failure). */
  liveInstances(): number {
    return this.instances.filter((i) => i.phase === "ready").length;
  }

  async infer(inputs: readonly Tensor[], outputNames: readonly string[], _parameters?: unknown, options: InferOptions = {}): Promise<Tensor[]> {
    if (this.closed) throw new InferenceError(503, `model '${this.spec.name}' version ${this.spec.version} is unloading; retry shortly`, { "retry-after": "1" });
    const transfer: ArrayBuffer[] = [];
    const feeds = inputs.map((t) => toWire(t, options.transfer === true, transfer));
    const outputs = await new Promise<WireTensor[]>((resolve, reject) => {
      this.dispatch({ run: { id: this.nextId++, resolve, reject }, feeds, outputNames, transfer });
    }).catch((err: unknown) => {
      if (err instanceof InferenceError) throw err;
      // The request passed every check against the signature, so a failing run means the
      // graph refused these values (an empty batch, an index out of range): the client's to fix.
      const message = (err as { message?: string }).message ?? String(err);
      throw invalidInput(`model '${this.spec.name}' could not run on this input: ${truncate(message.replace(/\s+/g, " "), 300)}`);
    });
    return outputs.map((o) => ({ name: o.name, datatype: ORT_TO_DATATYPE[o.type]!, shape: o.dims, data: o.data }));
  }

  /** To the instance holding the fewest runs (an idle one first), or to the queue when all are full. */
  private dispatch(job: Job): void {
    let best: Instance | undefined;
    for (const instance of this.instances) {
      if (instance.open && (!best || instance.runs.size < best.runs.size)) best = instance;
    }
    if (best && this.waiting.length === 0) return best.post(job);
    if (this.liveInstances() === 0 && !this.instances.some((i) => i.phase === "starting")) return job.run.reject(this.noInstance());
    this.waiting.push(job);
  }

  private noInstance(): InferenceError {
    return new InferenceError(503, `model '${this.spec.name}' version ${this.spec.version} has no running instance; retry shortly`, { "retry-after": "1" });
  }

  private refuseWaiting(): void {
    for (const job of this.waiting.splice(0)) job.run.reject(this.noInstance());
  }

  /** Called by an instance that answered runs or (re)started: the longest waiters get its room. */
  instanceFree(instance: Instance): void {
    while (this.waiting.length > 0 && instance.open) instance.post(this.waiting.shift()!);
  }

  instanceDied(instance: Instance, reason: string, lost: Run[]): void {
    const { name, version } = this.spec;
    for (const run of lost) run.reject(new InferenceError(500, `model '${name}' version ${version}: instance ${instance.index} stopped unexpectedly during this request (${truncate(reason, 200)}); it is being restarted`));
    this.spec.logger.error({ model: name, version, instance: instance.index, reason, live_instances: this.liveInstances() }, "model instance stopped unexpectedly; restarting it");
    this.onExit?.({ model: name, version, instance: instance.index, reason });
    if (this.closed) return;
    this.startAgain(instance, 0, RESTART_BACKOFF_MS[0]);
  }

  async unload(): Promise<void> {
    this.closed = true;
    this.refuseWaiting();
    await Promise.all(this.instances.map((i) => i.release()));
  }
}
