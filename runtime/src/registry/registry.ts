/**
 * The model registry: which model versions are loaded, loading, or broken, and
 * why. It owns model lifecycles; the repository only describes what is on disk.
 */
import type { Logger } from "pino";
import type { LoadedModel, ModelBackend } from "../backends/backend.js";
import { modelNotFound, modelNotReady } from "../dataplane/errors.js";
import type { ModelDescriptor } from "../repository/repository.js";
import type { ModelSettings } from "../repository/settings.js";

export type ModelState = "LOADING" | "READY" | "UNAVAILABLE" | "UNLOADING";

export interface ModelVersion {
  readonly name: string;
  readonly version: string;
  state: ModelState;
  reason?: string;
  model?: LoadedModel;
  settings: ModelSettings;
  loadMs?: number;
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

export class ModelRegistry {
  private readonly models = new Map<string, ModelVersion[]>();

  constructor(
    private readonly backend: ModelBackend,
    private readonly logger: Logger,
  ) {}

  /** Loads (or reloads) every selected version of a model; resolves when each is READY or UNAVAILABLE. */
  async load(descriptor: ModelDescriptor): Promise<void> {
    const { name, settings } = descriptor;
    const previous = this.models.get(name);
    const unavailable = (version: string, reason: string): ModelVersion => ({ name, version, state: "UNAVAILABLE", reason, settings });

    let next: ModelVersion[];
    if (descriptor.settingsError) {
      next = [unavailable("1", descriptor.settingsError)];
    } else {
      const selected = selectVersions(descriptor);
      if (selected.length === 0) {
        const reason = descriptor.versions.length === 0
          ? `no ${settings.default_model_filename} found in ${descriptor.dir}`
          : `the version policy selects none of the versions on disk (${descriptor.versions.map((v) => v.version).join(", ")})`;
        next = [unavailable("1", reason)];
      } else {
        next = selected.map((version) => ({ name, version, state: "LOADING", settings }));
      }
    }
    // Until the new versions are loaded, the old ones keep serving: requests never see a gap on reload.
    if (!previous) this.models.set(name, next);

    await Promise.all(
      next.filter((v) => v.state === "LOADING").map(async (entry) => {
        const file = descriptor.versions.find((v) => v.version === entry.version)?.file;
        if (!file) {
          Object.assign(entry, { state: "UNAVAILABLE", reason: `version ${entry.version} has no ${settings.default_model_filename}` });
          return;
        }
        const started = performance.now();
        try {
          entry.model = await this.backend.load({ name, version: entry.version, file, settings, logger: this.logger });
          entry.loadMs = performance.now() - started;
          entry.state = "READY";
          this.logger.info(
            { model: name, version: entry.version, load_ms: Math.round(entry.loadMs * 10) / 10, execution_providers: entry.model.executionProviders },
            "model loaded",
          );
        } catch (err) {
          entry.state = "UNAVAILABLE";
          entry.reason = `failed to load ${file}: ${(err as Error).message}`;
        }
      }),
    );
    for (const entry of next) {
      if (entry.state === "UNAVAILABLE") this.logger.error({ model: name, version: entry.version, reason: entry.reason }, "model unavailable");
    }
    this.models.set(name, next);
    if (previous) await this.release(previous);
  }

  /** Unloads every version of a model. Throws a 404 for a model the registry has never seen. */
  async unload(name: string): Promise<void> {
    const versions = this.models.get(name);
    if (!versions) throw modelNotFound(`model '${name}' is not in the registry`);
    this.models.delete(name);
    await this.release(versions);
  }

  private async release(versions: ModelVersion[]): Promise<void> {
    await Promise.all(
      versions.map(async (v) => {
        if (!v.model) return;
        v.state = "UNLOADING";
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
    if (!versions) throw modelNotFound(`model '${name}' not found`);
    return versions;
  }

  /** The named version, or the newest READY version (the newest of all when none is ready). */
  find(name: string, version?: string): ModelVersion {
    const versions = this.versions(name);
    if (version !== undefined) {
      const found = versions.find((v) => v.version === version);
      if (!found) {
        throw modelNotFound(`model '${name}' has no version '${version}' loaded (versions: ${versions.map((v) => v.version).join(", ")})`);
      }
      return found;
    }
    const sorted = [...versions].sort(byVersion);
    return sorted.filter((v) => v.state === "READY").pop() ?? sorted[sorted.length - 1]!;
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
