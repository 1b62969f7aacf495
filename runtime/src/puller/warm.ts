/**
 * The warm-start check, kept free of heavy imports (no zod, no pino, no archive
 * libraries): when dest-dir already holds the requested model, the CLI answers
 * from here after reading one small file and stat-ing the model's files.
 *
 * It only ever says "yes, present" or "don't know": anything unusual (a usage
 * error, --force, a malformed value) falls through to the full path, which
 * validates and reports properly.
 */
import { hostname } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { ENV, FLAGS, normalizeSha256, parseBool } from "./config.js";
import { formatLine, type Terminal } from "./log.js";
import { markerMatches, readMarker, verifyFiles, type Marker } from "./marker.js";
import { redactText } from "./redact.js";
import { parseSource } from "./sources/index.js";

export interface WarmHit {
  dest: string;
  source: string;
  marker: Marker;
  logLevel: string;
}

export async function warmCheck(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<WarmHit | undefined> {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: FLAGS, allowPositionals: true, strict: true });
    if (values.help || values.version || positionals.length > 2) return undefined;
    const force = values.force ?? parseBool(env[ENV.force!] ?? "");
    if (force !== false) return undefined;
    const source = positionals[0] ?? env.STORAGE_URI;
    const dest = positionals[1] ?? env.MODEL_DIR;
    if (!source || !dest) return undefined;
    const shaRaw = values.sha256 ?? env[ENV.sha256!];
    const sha256 = shaRaw ? normalizeSha256(shaRaw) : undefined;
    if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) return undefined;
    const extract = values.extract ?? (env[ENV.extract!] || "auto");
    if (extract !== "auto" && extract !== "none") return undefined;
    const filename = values.filename ?? (env[ENV.filename!] || null);
    const logLevel = values["log-level"] ?? (env[ENV.logLevel!] || "info");

    const src = parseSource(source, env);
    const abs = resolve(dest);
    const marker = await readMarker(abs);
    if (!marker) return undefined;
    if (!markerMatches(marker, { source: src.id, extract, filename, sha256 }).ok) return undefined;
    if (!(await verifyFiles(abs, marker)).ok) return undefined;
    return { dest: abs, source: src.id, marker, logLevel };
  } catch {
    return undefined;
  }
}

/** The log line of a warm hit, in the same shape pino writes. */
export function reportWarmHit(hit: WarmHit, terminal: Terminal): void {
  if (!["trace", "debug", "info"].includes(hit.logLevel)) return;
  const line = {
    level: "info",
    time: new Date().toISOString(),
    pid: process.pid,
    hostname: hostname(),
    name: "model-puller",
    dest: hit.dest,
    source: hit.source,
    sha256: hit.marker.sha256,
    pulledAt: hit.marker.pulledAt,
    /** Since the process started, Node's own start-up included. */
    processMs: Math.round(performance.now()),
    msg: "model already present",
  };
  terminal.line(formatLine(redactText(JSON.stringify(line)), terminal.isTTY));
}
