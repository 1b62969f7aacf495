/**
 * The model registry: which model versions are loaded, loading, or broken, and
 * why. It owns model lifecycles; the repository only describes what is on disk.
 */
import { relative } from "node:path";
import type { Logger } from "pino";
import type { LoadedModel, ModelBackend } from "../backends/backend.js";
import { DynamicBatcher } from "../batching/batcher.js";
import { modelNotFound, modelNotReady } from "../dataplane/errors.js";
import type { ModelDescriptor } from "../repository/repository.js";
import type { ModelSettings } from "../repository/settings.js";
import { ModelStatistics, type StatisticsObserver } from "./statistics.js";
import { warmup } from "./warmup.js";

export type ModelState = "LOADING" | "READY" | "UNAVAILABLE" | "UNLOADING";

export interface ModelVersion {
  readonly name: string;
  readonly version: string;
  state: ModelState;
  reason?: string;
  model?: LoadedModel;
  settings: ModelSettings;
  loadMs?: number;
  statistics: ModelStatistics;
  /** Requests currently using `model`; an unload waits for this to reach zero. */
  inflight: number;
  onIdle?: () => void;
  /** Set when the settings enable dynamic_batching: inferences go through it (runtime/src/batching). */
  batcher?: DynamicBatcher;
}

export interface RegistryOptions {
  /** Histograms for each model version's executions and queue waits (the server's metrics). */
  observe?: (model: string, version: string) => StatisticsObserver;
  /** One warm-up inference per model version before it is READY (config.warmup; a model's settings may opt out). Default true. */
  warmup?: boolean;
}

/**
 * How every UNAVAILABLE reason begins, whatever failed (settings, files, the backend): clients and
 * operators read readiness, model-ready and repository-index reasons for this, as for Triton's.
 */
export const FAILED_TO_LOAD = "failed to load";

/**
 * Triton's wording for a model or version the server does not have (triton-inference-server/core,
 * model_repository_manager.cc and model_lifecycle.cc): tritonclient's own examples check that the
 * message starts with "Request for unknown model". The status stays KServe's 404 (gRPC NOT_FOUND).
 */
export function unknownModel(name: string, version?: string): string {
  return version === undefined
    ? `Request for unknown model: '${name}' is not found`
    : `Request for unknown model: '${name}' version ${version} is not found`;
}

/** A model version known to be ready, with its loaded backend model. */
export type ReadyModelVersion = ModelVersion & { model: LoadedModel; state: "READY" };

const byVersion = (a: ModelVersion, b: ModelVersion) => Number(a.version) - Number(b.version);

/** The versions a Triton-style version policy selects from those on disk. */
export function selectVersions(descriptor: ModelDescriptor): string[] {
  const all = descriptor.versions.map((v) => v.version);
  const policy = descriptor.settings.version_policy;
  if ("all" in policy) return all;
  if ("specific" in policy) return all.filter((v) => policy.specific.versions.map((s) => String(Number(s))).includes(v));
  return all.slice(-policy.latest.num_versions);
}

/** Marks a request as using a model version until the returned function is called. */
export function acquire(entry: ModelVersion): () => void {
  entry.inflight++;
  return () => {
    if (--entry.inflight === 0 && entry.onIdle) entry.onIdle();
  };
}

function idle(entry: ModelVersion): Promise<void> {
  if (entry.inflight === 0) return Promise.resolve();
  return new Promise((resolve) => {
    entry.onIdle = resolve;
  });
}

export class ModelRegistry {
  private readonly models = new Map<string, ModelVersion[]>();
  /** Load and unload calls for one model run one after another. */
  private readonly pending = new Map<string, Promise<unknown>>();

  constructor(
    private readonly backend: ModelBackend,
    private readonly logger: Logger,
    private readonly options: RegistryOptions = {},
  ) {}

  private serialize<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.pending.get(name);
    // Start at once when idle, so the model shows LOADING before load() returns.
    const next = previous ? previous.catch(() => undefined).then(work) : work();
    this.pending.set(name, next);
    void next.finally(() => {
      if (this.pending.get(name) === next) this.pending.delete(name);
    }).catch(() => undefined);
    return next;
  }

  /**
   * Loads (or reloads) every selected version of a model; resolves when each is
   * READY or UNAVAILABLE. On reload the old versions serve until the new ones are
   * loaded, and a version that fails to reload keeps its old, working model.
   */
  load(descriptor: ModelDescriptor): Promise<ModelVersion[]> {
    return this.serialize(descriptor.name, () => this.loadNow(descriptor));
  }

  private async loadNow(descriptor: ModelDescriptor): Promise<ModelVersion[]> {
    const { name, settings } = descriptor;
    const previous = this.models.get(name);
    const entry = (version: string, state: ModelState, reason?: string): ModelVersion => ({
      name, version, state, reason, settings, statistics: new ModelStatistics(this.options.observe?.(name, version)), inflight: 0,
    });

    let next: ModelVersion[];
    if (descriptor.settingsError) {
      next = [entry("1", "UNAVAILABLE", `${FAILED_TO_LOAD}: ${descriptor.settingsError}`)];
    } else {
      const selected = selectVersions(descriptor);
      if (selected.length === 0) {
        const reason = descriptor.versions.length === 0
          ? `${FAILED_TO_LOAD}: no ${settings.default_model_filename} found in ${descriptor.dir}`
          : `${FAILED_TO_LOAD}: the version policy selects none of the versions on disk (${descriptor.versions.map((v) => v.version).join(", ")})`;
        next = [entry("1", "UNAVAILABLE", reason)];
      } else {
        next = selected.map((version) => entry(version, "LOADING"));
      }
    }
    if (!previous) this.models.set(name, next);

    await Promise.all(
      next.filter((v) => v.state === "LOADING").map(async (version) => {
        const file = descriptor.versions.find((v) => v.version === version.version)?.file;
        if (!file) {
          Object.assign(version, { state: "UNAVAILABLE", reason: `${FAILED_TO_LOAD}: version ${version.version} has no ${settings.default_model_filename} (nor a single other .onnx file to take instead)` });
          return;
        }
        const started = performance.now();
        try {
          const model = await this.backend.load({ name, version: version.version, file, settings, logger: this.logger, warmup: this.options.warmup !== false && settings.warmup });
          try {
            if (settings.dynamic_batching) {
              version.batcher = new DynamicBatcher(model, {
                model: name, version: version.version, maxBatchSize: settings.max_batch_size,
                batching: settings.dynamic_batching, statistics: version.statistics, logger: this.logger,
              });
            }
          } catch (err) {
            await model.unload().catch(() => undefined);
            throw err;
          }
          version.model = model;
          version.loadMs = performance.now() - started;
          const warmupMs = this.options.warmup !== false && settings.warmup ? await this.warm(name, version.version, model) : undefined;
          version.state = "READY";
          this.logger.info(
            {
              model: name, version: version.version, file: relative(descriptor.dir, file), load_ms: Math.round(version.loadMs * 10) / 10,
              ...(warmupMs !== undefined && { warmup_ms: Math.round(warmupMs * 10) / 10 }),
              execution_providers: model.executionProviders, ...(version.batcher && { dynamic_batching: settings.dynamic_batching }),
            },
            "model loaded",
          );
        } catch (err) {
          version.state = "UNAVAILABLE";
          version.reason = `${FAILED_TO_LOAD} ${file}: ${(err as Error).message}`;
        }
      }),
    );
    for (const v of next) {
      if (v.state !== "UNAVAILABLE") continue;
      this.logger.error({ model: name, version: v.version, reason: v.reason, dir: descriptor.dir }, "model unavailable");
      // Reasons reach clients (readiness, metadata): name files relative to the model, never by server path.
      v.reason = v.reason?.split(descriptor.dir).join(name);
    }
    // A failed reload keeps the working version it was meant to replace.
    const kept = next.map((v) => {
      const old = previous?.find((p) => p.version === v.version && p.state === "READY");
      return v.state !== "READY" && old ? old : v;
    });
    this.models.set(name, kept);
    if (previous) await this.release(previous.filter((p) => !kept.includes(p)));
    return next;
  }

  /** Unloads every version of a model. Throws a 404 for a model the registry has never seen. */
  unload(name: string): Promise<void> {
    return this.serialize(name, async () => {
      const versions = this.models.get(name);
      if (!versions) throw modelNotFound(unknownModel(name));
      for (const v of versions) if (v.state === "READY") v.state = "UNLOADING";
      await this.release(versions);
      this.models.delete(name);
    });
  }

  has(name: string): boolean {
    return this.models.has(name);
  }

  /**
   * The warm-up inference. A failure is logged and does not fail the model: zeros and empty
   * strings are not valid input for every graph (an index lookup, a shape computed from the
   * data), and a model that serves real requests must not be UNAVAILABLE for refusing them.
   */
  private async warm(name: string, version: string, model: LoadedModel): Promise<number | undefined> {
    try {
      return await warmup(model);
    } catch (err) {
      this.logger.warn(
        { model: name, version, error: (err as Error).message },
        "warm-up inference failed; the model serves anyway (set \"warmup\": false in its model-settings.json to skip it)",
      );
      return undefined;
    }
  }

  /** Unloads versions once the requests still using them have finished. */
  private async release(versions: ModelVersion[]): Promise<void> {
    await Promise.all(
      versions.map(async (v) => {
        if (!v.model) return;
        v.state = "UNLOADING";
        // Requests already queued in its batcher still run: they hold `inflight`.
        v.batcher?.close();
        await idle(v);
        try {
          await v.model.unload();
        } catch (err) {
          this.logger.warn({ model: v.name, version: v.version, error: (err as Error).message }, "unload failed");
        }
      }),
    );
  }

  names(): string[] {
    return [...this.models.keys()].sort();
  }

  versions(name: string): ModelVersion[] {
    const versions = this.models.get(name);
    if (!versions) throw modelNotFound(unknownModel(name));
    return versions;
  }

  /** The named version, or the newest READY version (the newest of all when none is ready). */
  find(name: string, version?: string): ModelVersion {
    const versions = this.versions(name);
    if (version !== undefined) {
      const found = versions.find((v) => v.version === version);
      if (!found) {
        throw modelNotFound(`${unknownModel(name, version)} (versions: ${versions.map((v) => v.version).join(", ")})`);
      }
      return found;
    }
    // Versions are stored in ascending order (the repository sorts them and load() keeps that order),
    // so the newest READY one is found without sorting or allocating on every request.
    for (let i = versions.length - 1; i >= 0; i--) if (versions[i]!.state === "READY") return versions[i]!;
    return versions[versions.length - 1]!;
  }

  /** Like find(), but throws a 503 naming the state and reason unless the version is READY. */
  findReady(name: string, version?: string): ReadyModelVersion {
    const entry = this.find(name, version);
    if (entry.state !== "READY" || !entry.model) {
      throw modelNotReady(`model '${name}' version ${entry.version} is not ready: ${entry.state}${entry.reason ? ` (${entry.reason})` : ""}`);
    }
    return entry as ReadyModelVersion;
  }

  all(): ModelVersion[] {
    return this.names().flatMap((n) => [...this.models.get(n)!].sort(byVersion));
  }

  /** True when every version the registry was asked to load is READY. */
  allReady(): boolean {
    for (const versions of this.models.values()) {
      for (const v of versions) if (v.state !== "READY") return false;
    }
    return true;
  }
}
