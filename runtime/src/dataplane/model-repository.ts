/**
 * The model repository extension's handlers: index, load and unload, on top of
 * the registry (what is loaded) and the model source (what is on disk).
 */
import { formatZodError } from "./zod-errors.js";
import { InferenceError, invalidInput, modelNotFound } from "./errors.js";
import type { ModelRegistry, ModelState } from "../registry/registry.js";
import type { ModelSource } from "../repository/repository.js";
import { ModelSettingsSchema } from "../repository/settings.js";

export interface RepositoryIndexEntry {
  name: string;
  version?: string;
  state: ModelState;
  reason?: string;
}

export class ModelRepositoryHandlers {
  constructor(
    private readonly source: ModelSource,
    private readonly registry: ModelRegistry,
  ) {}

  /** Every model on disk and in the registry; those on disk but not loaded are UNAVAILABLE "unloaded". */
  async index(readyOnly: boolean): Promise<RepositoryIndexEntry[]> {
    const { models } = await this.source.discover();
    const entries: RepositoryIndexEntry[] = [];
    const names = new Set([...models.map((m) => m.name), ...this.registry.names()]);
    for (const name of [...names].sort()) {
      if (!this.registry.has(name)) {
        entries.push({ name, state: "UNAVAILABLE", reason: "unloaded" });
        continue;
      }
      for (const v of this.registry.versions(name)) {
        entries.push(v.reason ? { name, version: v.version, state: v.state, reason: v.reason } : { name, version: v.version, state: v.state });
      }
    }
    return readyOnly ? entries.filter((e) => e.state === "READY") : entries;
  }

  /**
   * Loads or reloads a model from the source. `config` (Triton's load parameter)
   * is model-settings JSON that replaces the file on disk for this load.
   */
  async load(name: string, config?: string): Promise<void> {
    const descriptor = await this.source.describe(name);
    if (!descriptor) throw modelNotFound(`model '${name}' is not in the model repository`);
    if (config !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(config);
      } catch (err) {
        throw invalidInput(`parameters.config is not valid JSON: ${(err as Error).message}`);
      }
      const parsed = ModelSettingsSchema.safeParse(json);
      if (!parsed.success) throw invalidInput(`invalid parameters.config: ${formatZodError(parsed.error)}`);
      descriptor.settings = parsed.data;
      delete descriptor.settingsError;
    }
    const versions = await this.registry.load(descriptor);
    const failed = versions.filter((v) => v.state !== "READY");
    if (failed.length > 0) {
      const kept = this.registry.versions(name).some((v) => v.state === "READY") ? "; the versions already serving keep serving" : "";
      throw new InferenceError(400, `failed to load model '${name}': ${failed.map((v) => `version ${v.version}: ${v.reason}`).join("; ")}${kept}`);
    }
  }

  /** Unloads a model once its in-flight requests finish. Unloading a model that is on disk but not loaded is a no-op. */
  async unload(name: string): Promise<void> {
    if (this.registry.has(name)) return this.registry.unload(name);
    if (!(await this.source.describe(name))) throw modelNotFound(`model '${name}' is not in the model repository`);
  }
}
