/**
 * Outages mid-run, against the real servers: PostgreSQL restarted while
 * submissions (and later, deliveries) keep coming — the store retries its
 * writes, nothing accepted is lost — and Redis stopped and started again —
 * fail-closed answers 503 while it is down, counted, and nothing refused is
 * recorded. Afterwards every request that got a 202 is found and completes; an
 * outage longer than the store retries is a 503 with Retry-After, never a 500.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sink, type ReceivedRequest } from "../cloudevents/testing.js";
import { removeRepository } from "../testing/fixtures.js";
import { startPostgres, type TestPostgres } from "../testing/postgres.js";
import { startRedis, type RedisServer } from "../testing/redis.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import { asyncRepository, counterValues, deliverReply, deliverToWorker, getFrom, pool, postJsonTo, TEST_RESULTS_TOKEN, type HttpResult } from "./testing.js";

const USER = "steady";
const WINDOW = 30 * 24 * 3600;

let postgres: TestPostgres;
let redis: RedisServer;
let broker: Sink;
let repo: string;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  [postgres, redis, broker, repo] = await Promise.all([startPostgres(), startRedis(), Sink.start(), asyncRepository()]);
  server = await startTestServer(repo, {
    asyncInference: true,
    databaseUrl: postgres.url,
    redisUrl: redis.url,
    asyncSink: broker.url,
    resultsToken: TEST_RESULTS_TOKEN,
    quotaRequests: 100_000,
    quotaWindowSeconds: WINDOW,
    quotaOnStoreError: "fail-closed",
  });
  url = server.url;
}, 60_000);

afterAll(async () => {
  await server?.close();
  await Promise.all([broker?.close(), redis?.close(), postgres?.stop()]);
  if (repo) await removeRepository(repo);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every submission made, in order, with its answer. */
const submissions: { phase: string; res: HttpResult }[] = [];
let counter = 0;

async function submit(phase: string): Promise<HttpResult> {
  const n = counter++;
  const res = await postJsonTo(`${url}/api/v1/inference`, { prompt: `review ${n}: a lovely, touching film`, model: "sentiment" }, { "x-user-id": USER });
  submissions.push({ phase, res });
  return res;
}

/** Submits continuously (two at a time) until `during` settles; returns the answers. */
async function submitDuring(phase: string, during: Promise<unknown>): Promise<HttpResult[]> {
  let done = false;
  const stop = () => (done = true);
  during.then(stop, stop);
  const results: HttpResult[] = [];
  await Promise.all(
    [0, 1].map(async () => {
      while (!done) {
        results.push(await submit(phase));
        await sleep(15);
      }
    }),
  );
  await during;
  return results;
}

const accepted = () => submissions.filter((s) => s.res.status === 202).map((s) => s.res.json.request_id as string);

describe("outages", () => {
  it("PostgreSQL restarted while submissions continue: every one is accepted and recorded", async () => {
    for (let i = 0; i < 5; i++) expect((await submit("before")).status).toBe(202);
    const during = await submitDuring("pg-restart", sleep(100).then(() => postgres.restart()));
    expect(during.length).toBeGreaterThan(2);
    expect(during.map((r) => r.status)).toEqual(during.map(() => 202));
    // And submissions that arrive while it is down wait for it (the store retries) rather than fail.
    await postgres.halt();
    const resumed = sleep(500).then(() => postgres.resume());
    const whileDown = await Promise.all([submit("pg-down"), submit("pg-down"), submit("pg-down")]);
    await resumed;
    expect(whileDown.map((r) => r.status)).toEqual([202, 202, 202]);
    for (let i = 0; i < 3; i++) expect((await submit("after-pg")).status).toBe(202);
    // Straight from the database: every accepted request is there.
    const db = new pg.Client({ connectionString: postgres.url });
    await db.connect();
    const { rows } = await db.query<{ id: string; status: string }>("SELECT id, status FROM requests WHERE user_id = $1", [USER]);
    await db.end();
    expect(rows.map((r) => r.id).sort()).toEqual(accepted().sort());
    expect(new Set(rows.map((r) => r.status))).toEqual(new Set(["queued"]));
  }, 30_000);

  it("Redis stopped (fail-closed: 503, counted, nothing recorded) and started again (accepting again)", async () => {
    const before = await counterValues(url, "inference_server_quota_decisions_total", "outcome");
    const recorded = accepted().length;
    await redis.stop();
    const refused: HttpResult[] = [];
    for (let i = 0; i < 4; i++) refused.push(await submit("redis-down"));
    for (const r of refused) {
      expect(r.status, r.body).toBe(503);
      expect(r.headers["retry-after"]).toBe("1");
      expect(r.json.error).toMatch(/^quota store unavailable: /);
    }
    // Reads need no quota: the recorded requests are still served.
    const status = await getFrom(`${url}/api/v1/requests/${accepted()[0]}`);
    expect(status.status).toBe(200);

    await redis.restart();
    // ioredis reconnects on its own (backing off at most 1 s between attempts).
    const deadline = Date.now() + 10_000;
    let back: HttpResult;
    for (;;) {
      back = await submit("redis-back");
      if (back.status === 202 || Date.now() > deadline) break;
      expect(back.status).toBe(503);
      await sleep(100);
    }
    expect(back.status, back.body).toBe(202);
    for (let i = 0; i < 3; i++) expect((await submit("after-redis")).status).toBe(202);

    const after = await counterValues(url, "inference_server_quota_decisions_total", "outcome");
    const refusedTotal = submissions.filter((s) => s.res.status === 503).length;
    expect((after.store_error_refused ?? 0) - (before.store_error_refused ?? 0)).toBe(refusedTotal);
    expect(accepted().length).toBe(recorded + submissions.filter((s) => s.phase === "redis-back" || s.phase === "after-redis").filter((s) => s.res.status === 202).length);
  }, 30_000);

  it("afterwards every accepted request is found and completes, even through a PostgreSQL outage during delivery", async () => {
    const ids = accepted();
    // Exactly one published event per 202; none for the refused ones.
    const events = new Map<string, ReceivedRequest>();
    for (const e of broker.received) {
      expect(events.has(e.event.id)).toBe(false);
      events.set(e.event.id, e);
    }
    expect([...events.keys()].sort()).toEqual([...ids].sort());
    for (const id of ids) {
      const res = await getFrom(`${url}/api/v1/requests/${id}`);
      expect(res.status, res.body).toBe(200);
      expect(res.json.status).toBe("queued");
    }

    // The Broker delivers the first half, then the rest while PostgreSQL is down for a second:
    // the worker's and the collector's writes wait for it and retry.
    const deliver = async (id: string) => {
      const reply = await deliverToWorker(url, events.get(id)!);
      expect(reply.status, reply.body).toBe(200);
      const collected = await deliverReply(url, reply);
      expect(collected.json, collected.body).toEqual({ request_id: id, recorded: true, known: true });
    };
    const half = Math.ceil(ids.length / 2);
    await pool(half, 2, (i) => deliver(ids[i]!));
    await postgres.halt();
    const haltedAt = Date.now();
    const resumed = sleep(1_000).then(() => postgres.resume());
    await pool(ids.length - half, 2, (i) => deliver(ids[half + i]!));
    expect(Date.now() - haltedAt).toBeGreaterThanOrEqual(1_000);
    await resumed;

    for (const id of ids) {
      const res = await getFrom(`${url}/api/v1/requests/${id}`);
      expect(res.json).toMatchObject({ status: "succeeded", attempts: 1 });
      expect(res.json.response.outputs.find((o: { name: string }) => o.name === "label").data).toEqual(["positive"]);
    }
    const usage = await getFrom(`${url}/api/v1/users/${USER}/usage`);
    expect(usage.json).toMatchObject({ requests: ids.length });
    const events2 = await counterValues(url, "inference_server_async_requests_total", "event");
    expect(events2).toMatchObject({ submitted: ids.length, started: ids.length, succeeded: ids.length });
    expect(events2.failed ?? 0).toBe(0);
    expect(events2.redelivered ?? 0).toBe(0);
  }, 30_000);

  it("PostgreSQL down for longer than the store retries (10 s): 503 with Retry-After, not a 500; served again once it is back", async () => {
    const known = accepted()[0]!;
    await postgres.halt();
    try {
      const started = Date.now();
      const [submitted, read, usage] = await Promise.all([
        submit("pg-gone"),
        getFrom(`${url}/api/v1/requests/${known}`),
        getFrom(`${url}/api/v1/users/${USER}/usage`),
      ]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(9_000);
      for (const res of [submitted, read, usage]) {
        expect(res.status, res.body).toBe(503);
        expect(res.headers["retry-after"]).toBe("1");
        expect(res.json).toEqual({ error: "the request store (PostgreSQL) is unavailable; retry shortly" });
      }
    } finally {
      await postgres.resume();
    }
    expect((await getFrom(`${url}/api/v1/requests/${known}`)).json.status).toBe("succeeded");
    expect((await submit("pg-back")).status).toBe(202);
  }, 30_000);
});
