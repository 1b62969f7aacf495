/**
 * The model repository: finds models on disk and describes them. It loads
 * nothing; the registry does. Two layouts are understood, Triton's
 * `<root>/<name>/<version>/model.onnx` and the flat `<root>/<name>/model.onnx`
 * (version "1"), plus KServe's single-model directory (`--model_dir`).
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { formatZodError } from "../dataplane/zod-errors.js";
import { DEFAULT_MODEL_SETTINGS, MODEL_SETTINGS_FILE, ModelSettingsSchema, type ModelSettings } from "./settings.js";

/** Model names become URL segments and directory names: keep them boring. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const VERSION_PATTERN = /^[0-9]{1,18}$/;

export interface ModelVersionFile {
  version: string;
  /** Absolute path of the model file, or undefined when the version directory has none. */
  file?: string;
}

export interface ModelDescriptor {
  name: string;
  dir: string;
  versions: ModelVersionFile[];
  settings: ModelSettings;
  /** Set when model-settings.json exists but is invalid: the model is then reported unavailable. */
  settingsError?: string;
}

export class RepositoryError extends Error {}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * The model file of a version directory: `filename` when it is there; otherwise, unless the
 * settings named the file themselves (default_model_filename), the directory's only `*.onnx`
 * file, so `mine/1/my-classifier.onnx` serves as exported. Several candidates choose none.
 */
async function versionFile(dir: string, filename: string, explicit: boolean): Promise<string | undefined> {
  const file = join(dir, filename);
  if (await isFile(file)) return file;
  if (explicit) return undefined;
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && e.name.endsWith(".onnx")).map((e) => e.name);
  } catch {
    return undefined;
  }
  return names.length === 1 ? join(dir, names[0]!) : undefined;
}

async function readSettings(dir: string): Promise<{ settings: ModelSettings; error?: string; explicitFilename?: boolean }> {
  let text: string;
  try {
    text = await readFile(join(dir, MODEL_SETTINGS_FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { settings: DEFAULT_MODEL_SETTINGS };
    return { settings: DEFAULT_MODEL_SETTINGS, error: `cannot read ${MODEL_SETTINGS_FILE}: ${(err as Error).message}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { settings: DEFAULT_MODEL_SETTINGS, error: `${MODEL_SETTINGS_FILE} is not valid JSON: ${(err as Error).message}` };
  }
  const parsed = ModelSettingsSchema.safeParse(json);
  if (!parsed.success) {
    return { settings: DEFAULT_MODEL_SETTINGS, error: `invalid ${MODEL_SETTINGS_FILE}: ${formatZodError(parsed.error)}` };
  }
  const explicitFilename = typeof json === "object" && json !== null && "default_model_filename" in json;
  return { settings: parsed.data, explicitFilename };
}

/**
 * Describes one model directory, or returns undefined when it holds nothing that
 * looks like a model (so helper folders such as models/build are passed over).
 */
export async function describeModelDir(name: string, dir: string, options: { anyOnnxFile?: boolean; settings?: ModelSettings } = {}): Promise<ModelDescriptor | undefined> {
  const absDir = resolve(dir);
  // Settings given (a load request's config) replace the file: its version files are found with their default_model_filename.
  const { settings, error, explicitFilename = false } = options.settings ? { settings: options.settings, error: undefined } : await readSettings(absDir);
  const filename = settings.default_model_filename;
  const entries = await readdir(absDir, { withFileTypes: true });

  const versionDirs = [];
  for (const e of entries) {
    if (VERSION_PATTERN.test(e.name) && (e.isDirectory() || (e.isSymbolicLink() && (await isDirectory(join(absDir, e.name)))))) versionDirs.push(e);
  }
  let versions: ModelVersionFile[];
  if (versionDirs.length > 0) {
    versions = await Promise.all(
      versionDirs.map(async (e) => {
        return { version: String(Number(e.name)), file: await versionFile(join(absDir, e.name), filename, explicitFilename) };
      }),
    );
    versions.sort((a, b) => Number(a.version) - Number(b.version));
  } else if (await isFile(join(absDir, filename))) {
    versions = [{ version: "1", file: join(absDir, filename) }];
  } else if (options.anyOnnxFile) {
    // KServe's storage initializer keeps the artifact's own file name.
    const onnx = entries.filter((e) => e.isFile() && e.name.endsWith(".onnx")).map((e) => e.name).sort();
    if (onnx.length > 1) throw new RepositoryError(`model directory ${absDir} holds several .onnx files (${onnx.join(", ")}); keep one or use version directories`);
    versions = onnx.length === 1 ? [{ version: "1", file: join(absDir, onnx[0]!) }] : [];
  } else {
    versions = [];
  }
  const hasSettings = entries.some((e) => e.name === MODEL_SETTINGS_FILE);
  if (versions.length === 0 && !hasSettings && !options.anyOnnxFile) return undefined;
  return { name, dir: absDir, versions, settings, settingsError: error };
}

/** Where models come from: a repository of many, or KServe's single model directory. */
export interface ModelSource {
  /** What the user sees in logs and errors, e.g. the directory. */
  readonly location: string;
  /** Every model, sorted by name; `skipped` lists directories passed over. Throws when the source is missing. */
  discover(): Promise<{ models: ModelDescriptor[]; skipped: string[] }>;
  /** One model by name, for the repository extension's load call; undefined when absent. `settings` replace its model-settings.json. */
  describe(name: string, settings?: ModelSettings): Promise<ModelDescriptor | undefined>;
}

export class ModelRepository implements ModelSource {
  constructor(readonly root: string) {}

  get location(): string {
    return resolve(this.root);
  }

  async discover(): Promise<{ models: ModelDescriptor[]; skipped: string[] }> {
    const root = resolve(this.root);
    if (!(await isDirectory(root))) throw new RepositoryError(`model repository ${root} does not exist or is not a directory`);
    const all = (await readdir(root, { withFileTypes: true })).filter((e) => !e.name.startsWith("."));
    // Symbolic links count when they point at a directory: the model puller publishes models that way.
    const isDir = await Promise.all(all.map((e) => e.isDirectory() || (e.isSymbolicLink() && isDirectory(join(root, e.name)))));
    const entries = all.filter((_, i) => isDir[i]).sort((a, b) => (a.name < b.name ? -1 : 1));
    const models: ModelDescriptor[] = [];
    const skipped: string[] = [];
    for (const entry of entries) {
      if (!MODEL_NAME_PATTERN.test(entry.name)) {
        skipped.push(entry.name);
        continue;
      }
      const descriptor = await describeModelDir(entry.name, join(root, entry.name));
      if (descriptor) models.push(descriptor);
      else skipped.push(entry.name);
    }
    return { models, skipped };
  }

  async describe(name: string, settings?: ModelSettings): Promise<ModelDescriptor | undefined> {
    const dir = join(resolve(this.root), name);
    if (!MODEL_NAME_PATTERN.test(name) || !(await isDirectory(dir))) return undefined;
    return describeModelDir(name, dir, { settings });
  }
}

/** KServe's `--model_name NAME --model_dir DIR`: one model, whatever its file is called. */
export class SingleModelDirectory implements ModelSource {
  constructor(
    readonly name: string,
    readonly dir: string,
  ) {}

  get location(): string {
    return resolve(this.dir);
  }

  async discover(): Promise<{ models: ModelDescriptor[]; skipped: string[] }> {
    if (!(await isDirectory(this.dir))) throw new RepositoryError(`model directory ${this.location} does not exist or is not a directory`);
    const descriptor = await describeModelDir(this.name, this.dir, { anyOnnxFile: true });
    return { models: descriptor ? [descriptor] : [], skipped: [] };
  }

  async describe(name: string, settings?: ModelSettings): Promise<ModelDescriptor | undefined> {
    if (name !== this.name || !(await isDirectory(this.dir))) return undefined;
    return describeModelDir(this.name, this.dir, { anyOnnxFile: true, settings });
  }
}
