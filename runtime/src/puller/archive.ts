/**
 * Extraction of .tar, .tar.gz/.tgz and .zip artifacts into an (empty) staging
 * directory, refusing anything that could escape it.
 *
 * The archive libraries only parse (node-tar's Parser, yauzl); every entry is
 * written by `SafeWriter`, which owns the staging directory and therefore knows
 * exactly what it created. It refuses:
 *  - paths that are absolute, contain `..`, or use the puller's reserved names;
 *  - entries that would be written through a symlink (or through a file);
 *  - symlinks whose target is absolute or leaves the root, and, after the last
 *    entry, any symlink that does not resolve to something inside the root
 *    (this catches chains such as `d -> .` + `e -> d/..`);
 *  - hard links to anything but a regular file extracted earlier from the same
 *    archive;
 *  - devices, FIFOs and other special entries;
 *  - zip entries whose names appear twice (tools disagree on which copy wins).
 * The root directory entry (`./`, as `tar czf m.tar.gz -C dir .` writes it) is
 * accepted and skipped: the staging directory is that root.
 * Any refusal fails the whole extraction; the caller discards the staging
 * directory, so nothing is published.
 */
import { createReadStream } from "node:fs";
import { link, mkdir, realpath, rm, symlink } from "node:fs/promises";
import { once } from "node:events";
import { posix, sep } from "node:path";
import zlib from "node:zlib";
import type { Readable } from "node:stream";
import type { ByteBudget } from "./budget.js";
import { PullerError, UnsafeArchiveError, throwIfAborted } from "./errors.js";
import { checkRelPath, normalizeEntryPath } from "./paths.js";
import { writeNewFile } from "./write.js";

export type ArchiveKind = "tar" | "zip";

/** The archive format implied by a file name, if any (.tar, .tar.gz, .tgz, .zip). */
export function archiveKind(name: string): ArchiveKind | undefined {
  const n = name.toLowerCase();
  if (n.endsWith(".tar") || n.endsWith(".tar.gz") || n.endsWith(".tgz")) return "tar";
  if (n.endsWith(".zip")) return "zip";
  return undefined;
}

type Kind = "dir" | "file" | "symlink";

export interface ExtractedFile {
  path: string;
  size: number;
}

export interface ExtractOptions {
  budget?: ByteBudget;
  signal?: AbortSignal;
}

export class SafeWriter {
  private readonly entries = new Map<string, Kind>();
  private readonly sizes = new Map<string, number>();
  private readonly symlinks: string[] = [];

  constructor(
    private readonly root: string,
    private readonly opts: ExtractOptions = {},
  ) {}

  private abs(rel: string): string {
    return this.root + sep + rel.split("/").join(sep);
  }

  private check(raw: string): string {
    const r = checkRelPath(normalizeEntryPath(raw));
    if (!r.ok) throw new UnsafeArchiveError(raw, r.reason);
    return r.path;
  }

  /** Makes sure every parent of `rel` is a real directory created by us (mkdir when absent). */
  private async parents(raw: string, rel: string): Promise<void> {
    const segs = rel.split("/");
    let cur = "";
    for (let i = 0; i < segs.length - 1; i++) {
      cur = cur ? `${cur}/${segs[i]}` : segs[i]!;
      const kind = this.entries.get(cur);
      if (kind === "dir") continue;
      if (kind === "symlink") throw new UnsafeArchiveError(raw, `would be written through the symlink ${cur}`);
      if (kind === "file") throw new UnsafeArchiveError(raw, `its parent ${cur} is a file`);
      await mkdir(this.abs(cur), { mode: 0o755 });
      this.entries.set(cur, "dir");
    }
  }

  /** Removes an earlier entry at the same path (tar allows later entries to replace earlier ones). */
  private async replace(rel: string, next: Kind): Promise<boolean> {
    const kind = this.entries.get(rel);
    if (kind === undefined) return false;
    if (kind === "dir" && next === "dir") return true;
    await rm(this.abs(rel), { recursive: true, force: true });
    for (const key of [...this.entries.keys()]) {
      if (key === rel || key.startsWith(`${rel}/`)) {
        this.entries.delete(key);
        this.sizes.delete(key);
      }
    }
    const i = this.symlinks.indexOf(rel);
    if (i >= 0) this.symlinks.splice(i, 1);
    return false;
  }

  async dir(raw: string): Promise<void> {
    throwIfAborted(this.opts.signal);
    if (isRootEntry(raw)) return; // `./`: the staging directory itself
    const rel = this.check(raw);
    await this.parents(raw, rel);
    if (await this.replace(rel, "dir")) return;
    await mkdir(this.abs(rel), { mode: 0o755 });
    this.entries.set(rel, "dir");
  }

  /** Writes a regular file from a stream, counting its bytes against the budget. */
  async file(raw: string, mode: number | undefined, data: Readable | AsyncIterable<Buffer>, onChunk?: (c: Buffer) => void): Promise<number> {
    throwIfAborted(this.opts.signal);
    const rel = this.check(raw);
    await this.parents(raw, rel);
    await this.replace(rel, "file");
    const perm = mode !== undefined && mode & 0o111 ? 0o755 : 0o644;
    this.entries.set(rel, "file");
    const size = await writeNewFile(this.abs(rel), data as AsyncIterable<Buffer>, {
      mode: perm,
      highWaterMark: 1 << 20,
      signal: this.opts.signal,
      onChunk: (chunk) => {
        this.opts.budget?.take(chunk.length, "the extracted model");
        onChunk?.(chunk);
      },
    });
    this.sizes.set(rel, size);
    return size;
  }

  async symlink(raw: string, target: string): Promise<void> {
    throwIfAborted(this.opts.signal);
    const rel = this.check(raw);
    if (!target) throw new UnsafeArchiveError(raw, "symlink with an empty target");
    if (target.includes("\0")) throw new UnsafeArchiveError(raw, "symlink target contains a NUL byte");
    if (target.startsWith("/") || /^[A-Za-z]:[\\/]/.test(target) || target.includes("\\")) {
      throw new UnsafeArchiveError(raw, `symlink to the absolute path ${target}`);
    }
    const resolved = posix.normalize(posix.join(posix.dirname(rel), target));
    if (resolved === ".." || resolved.startsWith("../") || posix.isAbsolute(resolved)) {
      throw new UnsafeArchiveError(raw, `symlink to ${target} points outside the destination`);
    }
    await this.parents(raw, rel);
    await this.replace(rel, "symlink");
    await symlink(target, this.abs(rel));
    this.entries.set(rel, "symlink");
    this.symlinks.push(rel);
  }

  async hardlink(raw: string, targetRaw: string): Promise<void> {
    throwIfAborted(this.opts.signal);
    const rel = this.check(raw);
    const t = checkRelPath(normalizeEntryPath(targetRaw));
    if (!t.ok) throw new UnsafeArchiveError(raw, `hard link target ${targetRaw} ${t.reason}`);
    const target = t.path;
    if (this.entries.get(target) !== "file") {
      throw new UnsafeArchiveError(raw, `hard link to ${targetRaw}, which is not a regular file extracted earlier`);
    }
    // The target's parents must be real directories, or link(2) would follow a symlink.
    const segs = target.split("/");
    for (let i = 1; i < segs.length; i++) {
      if (this.entries.get(segs.slice(0, i).join("/")) !== "dir") {
        throw new UnsafeArchiveError(raw, `hard link target ${targetRaw} is reached through a non-directory`);
      }
    }
    if (target === rel) return;
    await this.parents(raw, rel);
    await this.replace(rel, "file");
    await link(this.abs(target), this.abs(rel));
    this.entries.set(rel, "file");
    this.sizes.set(rel, this.sizes.get(target) ?? 0);
  }

  /** Checks every symlink now that all entries exist; returns the regular files written. */
  async finish(): Promise<ExtractedFile[]> {
    const rootReal = await realpath(this.root);
    for (const rel of this.symlinks) {
      let real: string;
      try {
        real = await realpath(this.abs(rel));
      } catch {
        throw new UnsafeArchiveError(rel, "symlink does not resolve to anything inside the archive");
      }
      if (real !== rootReal && !real.startsWith(rootReal + sep)) {
        throw new UnsafeArchiveError(rel, "symlink resolves outside the destination");
      }
    }
    return [...this.sizes.entries()]
      .filter(([p]) => this.entries.get(p) === "file")
      .map(([path, size]) => ({ path, size }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}

/**
 * Whether an entry names the archive's root: `.`, `./`, `././` (what
 * `tar -C dir .` writes first). Only ever accepted as a directory.
 */
export function isRootEntry(raw: string): boolean {
  if (raw === "." || raw === "./") return true;
  if (!raw.startsWith("./")) return false;
  const n = normalizeEntryPath(raw);
  return n === "" || n === "." || n === "./";
}

// ---------------------------------------------------------------------------
// tar

interface TarEntry extends AsyncIterable<Buffer> {
  path: string;
  type: string;
  mode?: number;
  linkpath?: string;
  size: number;
  invalid?: boolean;
  resume(): void;
}

export async function extractTar(archive: string, dest: string, opts: ExtractOptions = {}): Promise<ExtractedFile[]> {
  const { Parser } = await import("tar");
  const writer = new SafeWriter(dest, opts);
  let failure: unknown;
  let chain: Promise<void> = Promise.resolve();
  const parser = new Parser({ strict: true, maxDecompressionRatio: 10_000 });

  const handle = async (e: TarEntry): Promise<void> => {
    if (failure !== undefined) {
      e.resume();
      return;
    }
    try {
      if (e.invalid) throw new UnsafeArchiveError(e.path, "invalid tar header");
      switch (e.type) {
        case "Directory":
          await writer.dir(e.path);
          e.resume();
          break;
        case "File":
        case "OldFile":
        case "ContiguousFile":
          await writer.file(e.path, e.mode, e);
          break;
        case "SymbolicLink":
          await writer.symlink(e.path, e.linkpath ?? "");
          e.resume();
          break;
        case "Link":
          await writer.hardlink(e.path, e.linkpath ?? "");
          e.resume();
          break;
        default:
          throw new UnsafeArchiveError(e.path, `unsupported entry type ${e.type}`);
      }
    } catch (err) {
      e.resume();
      failure ??= err;
      parser.abort(err instanceof Error ? err : new Error(String(err)));
    }
  };

  const done = new Promise<void>((resolve, reject) => {
    parser.on("entry", (e: TarEntry) => {
      chain = chain.then(() => handle(e));
    });
    parser.on("error", (err: Error) => reject(err));
    parser.on("end", () => resolve());
  });
  done.catch(() => {}); // observed below

  const input = createReadStream(archive, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      if (failure !== undefined) break;
      throwIfAborted(opts.signal);
      if (!parser.write(chunk)) await Promise.race([once(parser, "drain"), done]);
    }
    if (failure === undefined) parser.end();
    await done;
  } catch (err) {
    failure ??= err;
  } finally {
    input.destroy();
  }
  await chain;
  if (failure !== undefined) throw wrapArchiveError(failure, archive);
  return writer.finish();
}

function wrapArchiveError(err: unknown, archive: string): unknown {
  if (err instanceof PullerError) return err;
  const e = err as { code?: string; message?: string };
  const name = archive.split(sep).pop();
  return new PullerError("BAD_ARCHIVE", `cannot extract ${name}: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ""}`, {
    cause: err,
  });
}

// ---------------------------------------------------------------------------
// zip

interface ZipEntry {
  fileName: string;
  externalFileAttributes: number;
  versionMadeBy: number;
  generalPurposeBitFlag: number;
  uncompressedSize: number;
  crc32: number;
}

interface ZipFile {
  readEntry(): void;
  openReadStream(entry: ZipEntry, cb: (err: Error | null, stream?: Readable) => void): void;
  close(): void;
  on(ev: "entry", cb: (e: ZipEntry) => void): void;
  on(ev: "end", cb: () => void): void;
  on(ev: "error", cb: (err: Error) => void): void;
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const MAX_SYMLINK_TARGET = 4096;
const crc32 = (zlib as unknown as { crc32?: (data: Buffer, value?: number) => number }).crc32;

export async function extractZip(archive: string, dest: string, opts: ExtractOptions = {}): Promise<ExtractedFile[]> {
  const yauzl = (await import("yauzl")).default as unknown as {
    open(path: string, o: Record<string, unknown>, cb: (err: Error | null, zip?: ZipFile) => void): void;
  };
  const zip = await new Promise<ZipFile>((resolve, reject) =>
    yauzl.open(archive, { lazyEntries: true, autoClose: true, strictFileNames: true, validateEntrySizes: true }, (err, z) =>
      err || !z ? reject(wrapArchiveError(err, archive)) : resolve(z),
    ),
  );
  const writer = new SafeWriter(dest, opts);
  // Normalized names seen so far, with whether they were directories.
  const seen = new Map<string, boolean>();
  const openStream = (entry: ZipEntry) =>
    new Promise<Readable>((resolve, reject) => zip.openReadStream(entry, (err, s) => (err || !s ? reject(err) : resolve(s))));

  try {
    await new Promise<void>((resolve, reject) => {
      let stopped = false;
      const stop = (err: unknown) => {
        if (stopped) return;
        stopped = true;
        zip.close();
        reject(err);
      };
      zip.on("error", (err) => stop(wrapArchiveError(err, archive)));
      zip.on("end", () => {
        if (!stopped) resolve();
      });
      zip.on("entry", (entry) => {
        handleZipEntry(entry).then(
          () => {
            if (!stopped) zip.readEntry();
          },
          (err) => stop(err),
        );
      });
      zip.readEntry();
    });
  } catch (err) {
    throw err instanceof PullerError ? err : wrapArchiveError(err, archive);
  }
  return writer.finish();

  async function handleZipEntry(entry: ZipEntry): Promise<void> {
    throwIfAborted(opts.signal);
    if (entry.generalPurposeBitFlag & 0x1) throw new UnsafeArchiveError(entry.fileName, "encrypted zip entries are not supported");
    const unixMode = (entry.versionMadeBy >> 8) === 3 ? entry.externalFileAttributes >>> 16 : 0;
    const type = unixMode & S_IFMT;
    const isDir = entry.fileName.endsWith("/") || type === S_IFDIR;
    // Two entries with one name: yauzl hands both over and the last would win,
    // while other unzippers (and scanners that vetted the archive) may take the
    // first. Refused, except a directory listed twice (harmless).
    const name = normalizeEntryPath(entry.fileName).replace(/\/+$/, "");
    const before = seen.get(name);
    if (before !== undefined && !(before && isDir)) {
      throw new UnsafeArchiveError(entry.fileName, "the name appears twice in the zip (another unzipper could pick the other entry)");
    }
    seen.set(name, isDir);
    if (isDir) {
      await writer.dir(entry.fileName);
      return;
    }
    if (type === S_IFLNK) {
      if (entry.uncompressedSize > MAX_SYMLINK_TARGET) throw new UnsafeArchiveError(entry.fileName, "symlink target too long");
      const chunks: Buffer[] = [];
      for await (const c of await openStream(entry)) chunks.push(c as Buffer);
      await writer.symlink(entry.fileName, Buffer.concat(chunks).toString("utf8"));
      return;
    }
    if (type !== 0 && type !== S_IFREG) throw new UnsafeArchiveError(entry.fileName, "unsupported entry type (device, FIFO or socket)");
    let crc = 0;
    await writer.file(entry.fileName, unixMode & 0o777, await openStream(entry), crc32 ? (c) => void (crc = crc32(c, crc)) : undefined);
    if (crc32 && crc >>> 0 !== entry.crc32 >>> 0) {
      throw new PullerError("BAD_ARCHIVE", `CRC-32 mismatch for zip entry ${JSON.stringify(entry.fileName)}: the archive is corrupt`);
    }
  }
}

/** Extracts `archive` (kind from its name) into the empty directory `dest`. */
export async function extractArchive(kind: ArchiveKind, archive: string, dest: string, opts: ExtractOptions = {}): Promise<ExtractedFile[]> {
  return kind === "zip" ? extractZip(archive, dest, opts) : extractTar(archive, dest, opts);
}

