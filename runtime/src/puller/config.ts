/**
 * Command line and environment configuration of the puller, validated with zod.
 * Flags win over environment variables; both are documented in README.md.
 */
import { parseArgs } from "node:util";
import { UsageError } from "./errors.js";
import { MARKER_NAME, STATE_DIR_NAME } from "./paths.js";
import { parseDuration, parseSize } from "./units.js";

export const HELP = `model-puller: download a model into a directory once, verified and atomically published.

Usage:
  model-puller <source-uri> <dest-dir> [options]
  STORAGE_URI=<source-uri> MODEL_DIR=<dest-dir> model-puller [options]

Sources:
  http://... https://...            one file (Authorization from PULLER_HTTP_AUTHORIZATION)
  s3://bucket/key                   one object (or, if absent, the prefix key/)
  s3://bucket/prefix/               every object under the prefix
  hf://org/repo[:revision][/path]   Hugging Face Hub repository, directory or file
  file:///path, /path, ./path       local file or directory (hard-linked when possible)
  pvc://name/path                   KServe-style PVC path, read from $PVC_MOUNT_PATH/path (default /mnt/pvc)

Options (environment variable in brackets):
  --sha256 HEX             expected sha256 of the artifact (tree digest for several files) [MODEL_SHA256]
  --extract auto|none      unpack .tar, .tar.gz/.tgz and .zip artifacts (default auto) [PULLER_EXTRACT]
  --filename NAME          name of a single downloaded file in dest-dir (default: model.onnx for a
                           single .onnx file, else the source's file name) [PULLER_FILENAME]
  --timeout DURATION       give up after this long, e.g. 30s, 10m, 1h, or milliseconds (default: none) [PULLER_TIMEOUT]
  --idle-timeout DURATION  retry a connection that sends nothing for this long (default 60s) [PULLER_IDLE_TIMEOUT]
  --max-bytes SIZE         fail when the model is larger, e.g. 500MB, 2GiB, or bytes [PULLER_MAX_BYTES]
  --retries N              retries per file on network errors, 5xx, 408 and 429 (default 5) [PULLER_RETRIES]
  --retry-delay DURATION   first backoff delay, doubled per retry with jitter (default 500ms) [PULLER_RETRY_DELAY]
  --concurrency N          files downloaded in parallel (default 4) [PULLER_CONCURRENCY]
  --layout auto|link|in-place
                           how dest-dir is published (default auto, see README) [PULLER_LAYOUT]
  --lock-stale DURATION    a lock without heartbeat for this long is taken over (default 30s) [PULLER_LOCK_STALE]
  --force                  download again even if dest-dir already holds this model [PULLER_FORCE]
  --progress auto|bar|log|none
                           progress display (default auto: bar on a TTY, log lines otherwise) [PULLER_PROGRESS]
  --progress-interval DURATION
                           interval of progress log lines (default 10s) [PULLER_PROGRESS_INTERVAL]
  --log-level LEVEL        trace|debug|info|warn|error|silent (default info) [PULLER_LOG_LEVEL]
  -h, --help               show this help
  --version                print the version

Exit codes: 0 dest-dir holds the complete, verified model; 1 the pull failed (nothing new was
published); 2 usage error; 130/143 interrupted by SIGINT/SIGTERM.
`;

/** The validated configuration of one run. */
export interface PullerConfig {
  source: string;
  dest: string;
  sha256?: string;
  extract: "auto" | "none";
  filename?: string;
  /** Overall deadline in ms; undefined = none. */
  timeout?: number;
  idleTimeout: number;
  maxBytes?: number;
  retries: number;
  /** First backoff delay in ms (doubles per retry, with jitter, capped at 30 s). */
  retryDelay: number;
  concurrency: number;
  layout: "auto" | "link" | "in-place";
  lockStale: number;
  force: boolean;
  progress: "auto" | "bar" | "log" | "none";
  progressInterval: number;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
}

type Zod = typeof import("zod");

/**
 * The schema is built on first use: zod takes ~70 ms to load, and the warm-start
 * path (warm.ts) must not pay for it.
 */
function buildSchema({ z }: Zod) {
  const durationField = (name: string) =>
    z.string().transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === undefined) {
        ctx.addIssue({ code: "custom", message: `${name}: not a duration: ${JSON.stringify(s)} (try 30s, 10m, 1h or milliseconds)` });
        return z.NEVER;
      }
      return ms;
    });

  const sizeField = (name: string) =>
    z.string().transform((s, ctx) => {
      const n = parseSize(s);
      if (n === undefined || n <= 0) {
        ctx.addIssue({ code: "custom", message: `${name}: not a size: ${JSON.stringify(s)} (try 500MB, 2GiB or bytes)` });
        return z.NEVER;
      }
      return n;
    });

  const intField = (name: string, min: number, max: number) =>
    z.string().transform((s, ctx) => {
      const n = Number(s);
      if (!/^\d+$/.test(s.trim()) || n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(s)}` });
        return z.NEVER;
      }
      return n;
    });

  const boolField = z.union([z.boolean(), z.string()]).transform((v, ctx) => {
    if (typeof v === "boolean") return v;
    const b = parseBool(v);
    if (b === undefined) {
      ctx.addIssue({ code: "custom", message: `expected true or false, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return b;
  });

  return z.object({
    source: z.string({ error: "missing <source-uri> (argument or STORAGE_URI)" }).min(1, "missing <source-uri> (argument or STORAGE_URI)"),
    dest: z.string({ error: "missing <dest-dir> (argument or MODEL_DIR)" }).min(1, "missing <dest-dir> (argument or MODEL_DIR)"),
    sha256: z
      .string()
      .transform(normalizeSha256)
      .pipe(z.string().regex(/^[0-9a-f]{64}$/, "--sha256: expected 64 hex digits"))
      .optional(),
    extract: z.enum(["auto", "none"], { error: "--extract: expected auto or none" }).default("auto"),
    filename: z
      .string()
      .refine((s) => s !== "" && s !== "." && s !== ".." && !/[/\\\0]/.test(s) && s !== MARKER_NAME && s !== STATE_DIR_NAME, "--filename: expected a plain file name")
      .optional(),
    timeout: durationField("--timeout")
      .transform((ms) => (ms === 0 ? undefined : ms))
      .optional(),
    idleTimeout: durationField("--idle-timeout").default(60_000),
    maxBytes: sizeField("--max-bytes").optional(),
    retries: intField("--retries", 0, 100).default(5),
    retryDelay: durationField("--retry-delay").default(500),
    concurrency: intField("--concurrency", 1, 64).default(4),
    layout: z.enum(["auto", "link", "in-place"], { error: "--layout: expected auto, link or in-place" }).default("auto"),
    lockStale: durationField("--lock-stale").default(30_000),
    force: boolField.default(false),
    progress: z.enum(["auto", "bar", "log", "none"], { error: "--progress: expected auto, bar, log or none" }).default("auto"),
    progressInterval: durationField("--progress-interval").default(10_000),
    logLevel: z
      .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"], { error: "--log-level: expected trace, debug, info, warn, error or silent" })
      .default("info"),
  });
}

let schema: Promise<ReturnType<typeof buildSchema>> | undefined;
const getSchema = () => (schema ??= import("zod").then(buildSchema));

export function normalizeSha256(s: string): string {
  return s.trim().toLowerCase().replace(/^sha256:/, "");
}

export function parseBool(v: string): boolean | undefined {
  const s = v.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(s)) return true;
  if (["0", "false", "no", "off", ""].includes(s)) return false;
  return undefined;
}

export type CliResult = { kind: "help" } | { kind: "version" } | { kind: "run"; config: PullerConfig };

/** Flag name -> environment variable. */
export const ENV: Record<string, string> = {
  sha256: "MODEL_SHA256",
  extract: "PULLER_EXTRACT",
  filename: "PULLER_FILENAME",
  timeout: "PULLER_TIMEOUT",
  idleTimeout: "PULLER_IDLE_TIMEOUT",
  maxBytes: "PULLER_MAX_BYTES",
  retries: "PULLER_RETRIES",
  retryDelay: "PULLER_RETRY_DELAY",
  concurrency: "PULLER_CONCURRENCY",
  layout: "PULLER_LAYOUT",
  lockStale: "PULLER_LOCK_STALE",
  force: "PULLER_FORCE",
  progress: "PULLER_PROGRESS",
  progressInterval: "PULLER_PROGRESS_INTERVAL",
  logLevel: "PULLER_LOG_LEVEL",
};

export const FLAGS = {
  sha256: { type: "string" },
  extract: { type: "string" },
  filename: { type: "string" },
  timeout: { type: "string" },
  "idle-timeout": { type: "string" },
  "max-bytes": { type: "string" },
  retries: { type: "string" },
  "retry-delay": { type: "string" },
  concurrency: { type: "string" },
  layout: { type: "string" },
  "lock-stale": { type: "string" },
  force: { type: "boolean" },
  progress: { type: "string" },
  "progress-interval": { type: "string" },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
} as const;

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Parses argv (without node and script) and the environment. Throws UsageError. */
export async function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof FLAGS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: FLAGS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (positionals.length > 2) throw new UsageError(`too many arguments: ${positionals.slice(2).join(" ")}`);

  const raw: Record<string, unknown> = {};
  for (const [key, envName] of Object.entries(ENV)) {
    const v = env[envName];
    if (v !== undefined && v !== "") raw[key] = v;
  }
  for (const [flag, v] of Object.entries(values)) {
    if (flag === "help" || flag === "version" || v === undefined) continue;
    raw[camel(flag)] = v;
  }
  raw.source = positionals[0] ?? (env.STORAGE_URI || undefined);
  raw.dest = positionals[1] ?? (env.MODEL_DIR || undefined);

  const result = (await getSchema()).safeParse(raw);
  if (!result.success) {
    const first = result.error.issues[0];
    throw new UsageError(first?.message ?? "invalid arguments");
  }
  return { kind: "run", config: result.data };
}

/** The defaults, for callers that build a config in code (tests, the benchmark). */
export async function makeConfig(partial: Partial<PullerConfig> & { source: string; dest: string }): Promise<PullerConfig> {
  const base = (await getSchema()).parse({ source: partial.source, dest: partial.dest });
  return { ...base, ...partial };
}
