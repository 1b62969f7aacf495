/**
 * Parsing and formatting of durations and byte sizes as the CLI accepts them:
 * durations `250ms`, `30s`, `10m`, `1h`, `1h30m` or a bare number of milliseconds;
 * sizes `500MB` (SI, 10^6), `2GiB` (binary, 2^30), Kubernetes-style `2Gi`/`500M`,
 * or a bare number of bytes.
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  sec: 1_000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses a duration into milliseconds; returns undefined when the text is not one. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim().toLowerCase();
  if (s === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s));
  const re = /(\d+(?:\.\d+)?)(ms|sec|min|s|m|h|d)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * (DURATION_UNITS[m[2]!] ?? NaN);
    pos = re.lastIndex;
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  ki: 2 ** 10,
  kib: 2 ** 10,
  mi: 2 ** 20,
  mib: 2 ** 20,
  gi: 2 ** 30,
  gib: 2 ** 30,
  ti: 2 ** 40,
  tib: 2 ** 40,
};

/** Parses a size into bytes; returns undefined when the text is not one. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return undefined;
  const mult = SIZE_UNITS[m[2]!.toLowerCase()];
  if (mult === undefined) return undefined;
  const n = Math.floor(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/** Seconds -> "1h02m", "3m05s", "42s". */
export function formatSeconds(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}
