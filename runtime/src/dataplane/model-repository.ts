/**
 * The model repository extension's handlers: index, load and unload, on top of
 * the registry (what is loaded) and the model source (what is on disk).
 */
import { formatZodError } from "./zod-errors.js";
import { InferenceError, invalidInput, modelNotFound } from "./errors.js";
import { unknownModel, type ModelRegistry, type ModelState, type ModelVersion } from "../registry/registry.js";
import { describeModelDir, ModelRepository, type ModelDescriptor, type ModelSource } from "../repository/repository.js";
import { ModelSettingsSchema, type ModelSettings } from "../repository/settings.js";
import { isTritonConfig, TritonConfigError, tritonConfigToSettings } from "../repository/triton-config.js";
import { checkUploadPaths, stageModelFiles } from "../repository/upload.js";

export interface RepositoryIndexEntry {
  name: string;
  version?: string;
  state: ModelState;
  reason?: string;
}

/** A load request's parameters, whatever carried them. */
export interface LoadRequest {
  /** Triton's `config`: a Triton model configuration (JSON) or model-settings JSON, replacing the file on disk for this load. */
  config?: string;
  /** Triton's `file:<path>` parameters, decoded: the model directory to load from, replacing the one in the repository. */
  files?: ReadonlyMap<string, Uint8Array>;
}

/**
 * A load's `config` as model settings: Triton's model configuration (repository/triton-config.ts)
 * or this server's model-settings JSON. `base`: the settings on disk, for what Triton's cannot express.
 */
export function parseLoadConfig(config: string, name: string, base?: ModelSettings): ModelSettings {
  let json: unknown;
  try {
    json = JSON.parse(config);
  } catch (err) {
    throw invalidInput(`parameters.config is not valid JSON: ${(err as Error).message}`);
  }
  try {
    if (isTritonConfig(json)) return tritonConfigToSettings(json, name, base);
  } catch (err) {
    if (err instanceof TritonConfigError) throw invalidInput(`invalid parameters.config: ${err.message}`);
    throw err;
  }
  const parsed = ModelSettingsSchema.safeParse(json);
  if (!parsed.success) throw invalidInput(`invalid parameters.config: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

export class ModelRepositoryHandlers {
  /** Loads with files, one at a time per model: each replaces the model's directory. */
  private readonly uploads = new Map<string, Promise<unknown>>();

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
   * Loads or reloads a model from the source. `config` replaces the settings on disk for this
   * load; `files` (which need `config`, as in Triton) replace the model's directory.
   */
  async load(name: string, request: LoadRequest = {}): Promise<void> {
    const { config, files } = request;
    if (files && files.size > 0) return this.loadFiles(name, config, files);
    const onDisk = await this.source.describe(name);
    if (!onDisk) throw modelNotFound(`${unknownModel(name)} in the model repository`);
    // Described again with the given settings: their default_model_filename picks the version files.
    const descriptor = config === undefined ? onDisk : await this.source.describe(name, parseLoadConfig(config, name, onDisk.settingsError ? undefined : onDisk.settings));
    if (!descriptor) throw modelNotFound(`${unknownModel(name)} in the model repository`);
    await this.loadDescriptor(descriptor);
  }

  /** Triton's load with files: written into the repository, loaded from there, and only then made the model's directory. */
  private async loadFiles(name: string, config: string | undefined, files: ReadonlyMap<string, Uint8Array>): Promise<void> {
    const keys = [...files.keys()];
    if (config === undefined) throw invalidInput(`parameters.config is required with model files (${keys[0]}): the configuration to serve them with, as Triton requires`);
    if (!(this.source instanceof ModelRepository)) {
      throw new InferenceError(403, `model files cannot be loaded: this server serves the single model directory ${this.source.location}, not a writable model repository`);
    }
    checkUploadPaths(keys);
    const settings = parseLoadConfig(config, name);
    const root = this.source.location;
    const previous = this.uploads.get(name) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(async () => {
      const staged = await stageModelFiles(root, name, files, settings);
      let versions: ModelVersion[];
      try {
        const descriptor = await describeModelDir(name, staged.dir, { settings });
        if (!descriptor) throw invalidInput(`model '${name}': the files sent hold no model`);
        versions = await this.registry.load(descriptor);
      } catch (err) {
        await staged.discard();
        throw err;
      }
      // Published as soon as any version serves from it (a partly failed load still answers 400).
      if (versions.some((v) => v.state === "READY")) await staged.publish();
      else await staged.discard();
      this.raiseFailures(name, versions);
    });
    this.uploads.set(name, run);
    try {
      await run;
    } finally {
      if (this.uploads.get(name) === run) this.uploads.delete(name);
    }
  }

  private async loadDescriptor(descriptor: ModelDescriptor): Promise<void> {
    this.raiseFailures(descriptor.name, await this.registry.load(descriptor));
  }

  private raiseFailures(name: string, versions: readonly ModelVersion[]): void {
    const failed = versions.filter((v) => v.state !== "READY");
    if (failed.length > 0) {
      const kept = this.registry.versions(name).some((v) => v.state === "READY") ? "; the versions already serving keep serving" : "";
      throw new InferenceError(400, `failed to load model '${name}': ${failed.map((v) => `version ${v.version}: ${v.reason}`).join("; ")}${kept}`);
    }
  }

  /** Unloads a model once its in-flight requests finish. Unloading a model that is on disk but not loaded is a no-op. */
  async unload(name: string): Promise<void> {
    if (this.registry.has(name)) return this.registry.unload(name);
    if (!(await this.source.describe(name))) throw modelNotFound(`${unknownModel(name)} in the model repository`);
  }
}
