/**
 * Facts about the runtime that other artefacts must agree with: the Knative and
 * KServe manifests are generated from these, the README documents them, and the
 * metrics module registers exactly these names.
 */
export const DEFAULT_HTTP_PORT = 8080;

export const PATHS = {
  live: "/v2/health/live",
  ready: "/v2/health/ready",
  metrics: "/metrics",
  openapi: "/openapi.json",
} as const;

/** Where KServe's storage initializer and our model puller put the model. */
export const MODEL_MOUNT_PATH = "/mnt/models";

/** Environment variables the server reads (see config.ts for their meaning and defaults). */
export const ENV = {
  port: "PORT",
  host: "HOST",
  modelRepository: "MODEL_REPOSITORY",
  modelName: "MODEL_NAME",
  modelDir: "MODEL_DIR",
  strictReadiness: "STRICT_READINESS",
  maxRequestBytes: "MAX_REQUEST_BYTES",
  logLevel: "LOG_LEVEL",
  executionProviders: "EXECUTION_PROVIDERS",
  configFile: "CONFIG_FILE",
  repositoryApi: "REPOSITORY_API",
  repositoryApiToken: "REPOSITORY_API_TOKEN",
  logFormat: "LOG_FORMAT",
  requestTimeoutMs: "REQUEST_TIMEOUT_MS",
  maxInflightPerModel: "MAX_INFLIGHT_PER_MODEL",
  /** The budget of request body bytes held in memory at once, all requests together. */
  maxBufferedRequestBytes: "MAX_BUFFERED_REQUEST_BYTES",
  drainDelayMs: "DRAIN_DELAY_MS",
  drainTimeoutMs: "DRAIN_TIMEOUT_MS",
  warmup: "MODEL_WARMUP",
  ceType: "CE_TYPE",
  ceSource: "CE_SOURCE",
  ceMerge: "CE_MERGE",
  loggerUrl: "LOGGER_URL",
  /** Injected by a Knative SinkBinding. */
  loggerSink: "K_SINK",
  loggerMode: "LOGGER_MODE",
  loggerQueueSize: "LOGGER_QUEUE_SIZE",
  /** Set by Knative on every revision's container. */
  serviceName: "K_SERVICE",
  /** From the downward API (metadata.namespace). */
  namespace: "POD_NAMESPACE",
  /** "http" (HTTP/1.1 only) or "grpc" (gRPC over h2c and HTTP/1.1 on the same port). */
  protocol: "PROTOCOL",
  /** Asynchronous inference (runtime/src/async): the async API, the worker and the results collector. */
  asyncInference: "ASYNC_INFERENCE",
  /** PostgreSQL connection string, from a Secret; unset: the embedded PGlite store. */
  databaseUrl: "DATABASE_URL",
  pgliteDir: "PGLITE_DATA_DIR",
  /** Redis for quota counters, from a Secret; unset: in-process counters. */
  redisUrl: "REDIS_URL",
  /** Where queued requests are published (the Broker); defaults to K_SINK; unset: an in-process queue. */
  asyncSink: "ASYNC_SINK",
  /** Runs a queued request may have before it is failed (default 3). */
  asyncMaxAttempts: "ASYNC_MAX_ATTEMPTS",
  /** Lease of a process on a queued or running request, in seconds (default 30; renewed every third of it). */
  asyncLeaseSeconds: "ASYNC_LEASE_SECONDS",
  /** How often stranded requests are looked for, in seconds (default: half the lease). */
  asyncSweepSeconds: "ASYNC_SWEEP_SECONDS",
  resultsCollector: "RESULTS_COLLECTOR",
  /**
   * The shared secret the platform's events carry to the results collector (the `resultstoken`
   * CloudEvent extension), from a Secret; required with a Broker, the same on every replica.
   */
  resultsToken: "RESULTS_TOKEN",
  userHeader: "USER_HEADER",
  quotaRequests: "QUOTA_REQUESTS",
  quotaTokens: "QUOTA_TOKENS",
  quotaWindowSeconds: "QUOTA_WINDOW_SECONDS",
  quotaUsers: "QUOTA_USERS",
  quotaOnStoreError: "QUOTA_ON_STORE_ERROR",
} as const;

/** A user id as quotas, usage and the async API take it (USER_HEADER, user_id, QUOTA_USERS keys). */
export const USER_ID_PATTERN = /^[\w.@:+-]{1,128}$/;
export const USER_ID_RULE = "1 to 128 letters, digits, '_', '.', '@', ':', '+' or '-'";

/** The async API's paths (rest/async.ts). */
export const ASYNC_PATHS = {
  submit: "/api/v1/inference",
  request: "/api/v1/requests",
  users: "/api/v1/users",
  results: "/api/v1/results",
} as const;

/** The values of PROTOCOL / --protocol. */
export const PROTOCOLS = ["http", "grpc"] as const;

/** The Open Inference Protocol's gRPC service, and the name the gRPC health service answers for. */
export const GRPC_SERVICE = "inference.GRPCInferenceService";

/**
 * Names the gRPC health service (grpc.health.v1.Health) answers for. Readiness:
 * "" and the inference service, SERVING when /v2/health/ready would answer 200.
 * Liveness: SERVING whenever the process answers (a liveness probe must not
 * restart a pod that is still loading its models).
 */
export const GRPC_HEALTH_SERVICES = { readiness: ["", GRPC_SERVICE], liveness: "liveness" } as const;

/** Knative routes h2c (cleartext HTTP/2, what gRPC needs) to a revision whose container port has this name. */
export const GRPC_PORT_NAME = "h2c";

/**
 * Prometheus metric names served at /metrics. Labels: model, version, protocol
 * (v2 | v1 | cloudevent | grpc), status_code (HTTP status of the answer).
 * Histograms carry the usual _bucket/_sum/_count series.
 */
export const METRICS = {
  requests: "inference_server_requests_total",
  requestDuration: "inference_server_request_duration_seconds",
  inferenceDuration: "inference_server_inference_duration_seconds",
  queueDuration: "inference_server_queue_duration_seconds",
  batchSize: "inference_server_batch_size",
  inFlight: "inference_server_requests_in_flight",
  inputBytes: "inference_server_request_input_bytes",
  modelLoadDuration: "inference_server_model_load_duration_seconds",
  modelReady: "inference_server_model_ready",
  /** Inference-logger CloudEvents by outcome: sent, failed (after retries), dropped (queue full). */
  loggerEvents: "inference_server_logger_events_total",
  /** Asynchronous requests by event: submitted, started, redelivered, requeued (taken over from a stopped process), succeeded, failed. */
  asyncRequests: "inference_server_async_requests_total",
  /**
   * Results the collector refused, by reason: no_token, invalid_token (401), not_running,
   * attempt_mismatch (403), finished (a valid result for a request already finished: recorded nothing).
   */
  asyncResultsRefused: "inference_server_async_results_refused_total",
  /** Quota decisions by outcome: admitted, rejected, store_error_refused, store_error_admitted. */
  quotaDecisions: "inference_server_quota_decisions_total",
  /** Request body bytes held in memory now (reserved against MAX_BUFFERED_REQUEST_BYTES), and that budget. */
  requestBytesBuffered: "inference_server_request_bytes_buffered",
  requestBytesBudget: "inference_server_request_bytes_budget",
  /**
   * Requests refused before their body was read, by reason: not_ready, inflight_limit,
   * batch_queue_full (503), memory_budget (503, MAX_BUFFERED_REQUEST_BYTES), too_large (413).
   */
  admissionRefusals: "inference_server_admission_refusals_total",
  /** Connections Node's HTTP parser answered itself (408 request timeout, 400 bad request, ...), by status and error code. */
  clientErrors: "inference_server_client_errors_total",
  /** Model instances (worker threads) restarted after stopping unexpectedly. */
  instanceRestarts: "inference_server_model_instance_restarts_total",
  /** Model instances by state (live, restarting). */
  modelInstances: "inference_server_model_instances",
} as const;
