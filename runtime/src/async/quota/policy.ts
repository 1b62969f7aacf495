/**
 * Admission by quota: which limits apply to a user (their own, or the
 * defaults), the counter that enforces them atomically, and what to do when the
 * counter's store (Redis) cannot be reached: refuse (fail-closed, the default)
 * or admit uncounted (fail-open), logged and counted either way.
 *
 * Over quota is an InferenceError 429 with `retry-after` (whole seconds until
 * the window resets) and the limit in its message and in `details`, which the
 * REST error handler merges into the body beside `error`.
 */
import type { Logger } from "pino";
import { InferenceError } from "../../dataplane/errors.js";
import { windowStart, type QuotaCounter, type QuotaDecision, type QuotaLimits } from "../types.js";
import { checkAdmitArguments, MemoryQuota } from "./memory.js";
import { RedisQuota } from "./redis.js";

export type StoreErrorPolicy = "fail-closed" | "fail-open";
export const STORE_ERROR_POLICIES: readonly StoreErrorPolicy[] = ["fail-closed", "fail-open"];

/** What admit() decided, for a Prometheus counter's `outcome` label. */
export type QuotaOutcome = "admitted" | "rejected" | "store_error_refused" | "store_error_admitted";
export const QUOTA_OUTCOMES: readonly QuotaOutcome[] = ["admitted", "rejected", "store_error_refused", "store_error_admitted"];

export interface QuotaPolicyOptions {
  counter: QuotaCounter;
  /** Limits of users without their own entry; {} means unlimited. */
  defaultLimits: QuotaLimits;
  /** A user's own limits, replacing the defaults as a whole ({} means unlimited). */
  perUser?: Record<string, QuotaLimits>;
  /** Length of a quota window in seconds (the counter's, when it says). */
  windowSeconds: number;
  /** When the counter's store cannot be reached: refuse (default) or admit uncounted. */
  onStoreError?: StoreErrorPolicy;
  logger: Logger;
  /** Called once per admit() with its outcome (e.g. to count it in Prometheus). */
  onDecision?(outcome: QuotaOutcome, info: { userId: string; exceeded?: "requests" | "tokens" }): void;
  /** The clock (tests). */
  now?: () => Date;
}

export type Admission =
  /** Counted: the user's counts in this window after this request. */
  | { admitted: true; decision: QuotaDecision; storeError?: undefined }
  /** Admitted uncounted under fail-open: the store's error. */
  | { admitted: true; decision?: undefined; storeError: Error };

/** Store-error logs: the first of an outage, then at most one every this many ms. */
const STORE_ERROR_LOG_INTERVAL_MS = 10_000;

export class QuotaPolicy {
  readonly counter: QuotaCounter;
  readonly windowSeconds: number;
  readonly onStoreError: StoreErrorPolicy;
  private readonly defaultLimits: QuotaLimits;
  private readonly perUser: Map<string, QuotaLimits>;
  private readonly logger: Logger;
  private readonly onDecision?: QuotaPolicyOptions["onDecision"];
  private readonly clock: () => Date;
  private lastStoreErrorLog = -Infinity;
  private suppressedStoreErrors = 0;

  constructor(options: QuotaPolicyOptions) {
    if (!(Number.isSafeInteger(options.windowSeconds) && options.windowSeconds > 0)) {
      throw new RangeError(`windowSeconds must be a positive integer, got ${options.windowSeconds}`);
    }
    const counterWindow = (options.counter as { windowSeconds?: unknown }).windowSeconds;
    if (typeof counterWindow === "number" && counterWindow !== options.windowSeconds) {
      throw new RangeError(`the quota counter counts ${counterWindow} s windows, the policy ${options.windowSeconds} s`);
    }
    const onStoreError = options.onStoreError ?? "fail-closed";
    if (!STORE_ERROR_POLICIES.includes(onStoreError)) throw new RangeError(`unknown quota store error policy '${onStoreError}'`);
    checkAdmitArguments(0, options.defaultLimits);
    // A Map, so that user ids such as "__proto__" or "constructor" are ordinary keys.
    this.perUser = new Map();
    for (const [userId, limits] of Object.entries(options.perUser ?? {})) {
      checkAdmitArguments(0, limits);
      this.perUser.set(userId, { ...limits });
    }
    this.counter = options.counter;
    this.windowSeconds = options.windowSeconds;
    this.onStoreError = onStoreError;
    this.defaultLimits = { ...options.defaultLimits };
    this.logger = options.logger;
    this.onDecision = options.onDecision;
    this.clock = options.now ?? (() => new Date());
  }

  /** The limits that apply to `userId`: their own entry, else the defaults. */
  limitsFor(userId: string): QuotaLimits {
    return { ...(this.perUser.get(userId) ?? this.defaultLimits) };
  }

  /** The window holding `now`: its start and when the next one starts. */
  windowOf(now: Date = this.clock()): { start: Date; resetAt: Date } {
    const start = windowStart(now, this.windowSeconds);
    return { start, resetAt: new Date(start.getTime() + this.windowSeconds * 1000) };
  }

  /**
   * Admits and counts one request of `tokens` tokens for `userId`, or throws an
   * InferenceError: 429 over quota, 503 when the store is down under fail-closed.
   */
  async admit(userId: string, tokens: number, now: Date = this.clock()): Promise<Admission> {
    const limits = this.limitsFor(userId);
    checkAdmitArguments(tokens, limits); // a caller's bug, not a store error: thrown as is
    let decision: QuotaDecision;
    try {
      decision = await this.counter.admit(userId, tokens, limits, now);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (this.onStoreError === "fail-open") {
        this.logStoreError(error, "admitting uncounted (fail-open)");
        this.report("store_error_admitted", userId);
        return { admitted: true, storeError: error };
      }
      this.logStoreError(error, "refusing (fail-closed)");
      this.report("store_error_refused", userId);
      throw new InferenceError(503, `quota store unavailable: ${error.message}`, { "retry-after": "1" });
    }
    if (decision.admitted) {
      this.report("admitted", userId);
      return { admitted: true, decision };
    }
    this.report("rejected", userId, decision.exceeded);
    throw quotaExceeded(userId, tokens, decision, this.windowSeconds, now);
  }

  /**
   * Takes back one admitted request (it failed before it could run, through no
   * fault of its own). Best effort: an unreachable counter store is logged, and the
   * count then expires with its window.
   */
  async refund(userId: string, tokens: number, at: Date): Promise<void> {
    try {
      await this.counter.refund(userId, tokens, at);
    } catch (err) {
      this.logStoreError(err instanceof Error ? err : new Error(String(err)), "could not refund a request that did not run");
    }
  }

  private report(outcome: QuotaOutcome, userId: string, exceeded?: "requests" | "tokens"): void {
    try {
      this.onDecision?.(outcome, exceeded ? { userId, exceeded } : { userId });
    } catch (err) {
      this.logger.error({ err }, "quota onDecision callback failed");
    }
  }

  private logStoreError(error: Error, action: string): void {
    const now = Date.now();
    if (now - this.lastStoreErrorLog < STORE_ERROR_LOG_INTERVAL_MS) {
      this.suppressedStoreErrors++;
      return;
    }
    this.logger.warn(
      { err: error.message, counter: this.counter.kind, policy: this.onStoreError, suppressed: this.suppressedStoreErrors },
      `quota store unavailable: ${action}`,
    );
    this.lastStoreErrorLog = now;
    this.suppressedStoreErrors = 0;
  }
}

/** The 429 for a refused decision: the limit in the message, the numbers in `details`. */
export function quotaExceeded(userId: string, tokens: number, decision: QuotaDecision, windowSeconds: number, now: Date): InferenceError {
  const retryAfter = Math.max(1, Math.ceil((decision.resetAt.getTime() - now.getTime()) / 1000));
  const who = `user '${printable(userId)}'`;
  const limit =
    decision.exceeded === "tokens"
      ? tokens > (decision.limits.tokens ?? Infinity)
        ? `the request's ${tokens} tokens exceed the limit of ${decision.limits.tokens} tokens per ${windowSeconds} s window`
        : `${decision.limits.tokens} tokens per ${windowSeconds} s window (${decision.tokens} used, ${tokens} requested)`
      : `${decision.limits.requests} requests per ${windowSeconds} s window (${decision.requests} used)`;
  return new InferenceError(
    429,
    `quota exceeded for ${who}: ${limit}; retry after ${retryAfter} s`,
    { "retry-after": String(retryAfter) },
    {
      quota: { requests: decision.limits.requests ?? null, tokens: decision.limits.tokens ?? null, window_seconds: windowSeconds },
      used: { requests: decision.requests, tokens: decision.tokens },
      exceeded: decision.exceeded ?? "requests",
      retry_after_seconds: retryAfter,
    },
  );
}

/** A user id fit for a message: control characters and quotes escaped as in JSON. */
function printable(userId: string): string {
  const shown = userId.length > 128 ? `${userId.slice(0, 128)}…` : userId;
  return JSON.stringify(shown).slice(1, -1).replace(/'/g, "\\'");
}

/**
 * The counter for a configuration: Redis when a URL is given (REDIS_URL), the
 * in-process counter otherwise (local use, one replica).
 */
export function createQuotaCounter(options: { redisUrl?: string; windowSeconds: number; logger?: Logger }): QuotaCounter {
  return options.redisUrl
    ? new RedisQuota({ url: options.redisUrl, windowSeconds: options.windowSeconds, logger: options.logger })
    : new MemoryQuota({ windowSeconds: options.windowSeconds });
}
