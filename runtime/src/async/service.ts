/**
 * Asynchronous inference over the data plane, protocol-neutral: the REST and
 * CloudEvents transports (rest/async.ts, cloudevents/routes.ts) translate their
 * wire formats into these calls.
 *
 *   submit   validate → count tokens → quota (429) → store (queued, usage) → queue
 *   work     the worker's side of a delivered request event: running → infer
 *   collect  the collector's side of a response (or dead-lettered) event: succeeded | failed
 *
 * Each step is idempotent on the request id: the store only moves a request
 * forward (queued → running → succeeded | failed, the first result wins), usage
 * is counted once, when the request is first recorded.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { encodeInferenceRequest, encodeInferenceResponse, toInferenceRequest } from "../codecs/v2.js";
import type { DataPlane, InferenceContext } from "../dataplane/dataplane.js";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import type { InferenceRequest } from "../dataplane/types.js";
import type { Metrics } from "../metrics.js";
import type { ModelSettings } from "../repository/settings.js";
import type { QueuedRequest, RequestQueue } from "./queue.js";
import { USER_ID_PATTERN, USER_ID_RULE } from "../constants.js";
import { isTransientError } from "./store/postgres.js";
import { countTokens, tokenRuleOf } from "./tokens.js";
import { windowStart, type AsyncRequestRecord, type QuotaLimits, type RequestStore, type Usage } from "./types.js";

/** What the service needs of the quota policy (runtime/src/async/quota/policy.ts). */
export interface QuotaGate {
  /** Counts one request of `tokens` for the user, or throws InferenceError 429 (over quota) / 503 (quota store down, fail-closed). */
  admit(userId: string, tokens: number): Promise<unknown>;
  limitsFor(userId: string): QuotaLimits;
}

export interface AsyncInferenceOptions {
  dataPlane: DataPlane;
  store: RequestStore;
  /** Absent: no limits, usage is still recorded. */
  quota?: QuotaGate;
  windowSeconds: number;
  logger: Logger;
  metrics: Metrics;
  /** How often synchronous requests' usage is written to the store (batched). */
  usageFlushMs?: number;
}

/** What the worker made of a delivered request. */
export type WorkOutcome =
  | { kind: "succeeded"; response: string; modelVersion: string }
  | { kind: "failed"; error: string; status: number }
  /** Already finished (a redelivery): nothing to do. */
  | { kind: "done"; record: AsyncRequestRecord }
  /** Not a queued request of this platform: the caller treats the event as an ordinary one. */
  | { kind: "unknown" };

/** A user id as the async API accepts it. */
export function checkUserId(userId: unknown, from: string): string {
  if (typeof userId !== "string" || !USER_ID_PATTERN.test(userId)) {
    throw invalidInput(`${from} must be a user id of ${USER_ID_RULE}`);
  }
  return userId;
}

export class AsyncInference {
  private queue!: RequestQueue;
  private readonly pendingUsage = new Map<string, { userId: string; window: Date; usage: Usage }>();
  private readonly flushTimer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly options: AsyncInferenceOptions) {
    this.flushTimer = setInterval(() => void this.flushUsage(), options.usageFlushMs ?? 1_000).unref();
  }

  /** The queue is set after construction: the in-process queue delivers back into this service. */
  useQueue(queue: RequestQueue): void {
    this.queue = queue;
  }

  get registry() {
    return this.options.dataPlane.registry;
  }

  get queueKind(): string {
    return this.queue.kind;
  }

  private window(now = new Date()): Date {
    return windowStart(now, this.options.windowSeconds);
  }

  /**
   * Admission for synchronous requests (DataPlane.setAdmission): quota, then the
   * request's usage, batched into the store. Requests without a user pass freely.
   */
  readonly admission = async (request: InferenceRequest, context: InferenceContext, settings: ModelSettings): Promise<void> => {
    if (context.userId === undefined) return;
    const tokens = countTokens(request, tokenRuleOf(settings));
    await this.options.quota?.admit(context.userId, tokens);
    const window = this.window();
    const key = `${context.userId}\u0000${window.getTime()}`;
    const entry = this.pendingUsage.get(key) ?? { userId: context.userId, window, usage: { requests: 0, tokens: 0 } };
    entry.usage.requests++;
    entry.usage.tokens += tokens;
    this.pendingUsage.set(key, entry);
  };

  /** Writes the batched synchronous usage; what fails to write is kept for the next flush. */
  flushUsage(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const entries = [...this.pendingUsage.entries()];
      this.pendingUsage.clear();
      for (const [key, entry] of entries) {
        try {
          await this.options.store.addUsage(entry.userId, entry.window, entry.usage);
        } catch (err) {
          const again = this.pendingUsage.get(key);
          if (again) {
            again.usage.requests += entry.usage.requests;
            again.usage.tokens += entry.usage.tokens;
          } else {
            this.pendingUsage.set(key, entry);
          }
          this.options.logger.warn({ err, user_id: entry.userId }, "recording usage failed; will retry");
        }
      }
    });
    return this.flushing;
  }

  /** Queues a request: recorded first, then published, so the worker always finds its record. */
  async submit(request: InferenceRequest, options: { userId: string; inputBytes: number }): Promise<AsyncRequestRecord> {
    const { dataPlane, store, quota } = this.options;
    const { settings } = dataPlane.validate(request);
    const body = encodeInferenceRequest(request, "queue");
    const stored = JSON.parse(body) as unknown;
    // PostgreSQL's jsonb cannot hold U+0000: refuse it here (400, nothing counted) rather than fail the insert (500).
    const nul = findNul(stored, "");
    if (nul !== undefined) throw invalidInput(`the request's ${nul || "body"} contains a NUL character (\\u0000), which a queued request cannot hold`);
    const tokens = countTokens(request, tokenRuleOf(settings));
    await quota?.admit(options.userId, tokens);
    const id = randomUUID();
    const { record } = await store.createRequest(
      { id, userId: options.userId, model: request.modelName, modelVersion: request.modelVersion, inputBytes: options.inputBytes, tokens, request: stored },
      this.window(),
    ).catch(storeUnavailable);
    this.options.metrics.asyncRequests.inc({ event: "submitted" });
    const queued: QueuedRequest = { id, userId: options.userId, model: request.modelName, modelVersion: request.modelVersion, request: record.request };
    try {
      await this.queue.publish(queued);
    } catch (err) {
      // Recorded but not queued: say so in the record rather than leave it queued for ever.
      const reason = `could not be queued: ${(err as Error).message}`;
      await store.complete(id, { status: "failed", error: reason }).catch(() => undefined);
      this.options.metrics.asyncRequests.inc({ event: "failed" });
      throw new InferenceError(503, `request ${id} ${reason}`, { "retry-after": "1" });
    }
    return record;
  }

  /**
   * The worker: a delivered request event. Definitive failures (the request is
   * wrong for the model: 4xx) are outcomes to report; transient ones (5xx: the
   * model is not ready, the server is overloaded) are thrown so the Broker
   * retries and, in the end, dead-letters the event.
   */
  async work(id: string, data: unknown, context: Omit<InferenceContext, "admitted" | "userId">): Promise<WorkOutcome> {
    const marked = await this.options.store.markRunning(id);
    if (!marked) return { kind: "unknown" };
    const { record, changed } = marked;
    if (!changed) return { kind: "done", record };
    this.options.metrics.asyncRequests.inc({ event: record.attempts > 1 ? "redelivered" : "started" });
    let request: InferenceRequest;
    try {
      // The stored request is the one admitted; the event's data only has to be present.
      if (data === undefined) throw invalidInput("the request event has no data");
      request = toInferenceRequest(record.request, record.model, record.modelVersion);
    } catch (err) {
      if (err instanceof InferenceError) return { kind: "failed", error: err.message, status: err.status };
      throw err;
    }
    try {
      const response = await this.options.dataPlane.infer(request, { ...context, requestId: id, userId: record.userId, admitted: true });
      return { kind: "succeeded", response: encodeInferenceResponse(response).json, modelVersion: response.modelVersion };
    } catch (err) {
      if (err instanceof InferenceError && err.status < 500) return { kind: "failed", error: err.message, status: err.status };
      throw err;
    }
  }

  /** The collector: a response event (or a dead-lettered request) finishes its request once. */
  async collect(id: string, outcome: { response: unknown } | { error: string }): Promise<{ known: boolean; changed: boolean }> {
    const completion = "error" in outcome ? { status: "failed" as const, error: outcome.error } : { status: "succeeded" as const, response: outcome.response };
    const done = await this.options.store.complete(id, completion);
    if (!done) return { known: false, changed: false };
    if (done.changed) this.options.metrics.asyncRequests.inc({ event: completion.status });
    return { known: true, changed: done.changed };
  }

  get(id: string): Promise<AsyncRequestRecord | undefined> {
    return this.options.store.getRequest(id).catch(storeUnavailable);
  }

  /** A user's usage in the current window, the quota, and what is left of it. */
  async usage(userId: string) {
    await this.flushUsage();
    const now = new Date();
    const start = this.window(now);
    const used = await this.options.store.usage(userId, start).catch(storeUnavailable);
    const limits = this.options.quota?.limitsFor(userId) ?? {};
    const left = (limit: number | undefined, n: number) => (limit === undefined ? null : Math.max(0, limit - n));
    return {
      user_id: userId,
      window: { start: start.toISOString(), end: new Date(start.getTime() + this.options.windowSeconds * 1000).toISOString(), seconds: this.options.windowSeconds },
      requests: used.requests,
      tokens: used.tokens,
      quota: { requests: limits.requests ?? null, tokens: limits.tokens ?? null },
      remaining: { requests: left(limits.requests, used.requests), tokens: left(limits.tokens, used.tokens) },
    };
  }

  async close(timeoutMs: number): Promise<void> {
    clearInterval(this.flushTimer);
    await this.queue?.close(timeoutMs);
    await this.flushUsage();
  }
}

/**
 * PostgreSQL still unreachable once the store's own retries are spent: a 503 with
 * Retry-After (as when the quota store is down), not a 500. The details (the
 * address) are in the store's log line, not in the answer.
 */
function storeUnavailable(err: unknown): never {
  if (isTransientError(err)) throw new InferenceError(503, "the request store (PostgreSQL) is unavailable; retry shortly", { "retry-after": "1" });
  throw err;
}

/** Where a JSON value holds a NUL character (in a string or a key): its path ("" for the value itself), or undefined. */
function findNul(value: unknown, path: string): string | undefined {
  if (typeof value === "string") return value.includes("\0") ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findNul(value[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes("\0")) return `${path || "body"} key ${JSON.stringify(key)}`;
      const found = findNul(item, path ? `${path}.${key}` : key);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** A stored request as the status API shows it. */
export function requestStatusView(record: AsyncRequestRecord) {
  const view: Record<string, unknown> = {
    request_id: record.id,
    status: record.status,
    user_id: record.userId,
    model: record.model,
    model_version: record.modelVersion ?? null,
    tokens: record.tokens,
    input_bytes: record.inputBytes,
    attempts: record.attempts,
    created_at: record.createdAt.toISOString(),
    started_at: record.startedAt?.toISOString() ?? null,
    finished_at: record.finishedAt?.toISOString() ?? null,
  };
  if (record.status === "succeeded") view.response = record.response;
  if (record.status === "failed") view.error = record.error;
  return view;
}
