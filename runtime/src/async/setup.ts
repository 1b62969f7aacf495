/**
 * Asynchronous inference from the configuration: the request store (PostgreSQL,
 * or PGlite in process), the quota counter (Redis, or in process), the queue (a
 * Broker, or in process) and the service over them. Loaded only when
 * ASYNC_INFERENCE is on.
 */
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import { EXTENSIONS } from "../cloudevents/constants.js";
import { parseJsonExact } from "../codecs/json-exact.js";
import { redactUrl } from "../logging.js";
import type { Metrics } from "../metrics.js";
import { createQuotaCounter, QuotaPolicy } from "./quota/policy.js";
import { BrokerQueue, InProcessQueue, type QueuedRequest } from "./queue.js";
import { AsyncInference } from "./service.js";
import { openRequestStore } from "./store/index.js";
import { deferredStore } from "./deferred-store.js";
import type { RequestStore } from "./types.js";

export interface AsyncSetup {
  service: AsyncInference;
  /** Starts the sweeper of stranded requests (once the models are loaded, so that what it queues again can run). */
  recover(): void;
  /** Finishes in-process deliveries (at most timeoutMs), writes pending usage, closes the store and the counter. */
  close(timeoutMs: number): Promise<void>;
  /**
   * Settles once the request store is usable: at once with PostgreSQL (opened before this returns);
   * with the embedded PGlite store, when it has started in the background (it rejects if it cannot).
   */
  storeReady: Promise<void>;
}

export interface AsyncStartOptions {
  /** Tests: the embedded store starts opening only once this settles. */
  storeGate?: Promise<unknown>;
}

export async function startAsyncInference(
  config: Config,
  deps: { dataPlane: DataPlane; logger: Logger; metrics: Metrics },
  options: AsyncStartOptions = {},
): Promise<AsyncSetup> {
  const { dataPlane, metrics } = deps;
  const logger = deps.logger.child({ component: "async" });
  let store: RequestStore;
  let storeReady: Promise<void>;
  if (config.databaseUrl) {
    store = await openRequestStore({ databaseUrl: config.databaseUrl, pgliteDir: config.pgliteDir, logger });
    storeReady = Promise.resolve();
  } else {
    // The embedded store takes seconds to start (WebAssembly, initdb, migrations): in the background, while the
    // server listens and loads its models; until it is ready the async API answers 503 with Retry-After.
    const started = performance.now();
    logger.info({ store: "pglite", dataDir: config.pgliteDir ?? null }, "starting the embedded PGlite request store (in the background: the async API answers 503 until it is ready)");
    const opening = (options.storeGate ?? Promise.resolve()).then(() => openRequestStore({ pgliteDir: config.pgliteDir, logger }));
    const deferred = deferredStore("pglite", opening);
    store = deferred.store;
    storeReady = deferred.ready.then(
      () => logger.info({ store: "pglite", ms: Math.round(performance.now() - started) }, "embedded PGlite request store ready"),
      (err: unknown) => {
        logger.error({ err, store: "pglite" }, "the embedded PGlite request store could not be started: the async API answers 503");
        throw err;
      },
    );
    storeReady.catch(() => undefined);
  }
  const limited = config.quotaRequests !== undefined || config.quotaTokens !== undefined || Object.keys(config.quotaUsers).length > 0;
  const counter = limited ? createQuotaCounter({ redisUrl: config.redisUrl, windowSeconds: config.quotaWindowSeconds, logger }) : undefined;
  const quota = counter
    ? new QuotaPolicy({
        counter,
        defaultLimits: { requests: config.quotaRequests, tokens: config.quotaTokens },
        perUser: config.quotaUsers,
        windowSeconds: config.quotaWindowSeconds,
        onStoreError: config.quotaOnStoreError,
        logger,
        onDecision: (outcome) => metrics.quotaDecisions.inc({ outcome }),
      })
    : undefined;
  const service = new AsyncInference({
    dataPlane,
    store,
    quota,
    windowSeconds: config.quotaWindowSeconds,
    logger,
    metrics,
    leaseSeconds: config.asyncLeaseSeconds,
    sweepSeconds: config.asyncSweepSeconds,
    maxAttempts: config.asyncMaxAttempts,
  });

  const sink = config.asyncSink ?? config.loggerSink;
  if (sink) {
    // The request events carry RESULTS_TOKEN (required with a Broker): the worker answers only those as the
    // platform's, and the collector takes a dead-lettered one only with it.
    const extensions: Record<string, string> = config.resultsToken === undefined ? {} : { [EXTENSIONS.resultsToken]: config.resultsToken };
    service.useQueue(new BrokerQueue(sink, config.ceSource ?? "io.kserve.inference.async", logger, undefined, extensions));
  } else {
    // No Broker: the worker and the collector run here, through the same code the Broker's deliveries reach.
    const deliver = async (queued: QueuedRequest) => {
      const outcome = await service.work(queued.id, queued.request, { protocol: "v2" });
      if (outcome.kind === "unknown") throw new Error(`request ${queued.id} is not in the store`);
      // Parsed exactly: INT64/UINT64 values beyond 2^53 stay BigInt, never rounded, on their way to the store.
      if (outcome.kind === "succeeded") await service.collect(queued.id, { response: parseJsonExact(Buffer.from(outcome.response, "utf8"), "the model's response") });
      if (outcome.kind === "failed") await service.collect(queued.id, { error: outcome.error });
      service.release(queued.id);
    };
    // Dead-lettered: the platform's failure (retries spent), so its quota and usage are refunded.
    const deadLetter = (queued: QueuedRequest, reason: string) =>
      service
        .collect(queued.id, { error: `delivery failed: ${reason}` }, undefined, { refund: true })
        .then(() => undefined)
        .finally(() => service.release(queued.id));
    service.useQueue(new InProcessQueue(deliver, deadLetter, logger, config.asyncMaxAttempts));
  }
  dataPlane.setAdmission(service.admission);

  logger.info(
    {
      store: store.kind,
      quota_counter: counter?.kind ?? "none (no limits configured)",
      queue: sink ? redactUrl(sink) : "in-process",
      user_header: config.userHeader,
      window_seconds: config.quotaWindowSeconds,
    },
    store.kind === "pglite" || !sink || (counter && !config.redisUrl)
      ? `asynchronous inference on, for local use:${store.kind === "pglite" ? " embedded PGlite store (no DATABASE_URL)," : ""}${counter && !config.redisUrl ? " in-process quota counters (no REDIS_URL)," : ""}${sink ? "" : " in-process queue (no ASYNC_SINK or K_SINK): queued requests run again after a restart (kept in the store)"}`
      : "asynchronous inference on",
  );

  return {
    service,
    storeReady,
    // Once the store is open. PGlite: one process per database, so every unfinished request of an earlier process is stranded at once.
    recover: () => void storeReady.then(() => service.startSweeper({ claimAll: store.kind === "pglite" }), () => undefined),
    async close(timeoutMs) {
      dataPlane.setAdmission(undefined);
      await service.close(timeoutMs).catch((err: unknown) => logger.warn({ err }, "closing asynchronous inference"));
      await counter?.close().catch(() => undefined);
      await store.close().catch(() => undefined);
    },
  };
}
