/**
 * Asynchronous inference from the configuration: the request store (PostgreSQL,
 * or PGlite in process), the quota counter (Redis, or in process), the queue (a
 * Broker, or in process) and the service over them. Loaded only when
 * ASYNC_INFERENCE is on.
 */
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import { redactUrl } from "../logging.js";
import type { Metrics } from "../metrics.js";
import { createQuotaCounter, QuotaPolicy } from "./quota/policy.js";
import { BrokerQueue, InProcessQueue, type QueuedRequest } from "./queue.js";
import { AsyncInference } from "./service.js";
import { openRequestStore } from "./store/index.js";

export interface AsyncSetup {
  service: AsyncInference;
  /** Finishes in-process deliveries (at most timeoutMs), writes pending usage, closes the store and the counter. */
  close(timeoutMs: number): Promise<void>;
}

export async function startAsyncInference(config: Config, deps: { dataPlane: DataPlane; logger: Logger; metrics: Metrics }): Promise<AsyncSetup> {
  const { dataPlane, metrics } = deps;
  const logger = deps.logger.child({ component: "async" });
  const store = await openRequestStore({ databaseUrl: config.databaseUrl, pgliteDir: config.pgliteDir, logger });
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
  const service = new AsyncInference({ dataPlane, store, quota, windowSeconds: config.quotaWindowSeconds, logger, metrics });

  const sink = config.asyncSink ?? config.loggerSink;
  if (sink) {
    service.useQueue(new BrokerQueue(sink, config.ceSource ?? "io.kserve.inference.async", logger));
  } else {
    // No Broker: the worker and the collector run here, through the same code the Broker's deliveries reach.
    const deliver = async (queued: QueuedRequest) => {
      const outcome = await service.work(queued.id, queued.request, { protocol: "v2" });
      if (outcome.kind === "unknown") throw new Error(`request ${queued.id} is not in the store`);
      if (outcome.kind === "succeeded") await service.collect(queued.id, { response: JSON.parse(outcome.response) as unknown });
      if (outcome.kind === "failed") await service.collect(queued.id, { error: outcome.error });
    };
    service.useQueue(new InProcessQueue(deliver, (queued, reason) => service.collect(queued.id, { error: `delivery failed: ${reason}` }).then(() => undefined), logger));
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
      ? `asynchronous inference on, for local use:${store.kind === "pglite" ? " embedded PGlite store (no DATABASE_URL)," : ""}${counter && !config.redisUrl ? " in-process quota counters (no REDIS_URL)," : ""}${sink ? "" : " in-process queue (no ASYNC_SINK or K_SINK): queued requests do not survive a restart"}`
      : "asynchronous inference on",
  );

  return {
    service,
    async close(timeoutMs) {
      dataPlane.setAdmission(undefined);
      await service.close(timeoutMs).catch((err: unknown) => logger.warn({ err }, "closing asynchronous inference"));
      await counter?.close().catch(() => undefined);
      await store.close().catch(() => undefined);
    },
  };
}
