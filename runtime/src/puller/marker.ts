/**
 * The marker file `<dest>/.model-puller.json`: what was published, from where,
 * with which digest. Its presence (and match) is what makes a later run a no-op.
 * It is written last (in-place layout) or inside the version directory before the
 * directory is published (link layout), so a marker always describes a complete
 * model.
 */
import { createHash } from "node:crypto";
import { open, readFile, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { MARKER_NAME } from "./paths.js";

export const MARKER_SCHEMA = 1;

export interface MarkerFile {
  path: string;
  size: number;
  sha256?: string;
}

export interface MarkerRequest {
  /** Redacted, canonical source URI. */
  source: string;
  extract: "auto" | "none";
  filename: string | null;
}

export interface Marker {
  schema: number;
  source: string;
  request: MarkerRequest;
  /** Resolved identity beyond the URI (e.g. the Hub commit a branch pointed to). */
  resolved?: Record<string, string>;
  /** sha256 of the artifact (`digest: "file"`) or tree digest of the files (`digest: "tree"`). */
  sha256: string;
  digest: "file" | "tree";
  /** The downloaded artifact, for single-file sources. */
  artifact?: { name: string; size: number; archive: "tar" | "zip" | null };
  /**
   * Single-file sources whose body came with a Content-Encoding: the coding, and
   * the size and sha256 of the bytes received (`sha256` and `artifact` describe the
   * decoded file). A --sha256 equal to either digest matches.
   */
  contentEncoding?: { coding: string; size: number; sha256: string };
  /** Bytes of all published files. */
  size: number;
  files: MarkerFile[];
  /** Top-level names in the model directory (what an in-place publish owns). */
  entries: string[];
  layout: "link" | "in-place";
  pulledAt: string;
  durationMs: number;
  puller: { version: string; hostname: string };
}

export async function readMarker(dir: string): Promise<Marker | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, MARKER_NAME), "utf8");
  } catch {
    return undefined;
  }
  try {
    const m = JSON.parse(text) as Partial<Marker>;
    if (m.schema !== MARKER_SCHEMA || typeof m.source !== "string" || typeof m.sha256 !== "string" || !Array.isArray(m.files) || !m.request) {
      return undefined;
    }
    return m as Marker;
  } catch {
    return undefined;
  }
}

export type MatchResult = { ok: true } | { ok: false; reason: string };

/** Whether the marker describes what is requested now. */
export function markerMatches(m: Marker, want: MarkerRequest & { sha256?: string }): MatchResult {
  if (m.request.source !== want.source) return { ok: false, reason: `source differs (published: ${m.request.source})` };
  if (m.request.extract !== want.extract) return { ok: false, reason: `--extract differs (published with ${m.request.extract})` };
  if ((m.request.filename ?? null) !== (want.filename ?? null)) return { ok: false, reason: "--filename differs" };
  if (want.sha256 && m.sha256 !== want.sha256 && m.contentEncoding?.sha256 !== want.sha256) {
    return { ok: false, reason: `sha256 differs (published: ${m.sha256})` };
  }
  return { ok: true };
}

/**
 * Cheap integrity check of a published model: every file the marker lists exists
 * with its recorded size. (Digests are not recomputed: that would read the whole
 * model on every cold start.)
 */
export async function verifyFiles(dir: string, m: Marker): Promise<MatchResult> {
  const results = await Promise.all(
    m.files.map(async (f) => {
      try {
        const s = await stat(join(dir, ...f.path.split("/")));
        return s.isFile() && s.size === f.size ? undefined : `${f.path} has ${s.size} bytes, expected ${f.size}`;
      } catch {
        return `${f.path} is missing`;
      }
    }),
  );
  const bad = results.find((r) => r !== undefined);
  return bad ? { ok: false, reason: bad } : { ok: true };
}

/**
 * Digest of several files: sha256 of the lines `<sha256>  <path>\n`, sorted by
 * path (byte order), i.e. what
 *   (cd DIR && find . -type f ! -name .model-puller.json -print0 | LC_ALL=C sort -z \
 *     | xargs -0 sha256sum | sed 's#  \./#  #') | sha256sum
 * prints.
 */
export function treeDigest(files: ReadonlyArray<{ path: string; sha256: string }>): string {
  const lines = [...files]
    .sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)))
    .map((f) => `${f.sha256}  ${f.path}\n`)
    .join("");
  return createHash("sha256").update(lines).digest("hex");
}

/** Writes a file atomically: temp file beside it, fsync, rename. */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  const fh = await open(tmp, "w", 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

export async function writeMarker(dir: string, m: Marker): Promise<void> {
  await writeFileAtomic(join(dir, MARKER_NAME), `${JSON.stringify(m, null, 2)}\n`);
}
