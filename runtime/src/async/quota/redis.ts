/**
 * The quota counter in Redis, shared by every replica: one hash per (user,
 * window) with the fields `requests` and `tokens`, checked and incremented by
 * one Lua script, so that admission is atomic whatever the concurrency (Redis
 * runs a script alone). Windows are fixed and aligned to the epoch
 * (windowStart()); a window's hash expires a little after the window ends.
 *
 * The client fails fast while Redis is unreachable (no offline queue: a command
 * sent while disconnected is refused at once, and one in flight when the
 * connection drops is refused, never resent: it may have been counted), keeps
 * reconnecting on its own, and never lets a connection error crash the process.
 */
import { createRequire } from "node:module";
import type { Redis, RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { windowStart, type QuotaCounter, type QuotaDecision, type QuotaLimits } from "../types.js";
import { checkAdmitArguments } from "./memory.js";

/**
 * KEYS[1]: the (user, window) hash. ARGV: tokens, request limit, token limit
 * (-1: unlimited), expiry in seconds. Returns {admitted (1|0), requests, tokens,
 * exceeded limit name when refused}: the counts after the decision.
 */
const ADMIT_LUA = `
local key = KEYS[1]
local tokens = tonumber(ARGV[1])
local maxRequests = tonumber(ARGV[2])
local maxTokens = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local counts = redis.call('HMGET', key, 'requests', 'tokens')
local requests = tonumber(counts[1]) or 0
local used = tonumber(counts[2]) or 0
if maxRequests >= 0 and requests + 1 > maxRequests then
  return {0, requests, used, 'requests'}
end
if maxTokens >= 0 and used + tokens > maxTokens then
  return {0, requests, used, 'tokens'}
end
requests = redis.call('HINCRBY', key, 'requests', 1)
used = redis.call('HINCRBY', key, 'tokens', tokens)
redis.call('EXPIRE', key, ttl)
return {1, requests, used}
`;

/** KEYS[1]: the (user, window) hash. ARGV: tokens. Takes one request back, never below zero; nothing when the hash is gone. */
const REFUND_LUA = `
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
local counts = redis.call('HMGET', key, 'requests', 'tokens')
local requests = math.max(0, (tonumber(counts[1]) or 0) - 1)
local used = math.max(0, (tonumber(counts[2]) or 0) - tonumber(ARGV[1]))
redis.call('HSET', key, 'requests', requests, 'tokens', used)
return 1
`;

type AdmitReply = [number, number, number, string?];

interface QuotaRedis extends Redis {
  quotaAdmit(key: string, tokens: number, maxRequests: number, maxTokens: number, ttlSeconds: number): Promise<AdmitReply>;
  quotaRefund(key: string, tokens: number): Promise<number>;
}

export interface RedisQuotaOptions {
  /** redis://[:password@]host:port[/db] or rediss:// (REDIS_URL; the password comes from a Secret). */
  url: string;
  /** Length of a quota window in seconds. */
  windowSeconds: number;
  /** Prefix of the keys (default "quota"). */
  prefix?: string;
  /** How long a window's hash outlives the window, in seconds (default 60). */
  expirySlackSeconds?: number;
  /** Refuse a command Redis has not answered after this long (default 1000 ms). */
  commandTimeoutMs?: number;
  /** Give up on a connection attempt after this long (default 2000 ms). */
  connectTimeoutMs?: number;
  /** How long admit() waits for a connection being established (start-up, reconnection in progress), default 1000 ms. */
  readyTimeoutMs?: number;
  /** Longest pause between reconnection attempts (default 1000 ms). */
  maxReconnectDelayMs?: number;
  logger?: Logger;
  /** Extra ioredis options (tests, TLS); the fail-fast settings above win. */
  redisOptions?: RedisOptions;
}

/**
 * Escapes a user id for a key: letters, digits and `._@+-` stay, every other
 * UTF-16 code unit (`%` included) becomes `%` and four hex digits. The mapping
 * is injective, and the result holds no `{`, `}`, `:` or control character, so
 * no user id can reach another user's key or move the cluster hash tag.
 */
export function escapeUserId(userId: string): string {
  let out = "";
  for (let i = 0; i < userId.length; i++) {
    const c = userId[i]!;
    out += /[A-Za-z0-9._@+-]/.test(c) ? c : `%${userId.charCodeAt(i).toString(16).padStart(4, "0")}`;
  }
  return out;
}

export class RedisQuota implements QuotaCounter {
  readonly kind = "redis";
  readonly windowSeconds: number;
  readonly client: QuotaRedis;
  private readonly prefix: string;
  private readonly slackSeconds: number;
  private readonly readyTimeoutMs: number;
  private readonly logger?: Logger;
  /** Logs the first connection error of an outage, not every reconnection attempt. */
  private outage = false;
  private closed = false;
  private readyWait?: Promise<void>;

  constructor(options: RedisQuotaOptions) {
    if (!(Number.isSafeInteger(options.windowSeconds) && options.windowSeconds > 0)) {
      throw new RangeError(`windowSeconds must be a positive integer, got ${options.windowSeconds}`);
    }
    this.windowSeconds = options.windowSeconds;
    this.prefix = options.prefix ?? "quota";
    this.slackSeconds = options.expirySlackSeconds ?? 60;
    this.readyTimeoutMs = options.readyTimeoutMs ?? 1000;
    this.logger = options.logger;
    const maxDelay = options.maxReconnectDelayMs ?? 1000;
    // Required when a counter is made, not imported: a server without REDIS_URL never loads ioredis
    // (an import of it would be hoisted to the top of the server bundle, see scripts/build.mjs).
    const { Redis: RedisClient } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
    this.client = new RedisClient(options.url, {
      ...options.redisOptions,
      // Fail fast: nothing waits in a queue while Redis is down, nothing is resent
      // after a reconnection (an admission in flight may already have counted).
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 1000,
      connectTimeout: options.connectTimeoutMs ?? 2000,
      // Reconnect forever, backing off to maxDelay.
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times - 1, 10), maxDelay) + Math.floor(Math.random() * 50),
      lazyConnect: false,
    }) as QuotaRedis;
    // EVALSHA, falling back to EVAL when Redis lost its script cache (restart, failover).
    this.client.defineCommand("quotaAdmit", { numberOfKeys: 1, lua: ADMIT_LUA });
    this.client.defineCommand("quotaRefund", { numberOfKeys: 1, lua: REFUND_LUA });
    this.client.on("error", (err: Error) => {
      if (!this.outage && !this.closed) {
        this.outage = true;
        this.logger?.warn({ err: err.message }, "quota store (Redis) connection error; reconnecting");
      }
    });
    this.client.on("ready", () => {
      if (this.outage) this.logger?.info("quota store (Redis) reconnected");
      this.outage = false;
    });
  }

  /** The hash of `userId`'s window starting at `start`. */
  keyFor(userId: string, start: Date): string {
    return `${this.prefix}:{${escapeUserId(userId)}}:${Math.floor(start.getTime() / 1000)}`;
  }

  async admit(userId: string, tokens: number, limits: QuotaLimits, now: Date = new Date()): Promise<QuotaDecision> {
    checkAdmitArguments(tokens, limits);
    const start = windowStart(now, this.windowSeconds);
    const resetAt = new Date(start.getTime() + this.windowSeconds * 1000);
    // Relative to `now`, so that a key always outlives its window by the slack.
    const ttl = Math.max(1, Math.ceil((resetAt.getTime() - now.getTime()) / 1000) + this.slackSeconds);
    await this.whenReady();
    const [admitted, requests, used, exceeded] = await this.client.quotaAdmit(
      this.keyFor(userId, start),
      tokens,
      limits.requests ?? -1,
      limits.tokens ?? -1,
      ttl,
    );
    return {
      admitted: admitted === 1,
      requests: Number(requests),
      tokens: Number(used),
      limits,
      ...(admitted === 1 ? {} : { exceeded: exceeded === "tokens" ? "tokens" : "requests" }),
      windowStart: start,
      resetAt,
    };
  }

  async refund(userId: string, tokens: number, at: Date): Promise<void> {
    await this.whenReady();
    await this.client.quotaRefund(this.keyFor(userId, windowStart(at, this.windowSeconds)), tokens);
  }

  /**
   * Without an offline queue a command sent before the connection is ready is
   * refused, so wait (briefly) while a connection is being established. While
   * Redis is known to be down (between reconnection attempts), fail at once.
   */
  private whenReady(): Promise<void> {
    const status = this.client.status;
    if (status === "ready") return Promise.resolve();
    if (status === "end" || this.closed) return Promise.reject(new Error("quota store (Redis) client is closed"));
    if (status === "reconnecting" || status === "close") {
      return Promise.reject(new Error(`quota store (Redis) is unreachable (${status})`));
    }
    // One wait per connection attempt, however many admissions queue behind it.
    this.readyWait ??= new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.client.off("ready", onReady);
        this.client.off("close", onClose);
        this.readyWait = undefined;
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onClose = () => done(new Error("quota store (Redis) is unreachable (connection closed)"));
      const timer = setTimeout(() => done(new Error(`quota store (Redis) not ready after ${this.readyTimeoutMs} ms`)), this.readyTimeoutMs);
      this.client.on("ready", onReady);
      this.client.on("close", onClose);
    });
    return this.readyWait;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.client.status === "ready") await this.client.quit();
      else this.client.disconnect();
    } catch {
      this.client.disconnect();
    }
  }
}
