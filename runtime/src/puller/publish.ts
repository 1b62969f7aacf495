/**
 * Where a model is staged and how it is published into dest-dir.
 *
 * Two layouts (README.md, "Layout and atomic publish"):
 *
 * link (dest-dir is not a mount point; the default for a new dest-dir)
 *   <parent>/.<name>.model-puller/        state directory, sibling of dest-dir
 *       lock                              the lock file
 *       tmp-<id>/                         a model being downloaded / extracted
 *       dl-<id>/                          a downloaded archive before extraction
 *       v-<id>/                           a complete, verified model (with its marker)
 *   <parent>/<name> -> .<name>.model-puller/v-<id>     relative symlink
 *   Publishing is one rename(2) of a new symlink over the old one: readers see the
 *   old model or the new one, never a mixture and never nothing.
 *
 * in-place (dest-dir is a mount point such as a PVC at /mnt/models, or a
 * non-empty directory the puller did not create)
 *   <dest>/.model-puller/                 state directory (same volume)
 *   <dest>/<model files>                  renamed in from v-<id>
 *   <dest>/.model-puller.json             the marker, written last: the commit point
 *   The old marker is removed first, then each top-level entry is renamed into
 *   place, then the new marker is written. A crash in between leaves no marker,
 *   which the next run treats as "no model" and repairs; a journal records which
 *   entries belong to the puller so that foreign entries (lost+found) are left alone.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rm, rmdir, stat, symlink, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { PullerError } from "./errors.js";
import type { Logger } from "./log.js";
import { markerMatches, readMarker, verifyFiles, writeFileAtomic, writeMarker, type Marker, type MarkerRequest } from "./marker.js";
import { MARKER_NAME, STATE_DIR_NAME } from "./paths.js";

export type Layout = "link" | "in-place";

export interface Target {
  /** Absolute dest-dir, as the server will read it. */
  dest: string;
  layout: Layout;
  stateDir: string;
  lockPath: string;
}

function linkStateName(dest: string): string {
  return `.${basename(dest)}.model-puller`;
}

async function lstatOrUndefined(p: string) {
  try {
    return await lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Whether `dir` is a mount point: another device than its parent, or listed in /proc/self/mountinfo. */
export async function isMountPoint(dir: string): Promise<boolean> {
  const abs = resolve(dir);
  if (abs === dirname(abs)) return true;
  try {
    const [a, b] = await Promise.all([stat(abs), stat(dirname(abs))]);
    if (a.dev !== b.dev) return true;
  } catch {
    return false;
  }
  try {
    const info = await readFile("/proc/self/mountinfo", "utf8");
    const real = await realpath(abs);
    for (const line of info.split("\n")) {
      const mp = line.split(" ")[4];
      if (mp && mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === real) return true;
    }
  } catch {
    // not Linux, or no /proc
  }
  return false;
}

async function isEmptyDir(dir: string): Promise<boolean> {
  return (await readdir(dir)).length === 0;
}

async function writable(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Decides the layout for dest-dir (see the module comment) without changing anything. */
export async function resolveTarget(destInput: string, requested: "auto" | Layout): Promise<Target> {
  let dest = resolve(destInput);
  let st = await lstatOrUndefined(dest);

  if (st?.isSymbolicLink()) {
    const target = await readlink(dest);
    const ours = target.split(/[\\/]/)[0] === linkStateName(dest);
    if (!ours) {
      // A symlink the user made (e.g. /mnt/models -> /data/models): publish at its target.
      try {
        dest = await realpath(dest);
      } catch {
        throw new PullerError("DEST", `${destInput} is a dangling symlink`);
      }
      st = await lstatOrUndefined(dest);
    } else {
      if (requested === "in-place") {
        throw new PullerError("DEST", `${dest} was published with --layout link (it is a symlink); remove it or use --layout link`);
      }
      return linkTarget(dest);
    }
  }

  if (st && !st.isDirectory()) throw new PullerError("DEST", `${dest} exists and is not a directory`);

  if (requested === "in-place") return inPlaceTarget(dest);

  if (!st) {
    if (requested === "auto" || requested === "link") return linkTarget(dest);
  }

  const managedInPlace = st ? (await lstatOrUndefined(join(dest, STATE_DIR_NAME)))?.isDirectory() === true : false;
  const mount = st ? await isMountPoint(dest) : false;
  const empty = st ? await isEmptyDir(dest) : true;
  const parentWritable = await writable(dirname(dest));

  if (requested === "link") {
    if (mount) throw new PullerError("DEST", `${dest} is a mount point and cannot be replaced by a symlink; use --layout in-place`);
    if (!empty) throw new PullerError("DEST", `${dest} is a non-empty directory; --layout link would replace it (use --layout in-place)`);
    if (!parentWritable) throw new PullerError("DEST", `${dirname(dest)} is not writable; --layout link needs to create a sibling of ${dest}`);
    return linkTarget(dest);
  }
  if (mount || managedInPlace || !empty || !parentWritable) return inPlaceTarget(dest);
  return linkTarget(dest);
}

function linkTarget(dest: string): Target {
  const stateDir = join(dirname(dest), linkStateName(dest));
  return { dest, layout: "link", stateDir, lockPath: join(stateDir, "lock") };
}

function inPlaceTarget(dest: string): Target {
  const stateDir = join(dest, STATE_DIR_NAME);
  return { dest, layout: "in-place", stateDir, lockPath: join(stateDir, "lock") };
}

export async function ensureStateDir(t: Target): Promise<void> {
  if (t.layout === "in-place") await mkdir(t.dest, { recursive: true });
  else await mkdir(dirname(t.dest), { recursive: true });
  await mkdir(t.stateDir, { recursive: true });
}

export function newId(): string {
  const d = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
  return `${d}-${randomBytes(4).toString("hex")}`;
}

export interface Staging {
  id: string;
  /** The model root being built (becomes v-<id>). */
  dir: string;
  /** Scratch space for downloaded archives. */
  scratch: string;
}

export async function createStaging(t: Target): Promise<Staging> {
  const id = newId();
  const s = { id, dir: join(t.stateDir, `tmp-${id}`), scratch: join(t.stateDir, `dl-${id}`) };
  await mkdir(s.dir);
  await mkdir(s.scratch);
  return s;
}

export async function discardStaging(s: Staging): Promise<void> {
  await Promise.all([rm(s.dir, { recursive: true, force: true }), rm(s.scratch, { recursive: true, force: true })]);
}

/** fsync a directory (makes renames in it durable); ignored where unsupported. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on directories
  } finally {
    await fh?.close();
  }
}

/** fsync every regular file and directory under `root`, a few at a time. */
export async function fsyncTree(root: string): Promise<void> {
  const files: string[] = [];
  const dirs: string[] = [root];
  for (let i = 0; i < dirs.length; i++) {
    for (const e of await readdir(dirs[i]!, { withFileTypes: true })) {
      const p = join(dirs[i]!, e.name);
      if (e.isDirectory()) dirs.push(p);
      else if (e.isFile()) files.push(p);
    }
  }
  const queue = [...files];
  await Promise.all(
    Array.from({ length: Math.min(8, queue.length) }, async () => {
      for (let p = queue.pop(); p !== undefined; p = queue.pop()) {
        const fh = await open(p, "r");
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
    }),
  );
  for (const d of dirs.reverse()) await fsyncDir(d);
}

interface Journal {
  id: string;
  old: string[];
  new: string[];
}

const JOURNAL = "journal.json";

async function readJournal(t: Target): Promise<Journal | undefined> {
  try {
    return JSON.parse(await readFile(join(t.stateDir, JOURNAL), "utf8")) as Journal;
  } catch {
    return undefined;
  }
}

/** The version directory dest currently points at (link layout). */
async function currentVersion(t: Target): Promise<string | undefined> {
  try {
    const target = await readlink(t.dest);
    return basename(target);
  } catch {
    return undefined;
  }
}

/**
 * Cleans what an interrupted run left behind (call with the lock held): staging
 * and scratch directories, temporary links, trash, and complete versions that are
 * neither published nor reusable. Returns a complete unpublished version whose
 * marker matches `want`, if one survived (a crash between verify and publish), so
 * the caller can publish it without downloading again.
 */
export async function recover(t: Target, want: MarkerRequest & { sha256?: string }, log: Logger): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(t.stateDir);
  } catch {
    return undefined;
  }
  const current = t.layout === "link" ? await currentVersion(t) : undefined;
  let reusable: string | undefined;
  for (const name of names) {
    const p = join(t.stateDir, name);
    if (/^(tmp|dl|trash|link|marker)-/.test(name) || name.includes(".tmp-")) {
      log.info({ path: p }, "removing leftover of an interrupted run");
      await rm(p, { recursive: true, force: true });
    } else if (name.startsWith("v-") && name !== current) {
      const m = await readMarker(p);
      if (!reusable && m && markerMatches(m, want).ok && (await verifyFiles(p, m)).ok) {
        reusable = p;
        continue;
      }
      log.info({ path: p }, "removing an old model version");
      await rm(p, { recursive: true, force: true });
    }
  }
  return reusable;
}

/**
 * Publishes the complete, verified model in `versionDir` (a `v-<id>` directory
 * in the state directory, holding the marker). Call with the lock held.
 */
export async function publish(t: Target, versionDir: string, log: Logger): Promise<void> {
  if (t.layout === "link") await publishLink(t, versionDir, log);
  else await publishInPlace(t, versionDir, log);
}

/** Renames a finished staging directory to its version name, with the marker inside. */
export async function sealVersion(t: Target, s: Staging, marker: Marker): Promise<string> {
  await writeMarker(s.dir, marker);
  await fsyncDir(s.dir);
  const v = join(t.stateDir, `v-${s.id}`);
  await rename(s.dir, v);
  await fsyncDir(t.stateDir);
  return v;
}

async function publishLink(t: Target, versionDir: string, log: Logger): Promise<void> {
  const parent = dirname(t.dest);
  const rel = `${basename(t.stateDir)}/${basename(versionDir)}`;
  const tmpLink = join(t.stateDir, `link-${newId()}`);
  await symlink(rel, tmpLink);
  const st = await lstatOrUndefined(t.dest);
  if (st?.isDirectory()) {
    // An empty directory (created by hand or by an image): replace it. Until the
    // rename below dest is absent, i.e. "no model", never a partial one.
    try {
      await rmdir(t.dest);
    } catch (err) {
      await unlink(tmpLink).catch(() => {});
      throw new PullerError("DEST", `cannot replace ${t.dest}: ${(err as Error).message}`, { cause: err });
    }
  }
  await rename(tmpLink, t.dest);
  await fsyncDir(parent);
  const previous = [];
  for (const name of await readdir(t.stateDir)) {
    if (name.startsWith("v-") && join(t.stateDir, name) !== versionDir) previous.push(name);
  }
  for (const name of previous) {
    log.debug({ version: name }, "removing the previous model version");
    await rm(join(t.stateDir, name), { recursive: true, force: true });
  }
}

async function publishInPlace(t: Target, versionDir: string, log: Logger): Promise<void> {
  const id = basename(versionDir).slice(2);
  // 1. Take the marker out of the version directory: from now on it is not reusable.
  const pendingMarker = join(t.stateDir, `marker-${id}.json`);
  await rename(join(versionDir, MARKER_NAME), pendingMarker);

  // 2. Journal: which top-level entries are the puller's (old model, earlier interrupted publishes, new model).
  const oldMarker = await readMarker(t.dest);
  const prevJournal = await readJournal(t);
  const owned = new Set<string>([...(oldMarker?.entries ?? []), ...(prevJournal?.old ?? []), ...(prevJournal?.new ?? [])]);
  const incoming = (await readdir(versionDir)).sort();
  const journal: Journal = { id, old: [...owned].sort(), new: incoming };
  await writeFileAtomic(join(t.stateDir, JOURNAL), JSON.stringify(journal));

  // 3. Remove the commit point: dest holds "no model" until step 6.
  await unlink(join(t.dest, MARKER_NAME)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
  await fsyncDir(t.dest);

  // 4. Move the entries in; whatever they replace goes to the trash.
  const trash = join(t.stateDir, `trash-${id}`);
  await mkdir(trash);
  for (const name of incoming) {
    const src = join(versionDir, name);
    const dst = join(t.dest, name);
    const [s, d] = await Promise.all([lstat(src), lstatOrUndefined(dst)]);
    if (d && !owned.has(name)) log.warn({ entry: name }, "replacing an entry of dest-dir that model-puller did not publish");
    if (d && (d.isDirectory() || s.isDirectory())) await rename(dst, join(trash, name));
    await rename(src, dst); // atomic replace for files and symlinks
  }
  // 5. Entries of the old model that the new one does not have.
  for (const name of owned) {
    if (incoming.includes(name)) continue;
    const dst = join(t.dest, name);
    if (await lstatOrUndefined(dst)) await rename(dst, join(trash, name));
  }
  await fsyncDir(t.dest);

  // 6. Commit.
  await rename(pendingMarker, join(t.dest, MARKER_NAME));
  await fsyncDir(t.dest);

  await unlink(join(t.stateDir, JOURNAL)).catch(() => {});
  await rm(trash, { recursive: true, force: true });
  await rm(versionDir, { recursive: true, force: true });
}

/** Lists the files of a published or staged model (relative POSIX paths, regular files only). */
export async function listFiles(root: string): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = [];
  const walk = async (dir: string, rel: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (rel === "" && (e.name === MARKER_NAME || e.name === STATE_DIR_NAME)) continue;
      const p = join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p, r);
      else if (e.isFile()) out.push({ path: r, size: (await stat(p)).size });
    }
  };
  await walk(root, "");
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
