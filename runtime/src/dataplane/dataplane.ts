/**
 * The data plane: the protocol-neutral core every transport calls. It checks a
 * request against the model's signature, runs it, and answers typed tensors.
 */
import type { LoadedModel, TensorMetadata } from "../backends/backend.js";
import { execute, requestRows } from "../batching/execute.js";
import { acquire, type ModelRegistry, type ModelState, type ModelVersion, type ReadyModelVersion } from "../registry/registry.js";
import { ModelStatistics } from "../registry/statistics.js";
import { formatShape, type Tensor } from "../tensor/tensor.js";
import { InferenceError, invalidInput, unsupported } from "./errors.js";
import { classifyOutputs, requestedClassifications } from "./classification.js";
import type { InferenceRequest, InferenceResponse } from "./types.js";
import type { Protocol } from "./context.js";
import type { ModelSettings } from "../repository/settings.js";

/** What the transport knows about a request that the protocol body does not carry. */
export interface InferenceContext {
  requestId?: string;
  protocol?: Protocol;
  /** Who asked (the ingress' user header): quotas and usage are per user. */
  userId?: string;
  /** The request was admitted (quota charged) earlier: the async worker running a queued request. */
  admitted?: boolean;
}

/**
 * Admission control run after a request is validated and before it runs (quotas,
 * runtime/src/async): throws an InferenceError (429, 503) to refuse it.
 */
export type Admission = (request: InferenceRequest, context: InferenceContext, settings: ModelSettings) => Promise<void>;

/**
 * A model version admitted for one request (DataPlane.admit): it counts against the
 * per-model in-flight limit, and holds the version loaded, until release() (idempotent).
 */
export interface AdmittedModel {
  readonly entry: ReadyModelVersion;
  release(): void;
}

/** Why admission refused a request, for the refusal metric. */
export type RefusalReason = "not_ready" | "inflight_limit" | "batch_queue_full";

/** Told of every inference that reached a model, after it finished: success (response) or failure (error). */
export type InferenceListener = (event: {
  request: InferenceRequest;
  response?: InferenceResponse;
  error?: unknown;
  context: InferenceContext;
  modelVersion: string;
}) => void;

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
  parameters?: Record<string, unknown>;
}

export interface ModelStatus {
  name: string;
  version: string;
  state: ModelState;
  reason?: string;
}

function names(tensors: readonly { name: string }[]): string {
  return tensors.map((t) => t.name).join(", ");
}

function checkShape(model: string, input: Tensor, expected: TensorMetadata, maxBatchSize: number): void {
  const { shape } = input;
  const fits = shape.length === expected.shape.length && expected.shape.every((d, i) => d === -1 || d === shape[i]);
  if (!fits) {
    throw invalidInput(`input '${input.name}': shape ${formatShape(shape)} does not match model '${model}' shape ${formatShape(expected.shape)}`);
  }
  if (maxBatchSize > 0 && (shape[0] ?? 0) > maxBatchSize) {
    throw invalidInput(`input '${input.name}': batch size ${shape[0]} exceeds max_batch_size ${maxBatchSize} of model '${model}'`);
  }
}

/** Checks the inputs against the model signature, in the order a user would fix them. */
export function validateInputs(modelName: string, model: LoadedModel, inputs: readonly Tensor[], maxBatchSize: number): void {
  const seen = new Set<string>();
  for (const input of inputs) {
    if (seen.has(input.name)) throw invalidInput(`input '${input.name}' appears more than once in the request`);
    seen.add(input.name);
    const expected = model.inputs.find((m) => m.name === input.name);
    if (!expected) {
      throw invalidInput(`model '${modelName}' has no input named '${input.name}'; its inputs are: ${names(model.inputs)}`);
    }
    if (input.datatype !== expected.datatype) {
      throw invalidInput(`input '${input.name}': datatype ${input.datatype} does not match model '${modelName}', which expects ${expected.datatype}`);
    }
    checkShape(modelName, input, expected, maxBatchSize);
  }
  const missing = model.inputs.filter((m) => !seen.has(m.name));
  if (missing.length > 0) {
    throw invalidInput(`missing input${missing.length > 1 ? "s" : ""} ${missing.map((m) => `'${m.name}'`).join(", ")} for model '${modelName}', which requires: ${names(model.inputs)}`);
  }
}

function selectOutputs(modelName: string, model: LoadedModel, request: InferenceRequest): string[] {
  if (!request.outputs || request.outputs.length === 0) return model.outputs.map((o) => o.name);
  const seen = new Set<string>();
  for (const { name } of request.outputs) {
    if (seen.has(name)) throw invalidInput(`output '${name}' is requested more than once`);
    if (!model.outputs.some((o) => o.name === name)) {
      const unserved = model.unservedOutputs?.find((o) => o.name === name);
      if (unserved) throw unsupported(`model '${modelName}' output '${name}' is ${unserved.type}, which this runtime cannot serve (tensors only); its outputs are: ${names(model.outputs)}`);
      throw invalidInput(`model '${modelName}' has no output named '${name}'; its outputs are: ${names(model.outputs)}`);
    }
    seen.add(name);
  }
  return [...seen];
}

export class DataPlane {
  private starting = true;
  private readonly listeners: InferenceListener[] = [];

  constructor(
    readonly registry: ModelRegistry,
    private readonly server: ServerMetadata,
    private readonly options: { strictReadiness: boolean; maxInflightPerModel?: number } = { strictReadiness: true },
  ) {}

  private admission?: Admission;

  setAdmission(admission: Admission | undefined): void {
    this.admission = admission;
  }

  private readonly refusalListeners: ((reason: RefusalReason, model: string) => void)[] = [];

  /** Told of every request admit() refuses with a 503 (for metrics). */
  onRefusal(listener: (reason: RefusalReason, model: string) => void): void {
    this.refusalListeners.push(listener);
  }

  private refuse(reason: RefusalReason, model: string, error: InferenceError): InferenceError {
    for (const listener of this.refusalListeners) listener(reason, model);
    return error;
  }

  /**
   * Admission, decided from the model and version alone, before a transport reads the
   * request body: 404 for an unknown model or version; 503 with Retry-After when the
   * version is not READY, has maxInflightPerModel requests in progress, or its dynamic
   * batch queue is full. An admitted request counts as in flight from here (its body
   * may still be arriving) until the caller releases it, in a `finally`; pass the
   * admission to infer() so the request is not counted twice.
   */
  admit(name: string, version?: string): AdmittedModel {
    return this.admitVersion(this.registry.find(name, version));
  }

  /** admit() for a version the caller has already found in the registry. */
  admitVersion(entry: ModelVersion): AdmittedModel {
    const { name } = entry;
    if (entry.state !== "READY" || !entry.model) {
      // A broken version needs an operator (or a repository load); the others are moments away.
      const retryAfter = entry.state === "UNAVAILABLE" ? "30" : "1";
      throw this.refuse("not_ready", name, new InferenceError(503, `model '${name}' version ${entry.version} is not ready: ${entry.state}${entry.reason ? ` (${entry.reason})` : ""}`, { "retry-after": retryAfter }));
    }
    const limit = this.options.maxInflightPerModel;
    if (limit !== undefined && entry.inflight >= limit) {
      // Shed load rather than queue without bound: Knative's activator and clients retry a 503.
      throw this.refuse("inflight_limit", name, new InferenceError(503, `model '${name}' has ${entry.inflight} requests in progress, its limit; retry shortly`, { "retry-after": "1" }));
    }
    const queueLimit = entry.settings.dynamic_batching?.max_queue_size ?? 0;
    if (entry.batcher && queueLimit > 0 && entry.batcher.queued >= queueLimit) {
      throw this.refuse("batch_queue_full", name, new InferenceError(503, `model '${name}' version ${entry.version}: the batch queue is full (${queueLimit} requests waiting); retry shortly`, { "retry-after": "1" }));
    }
    const release = acquire(entry);
    let released = false;
    return {
      entry: entry as ReadyModelVersion,
      release: () => {
        if (released) return;
        released = true;
        release();
      },
    };
  }

  /**
   * Checks a request against its model without running it (what infer() checks
   * first): for requests queued to run later. Returns the version and settings.
   */
  validate(request: InferenceRequest): { version: string; settings: ModelSettings } {
    const entry = this.registry.findReady(request.modelName, request.modelVersion);
    validateInputs(request.modelName, entry.model, request.inputs, entry.settings.max_batch_size);
    selectOutputs(request.modelName, entry.model, request);
    requestedClassifications(request.modelName, entry.model.outputs, request);
    return { version: entry.version, settings: entry.settings };
  }

  addListener(listener: InferenceListener): void {
    this.listeners.push(listener);
  }

  private notify(event: Parameters<InferenceListener>[0]): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener (the inference logger) must never fail an inference.
      }
    }
  }

  /** Called once the initial model loads have settled; until then the server is not ready. */
  startupComplete(): void {
    this.starting = false;
  }

  live(): boolean {
    return true;
  }

  private draining = false;

  /** Readiness turns 503 at once and stays so: the pod is leaving. */
  beginDrain(): void {
    this.draining = true;
  }

  isDraining(): boolean {
    return this.draining;
  }

  notReadyReason(): string {
    if (this.draining) return "shutting down";
    return this.starting ? "models are loading" : "no model is ready";
  }

  ready(): boolean {
    if (this.starting || this.draining) return false;
    if (this.options.strictReadiness) return this.registry.allReady();
    return !this.registry.all().some((v) => v.state === "LOADING");
  }

  metadata(): ServerMetadata {
    return this.server;
  }

  modelStatuses(): ModelStatus[] {
    return this.registry.all().map(({ name, version, state, reason }) => (reason ? { name, version, state, reason } : { name, version, state }));
  }

  /** Throws 404 for an unknown model or version; otherwise says whether it is READY. */
  modelReady(name: string, version?: string): { ready: boolean; version: string; state: ModelState; reason?: string } {
    const entry = this.registry.find(name, version);
    return { ready: entry.state === "READY", version: entry.version, state: entry.state, reason: entry.reason };
  }

  modelMetadata(name: string, version?: string): ModelMetadata {
    const entry = this.registry.findReady(name, version);
    const versions = version !== undefined ? [entry.version] : this.registry.versions(name).filter((v) => v.state === "READY").map((v) => v.version);
    const metadata: ModelMetadata = {
      name,
      versions,
      platform: entry.model.platform,
      inputs: [...entry.model.inputs],
      outputs: [...entry.model.outputs],
    };
    const parameters: Record<string, unknown> = { ...entry.settings.parameters };
    if (entry.settings.max_batch_size > 0) parameters.max_batch_size = entry.settings.max_batch_size;
    const labels = entry.settings.labels ?? entry.model.labels;
    if (labels) parameters.labels = labels;
    if (entry.model.unservedOutputs?.length) parameters.unserved_outputs = entry.model.unservedOutputs;
    if (Object.keys(parameters).length > 0) metadata.parameters = parameters;
    return metadata;
  }

  /**
   * Runs a request. `admitted`: the admission a transport obtained before reading the
   * body (admit()), which the caller releases; without it (gRPC, the async worker)
   * infer() admits the request itself and releases it when done.
   */
  async infer(request: InferenceRequest, context: InferenceContext = {}, admitted?: AdmittedModel): Promise<InferenceResponse> {
    if (admitted && admitted.entry.name !== request.modelName) {
      throw new Error(`admitted for model '${admitted.entry.name}' but the request is for '${request.modelName}'`);
    }
    const own = admitted ? undefined : this.admit(request.modelName, request.modelVersion);
    const { entry } = admitted ?? own!;
    const { model, settings, statistics } = entry;
    const started = performance.now();
    try {
      validateInputs(request.modelName, model, request.inputs, settings.max_batch_size);
      const outputNames = selectOutputs(request.modelName, model, request);
      // The classification extension: checked now, applied to the outputs once the model has run.
      const classes = requestedClassifications(request.modelName, model.outputs, request);
      if (this.admission && context.admitted !== true) await this.admission(request, context, settings);
      const dispatched = performance.now();
      ModelStatistics.add(statistics.stats.compute_input, dispatched - started);
      // Dynamic batching hook (runtime/src/batching): through the version's batcher when it has one;
      // records queue and compute time, and counts executions (one per batch).
      // The input arrays cross to the model's worker without a copy unless a listener (the
      // inference logger) still reads them after the run.
      const raw = await execute(entry, request, outputNames, dispatched, { transfer: this.listeners.length === 0 });
      const computed = performance.now();
      const outputs = classes
        ? classifyOutputs(raw, classes, { modelName: request.modelName, batched: settings.max_batch_size > 0, labels: settings.labels ?? model.labels })
        : raw;
      const response: InferenceResponse = { modelName: request.modelName, modelVersion: entry.version, outputs };
      if (request.id !== undefined) response.id = request.id;
      const finished = performance.now();
      ModelStatistics.add(statistics.stats.compute_output, finished - computed);
      ModelStatistics.add(statistics.stats.success, finished - started);
      statistics.inferenceCount += requestRows(request, settings.max_batch_size);
      statistics.lastInference = Date.now();
      if (this.listeners.length > 0) this.notify({ request, response, context, modelVersion: entry.version });
      return response;
    } catch (err) {
      ModelStatistics.add(statistics.stats.fail, performance.now() - started);
      if (this.listeners.length > 0) this.notify({ request, error: err, context, modelVersion: entry.version });
      throw err;
    } finally {
      own?.release();
    }
  }

  /** Triton-shaped statistics for every loaded version, or for one model (and version). */
  statistics(name?: string, version?: string) {
    const entries = name === undefined ? this.registry.all() : version === undefined ? this.registry.versions(name) : [this.registry.find(name, version)];
    return { model_stats: entries.map((e) => e.statistics.toJSON(e.name, e.version)) };
  }
}
