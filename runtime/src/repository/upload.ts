/**
 * Model files sent with a load request (Triton's `file:<version>/<name>` parameters), written
 * into the model repository: `<root>/<name>` is replaced as a whole, never edited in place.
 *
 * The files and the model's settings go into a directory of their own, `<root>/.<name>.v-*`
 * (the repository passes over names starting with a dot), which is never changed afterwards:
 * the model is loaded from there, so its instances (which read their file again when they
 * restart) never see another upload's files. Only once it has loaded is `<root>/<name>`
 * pointed at it, by renaming a symbolic link over it (atomic; the puller publishes models the
 * same way). A failed write or load leaves the repository as it was.
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import { MODEL_SETTINGS_FILE, type ModelSettings } from "./settings.js";
import { VERSION_PATTERN } from "./repository.js";

export const FILE_PARAMETER_PREFIX = "file:";
/** Files one load may carry (their bytes are bounded by the request size, MAX_REQUEST_BYTES). */
export const MAX_UPLOAD_FILES = 128;

/**
 * The relative path of a `file:` parameter, in one of the layouts the repository reads:
 * `<version>/<file>` or `<file>` (the flat layout, version 1). No absolute paths, no `..`,
 * no deeper directories; model-settings.json comes from the `config` parameter, not a file.
 */
export function uploadPath(key: string): { version?: string; file: string } {
  const rel = key.slice(FILE_PARAMETER_PREFIX.length);
  const parts = rel.split("/");
  const bad = (why: string) => invalidInput(`parameter '${key}': ${why}; expected file:<version>/<file> or file:<file>`);
  if (rel.includes("\\") || rel.includes("\0")) throw bad("the path holds a backslash or NUL character");
  if (rel.startsWith("/")) throw bad("the path must be relative");
  if (parts.length > 2) throw bad("the path is deeper than <version>/<file>");
  const file = parts[parts.length - 1]!;
  const version = parts.length === 2 ? parts[0]! : undefined;
  if (parts.some((p) => p === "" || p === "." || p === "..")) throw bad("the path has an empty, '.' or '..' segment");
  if (version !== undefined && !VERSION_PATTERN.test(version)) throw bad(`'${version}' is not a version number`);
  if (version === undefined && file === MODEL_SETTINGS_FILE) throw bad(`the model's settings come from the config parameter, not a ${MODEL_SETTINGS_FILE} file`);
  return { version, file };
}

/** Checks every `file:` key before anything is written. */
export function checkUploadPaths(keys: readonly string[]): void {
  if (keys.length > MAX_UPLOAD_FILES) throw invalidInput(`${keys.length} model files in one load request; at most ${MAX_UPLOAD_FILES}`);
  for (const key of keys) uploadPath(key);
}

/** Strict base64 (what tritonclient sends): Node's decoder would skip invalid characters silently. */
export function decodeBase64(key: string, text: string): Buffer {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw invalidInput(`parameter '${key}': the file content is not valid base64`);
  return Buffer.from(text, "base64");
}

const READ_ONLY = new Set(["EROFS", "EACCES", "EPERM"]);

export interface StagedModel {
  /** The directory holding the files, to load the model from. */
  readonly dir: string;
  /** Points `<root>/<name>` at the directory, removing the previous upload's directory (the previous versions are unloaded by now). */
  publish(): Promise<void>;
  /** The load failed: removes the directory. */
  discard(): Promise<void>;
}

/** Writes the files and settings into a new directory beside `<root>/<name>`. */
export async function stageModelFiles(root: string, name: string, files: ReadonlyMap<string, Uint8Array>, settings: ModelSettings): Promise<StagedModel> {
  let dir: string;
  try {
    dir = await mkdtemp(join(root, `.${name}.v-`));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (READ_ONLY.has(code)) throw new InferenceError(403, `the model repository ${root} is read-only (${code}): model files cannot be loaded into it`);
    throw err;
  }
  const discard = () => rm(dir, { recursive: true, force: true });
  try {
    for (const [key, bytes] of files) {
      const { version, file } = uploadPath(key);
      const into = version === undefined ? dir : join(dir, version);
      await mkdir(into, { recursive: true });
      await writeFile(join(into, file), bytes, { flag: "wx" });
    }
    await writeFile(join(dir, MODEL_SETTINGS_FILE), `${JSON.stringify(settings, null, 2)}\n`, { flag: "wx" });
  } catch (err) {
    await discard();
    throw err;
  }
  return { dir, discard, publish: () => publish(root, name, dir) };
}

async function publish(root: string, name: string, dir: string): Promise<void> {
  const target = join(root, name);
  const link = join(root, `.${name}.link-${randomBytes(6).toString("hex")}`);
  // Relative, so the repository still works when mounted elsewhere.
  await symlink(basename(dir), link);
  let previous: string | undefined;
  try {
    const st = await lstat(target);
    if (st.isSymbolicLink()) {
      const to = await readlink(target);
      // Only a directory this module made is removed; a link the puller published points at its own.
      if (/^\.[^/]+\.v-[^/]+$/.test(to) && to.startsWith(`.${name}.v-`)) previous = join(root, to);
    } else {
      // A model directory of the repository (not ours): moved aside, then removed.
      previous = join(root, `.${name}.v-replaced-${randomBytes(6).toString("hex")}`);
      await rename(target, previous);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      await rm(link, { force: true });
      throw err;
    }
  }
  await rename(link, target);
  if (previous && previous !== dir) await rm(previous, { recursive: true, force: true });
}
