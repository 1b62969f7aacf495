/**
 * The quota counters (a real redis-server and the in-process counter, through
 * the same suite) and the admission policy on top of them: limits, windows,
 * isolation of users, atomicity under concurrency, Redis outages and restarts.
 */
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InferenceError } from "../../dataplane/errors.js";
import { startRedis, type RedisServer } from "../../testing/redis.js";
import type { QuotaCounter } from "../types.js";
import { MemoryQuota } from "./memory.js";
import { QuotaPolicy, type QuotaOutcome, type QuotaPolicyOptions } from "./policy.js";
import { escapeUserId, RedisQuota, type RedisQuotaOptions } from "./redis.js";

const WINDOW = 3600;
/** A fixed instant 1234 s before the end of its window. */
const T0 = new Date(Math.floor(Date.UTC(2030, 0, 1) / (WINDOW * 1000)) * WINDOW * 1000 + (WINDOW - 1234) * 1000);

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

const silent = pino({ level: "silent" });

let redis: RedisServer;
const clients: QuotaCounter[] = [];
function redisQuota(options: Partial<RedisQuotaOptions> & { url?: string } = {}): RedisQuota {
  const quota = new RedisQuota({ url: redis.url, windowSeconds: WINDOW, commandTimeoutMs: 500, ...options });
  clients.push(quota);
  return quota;
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await redis?.close();
});

/** Fresh user ids per test, so tests share one Redis without sharing counts. */
const user = (name = "u") => `${name}-${randomUUID()}`;

interface Backend {
  name: string;
  /** Two counters over the same counts (two replicas; the same one in process). */
  pair(windowSeconds?: number): [QuotaCounter, QuotaCounter];
}

const backends: Backend[] = [
  {
    name: "redis",
    pair: (windowSeconds = WINDOW) => [redisQuota({ windowSeconds }), redisQuota({ windowSeconds })],
  },
  {
    name: "memory",
    pair: (windowSeconds = WINDOW) => {
      const quota = new MemoryQuota({ windowSeconds });
      return [quota, quota];
    },
  },
];

describe.each(backends)("$name counter", (backend) => {
  it("admits up to the request limit, then refuses without counting", async () => {
    const [quota] = backend.pair();
    const u = user();
    const limits = { requests: 3 };
    for (let i = 1; i <= 3; i++) {
      const d = await quota.admit(u, 10, limits, T0);
      expect(d).toMatchObject({ admitted: true, requests: i, tokens: 10 * i, limits });
      expect(d.exceeded).toBeUndefined();
    }
    const refused = await quota.admit(u, 10, limits, T0);
    expect(refused).toMatchObject({ admitted: false, requests: 3, tokens: 30, exceeded: "requests" });
    expect((await quota.admit(u, 10, limits, T0)).requests).toBe(3);
  });

  it("admits up to the token limit, exactly, and refuses what would exceed it", async () => {
    const [quota] = backend.pair();
    const u = user();
    const limits = { tokens: 100 };
    expect(await quota.admit(u, 40, limits, T0)).toMatchObject({ admitted: true, tokens: 40 });
    expect(await quota.admit(u, 40, limits, T0)).toMatchObject({ admitted: true, tokens: 80 });
    expect(await quota.admit(u, 30, limits, T0)).toMatchObject({ admitted: false, exceeded: "tokens", requests: 2, tokens: 80 });
    expect(await quota.admit(u, 20, limits, T0)).toMatchObject({ admitted: true, requests: 3, tokens: 100 });
    expect(await quota.admit(u, 0, limits, T0)).toMatchObject({ admitted: true, requests: 4, tokens: 100 });
    expect(await quota.admit(u, 1, limits, T0)).toMatchObject({ admitted: false, exceeded: "tokens" });
  });

  it("checks the request limit before the token limit, and a zero limit refuses everything", async () => {
    const [quota] = backend.pair();
    expect(await quota.admit(user(), 5, { requests: 0, tokens: 0 }, T0)).toMatchObject({ admitted: false, exceeded: "requests", requests: 0 });
    expect(await quota.admit(user(), 5, { tokens: 0 }, T0)).toMatchObject({ admitted: false, exceeded: "tokens" });
  });

  it("counts without limits when unlimited", async () => {
    const [quota] = backend.pair();
    const u = user();
    const decisions = await Promise.all(Array.from({ length: 300 }, () => quota.admit(u, 1000, {}, T0)));
    expect(decisions.every((d) => d.admitted)).toBe(true);
    expect(Math.max(...decisions.map((d) => d.requests))).toBe(300);
    expect(Math.max(...decisions.map((d) => d.tokens))).toBe(300_000);
  });

  it("starts afresh in the next epoch-aligned window", async () => {
    const [quota] = backend.pair(60);
    const u = user();
    const limits = { requests: 2, tokens: 10 };
    const t = new Date(Date.UTC(2031, 5, 1, 12, 0, 59, 999)); // last ms of the 12:00 window
    expect(await quota.admit(u, 5, limits, t)).toMatchObject({
      admitted: true,
      windowStart: new Date(Date.UTC(2031, 5, 1, 12, 0, 0)),
      resetAt: new Date(Date.UTC(2031, 5, 1, 12, 1, 0)),
    });
    await quota.admit(u, 5, limits, t);
    expect((await quota.admit(u, 1, limits, t)).admitted).toBe(false);
    const next = new Date(t.getTime() + 1);
    expect(await quota.admit(u, 10, limits, next)).toMatchObject({
      admitted: true,
      requests: 1,
      tokens: 10,
      windowStart: next,
      resetAt: new Date(next.getTime() + 60_000),
    });
  });

  it("keeps users apart, whatever their ids hold", async () => {
    const [quota] = backend.pair();
    const base = user("a");
    const hostile = [`${base}}:b`, `${base}`, `${base}}:b:1`, `${base}\nb`, `${base}%007d:b`, `${base}{x}`, `${base}:b`, `${base}\u0000`, `${base}é`, ""];
    const limits = { requests: 1 };
    // Each id gets its own single request; none is refused by another's count.
    for (const id of hostile) {
      expect(await quota.admit(id, 1, limits, T0), JSON.stringify(id)).toMatchObject({ admitted: true, requests: 1 });
    }
    for (const id of hostile) expect((await quota.admit(id, 1, limits, T0)).admitted).toBe(false);
  });

  it("admits exactly the limit under concurrent submissions from two replicas", async () => {
    const [a, b] = backend.pair();
    const u = user();
    const limits = { requests: 37 };
    const decisions = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).admit(u, 3, limits, T0)));
    const admitted = decisions.filter((d) => d.admitted);
    expect(admitted).toHaveLength(37);
    expect(new Set(admitted.map((d) => d.requests))).toEqual(new Set(Array.from({ length: 37 }, (_, i) => i + 1)));
    expect(decisions.filter((d) => !d.admitted).every((d) => d.requests === 37 && d.tokens === 111)).toBe(true);
  });

  it("admits exactly what fits the token limit under concurrency", async () => {
    const [a, b] = backend.pair();
    const u = user();
    const decisions = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).admit(u, 7, { tokens: 100 }, T0)));
    expect(decisions.filter((d) => d.admitted)).toHaveLength(14);
    expect(Math.max(...decisions.map((d) => d.tokens))).toBe(98);
  });

  it("refuses nonsense arguments", async () => {
    const [quota] = backend.pair();
    await expect(quota.admit(user(), -1, {}, T0)).rejects.toThrow(RangeError);
    await expect(quota.admit(user(), 1.5, {}, T0)).rejects.toThrow(RangeError);
    await expect(quota.admit(user(), 1, { requests: -1 }, T0)).rejects.toThrow(RangeError);
  });
});

describe("RedisQuota", () => {
  it("keys one hash per user and window, hash-tagged, with user ids escaped", () => {
    const quota = redisQuota();
    const start = new Date(Date.UTC(2030, 0, 1));
    expect(quota.keyFor("alice", start)).toBe(`quota:{alice}:${start.getTime() / 1000}`);
    const key = quota.keyFor("a}:b\n{c", start);
    expect(key).toBe(`quota:{a%007d%003ab%000a%007bc}:${start.getTime() / 1000}`);
    // Only the hash tag's own braces; nothing an id can hold reaches them.
    expect(key.match(/[{}]/g)).toEqual(["{", "}"]);
    const ids = ["a}:b", "a%007d:b", "a%007d%003ab", "%", "%0025", "\ud800", "\ufffd", "a", "A"];
    expect(new Set(ids.map(escapeUserId)).size).toBe(ids.length);
  });

  it("sets the window's expiry: its end plus the slack", async () => {
    const quota = redisQuota({ windowSeconds: 60, expirySlackSeconds: 30 });
    const u = user();
    const now = new Date();
    const decision = await quota.admit(u, 1, {}, now);
    const ttl = await quota.client.ttl(quota.keyFor(u, decision.windowStart));
    const expected = Math.ceil((decision.resetAt.getTime() - now.getTime()) / 1000) + 30;
    expect(ttl).toBeGreaterThan(expected - 3);
    expect(ttl).toBeLessThanOrEqual(expected);
    expect(await quota.client.hgetall(quota.keyFor(u, decision.windowStart))).toEqual({ requests: "1", tokens: "1" });
    // A refused request creates nothing.
    const v = user();
    await quota.admit(v, 1, { requests: 0 }, now);
    expect(await quota.client.exists(quota.keyFor(v, decision.windowStart))).toBe(0);
  });

  it("authenticates with the password in the URL", async () => {
    const secured = await startRedis({ password: "s3cret:/@pw" });
    try {
      const good = redisQuota({ url: secured.url });
      expect(secured.url).toContain(encodeURIComponent("s3cret:/@pw"));
      expect(await good.admit(user(), 1, { requests: 1 })).toMatchObject({ admitted: true });
      const bad = redisQuota({ url: secured.url.replace(/\/\/[^@]*@/, "//:wrong@"), readyTimeoutMs: 500 });
      await expect(bad.admit(user(), 1, {})).rejects.toThrow();
      await bad.close();
    } finally {
      await secured.close();
    }
  });

  it("fails fast while Redis is down, and resumes counting when it is back, on the same client", async () => {
    const server = await startRedis();
    try {
      const quota = redisQuota({ url: server.url, maxReconnectDelayMs: 200 });
      const u = user();
      expect(await quota.admit(u, 1, { requests: 5 })).toMatchObject({ admitted: true, requests: 1 });
      await server.stop();
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        await expect(quota.admit(u, 1, { requests: 5 })).rejects.toThrow(/Redis|Connection|closed|unreachable/i);
        expect(Date.now() - started).toBeLessThan(1500);
      }
      await server.restart();
      // No persistence: the restarted server starts from zero; the script cache is empty (EVALSHA → EVAL).
      const decision = await eventually(() => quota.admit(u, 1, { requests: 5 }));
      expect(decision).toMatchObject({ admitted: true, requests: 1 });
      expect(await quota.admit(u, 1, { requests: 5 })).toMatchObject({ admitted: true, requests: 2 });
    } finally {
      await server.close();
    }
  });

  it("times out a command Redis does not answer", async () => {
    const server = await startRedis();
    try {
      const quota = redisQuota({ url: server.url, commandTimeoutMs: 300 });
      await quota.admit(user(), 1, {});
      server.pause();
      const started = Date.now();
      await expect(quota.admit(user(), 1, {})).rejects.toThrow(/timed out/i);
      expect(Date.now() - started).toBeLessThan(1500);
      server.resume();
      expect((await eventually(() => quota.admit(user(), 1, {}))).admitted).toBe(true);
    } finally {
      await server.close();
    }
  });

  it("starts without Redis, without crashing, and refuses until it can count", async () => {
    const server = await startRedis();
    const url = server.url;
    await server.stop();
    try {
      const quota = redisQuota({ url, maxReconnectDelayMs: 200 });
      await expect(quota.admit(user(), 1, {})).rejects.toThrow();
      await server.restart();
      expect((await eventually(() => quota.admit(user(), 1, {}))).admitted).toBe(true);
    } finally {
      await server.close();
    }
  });
});

describe("QuotaPolicy", () => {
  function policy(options: Partial<QuotaPolicyOptions> = {}) {
    const outcomes: QuotaOutcome[] = [];
    const { logger, lines } = capturingLogger();
    const p = new QuotaPolicy({
      counter: new MemoryQuota({ windowSeconds: WINDOW }),
      defaultLimits: { requests: 100, tokens: 10_000 },
      perUser: { vip: { requests: 1000 }, free: {} },
      windowSeconds: WINDOW,
      logger,
      onDecision: (outcome) => outcomes.push(outcome),
      now: () => T0,
      ...options,
    });
    return { p, outcomes, lines };
  }

  it("applies a user's own limits, else the defaults", () => {
    const { p } = policy({ perUser: { vip: { requests: 1000 }, free: {}, ["__proto__"]: { requests: 1 } } });
    expect(p.limitsFor("someone")).toEqual({ requests: 100, tokens: 10_000 });
    expect(p.limitsFor("vip")).toEqual({ requests: 1000 });
    expect(p.limitsFor("free")).toEqual({});
    expect(p.limitsFor("__proto__")).toEqual({ requests: 1 });
    expect(p.limitsFor("constructor")).toEqual({ requests: 100, tokens: 10_000 });
    expect(p.windowOf(T0)).toEqual({
      start: new Date(T0.getTime() - (WINDOW - 1234) * 1000),
      resetAt: new Date(T0.getTime() + 1234 * 1000),
    });
  });

  it("admits within quota and answers 429 over it, with Retry-After and the limit in the message and details", async () => {
    const { p, outcomes } = policy({ defaultLimits: { requests: 2, tokens: 50 } });
    const first = await p.admit("u1", 10);
    expect(first).toMatchObject({ admitted: true, decision: { requests: 1, tokens: 10 } });
    await p.admit("u1", 10);
    const err = await p.admit("u1", 10).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InferenceError);
    const e = err as InferenceError;
    expect(e.status).toBe(429);
    expect(e.headers).toEqual({ "retry-after": "1234" });
    expect(e.message).toBe("quota exceeded for user 'u1': 2 requests per 3600 s window (2 used); retry after 1234 s");
    expect(e.details).toEqual({
      quota: { requests: 2, tokens: 50, window_seconds: 3600 },
      used: { requests: 2, tokens: 20 },
      exceeded: "requests",
      retry_after_seconds: 1234,
    });
    expect(outcomes).toEqual(["admitted", "admitted", "rejected"]);
  });

  it("names the token limit when tokens are exhausted, and a Retry-After of at least 1 s", async () => {
    const end = new Date(Math.ceil(T0.getTime() / (WINDOW * 1000)) * WINDOW * 1000 - 1); // 1 ms before the reset
    const { p } = policy({ defaultLimits: { tokens: 50 } });
    await p.admit("u\n'2", 45, end);
    const e = (await p.admit("u\n'2", 10, end).catch((x: unknown) => x)) as InferenceError;
    expect(e.status).toBe(429);
    expect(e.headers["retry-after"]).toBe("1");
    expect(e.message).toBe("quota exceeded for user 'u\\n\\'2': 50 tokens per 3600 s window (45 used, 10 requested); retry after 1 s");
    expect(e.details).toMatchObject({ quota: { requests: null, tokens: 50 }, used: { requests: 1, tokens: 45 }, exceeded: "tokens" });
    const tooBig = (await p.admit("big", 51, end).catch((x: unknown) => x)) as InferenceError;
    expect(tooBig.message).toMatch(/the request's 51 tokens exceed the limit of 50 tokens per 3600 s window/);
  });

  it("refuses with 503 when the store is down under fail-closed, counted and logged", async () => {
    const server = await startRedis();
    const counter = redisQuota({ url: server.url, maxReconnectDelayMs: 200 });
    try {
      const { p, outcomes, lines } = policy({ counter });
      expect((await p.admit("u", 1, new Date())).admitted).toBe(true);
      await server.stop();
      const e = (await p.admit("u", 1, new Date()).catch((x: unknown) => x)) as InferenceError;
      expect(e).toBeInstanceOf(InferenceError);
      expect(e.status).toBe(503);
      expect(e.message).toMatch(/^quota store unavailable: /);
      expect(e.headers).toEqual({ "retry-after": "1" });
      await expect(p.admit("u", 1, new Date())).rejects.toMatchObject({ status: 503 });
      expect(outcomes).toEqual(["admitted", "store_error_refused", "store_error_refused"]);
      // Logged once per burst, not per request.
      expect(lines.filter((l) => /quota store unavailable: refusing/.test(String(l.msg)))).toHaveLength(1);
      await server.restart();
      expect((await eventually(() => p.admit("u", 1, new Date()))).admitted).toBe(true);
      expect(outcomes.at(-1)).toBe("admitted");
    } finally {
      await server.close();
    }
  });

  it("admits uncounted when the store is down under fail-open, counted and logged", async () => {
    const server = await startRedis();
    const url = server.url;
    await server.close();
    const counter = redisQuota({ url });
    const { p, outcomes, lines } = policy({ counter, onStoreError: "fail-open" });
    const admission = await p.admit("u", 1, new Date());
    expect(admission.admitted).toBe(true);
    expect(admission.decision).toBeUndefined();
    expect(admission.storeError).toBeInstanceOf(Error);
    expect(outcomes).toEqual(["store_error_admitted"]);
    expect(lines.some((l) => l.level === 40 && /admitting uncounted \(fail-open\)/.test(String(l.msg)))).toBe(true);
  });

  it("refuses a counter with another window length, and bad limits", () => {
    expect(() => policy({ windowSeconds: 60 })).toThrow(/3600 s windows/);
    expect(() => policy({ defaultLimits: { requests: -1 } })).toThrow(RangeError);
    expect(() => policy({ onStoreError: "maybe" as never })).toThrow(/policy/);
  });

  it("survives a throwing onDecision callback", async () => {
    const { p } = policy({
      logger: silent,
      onDecision: () => {
        throw new Error("boom");
      },
    });
    expect((await p.admit("u", 1)).admitted).toBe(true);
  });
});

/** Retries `fn` until it resolves (Redis reconnecting), for up to 5 s. */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
