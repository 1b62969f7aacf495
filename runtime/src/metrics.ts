/**
 * Prometheus metrics (prom-client), one registry per server so several servers
 * in one process (tests) never share series. Names come from constants.ts,
 * which the dashboards and alert rules are generated from.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { METRICS } from "./constants.js";

/** Seconds, from 100 µs (a tiny model in process) to 30 s (a large model on CPU). */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const BYTE_BUCKETS = [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: METRICS.requests,
    help: "Inference requests answered, by model, version, protocol and HTTP status code",
    labelNames: ["model", "version", "protocol", "status_code"] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: METRICS.requestDuration,
    help: "Time from request received to response ready, seconds",
    labelNames: ["model", "version", "protocol"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly inferenceDuration = new Histogram({
    name: METRICS.inferenceDuration,
    help: "Model execution (compute) time per run, seconds",
    labelNames: ["model", "version"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly queueDuration = new Histogram({
    name: METRICS.queueDuration,
    help: "Time a request waited for its model to run (batching queue), seconds",
    labelNames: ["model", "version"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly batchSize = new Histogram({
    name: METRICS.batchSize,
    help: "Rows per model execution",
    labelNames: ["model", "version"] as const,
    buckets: BATCH_BUCKETS,
    registers: [this.registry],
  });

  readonly inFlight = new Gauge({
    name: METRICS.inFlight,
    help: "Inference requests being processed",
    labelNames: ["model", "protocol"] as const,
    registers: [this.registry],
  });

  readonly inputBytes = new Histogram({
    name: METRICS.inputBytes,
    help: "Request body size of inference requests, bytes (after decompression)",
    labelNames: ["model", "protocol"] as const,
    buckets: BYTE_BUCKETS,
    registers: [this.registry],
  });

  readonly modelLoadDuration = new Gauge({
    name: METRICS.modelLoadDuration,
    help: "How long the last load of each model version took, seconds",
    labelNames: ["model", "version"] as const,
    registers: [this.registry],
  });

  readonly modelReady = new Gauge({
    name: METRICS.modelReady,
    help: "1 when the model version is READY, 0 otherwise",
    labelNames: ["model", "version"] as const,
    registers: [this.registry],
  });

  readonly loggerEvents = new Counter({
    name: METRICS.loggerEvents,
    help: "Inference-logger CloudEvents by outcome (sent, failed after retries, dropped when the queue was full)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly asyncRequests = new Counter({
    name: METRICS.asyncRequests,
    help: "Asynchronous inference requests by event: submitted, started, redelivered, requeued (taken over from a stopped process), succeeded, failed",
    labelNames: ["event"] as const,
    registers: [this.registry],
  });

  readonly asyncResultsRefused = new Counter({
    name: METRICS.asyncResultsRefused,
    help: "Results refused by the async results collector, by reason: no_token, invalid_token (401), not_running, attempt_mismatch (403), finished (already finished: nothing recorded)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  readonly quotaDecisions = new Counter({
    name: METRICS.quotaDecisions,
    help: "Quota admission decisions by outcome: admitted, rejected (over quota), store_error_refused / store_error_admitted (quota store unreachable, by policy)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly instanceRestarts = new Counter({
    name: METRICS.instanceRestarts,
    help: "Model instances (worker threads) that stopped unexpectedly and were started again, by model, version and instance",
    labelNames: ["model", "version", "instance"] as const,
    registers: [this.registry],
  });

  /** Filled at scrape time from the registry (server.ts), like model_ready. */
  readonly modelInstances = new Gauge({
    name: METRICS.modelInstances,
    help: "Model instances (worker threads) by model, version and state: live (running or idle) or restarting",
    labelNames: ["model", "version", "state"] as const,
    registers: [this.registry],
  });

  readonly requestBytesBuffered = new Gauge({
    name: METRICS.requestBytesBuffered,
    help: "Request body bytes held in memory now (declared lengths reserved before reading, inflated sizes), all requests together",
    registers: [this.registry],
  });

  readonly requestBytesBudget = new Gauge({
    name: METRICS.requestBytesBudget,
    help: "The budget of request body bytes held in memory at once (MAX_BUFFERED_REQUEST_BYTES)",
    registers: [this.registry],
  });

  readonly admissionRefusals = new Counter({
    name: METRICS.admissionRefusals,
    help: "Requests refused before their body was read, by reason: not_ready, inflight_limit, batch_queue_full, memory_budget (503), too_large (413)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  readonly clientErrors = new Counter({
    name: METRICS.clientErrors,
    help: "Connections Node's HTTP server answered itself before the application saw a request: 408 (request timeout), 400 (bad request), 431, ...; status_code \"\" when the client was gone",
    labelNames: ["status_code", "code"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * One answered inference request, whatever its transport. `model` is "" when the
   * request named no known model: a client must not be able to create series.
   * gRPC answers are counted under the HTTP status the same error has over REST.
   */
  recordRequest(labels: { model: string; version: string; protocol: string }, statusCode: number, seconds: number, inputBytes?: number): void {
    this.requests.inc({ ...labels, status_code: String(statusCode) });
    this.requestDuration.observe(labels, seconds);
    if (inputBytes !== undefined && Number.isFinite(inputBytes)) this.inputBytes.observe({ model: labels.model, protocol: labels.protocol }, inputBytes);
  }
}
