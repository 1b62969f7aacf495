/**
 * The quota counter in process, for local use without Redis: the same fixed
 * epoch-aligned windows and the same all-or-nothing admission as RedisQuota,
 * for one replica only. Windows that have ended (plus a slack, as Redis' key
 * expiry) are pruned as time moves on.
 */
import { windowStart, type QuotaCounter, type QuotaDecision, type QuotaLimits, type Usage } from "../types.js";

/** Tokens must be a non-negative integer and limits non-negative integers or undefined. */
export function checkAdmitArguments(tokens: number, limits: QuotaLimits): void {
  if (!(Number.isSafeInteger(tokens) && tokens >= 0)) throw new RangeError(`tokens must be a non-negative integer, got ${tokens}`);
  for (const name of ["requests", "tokens"] as const) {
    const limit = limits[name];
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
      throw new RangeError(`the ${name} limit must be a non-negative integer or undefined, got ${limit}`);
    }
  }
}

export interface MemoryQuotaOptions {
  windowSeconds: number;
  /** How long a window's counts outlive the window, in seconds (default 60). */
  expirySlackSeconds?: number;
}

export class MemoryQuota implements QuotaCounter {
  readonly kind = "memory";
  readonly windowSeconds: number;
  private readonly slackMs: number;
  /** Window start (ms since the epoch) → user id → usage. */
  private readonly windows = new Map<number, Map<string, Usage>>();

  constructor(options: MemoryQuotaOptions) {
    if (!(Number.isSafeInteger(options.windowSeconds) && options.windowSeconds > 0)) {
      throw new RangeError(`windowSeconds must be a positive integer, got ${options.windowSeconds}`);
    }
    this.windowSeconds = options.windowSeconds;
    this.slackMs = (options.expirySlackSeconds ?? 60) * 1000;
  }

  async admit(userId: string, tokens: number, limits: QuotaLimits, now: Date = new Date()): Promise<QuotaDecision> {
    checkAdmitArguments(tokens, limits);
    const start = windowStart(now, this.windowSeconds);
    const resetAt = new Date(start.getTime() + this.windowSeconds * 1000);
    this.prune(now.getTime());
    let users = this.windows.get(start.getTime());
    const usage = users?.get(userId) ?? { requests: 0, tokens: 0 };
    const exceeded =
      limits.requests !== undefined && usage.requests + 1 > limits.requests
        ? "requests"
        : limits.tokens !== undefined && usage.tokens + tokens > limits.tokens
          ? "tokens"
          : undefined;
    if (exceeded) {
      return { admitted: false, requests: usage.requests, tokens: usage.tokens, limits, exceeded, windowStart: start, resetAt };
    }
    const after = { requests: usage.requests + 1, tokens: usage.tokens + tokens };
    if (!users) this.windows.set(start.getTime(), (users = new Map()));
    users.set(userId, after);
    return { admitted: true, ...after, limits, windowStart: start, resetAt };
  }

  async refund(userId: string, tokens: number, at: Date): Promise<void> {
    const usage = this.windows.get(windowStart(at, this.windowSeconds).getTime())?.get(userId);
    if (!usage) return;
    usage.requests = Math.max(0, usage.requests - 1);
    usage.tokens = Math.max(0, usage.tokens - tokens);
  }

  /** Counts held, windows × users (for tests). */
  get size(): number {
    let n = 0;
    for (const users of this.windows.values()) n += users.size;
    return n;
  }

  private prune(nowMs: number): void {
    const lifetimeMs = this.windowSeconds * 1000 + this.slackMs;
    for (const start of this.windows.keys()) {
      if (start + lifetimeMs <= nowMs) this.windows.delete(start);
    }
  }

  async close(): Promise<void> {
    this.windows.clear();
  }
}
