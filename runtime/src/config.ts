/**
 * Server configuration: one zod schema, filled from (lowest first) defaults, a
 * JSON config file, environment variables, then command-line flags. Errors name
 * the key as the user wrote it (PORT, --model_dir, "port" in the file).
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { DEFAULT_HTTP_PORT, ENV, PROTOCOLS, USER_ID_PATTERN, USER_ID_RULE } from "./constants.js";
import { MODEL_NAME_PATTERN } from "./repository/repository.js";
import { ExecutionProviderSchema } from "./repository/settings.js";

const TRUE_WORDS = new Set(["true", "1", "yes"]);
const FALSE_WORDS = new Set(["false", "0", "no"]);
const booleanish = z.preprocess(
  (v) => (typeof v === "string" ? (TRUE_WORDS.has(v.toLowerCase()) ? true : FALSE_WORDS.has(v.toLowerCase()) ? false : v) : v),
  z.boolean({ error: "expected true or false" }),
);

const providerList = z
  .union([z.array(z.string()), z.string().transform((s) => s.split(",").map((p) => p.trim()).filter(Boolean))])
  .pipe(z.array(ExecutionProviderSchema).min(1, "name at least one execution provider"));

export const ConfigSchema = z
  .object({
    port: z.coerce.number({ error: "expected a port number" }).int("expected a port number").min(0).max(65535).default(DEFAULT_HTTP_PORT),
    host: z.string().min(1).optional(),
    modelRepository: z.string().min(1).default("./models"),
    modelName: z.string().regex(MODEL_NAME_PATTERN, "letters, digits, '_', '-' and '.', starting with a letter or digit").optional(),
    modelDir: z.string().min(1).optional(),
    /** Triton's --strict-readiness: ready only when every model is READY; otherwise when none is still loading. */
    strictReadiness: booleanish.default(true),
    maxRequestBytes: z.coerce.number({ error: "expected a number of bytes" }).int().positive().default(64 * 1024 * 1024),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    executionProviders: providerList.default(["cpu"]),
    /** The model repository extension's load and unload calls (the index stays readable). */
    repositoryApi: z.enum(["enabled", "disabled"]).default("enabled"),
    /** A bearer token every repository call must carry; mount it from a Secret. */
    repositoryApiToken: z.string().min(16, "use a token of at least 16 characters").optional(),
    logFormat: z.enum(["json", "pretty"]).default("json"),
    /** A request still running after this is answered 504 (its model run is not interrupted, but nothing waits on it). */
    requestTimeoutMs: z.coerce.number({ error: "expected milliseconds" }).int().positive().default(60_000),
    /** Requests one model may have in progress before new ones get 503 with Retry-After. */
    maxInflightPerModel: z.coerce.number({ error: "expected a number" }).int().positive().default(1024),
    /**
     * Request body bytes held in memory at once, all requests together; past it, 503 with Retry-After.
     * Unset: derived at start from the container memory limit (runtime/src/admission/limits.ts).
     */
    maxBufferedRequestBytes: z.coerce.number({ error: "expected a number of bytes" }).int().positive().optional(),
    /** On SIGTERM: readiness turns 503 at once; new connections are still taken for this long (endpoints update). */
    drainDelayMs: z.coerce.number({ error: "expected milliseconds" }).int().min(0).default(2_000),
    /** On SIGTERM: the longest to wait for in-flight work before exiting anyway (keep below terminationGracePeriodSeconds). */
    drainTimeoutMs: z.coerce.number({ error: "expected milliseconds" }).int().positive().default(25_000),
    /** Run one inference per model before reporting ready, so the first user request is not the slow one. */
    warmup: booleanish.default(true),
    /** CloudEvent replies: type and source (KServe's CE_TYPE / CE_SOURCE), and whether request extensions carry over. */
    ceType: z.string().min(1).default("io.kserve.inference.response"),
    ceSource: z.string().min(1).optional(),
    ceMerge: booleanish.default(false),
    /** Inference logger sink: LOGGER_URL, or K_SINK as a Knative SinkBinding injects it. */
    loggerUrl: z.url({ error: "expected an http(s) URL" }).optional(),
    loggerSink: z.url({ error: "expected an http(s) URL" }).optional(),
    loggerMode: z.enum(["all", "request", "response"]).default("all"),
    loggerQueueSize: z.coerce.number({ error: "expected a number" }).int().positive().default(1000),
    /** Identity reported in logger events: Knative sets K_SERVICE; the namespace comes from the downward API. */
    serviceName: z.string().min(1).optional(),
    namespace: z.string().min(1).optional(),
    /** "grpc": the port also answers gRPC over h2c (Knative routes h2c to a port named h2c); HTTP/1.1 REST stays on it. */
    protocol: z.enum(PROTOCOLS, { error: `expected ${PROTOCOLS.join(" or ")}` }).default("http"),
    /** Asynchronous inference: Prefer: respond-async, /api/v1/*, the worker on POST /, the results collector. */
    asyncInference: booleanish.default(false),
    databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, "expected a postgres:// or postgresql:// connection string").optional(),
    pgliteDir: z.string().min(1).optional(),
    redisUrl: z.string().regex(/^rediss?:\/\//, "expected a redis:// or rediss:// URL").optional(),
    asyncSink: z.url({ error: "expected an http(s) URL" }).optional(),
    /** Runs a queued request may have (interrupted ones included) before it is failed. */
    asyncMaxAttempts: z.coerce.number({ error: "expected a number" }).int("expected a whole number").min(1, "expected 1 or more").default(3),
    /** How long a process holds a queued or running request without renewing its lease (renewed every third of it). */
    asyncLeaseSeconds: z.coerce.number({ error: "expected seconds" }).positive("expected more than 0").default(30),
    /** How often the sweeper looks for stranded requests; unset: half the lease. */
    asyncSweepSeconds: z.coerce.number({ error: "expected seconds" }).positive("expected more than 0").optional(),
    /** POST /api/v1/results; on with asyncInference unless set. */
    resultsCollector: booleanish.optional(),
    /**
     * The shared secret of the results path: the platform's request events and the worker's replies carry
     * it (the `resultstoken` CloudEvent extension), the collector accepts only results that do. From a Secret;
     * required with asyncInference and a Broker (ASYNC_SINK or K_SINK), and the same on every replica.
     */
    resultsToken: z.string().min(16, "use a token of at least 16 characters").regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces (it travels as a ce-* header)").optional(),
    /** The header the ingress sets to the authenticated user. */
    userHeader: z.string().regex(/^[a-z0-9-]+$/i, "expected a header name").transform((h) => h.toLowerCase()).default("x-user-id"),
    /** Default per-user limits per window; unset: unlimited. */
    quotaRequests: z.coerce.number({ error: "expected a number" }).int("expected a whole number").min(0, "expected 0 or more").optional(),
    quotaTokens: z.coerce.number({ error: "expected a number" }).int("expected a whole number").min(0, "expected 0 or more").optional(),
    quotaWindowSeconds: z.coerce.number({ error: "expected seconds" }).int().positive().default(3600),
    /** Per-user limits, e.g. {"alice": {"requests": 1000, "tokens": 50000}} (JSON in QUOTA_USERS). */
    quotaUsers: z
      .preprocess(
        (v) => {
          if (typeof v !== "string") return v;
          try {
            return JSON.parse(v) as unknown;
          } catch {
            return v;
          }
        },
        z.record(
          z.string().regex(USER_ID_PATTERN, `user ids are ${USER_ID_RULE}`),
          z.object({ requests: z.number().int().min(0).optional(), tokens: z.number().int().min(0).optional() }).strict(),
          { error: (issue) => (issue.code === "invalid_type" ? 'expected a JSON object such as {"alice": {"requests": 100, "tokens": 5000}}' : undefined) },
        ),
      )
      .default({}),
    /** When the quota store (Redis) cannot be reached: refuse (503) or admit. */
    quotaOnStoreError: z.enum(["fail-closed", "fail-open"]).default("fail-closed"),
  })
  .strict()
  .refine((c) => (c.modelName === undefined) === (c.modelDir === undefined), {
    message: "model name and model dir go together: give both (KServe's --model_name and --model_dir) or neither",
    path: ["modelDir"],
  })
  .refine((c) => !c.asyncInference || (c.asyncSink ?? c.loggerSink) === undefined || c.resultsToken !== undefined, {
    message:
      "required with asynchronous inference on a Broker (ASYNC_SINK or K_SINK): the shared secret that the worker's replies carry to the results collector; set the same value on every replica, from a Secret",
    path: ["resultsToken"],
  });

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
type Key = keyof z.input<typeof ConfigSchema>;

/** Where each key may come from. Flag spellings include KServe's and Triton's. */
const SOURCES: Record<Key, { env: string; flags: string[] }> = {
  port: { env: ENV.port, flags: ["--port", "--http_port", "--http-port"] },
  host: { env: ENV.host, flags: ["--host"] },
  modelRepository: { env: ENV.modelRepository, flags: ["--model-repository", "--model_repository", "--model-store"] },
  modelName: { env: ENV.modelName, flags: ["--model_name", "--model-name"] },
  modelDir: { env: ENV.modelDir, flags: ["--model_dir", "--model-dir"] },
  strictReadiness: { env: ENV.strictReadiness, flags: ["--strict-readiness", "--strict_readiness"] },
  maxRequestBytes: { env: ENV.maxRequestBytes, flags: ["--max-request-bytes"] },
  logLevel: { env: ENV.logLevel, flags: ["--log-level", "--log_level"] },
  executionProviders: { env: ENV.executionProviders, flags: ["--execution-providers"] },
  repositoryApi: { env: ENV.repositoryApi, flags: ["--repository-api"] },
  repositoryApiToken: { env: ENV.repositoryApiToken, flags: [] },
  logFormat: { env: ENV.logFormat, flags: ["--log-format"] },
  requestTimeoutMs: { env: ENV.requestTimeoutMs, flags: ["--request-timeout-ms"] },
  maxInflightPerModel: { env: ENV.maxInflightPerModel, flags: ["--max-inflight-per-model"] },
  maxBufferedRequestBytes: { env: ENV.maxBufferedRequestBytes, flags: ["--max-buffered-request-bytes"] },
  drainDelayMs: { env: ENV.drainDelayMs, flags: ["--drain-delay-ms"] },
  drainTimeoutMs: { env: ENV.drainTimeoutMs, flags: ["--drain-timeout-ms"] },
  warmup: { env: ENV.warmup, flags: ["--warmup"] },
  ceType: { env: ENV.ceType, flags: [] },
  ceSource: { env: ENV.ceSource, flags: [] },
  ceMerge: { env: ENV.ceMerge, flags: [] },
  loggerUrl: { env: ENV.loggerUrl, flags: ["--logger-url"] },
  loggerSink: { env: ENV.loggerSink, flags: [] },
  loggerMode: { env: ENV.loggerMode, flags: ["--logger-mode"] },
  loggerQueueSize: { env: ENV.loggerQueueSize, flags: [] },
  serviceName: { env: ENV.serviceName, flags: [] },
  namespace: { env: ENV.namespace, flags: [] },
  protocol: { env: ENV.protocol, flags: ["--protocol"] },
  asyncInference: { env: ENV.asyncInference, flags: ["--async-inference"] },
  databaseUrl: { env: ENV.databaseUrl, flags: [] },
  pgliteDir: { env: ENV.pgliteDir, flags: [] },
  redisUrl: { env: ENV.redisUrl, flags: [] },
  asyncSink: { env: ENV.asyncSink, flags: [] },
  asyncMaxAttempts: { env: ENV.asyncMaxAttempts, flags: [] },
  asyncLeaseSeconds: { env: ENV.asyncLeaseSeconds, flags: [] },
  asyncSweepSeconds: { env: ENV.asyncSweepSeconds, flags: [] },
  resultsCollector: { env: ENV.resultsCollector, flags: [] },
  resultsToken: { env: ENV.resultsToken, flags: [] },
  userHeader: { env: ENV.userHeader, flags: ["--user-header"] },
  quotaRequests: { env: ENV.quotaRequests, flags: ["--quota-requests"] },
  quotaTokens: { env: ENV.quotaTokens, flags: ["--quota-tokens"] },
  quotaWindowSeconds: { env: ENV.quotaWindowSeconds, flags: ["--quota-window-seconds"] },
  quotaUsers: { env: ENV.quotaUsers, flags: [] },
  quotaOnStoreError: { env: ENV.quotaOnStoreError, flags: [] },
};

export class ConfigError extends Error {}

export const USAGE = `Usage: inference-server [options]

Serves every model in a model repository over the Open Inference Protocol v2.

Options (each also settable by the environment variable shown):
  --port, --http_port N          listen port (PORT, default 8080)
  --host ADDR                    listen address (HOST, default all interfaces)
  --model-repository DIR         model repository (MODEL_REPOSITORY, default ./models)
  --model_name NAME --model_dir DIR
                                 serve the single model in DIR as NAME (KServe's runtime flags)
  --strict-readiness BOOL        ready only when every model loaded (STRICT_READINESS, default true)
  --max-request-bytes N          request body limit (MAX_REQUEST_BYTES, default 67108864)
  --log-level LEVEL              fatal|error|warn|info|debug|trace|silent (LOG_LEVEL, default info)
  --execution-providers LIST     default providers, e.g. cuda,cpu (EXECUTION_PROVIDERS, default cpu)
  --repository-api enabled|disabled
                                 model load/unload API (REPOSITORY_API, default enabled);
                                 REPOSITORY_API_TOKEN requires a bearer token for it
  --log-format json|pretty       log lines (LOG_FORMAT, default json)
  --request-timeout-ms N         answer 504 after N ms (REQUEST_TIMEOUT_MS, default 60000)
  --max-inflight-per-model N     503 with Retry-After beyond N (MAX_INFLIGHT_PER_MODEL, default 1024)
  --max-buffered-request-bytes N request bytes held in memory at once, all requests together; 503 with
                                 Retry-After beyond (MAX_BUFFERED_REQUEST_BYTES, default an eighth of the
                                 container memory limit, else of the machine's memory, at most 1 GiB)
  --drain-delay-ms N             on SIGTERM keep accepting for N ms (DRAIN_DELAY_MS, default 2000)
  --drain-timeout-ms N           on SIGTERM wait at most N ms for in-flight work (DRAIN_TIMEOUT_MS, default 25000)
  --warmup BOOL                  one inference per model before ready (MODEL_WARMUP, default true)
  --protocol http|grpc           grpc: the port also serves gRPC (h2c) beside HTTP/1.1 (PROTOCOL, default http)
  --logger-url URL               inference logger sink (LOGGER_URL, or K_SINK)
  --logger-mode all|request|response
                                 what the logger sends (LOGGER_MODE, default all)
  CloudEvent replies: CE_TYPE, CE_SOURCE, CE_MERGE (KServe's names)
  --async-inference BOOL         queued requests, status, usage, quotas (ASYNC_INFERENCE, default false);
                                 DATABASE_URL (PostgreSQL; unset: embedded PGlite, PGLITE_DATA_DIR),
                                 REDIS_URL (quota counters; unset: in-process), ASYNC_SINK (the Broker;
                                 default K_SINK; unset: in-process queue), RESULTS_COLLECTOR,
                                 RESULTS_TOKEN (shared secret of the results path; required with a Broker);
                                 stranded requests: ASYNC_MAX_ATTEMPTS (default 3), ASYNC_LEASE_SECONDS
                                 (default 30), ASYNC_SWEEP_SECONDS (default half the lease)
  --user-header NAME             the ingress' user header (USER_HEADER, default x-user-id)
  --quota-requests N, --quota-tokens N, --quota-window-seconds N
                                 default per-user limits per window (QUOTA_REQUESTS, QUOTA_TOKENS,
                                 QUOTA_WINDOW_SECONDS, default 3600); per user: QUOTA_USERS (JSON);
                                 QUOTA_ON_STORE_ERROR fail-closed|fail-open (default fail-closed)
  --config FILE                  JSON file with any of these keys in camelCase (CONFIG_FILE)
  --help                         this text
`;

function parseFlags(argv: string[]): { values: Partial<Record<Key, string>>; configFile?: string; help: boolean } {
  const byFlag = new Map<string, Key>();
  for (const [key, source] of Object.entries(SOURCES) as [Key, { flags: string[] }][]) {
    for (const flag of source.flags) byFlag.set(flag, key);
  }
  const values: Partial<Record<Key, string>> = {};
  let configFile: string | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const key = byFlag.get(flag);
    if (!key && flag !== "--config") throw new ConfigError(`unknown option ${flag}\n\n${USAGE}`);
    let value: string | undefined = eq > 0 ? arg.slice(eq + 1) : argv[i + 1];
    if (eq < 0) i++;
    if (value === undefined || (eq < 0 && value.startsWith("--"))) throw new ConfigError(`option ${flag} needs a value`);
    if (key) values[key] = value;
    else configFile = value;
  }
  return { values, configFile, help };
}

/**
 * Builds the configuration from flags, environment and an optional file.
 * Throws ConfigError with every bad key named as the user spelled it.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): { config: Config; help: boolean } {
  const flags = parseFlags(argv);
  const origin = new Map<string, string>();
  const raw: Record<string, unknown> = {};

  const file = flags.configFile ?? env[ENV.configFile];
  if (file) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ConfigError(`config file ${file} must hold a JSON object`);
    for (const [k, v] of Object.entries(json)) {
      raw[k] = v;
      origin.set(k, `"${k}" in ${file}`);
    }
  }
  for (const [key, source] of Object.entries(SOURCES) as [Key, { env: string }][]) {
    const value = env[source.env];
    if (value !== undefined && value !== "") {
      raw[key] = value;
      origin.set(key, `${source.env} (environment)`);
    }
  }
  for (const [key, value] of Object.entries(flags.values)) {
    raw[key] = value;
    const used = argv.find((a) => SOURCES[key as Key].flags.some((f) => a === f || a.startsWith(`${f}=`)));
    origin.set(key, used?.split("=")[0] ?? key);
  }
  return { config: parseConfig(raw, origin), help: flags.help };
}

/** Validates a configuration object; `origin` maps keys to how the user named them. */
export function parseConfig(raw: Record<string, unknown>, origin = new Map<string, string>()): Config {
  const parsed = ConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys" && issue.path.length === 0) return `unknown configuration key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => origin.get(k) ?? k).join(", ")}`;
    const key = String(issue.path[0] ?? "");
    const label = origin.get(key) ?? (key in SOURCES ? `${key} (${SOURCES[key as Key].env})` : key);
    return `${label}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
}
