/**
 * Quotas end to end: two runtime replicas sharing one real Redis (the quota
 * counters) and one real PostgreSQL (requests and usage), publishing to a test
 * Broker. Concurrent submissions are admitted exactly up to the limit, whichever
 * replica they reach; token limits use the model's own token count; synchronous
 * requests that name a user are held to the same quota.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloudEvent, HTTP } from "cloudevents";
import { REQUEST_EVENT_TYPE } from "../cloudevents/constants.js";
import { post, simpleRequest, Sink } from "../cloudevents/testing.js";
import { removeRepository } from "../testing/fixtures.js";
import { startPostgres, type TestPostgres } from "../testing/postgres.js";
import { startRedis, type RedisServer } from "../testing/redis.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import { asyncRepository, counterValues, deliverReply, deliverToWorker, getFrom, postJsonTo, TEST_RESULTS_TOKEN, type HttpResult } from "./testing.js";

/** 30 days: a run never straddles two windows. */
const WINDOW = 30 * 24 * 3600;
const LIMIT = 17;

let postgres: TestPostgres;
let redis: RedisServer;
let broker: Sink;
let repo: string;
let a: RunningServer;
let b: RunningServer;
let db: pg.Client;

beforeAll(async () => {
  [postgres, redis, broker, repo] = await Promise.all([startPostgres(), startRedis(), Sink.start(), asyncRepository()]);
  const config = {
    asyncInference: true,
    databaseUrl: postgres.url,
    redisUrl: redis.url,
    asyncSink: broker.url,
    resultsToken: TEST_RESULTS_TOKEN,
    quotaRequests: LIMIT,
    quotaWindowSeconds: WINDOW,
    // Per-user limits replace the defaults as a whole: tok-user has no request limit.
    quotaUsers: JSON.stringify({ "tok-user": { tokens: 10 }, "sync-user": { requests: 3 } }),
  };
  // Two replicas starting at once: both migrate the same database (one waits for the other's lock).
  [a, b] = await Promise.all([startTestServer(repo, config), startTestServer(repo, config)]);
  db = new pg.Client({ connectionString: postgres.url });
  await db.connect();
}, 60_000);

afterAll(async () => {
  await db?.end();
  await Promise.all([a?.close(), b?.close()]);
  await Promise.all([broker?.close(), redis?.close(), postgres?.stop()]);
  if (repo) await removeRepository(repo);
});

const submit = (server: RunningServer, user: string, prompt: string) =>
  postJsonTo(`${server.url}/api/v1/inference`, { prompt, model: "sentiment" }, { "x-user-id": user });

const usage = async (server: RunningServer, user: string) => {
  const res = await getFrom(`${server.url}/api/v1/users/${user}/usage`, { "x-user-id": user });
  expect(res.status, res.body).toBe(200);
  return res.json;
};

async function storedRequests(user: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>("SELECT id FROM requests WHERE user_id = $1 ORDER BY id", [user]);
  return rows.map((r) => r.id);
}

function expectRequestQuota429(res: HttpResult, user: string, tokensPerRequest: number) {
  expect(res.status, res.body).toBe(429);
  const retryAfter = Number(res.headers["retry-after"]);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW);
  expect(res.json).toEqual({
    error: `quota exceeded for user '${user}': ${LIMIT} requests per ${WINDOW} s window (${LIMIT} used); retry after ${retryAfter} s`,
    quota: { requests: LIMIT, tokens: null, window_seconds: WINDOW },
    used: { requests: LIMIT, tokens: LIMIT * tokensPerRequest },
    exceeded: "requests",
    retry_after_seconds: retryAfter,
  });
}

describe("request quota under concurrent submissions", () => {
  it(`60 at once for one user on one replica: exactly ${LIMIT} × 202 and ${60 - LIMIT} × 429`, async () => {
    const user = "burst-one";
    const decisionsBefore = await counterValues(a.url, "inference_server_quota_decisions_total", "outcome");
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => submit(a, user, `great film number ${i}`)));
    const accepted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status !== 202);
    expect(accepted).toHaveLength(LIMIT);
    expect(refused).toHaveLength(60 - LIMIT);
    for (const r of refused) expectRequestQuota429(r, user, 4);

    const ids = accepted.map((r) => r.json.request_id as string).sort();
    expect(new Set(ids).size).toBe(LIMIT);
    expect(await storedRequests(user)).toEqual(ids);
    // Each 202 was published first (the Broker answered 2xx), and nothing else was.
    expect(broker.received.filter((e) => e.event.userid === user).map((e) => e.event.id).sort()).toEqual(ids);

    expect(await usage(a, user)).toEqual({
      user_id: user,
      window: { start: expect.any(String), end: expect.any(String), seconds: WINDOW },
      requests: LIMIT,
      tokens: LIMIT * 4,
      quota: { requests: LIMIT, tokens: null },
      remaining: { requests: 0, tokens: null },
    });
    // The other replica reads the same usage from the shared store.
    expect(await usage(b, user)).toMatchObject({ requests: LIMIT, remaining: { requests: 0 } });

    const decisions = await counterValues(a.url, "inference_server_quota_decisions_total", "outcome");
    expect((decisions.admitted ?? 0) - (decisionsBefore.admitted ?? 0)).toBe(LIMIT);
    expect((decisions.rejected ?? 0) - (decisionsBefore.rejected ?? 0)).toBe(60 - LIMIT);
  });

  it("a queued request of a user now over quota still runs: it was charged when admitted, not again by the worker", async () => {
    const user = "burst-one";
    const event = broker.received.find((e) => e.event.userid === user)!;
    const reply = await deliverToWorker(b.url, event);
    expect(reply.status, reply.body).toBe(200);
    expect(reply.headers["ce-type"]).toBe("io.kserve.inference.response");
    expect((await deliverReply(a.url, reply)).json).toEqual({ request_id: event.event.id, recorded: true, known: true });
    expect((await getFrom(`${a.url}/api/v1/requests/${event.event.id}`)).json).toMatchObject({ status: "succeeded", attempts: 1 });
    expect(await usage(b, user)).toMatchObject({ requests: LIMIT, tokens: LIMIT * 4 });
  });

  it(`two replicas sharing Redis and PostgreSQL admit exactly ${LIMIT} between them`, async () => {
    const user = "burst-two";
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => submit(i % 2 ? a : b, user, `awful film number ${i}`)));
    const accepted = results.filter((r) => r.status === 202);
    // Each replica got 30, more than the limit: counters of their own would have admitted 2 × 17.
    expect(accepted).toHaveLength(LIMIT);
    for (const r of results.filter((r) => r.status !== 202)) expectRequestQuota429(r, user, 4);
    const ids = accepted.map((r) => r.json.request_id as string).sort();
    expect(await storedRequests(user)).toEqual(ids);
    expect(await usage(a, user)).toMatchObject({ requests: LIMIT, tokens: LIMIT * 4, remaining: { requests: 0 } });
    expect(await usage(b, user)).toMatchObject({ requests: LIMIT, tokens: LIMIT * 4, remaining: { requests: 0 } });
    // A request either replica gets can be read on the other.
    const read = await getFrom(`${b.url}/api/v1/requests/${ids[0]}`, { "x-user-id": user });
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ request_id: ids[0], status: "queued", user_id: user });
  });

  it("another user is not affected by one user's exhausted quota", async () => {
    const res = await submit(a, "bystander", "fine");
    expect(res.status, res.body).toBe(202);
    expect(await usage(a, "bystander")).toMatchObject({ requests: 1, tokens: 1, remaining: { requests: LIMIT - 1 } });
  });
});

describe("token quota, by the sentiment model's own tokenizer rule", () => {
  it("admits while the tokens fit, refuses the request that would go over, admits a smaller one", async () => {
    const user = "tok-user";
    expect((await submit(a, user, "This movie was FANTASTIC")).status).toBe(202); // 4 tokens
    expect((await submit(b, user, "Wasn't bad -- was it good?")).status).toBe(202); // 5: wasn't, bad, was, it, good

    const over = await submit(a, user, "Loved it");
    expect(over.status, over.body).toBe(429);
    const retryAfter = Number(over.headers["retry-after"]);
    expect(over.json).toEqual({
      error: `quota exceeded for user 'tok-user': 10 tokens per ${WINDOW} s window (9 used, 2 requested); retry after ${retryAfter} s`,
      quota: { requests: null, tokens: 10, window_seconds: WINDOW },
      used: { requests: 2, tokens: 9 },
      exceeded: "tokens",
      retry_after_seconds: retryAfter,
    });
    const huge = await submit(b, user, "one two three four five six seven eight nine ten eleven");
    expect(huge.status).toBe(429);
    expect(huge.json.error).toMatch(/^quota exceeded for user 'tok-user': the request's 11 tokens exceed the limit of 10 tokens per \d+ s window/);

    const last = await submit(b, user, "Great!");
    expect(last.status, last.body).toBe(202);
    expect((await getFrom(`${a.url}/api/v1/requests/${last.json.request_id}`)).json.tokens).toBe(1);
    expect(await usage(a, user)).toMatchObject({ requests: 3, tokens: 10, quota: { requests: null, tokens: 10 }, remaining: { requests: null, tokens: 0 } });
    expect((await submit(a, user, "ok")).status).toBe(429);
  });
});

describe("the synchronous path and users", () => {
  it("a V2 request with the user header is held to the user's quota (3), and counted in the usage", async () => {
    const user = "sync-user";
    for (let i = 0; i < 3; i++) {
      const res = await postJsonTo(`${a.url}/v2/models/simple/infer`, simpleRequest(i, 1), { "x-user-id": user });
      expect(res.status, res.body).toBe(200);
    }
    const over = await postJsonTo(`${a.url}/v2/models/simple/infer`, simpleRequest(9, 1), { "x-user-id": user });
    expect(over.status, over.body).toBe(429);
    expect(Number(over.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(over.json).toMatchObject({ quota: { requests: 3, tokens: null }, used: { requests: 3, tokens: 96 }, exceeded: "requests" });
    // A CloudEvent naming the user in its userid extension is charged to the same user.
    const event = HTTP.binary(new CloudEvent<unknown>({ type: REQUEST_EVENT_TYPE, source: "/tests", model: "simple", userid: user, data: simpleRequest(1, 1) }));
    const ce = await post(`${a.url}/`, event);
    expect(ce.status, ce.body).toBe(429);
    // So is KServe V1.
    const v1 = await postJsonTo(`${a.url}/v1/models/sentiment:predict`, { instances: ["great"] }, { "x-user-id": user });
    expect(v1.status, v1.body).toBe(429);
    expect(v1.json).toMatchObject({ exceeded: "requests", quota: { requests: 3 } });
    // The async API is refused as well: one quota for both paths.
    expect((await postJsonTo(`${b.url}/v2/models/simple/infer`, simpleRequest(1, 1), { "x-user-id": user, prefer: "respond-async" })).status).toBe(429);
    // Requests without a user are not counted against anyone.
    expect((await postJsonTo(`${a.url}/v2/models/simple/infer`, simpleRequest(1, 1))).status).toBe(200);
    expect(await usage(a, user)).toMatchObject({ requests: 3, tokens: 96, remaining: { requests: 0 } });
  });

  it("the async API without a user (no header, no user_id) is a 400 naming the header", async () => {
    const res = await postJsonTo(`${a.url}/api/v1/inference`, { prompt: "hi", model: "sentiment" });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ error: 'no user: the async API needs the x-user-id header (set by the ingress) or "user_id" in the body' });
    const v2 = await postJsonTo(`${a.url}/v2/models/simple/infer`, simpleRequest(1, 1), { prefer: "respond-async" });
    expect(v2.status).toBe(400);
    expect(v2.json.error).toBe("no user: an asynchronous request needs the x-user-id header (set by the ingress) or the parameter user_id");
  });
});
