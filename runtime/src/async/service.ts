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
 *
 * Nothing accepted is lost (runtime/migrations/002_request_leases.sql): a queued
 * or running request is held by one process (this service's `worker` id) under
 * a lease it renews every third of ASYNC_LEASE_SECONDS while it holds the
 * request; the sweeper (every ASYNC_SWEEP_SECONDS, and once the models are
 * loaded at start-up) takes over requests whose holder is gone: it queues them
 * again, or fails them once ASYNC_MAX_ATTEMPTS runs were interrupted, refunding
 * quota and usage. With a Broker, a queued request the Broker confirmed
 * (published_at, the outbox) is the Broker's; one never confirmed is published
 * again.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { encodeInferenceRequest, encodeInferenceResponse, toInferenceRequest } from "../codecs/v2.js";
import type { DataPlane, InferenceContext } from "../dataplane/dataplane.js";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import type { InferenceRequest } from "../dataplane/types.js";
import type { SweepOptions } from "./types.js";
import type { Metrics } from "../metrics.js";
import type { ModelSettings } from "../repository/settings.js";
import type { QueuedRequest, RequestQueue } from "./queue.js";
import { USER_ID_PATTERN, USER_ID_RULE } from "../constants.js";
import { isTransientError } from "./store/postgres.js";
import { countTokens, tokenRuleOf } from "./tokens.js";
import { windowStart, type AsyncRequestRecord, type QuotaLimits, type RequestStatus, type RequestStore, type Usage } from "./types.js";

/** What the service needs of the quota policy (runtime/src/async/quota/policy.ts). */
export interface QuotaGate {
  /** Counts one request of `tokens` for the user, or throws InferenceError 429 (over quota) / 503 (quota store down, fail-closed). */
  admit(userId: string, tokens: number): Promise<unknown>;
  /** Takes back one admitted request counted in the window holding `at` (it never ran, through the platform's fault); best effort. */
  refund?(userId: string, tokens: number, at: Date): Promise<void>;
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
  /** This process's id as the holder of requests (default: a random UUID). */
  worker?: string;
  /** ASYNC_LEASE_SECONDS (default 30): renewed every third of it. */
  leaseSeconds?: number;
  /** ASYNC_SWEEP_SECONDS (default half the lease). */
  sweepSeconds?: number;
  /** ASYNC_MAX_ATTEMPTS (default 3). */
  maxAttempts?: number;
}

/** What the worker made of a delivered request. */
export type WorkOutcome =
  | { kind: "succeeded"; response: string; modelVersion: string; attempt: number }
  | { kind: "failed"; error: string; status: number; attempt: number }
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
  /** This process, as the holder of requests (the `worker` column). */
  readonly worker: string;
  readonly leaseSeconds: number;
  readonly sweepSeconds: number;
  readonly maxAttempts: number;
  /** Requests this process holds (its in-process backlog, its runs, publications in progress): their leases are renewed. */
  private readonly held = new Set<string>();
  private readonly leaseTimer: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;
  private closed = false;
  private stopping = false;

  constructor(private readonly options: AsyncInferenceOptions) {
    this.flushTimer = setInterval(() => void this.flushUsage(), options.usageFlushMs ?? 1_000).unref();
    this.worker = options.worker ?? randomUUID();
    this.leaseSeconds = options.leaseSeconds ?? 30;
    this.sweepSeconds = options.sweepSeconds ?? this.leaseSeconds / 2;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.leaseTimer = setInterval(() => void this.renewLeases(), (this.leaseSeconds * 1000) / 3).unref();
  }

  /** Extends the leases of the requests this process holds. A failure is logged: the next renewal may succeed before they expire. */
  private async renewLeases(): Promise<void> {
    if (this.held.size === 0 || this.closed) return;
    try {
      await this.options.store.renewLeases({ worker: this.worker, leaseSeconds: this.leaseSeconds, ids: [...this.held] });
    } catch (err) {
      this.options.logger.warn({ err, held: this.held.size }, "renewing the leases of queued and running requests failed; will retry");
    }
  }

  /**
   * Starts the sweeper: once now (start-up, after the models are loaded), then
   * every sweepSeconds. `claimAll`: this process is the only one using the store
   * (PGlite), so every unfinished request of an earlier process is stranded at once,
   * whatever its lease.
   */
  startSweeper(options: { claimAll?: boolean } = {}): void {
    if (this.stopping || this.sweepTimer) return;
    const tick = (claimAll: boolean) => {
      if (this.sweeping || this.stopping) return;
      this.sweeping = this.sweep(claimAll ? "all" : undefined)
        .catch((err: unknown) => this.options.logger.warn({ err }, "looking for stranded asynchronous requests failed; will retry"))
        .finally(() => (this.sweeping = undefined));
    };
    tick(options.claimAll === true);
    this.sweepTimer = setInterval(() => tick(false), this.sweepSeconds * 1000).unref();
  }

  /**
   * One pass of the sweeper: takes over stranded requests (in batches) and queues
   * them again here, or fails those whose attempts are spent. Returns how many of each.
   */
  async sweep(scope?: SweepOptions["scope"]): Promise<{ requeued: number; failed: number }> {
    const { store, logger, metrics } = this.options;
    const totals = { requeued: 0, failed: 0 };
    const limit = 100;
    const chosen = scope ?? (this.queue.kind === "broker" ? "outbox" : "lease");
    for (;;) {
      if (this.stopping) break;
      const { requeued, failed } = await store.sweep({
        worker: this.worker,
        leaseSeconds: this.leaseSeconds,
        maxAttempts: this.maxAttempts,
        scope: chosen,
        held: [...this.held],
        limit,
      });
      for (const { record, refunded } of failed) {
        metrics.asyncRequests.inc({ event: "failed" });
        if (refunded) await this.refundQuota(record);
        logger.warn({ request_id: record.id, attempts: record.attempts }, "a stranded request has no attempts left: failed");
      }
      for (const record of requeued) {
        metrics.asyncRequests.inc({ event: "requeued" });
        await this.dispatch({ id: record.id, userId: record.userId, model: record.model, modelVersion: record.modelVersion, request: record.request });
      }
      totals.requeued += requeued.length;
      totals.failed += failed.length;
      if (requeued.length + failed.length < limit) break;
    }
    if (totals.requeued + totals.failed > 0) logger.info({ ...totals, scope: chosen }, "took over stranded asynchronous requests");
    return totals;
  }

  /**
   * Hands a request this process holds to the queue: in process, it stays held
   * until its delivery is over (release()); to a Broker, until the Broker took it
   * (then the outbox records it). A failed publication leaves it to the sweeper.
   */
  private async dispatch(queued: QueuedRequest): Promise<void> {
    this.held.add(queued.id);
    if (this.queue.kind === "in-process") {
      await this.queue.publish(queued);
      return;
    }
    try {
      await this.queue.publish(queued);
      await this.options.store.markPublished(queued.id, this.worker).catch((err: unknown) =>
        this.options.logger.warn({ err, request_id: queued.id }, "recording a publication failed; the request may be published again (harmless)"),
      );
    } catch (err) {
      this.options.logger.warn({ err, request_id: queued.id }, "publishing a stranded request failed; the sweeper will try again");
    } finally {
      this.held.delete(queued.id);
    }
  }

  /** The in-process queue is done with a request (delivered, or dead-lettered): no longer held here. */
  release(id: string): void {
    this.held.delete(id);
  }

  /** Takes a request that never ran (through the platform's fault) back from its user's quota counter. */
  private async refundQuota(record: { userId: string; tokens: number; createdAt: Date }): Promise<void> {
    await this.options.quota?.refund?.(record.userId, record.tokens, record.createdAt);
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
    const admittedAt = new Date();
    await quota?.admit(options.userId, tokens);
    const id = randomUUID();
    // Held by this process, under a lease, from the insert on: a crash before it is queued (or published) leaves it to the sweeper.
    this.held.add(id);
    let record: AsyncRequestRecord;
    try {
      ({ record } = await store.createRequest(
        { id, userId: options.userId, model: request.modelName, modelVersion: request.modelVersion, inputBytes: options.inputBytes, tokens, request: stored },
        this.window(admittedAt),
        { worker: this.worker, leaseSeconds: this.leaseSeconds },
      ));
    } catch (err) {
      // Not accepted (no 202): the quota admission is taken back.
      this.held.delete(id);
      await this.refundQuota({ userId: options.userId, tokens, createdAt: admittedAt });
      storeUnavailable(err);
    }
    this.options.metrics.asyncRequests.inc({ event: "submitted" });
    const queued: QueuedRequest = { id, userId: options.userId, model: request.modelName, modelVersion: request.modelVersion, request: record.request };
    try {
      await this.queue.publish(queued);
    } catch (err) {
      // Recorded but not queued: say so in the record (no 202 was given), and take its quota and usage back.
      this.held.delete(id);
      const reason = `could not be queued: ${(err as Error).message}`;
      const done = await store.complete(id, { status: "failed", error: reason }, { refund: true }).catch(() => undefined);
      if (done?.refunded) await this.refundQuota(done.record);
      if (done?.changed) this.options.metrics.asyncRequests.inc({ event: "failed" });
      throw new InferenceError(503, `request ${id} ${reason}`, { "retry-after": "1" });
    }
    if (this.queue.kind === "broker") {
      // The outbox: the Broker has it now; until this is recorded, the sweeper would publish it again after the lease.
      this.held.delete(id);
      await store.markPublished(id, this.worker).catch((err: unknown) =>
        this.options.logger.warn({ err, request_id: id }, "recording a publication failed; the request may be published again (harmless)"),
      );
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
    const marked = await this.options.store.markRunning(id, { worker: this.worker, leaseSeconds: this.leaseSeconds, maxAttempts: this.maxAttempts });
    if (!marked) return { kind: "unknown" };
    const { record, changed } = marked;
    if (!changed) {
      if (marked.refused === "exhausted") {
        // Its earlier runs were all interrupted: it ends here, failed, and is not charged.
        const error = `abandoned after ${record.attempts} attempts (ASYNC_MAX_ATTEMPTS is ${this.maxAttempts}): each run was interrupted; it was not charged`;
        const done = await this.options.store.complete(id, { status: "failed", error }, { refund: true });
        if (done?.refunded) await this.refundQuota(done.record);
        if (done?.changed) this.options.metrics.asyncRequests.inc({ event: "failed" });
        return { kind: "done", record: done?.record ?? record };
      }
      // Finished, or being run by another live process (its lease holds): nothing to do here.
      return { kind: "done", record };
    }
    // Held (its lease renewed) while it runs; in process, until its delivery is over.
    this.held.add(id);
    const broker = this.queue?.kind === "broker";
    try {
      return await this.run(id, data, context, record);
    } catch (err) {
      // A Broker redelivers it (to any replica): give it back now rather than when the lease runs out.
      if (broker) await this.options.store.releaseLease(id, { worker: this.worker, leaseSeconds: this.leaseSeconds }).catch(() => undefined);
      throw err;
    } finally {
      if (broker) this.held.delete(id);
    }
  }

  private async run(id: string, data: unknown, context: Omit<InferenceContext, "admitted" | "userId">, record: AsyncRequestRecord): Promise<WorkOutcome> {
    this.options.metrics.asyncRequests.inc({ event: record.attempts > 1 ? "redelivered" : "started" });
    let request: InferenceRequest;
    try {
      // The stored request is the one admitted; the event's data only has to be present.
      if (data === undefined) throw invalidInput("the request event has no data");
      request = toInferenceRequest(record.request, record.model, record.modelVersion);
    } catch (err) {
      if (err instanceof InferenceError) return { kind: "failed", error: err.message, status: err.status, attempt: record.attempts };
      throw err;
    }
    try {
      const response = await this.options.dataPlane.infer(request, { ...context, requestId: id, userId: record.userId, admitted: true });
      return { kind: "succeeded", response: encodeInferenceResponse(response).json, modelVersion: response.modelVersion, attempt: record.attempts };
    } catch (err) {
      if (err instanceof InferenceError && err.status < 500) return { kind: "failed", error: err.message, status: err.status, attempt: record.attempts };
      throw err;
    }
  }

  /**
   * The collector: a response event (or a dead-lettered request) finishes its request once.
   * With `expected` (results that came over HTTP), a request still in another state than those
   * (a reply for a request that is queued), or run under another attempt, is refused: nothing changes.
   */
  async collect(
    id: string,
    outcome: { response: unknown } | { error: string },
    expected?: { states: readonly RequestStatus[]; attempt?: number },
    /** refund: the platform failed it (delivery retries spent): its quota and usage are taken back. */
    options: { refund?: boolean } = {},
  ): Promise<{ known: boolean; changed: boolean; refused?: { reason: "not_running" | "attempt_mismatch"; status: RequestStatus; attempts: number } }> {
    if (expected) {
      // Checked here for the answer's reason; the write below checks again in its own statement.
      const current = await this.options.store.getRequest(id).catch(storeUnavailable);
      if (!current) return { known: false, changed: false };
      const finished = current.status === "succeeded" || current.status === "failed";
      if (!finished && !expected.states.includes(current.status)) return { known: true, changed: false, refused: { reason: "not_running", status: current.status, attempts: current.attempts } };
      if (!finished && expected.attempt !== undefined && expected.attempt !== current.attempts) {
        return { known: true, changed: false, refused: { reason: "attempt_mismatch", status: current.status, attempts: current.attempts } };
      }
      if (finished) return { known: true, changed: false };
    }
    const completion = "error" in outcome ? { status: "failed" as const, error: outcome.error } : { status: "succeeded" as const, response: outcome.response };
    const done = await this.options.store.complete(id, completion, expected ? { ...options, expected } : options);
    if (!done) return { known: false, changed: false };
    if (expected && !done.changed && done.record.status !== "succeeded" && done.record.status !== "failed") {
      // Claimed again (another attempt) between the check above and the write.
      return { known: true, changed: false, refused: { reason: "attempt_mismatch", status: done.record.status, attempts: done.record.attempts } };
    }
    if (done.refunded) await this.refundQuota(done.record);
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
    // No more take-overs; the leases are still renewed while in-process deliveries finish.
    this.stopping = true;
    clearInterval(this.sweepTimer);
    await this.sweeping;
    await this.queue?.close(timeoutMs);
    this.closed = true;
    clearInterval(this.leaseTimer);
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
