/** Validation of relative paths that come from outside (archive entries, S3 keys, Hub file names). */

/** Names the puller keeps for itself at the top of dest-dir. */
export const MARKER_NAME = ".model-puller.json";
export const STATE_DIR_NAME = ".model-puller";
const RESERVED_TOP = new Set([MARKER_NAME, STATE_DIR_NAME]);

/**
 * Returns the normalized relative POSIX path, or a reason why it is unsafe:
 * absolute paths, drive letters, `..` or `.` segments, backslashes, NUL, empty
 * names, and the puller's own reserved names at the top level are refused.
 */
export function checkRelPath(p: string): { ok: true; path: string } | { ok: false; reason: string } {
  if (p.includes("\0")) return { ok: false, reason: "contains a NUL byte" };
  if (p.includes("\\")) return { ok: false, reason: "contains a backslash" };
  if (p.startsWith("/")) return { ok: false, reason: "is an absolute path" };
  if (/^[A-Za-z]:/.test(p)) return { ok: false, reason: "has a drive letter" };
  const trimmed = p.replace(/\/+$/, "");
  if (trimmed === "" || trimmed === ".") return { ok: false, reason: "is empty" };
  const segs = trimmed.split("/");
  for (const s of segs) {
    if (s === "..") return { ok: false, reason: "contains a '..' segment" };
    if (s === "." || s === "") return { ok: false, reason: "contains an empty or '.' segment" };
  }
  if (RESERVED_TOP.has(segs[0]!)) return { ok: false, reason: `uses the reserved name ${segs[0]}` };
  return { ok: true, path: segs.join("/") };
}

/** Like checkRelPath, but strips a leading "./" (common in tar archives) first. */
export function normalizeEntryPath(p: string): string {
  let s = p;
  while (s.startsWith("./")) s = s.slice(2);
  return s;
}
