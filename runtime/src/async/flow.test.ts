/**
 * Asynchronous inference in broker mode, end to end on one machine: the
 * runtime with a real PostgreSQL (DATABASE_URL), a real Redis (REDIS_URL) and
 * ASYNC_SINK pointing at a test HTTP server that plays the Knative Broker. The
 * test forwards what the Broker would: the published request event to the
 * worker (POST /), the worker's reply event to the collector
 * (POST /api/v1/results), and, when delivery fails for good, the request event
 * dead-lettered with Knative's knativeerror* extensions.
 */
import { CloudEvent, HTTP } from "cloudevents";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "../cloudevents/constants.js";
import { replyEvent, simpleRequest, Sink, type ReceivedRequest } from "../cloudevents/testing.js";
import { bytesTensor, buildBinaryRequest } from "../testing/binary-client.js";
import { addConstantModel, removeRepository } from "../testing/fixtures.js";
import { startPostgres, type TestPostgres } from "../testing/postgres.js";
import { startRedis, type RedisServer } from "../testing/redis.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import {
  asyncRepository,
  capturingLogger,
  counterValues,
  deadLetter,
  deliverReply,
  deliverToWorker,
  getFrom,
  postJsonTo,
  request,
  TEST_RESULTS_TOKEN,
  type HttpResult,
} from "./testing.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const METRIC = "inference_server_async_requests_total";

let pg: TestPostgres;
let redis: RedisServer;
let broker: Sink;
let repo: string;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  [pg, redis, broker, repo] = await Promise.all([
    startPostgres(),
    startRedis(),
    Sink.start(),
    asyncRepository({ "mutable/1/model.onnx": buildSimple(), "flaky/1/model.onnx": buildSimple(), "gone/1/model.onnx": buildSimple() }),
  ]);
  server = await startTestServer(repo, {
    asyncInference: true,
    databaseUrl: pg.url,
    redisUrl: redis.url,
    asyncSink: broker.url,
    resultsToken: TEST_RESULTS_TOKEN,
    quotaRequests: 1000,
  });
  url = server.url;
}, 60_000);

afterAll(async () => {
  await server?.close();
  await Promise.all([broker?.close(), redis?.close(), pg?.stop()]);
  if (repo) await removeRepository(repo);
});

/** The request event the Broker received for `id` (published once). */
async function published(id: string): Promise<ReceivedRequest> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = broker.received.filter((r) => r.event.id === id);
    if (found.length > 0) {
      expect(found).toHaveLength(1);
      return found[0]!;
    }
    if (Date.now() > deadline) throw new Error(`the broker never received request ${id}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const status = async (id: string) => {
  const res = await getFrom(`${url}/api/v1/requests/${id}`);
  expect(res.status, res.body).toBe(200);
  return res.json;
};

const usage = async (user: string) => {
  const res = await getFrom(`${url}/api/v1/users/${user}/usage`);
  expect(res.status, res.body).toBe(200);
  return res.json;
};

function expectAccepted(res: HttpResult): string {
  expect(res.status, res.body).toBe(202);
  const id = res.json.request_id as string;
  expect(id).toMatch(UUID);
  expect(res.json).toEqual({ request_id: id, status: "queued", location: `/api/v1/requests/${id}` });
  expect(res.headers.location).toBe(`/api/v1/requests/${id}`);
  return id;
}

function expectPublished(event: ReceivedRequest, id: string, model: string, user: string) {
  // Binary mode: the attributes are ce-* headers, the V2 request is the body.
  expect(event.headers["ce-specversion"]).toBe("1.0");
  expect(event.headers["ce-id"]).toBe(id);
  expect(event.headers["ce-type"]).toBe(REQUEST_EVENT_TYPE);
  expect(event.headers["content-type"]).toMatch(/^application\/json/);
  expect(event.event.type).toBe(REQUEST_EVENT_TYPE);
  expect(event.event.id).toBe(id);
  expect(event.event.source).toBeTruthy();
  expect(event.event.model).toBe(model);
  expect(event.event.userid).toBe(user);
  expect(event.event.correlationid).toBe(id);
  expect(event.event.subject).toBe(model);
  expect(event.event.datacontenttype).toBe("application/json");
}

/** Worker's 200 reply carrying a response event for `id`. */
function expectReplyFor(reply: HttpResult, id: string, model: string) {
  expect(reply.status, reply.body).toBe(200);
  const event = replyEvent({ ...reply, json: reply.json });
  expect(event.type).toBe(RESPONSE_EVENT_TYPE);
  expect(event.correlationid).toBe(id);
  expect(event.causationid).toBe(id);
  expect(event.model).toBe(model);
  expect(event.id).toMatch(UUID);
  expect(event.id).not.toBe(id);
  return event;
}

describe("POST /api/v1/inference through the Broker", () => {
  it("queued → running → succeeded, with the outputs a synchronous call gives", async () => {
    const before = await counterValues(url, METRIC, "event");
    const prompt = "This movie was fantastic, I loved it and wasn't bored";
    const sync = await postJsonTo(`${url}/v2/models/sentiment/infer`, { inputs: [{ name: "text", datatype: "BYTES", shape: [1], data: [prompt] }] });
    expect(sync.status, sync.body).toBe(200);

    const body = JSON.stringify({ prompt, model: "sentiment" });
    const submitted = Date.now();
    const id = expectAccepted(await postJsonTo(`${url}/api/v1/inference`, body, { "x-user-id": "alice" }));

    const event = await published(id);
    expectPublished(event, id, "sentiment", "alice");
    expect(event.event.data).toEqual({ inputs: [{ name: "text", datatype: "BYTES", shape: [1], data: [prompt] }] });

    const queued = await status(id);
    expect(queued).toEqual({
      request_id: id,
      status: "queued",
      user_id: "alice",
      model: "sentiment",
      model_version: null,
      tokens: 10, // the sentiment model's own tokenizer rule: "wasn't" is one token
      input_bytes: Buffer.byteLength(body),
      attempts: 0,
      created_at: expect.stringMatching(ISO),
      started_at: null,
      finished_at: null,
    });
    expect(Math.abs(Date.parse(queued.created_at) - submitted)).toBeLessThan(5_000);

    const reply = await deliverToWorker(url, event);
    const replied = expectReplyFor(reply, id, "sentiment");
    expect(replied.modelversion).toBe("1");
    expect(replied.data).toEqual(sync.json);

    const running = await status(id);
    expect(running).toMatchObject({ status: "running", attempts: 1, started_at: expect.stringMatching(ISO), finished_at: null });
    expect(running).not.toHaveProperty("response");

    const collected = await deliverReply(url, reply);
    expect(collected.status, collected.body).toBe(200);
    expect(collected.json).toEqual({ request_id: id, recorded: true, known: true });

    const done = await status(id);
    expect(done).toMatchObject({ status: "succeeded", attempts: 1, started_at: running.started_at, finished_at: expect.stringMatching(ISO) });
    expect(done.response).toEqual(sync.json);
    expect(done.response.outputs.find((o: { name: string }) => o.name === "label").data).toEqual(["positive"]);
    expect(Date.parse(done.created_at)).toBeLessThanOrEqual(Date.parse(done.started_at));
    expect(Date.parse(done.started_at)).toBeLessThanOrEqual(Date.parse(done.finished_at));

    const after = await counterValues(url, METRIC, "event");
    const delta = (e: string) => (after[e] ?? 0) - (before[e] ?? 0);
    expect([delta("submitted"), delta("started"), delta("redelivered"), delta("succeeded"), delta("failed")]).toEqual([1, 1, 0, 1, 0]);
  });

  it("takes 'text' as well as 'prompt', and user_id in the body without the header", async () => {
    const res = await postJsonTo(`${url}/api/v1/inference`, { text: "awful, boring and far too long", model: "sentiment", user_id: "bob", version: 1 });
    const id = expectAccepted(res);
    const event = await published(id);
    expectPublished(event, id, "sentiment", "bob");
    expect(event.event.modelversion).toBe("1");
    expect(await status(id)).toMatchObject({ user_id: "bob", model_version: "1", tokens: 6 });
    const reply = await deliverToWorker(url, event);
    expectReplyFor(reply, id, "sentiment");
    expect((await deliverReply(url, reply)).json).toEqual({ request_id: id, recorded: true, known: true });
    const done = await status(id);
    expect(done.status).toBe("succeeded");
    expect(done.response.outputs.find((o: { name: string }) => o.name === "label").data).toEqual(["negative"]);
  });
});

describe("Prefer: respond-async on the V2 infer endpoint", () => {
  it("a JSON request to `simple`: 202, then the same outputs as the synchronous call", async () => {
    const sync = await postJsonTo(`${url}/v2/models/simple/infer`, simpleRequest(7, 3, "req-7-3"));
    expect(sync.status, sync.body).toBe(200);

    const res = await postJsonTo(`${url}/v2/models/simple/infer`, simpleRequest(7, 3, "req-7-3"), { prefer: "respond-async", "x-user-id": "carol" });
    const id = expectAccepted(res);
    expect(res.headers["preference-applied"]).toBe("respond-async");
    const event = await published(id);
    expectPublished(event, id, "simple", "carol");
    expect(event.event.data).toEqual({ id: "req-7-3", ...simpleRequest(7, 3) });
    expect((await status(id)).tokens).toBe(32); // two [1, 16] INT32 tensors

    const reply = await deliverToWorker(url, event);
    expectReplyFor(reply, id, "simple");
    expect((await status(id)).status).toBe("running");
    await deliverReply(url, reply);
    const done = await status(id);
    expect(done.status).toBe("succeeded");
    expect(done.response).toEqual(sync.json);
    expect(done.response.outputs.map((o: { data: number[] }) => o.data)).toEqual([Array(16).fill(10), Array(16).fill(4)]);
  });

  it("a binary-tensor-data body (user_id as a request parameter): stored as JSON, same outputs", async () => {
    const a = Int32Array.from({ length: 16 }, (_, i) => i);
    const b = Int32Array.from({ length: 16 }, (_, i) => 100 - i);
    const { body, headers } = buildBinaryRequest(
      [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], bytes: new Uint8Array(a.buffer) },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], bytes: new Uint8Array(b.buffer) },
      ],
      { parameters: { user_id: "dave" }, outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }, { name: "OUTPUT1" }] },
    );
    const json = {
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: [...a] },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: [...b] },
      ],
    };
    const sync = await postJsonTo(`${url}/v2/models/simple/infer`, json);
    expect(sync.status, sync.body).toBe(200);

    const res = await request(`${url}/v2/models/simple/infer`, { method: "POST", headers: { ...headers, prefer: "respond-async" }, body });
    const id = expectAccepted(res);
    const event = await published(id);
    expectPublished(event, id, "simple", "dave");
    expect(await status(id)).toMatchObject({ user_id: "dave", input_bytes: body.byteLength, tokens: 32 });

    const reply = await deliverToWorker(url, event);
    expectReplyFor(reply, id, "simple");
    await deliverReply(url, reply);
    const done = await status(id);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    // The queued answer is JSON whatever binary_data the request asked for: the outputs as the JSON sync call has them.
    expect(done.response.outputs.map((o: { name: string; data: number[] }) => [o.name, o.data])).toEqual(
      sync.json.outputs.map((o: { name: string; data: number[] }) => [o.name, o.data]),
    );
    expect(done.response.outputs[0].data).toEqual(Array(16).fill(100));
  });

  it("a BYTES binary tensor to the sentiment model", async () => {
    const texts = ["I loved it", "I hated it"];
    const { body, headers } = buildBinaryRequest([{ name: "text", datatype: "BYTES", shape: [2], bytes: bytesTensor(texts) }]);
    const sync = await postJsonTo(`${url}/v2/models/sentiment/infer`, { inputs: [{ name: "text", datatype: "BYTES", shape: [2], data: texts }] });
    const res = await request(`${url}/v2/models/sentiment/infer`, { method: "POST", headers: { ...headers, prefer: "respond-async", "x-user-id": "erin" }, body });
    const id = expectAccepted(res);
    const event = await published(id);
    expect(event.event.data).toEqual({ inputs: [{ name: "text", datatype: "BYTES", shape: [2], data: texts }] });
    expect(await status(id)).toMatchObject({ tokens: 6, input_bytes: body.byteLength });
    const reply = await deliverToWorker(url, event);
    await deliverReply(url, reply);
    const done = await status(id);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    expect(done.response.outputs).toEqual(sync.json.outputs);
  });
});

describe("structured mode", () => {
  it("the worker and the collector take the request event in structured mode too", async () => {
    const id = expectAccepted(await postJsonTo(`${url}/api/v1/inference`, { prompt: "lovely", model: "sentiment" }, { "x-user-id": "sam" }));
    const event = await published(id);
    const message = HTTP.structured(event.event);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(message.headers)) if (v !== undefined) headers[k] = String(v);
    const reply = await deliverToWorker(url, { ...event, headers, body: message.body as string });
    expect(reply.status, reply.body).toBe(200);
    expect(reply.headers["content-type"]).toMatch(/^application\/cloudevents\+json/);
    expect(reply.json).toMatchObject({ type: RESPONSE_EVENT_TYPE, correlationid: id, data: { model_name: "sentiment" } });
    expect((await deliverReply(url, reply)).json).toEqual({ request_id: id, recorded: true, known: true });
    const done = await status(id);
    expect(done.status).toBe("succeeded");
    expect(done.response).toEqual(reply.json.data);
  });
});

describe("publishing to the Broker", () => {
  it("retries while the Broker answers 503, then queues the request once", async () => {
    const attemptsBefore = broker.attempts;
    broker.behaviour = (_req, res, attempt) => {
      res.writeHead(attempt - attemptsBefore <= 2 ? 503 : 202).end();
    };
    try {
      const id = expectAccepted(await postJsonTo(`${url}/api/v1/inference`, { prompt: "good", model: "sentiment" }, { "x-user-id": "pat" }));
      expect(broker.attempts - attemptsBefore).toBe(3);
      expect(broker.received.filter((r) => r.event.id === id)).toHaveLength(1);
      expect((await status(id)).status).toBe("queued");
    } finally {
      broker.behaviour = (_req, res) => void res.writeHead(202).end();
    }
  });

  it("a Broker that refuses the event: 503 to the client, the request recorded as failed, not left queued", async () => {
    const before = await counterValues(url, METRIC, "event");
    const attemptsBefore = broker.attempts;
    broker.behaviour = (_req, res) => void res.writeHead(400, { "content-type": "application/json" }).end('{"error":"no"}');
    let res: HttpResult;
    try {
      res = await postJsonTo(`${url}/api/v1/inference`, { prompt: "good", model: "sentiment" }, { "x-user-id": "quinn" });
    } finally {
      broker.behaviour = (_req, r) => void r.writeHead(202).end();
    }
    expect(broker.attempts - attemptsBefore).toBe(1); // a 400 is not retried
    expect(res.status, res.body).toBe(503);
    expect(res.headers["retry-after"]).toBe("1");
    const match = /^request ([0-9a-f-]{36}) could not be queued: could not publish the request to (\S+): the broker answered 400$/.exec(res.json.error);
    expect(match, res.json.error).not.toBeNull();
    expect(match![2]).toBe(broker.url);
    const record = await status(match![1]!);
    expect(record).toMatchObject({ status: "failed", attempts: 0, error: `could not be queued: could not publish the request to ${broker.url}: the broker answered 400` });
    const after = await counterValues(url, METRIC, "event");
    expect((after.submitted ?? 0) - (before.submitted ?? 0)).toBe(1);
    expect((after.failed ?? 0) - (before.failed ?? 0)).toBe(1);
  });
});

describe("the production wiring", () => {
  it("logs PostgreSQL, Redis and the Broker (credentials redacted), and publishes to a sink URL with credentials as Basic auth", async () => {
    const guarded = await Sink.start();
    const { logger, lines } = capturingLogger();
    const sink = guarded.url.replace("http://", "http://broker:s%3Ccret@");
    const other = await startTestServer(repo, { asyncInference: true, databaseUrl: pg.url, redisUrl: redis.url, asyncSink: sink, resultsToken: TEST_RESULTS_TOKEN, quotaRequests: 5 }, { logger });
    try {
      const summary = lines.find((l) => typeof l.msg === "string" && l.msg.startsWith("asynchronous inference on"));
      expect(summary).toMatchObject({ msg: "asynchronous inference on", store: "postgres", quota_counter: "redis", queue: guarded.url.replace("http://", "http://REDACTED@") });
      expect(JSON.stringify(lines)).not.toContain("s%3Ccret");

      const res = await postJsonTo(`${other.url}/api/v1/inference`, { prompt: "fine", model: "sentiment" }, { "x-user-id": "tom" });
      expect(res.status, res.body).toBe(202);
      await guarded.waitFor(1);
      expect(guarded.received[0]!.headers.authorization).toBe(`Basic ${Buffer.from("broker:s<cret").toString("base64")}`);
      expect(guarded.received[0]!.event.id).toBe(res.json.request_id);
      // The first replica sees the request the second one recorded: one store.
      expect((await status(res.json.request_id)).user_id).toBe("tom");
    } finally {
      await other.close();
      await guarded.close();
    }
  });
});

describe("redelivery", () => {
  it("of a finished request: 200 without an event; nothing counted twice; the first result is kept", async () => {
    const user = "frank";
    const id = expectAccepted(await postJsonTo(`${url}/api/v1/inference`, { prompt: "great", model: "sentiment" }, { "x-user-id": user }));
    const event = await published(id);
    const reply = await deliverToWorker(url, event);
    expectReplyFor(reply, id, "sentiment");
    await deliverReply(url, reply);
    const done = await status(id);
    expect(done.status).toBe("succeeded");
    const usedBefore = await usage(user);
    expect(usedBefore).toMatchObject({ requests: 1, tokens: 1 });
    const metricsBefore = await counterValues(url, METRIC, "event");

    // The Broker delivers the same event again (it never saw the first 200, say).
    const again = await deliverToWorker(url, event);
    expect(again.status, again.body).toBe(200);
    expect(again.json).toEqual({ request_id: id, status: "succeeded", note: "already finished; nothing to do" });
    expect(Object.keys(again.headers).filter((h) => h.startsWith("ce-"))).toEqual([]);

    // The same reply again, and a different (failed) one for the same request: the first result stays.
    expect((await deliverReply(url, reply)).json).toEqual({ request_id: id, recorded: false, known: true });
    const forged = { ...reply, headers: { ...reply.headers }, body: JSON.stringify({ error: "too late" }) };
    expect((await deliverReply(url, forged)).json).toEqual({ request_id: id, recorded: false, known: true });

    expect(await status(id)).toEqual(done);
    expect(await usage(user)).toEqual(usedBefore);
    expect(await counterValues(url, METRIC, "event")).toEqual(metricsBefore);
  });

  it("while running (the worker crashed before answering): runs it again; the collector keeps one result", async () => {
    const user = "grace";
    const before = await counterValues(url, METRIC, "event");
    const id = expectAccepted(await postJsonTo(`${url}/api/v1/inference`, { prompt: "not good, not bad", model: "sentiment" }, { "x-user-id": user }));
    const event = await published(id);
    const first = await deliverToWorker(url, event);
    const firstEvent = expectReplyFor(first, id, "sentiment");
    expect(await status(id)).toMatchObject({ status: "running", attempts: 1 });
    const startedAt = (await status(id)).started_at;

    const second = await deliverToWorker(url, event);
    const secondEvent = expectReplyFor(second, id, "sentiment");
    expect(secondEvent.id).not.toBe(firstEvent.id);
    expect(secondEvent.data).toEqual(firstEvent.data);
    expect(await status(id)).toMatchObject({ status: "running", attempts: 2, started_at: startedAt });

    expect((await deliverReply(url, second)).json).toEqual({ request_id: id, recorded: true, known: true });
    expect((await deliverReply(url, first)).json).toEqual({ request_id: id, recorded: false, known: true });
    const done = await status(id);
    expect(done).toMatchObject({ status: "succeeded", attempts: 2, started_at: startedAt });
    expect(done.response).toEqual(secondEvent.data);
    expect(await usage(user)).toMatchObject({ requests: 1, tokens: 4 });

    const after = await counterValues(url, METRIC, "event");
    const delta = (e: string) => (after[e] ?? 0) - (before[e] ?? 0);
    expect([delta("submitted"), delta("started"), delta("redelivered"), delta("succeeded"), delta("failed")]).toEqual([1, 1, 1, 1, 0]);
  });
});

describe("failures", () => {
  it("a request the model refuses at delivery (the model was replaced): a failure reply event, recorded as failed", async () => {
    const before = await counterValues(url, METRIC, "event");
    const id = expectAccepted(await postJsonTo(`${url}/v2/models/mutable/infer`, simpleRequest(1, 2), { prefer: "respond-async", "x-user-id": "heidi" }));
    const event = await published(id);
    // Between submission and delivery, a new model (one INT32 input called INPUT) replaces it.
    await writeFile(join(repo, "mutable/1/model.onnx"), addConstantModel(5));
    const load = await postJsonTo(`${url}/v2/repository/models/mutable/load`, {});
    expect(load.status, load.body).toBe(200);

    const reply = await deliverToWorker(url, event);
    expect(reply.status, reply.body).toBe(200);
    const failure = replyEvent({ ...reply, json: reply.json });
    expect(failure.type).toBe(RESPONSE_EVENT_TYPE);
    expect(failure.correlationid).toBe(id);
    expect(failure.model).toBe("mutable");
    const error = (failure.data as { error: string }).error;
    expect(failure.data).toEqual({ error: expect.stringContaining("INPUT") });
    expect(await status(id)).toMatchObject({ status: "running", attempts: 1 });

    expect((await deliverReply(url, reply)).json).toEqual({ request_id: id, recorded: true, known: true });
    const done = await status(id);
    expect(done).toMatchObject({ status: "failed", error, attempts: 1, finished_at: expect.stringMatching(ISO) });
    expect(done).not.toHaveProperty("response");

    const after = await counterValues(url, METRIC, "event");
    expect((after.failed ?? 0) - (before.failed ?? 0)).toBe(1);
    expect((after.succeeded ?? 0) - (before.succeeded ?? 0)).toBe(0);
  });

  it("a model not ready at delivery: 503 so the Broker retries, then the dead-lettered event fails the request with the reason", async () => {
    const id = expectAccepted(await postJsonTo(`${url}/v2/models/flaky/infer`, simpleRequest(1, 2), { prefer: "respond-async", "x-user-id": "ivan" }));
    const event = await published(id);
    expect((await postJsonTo(`${url}/v2/repository/models/flaky/unload`, {})).status).toBe(200);
    await writeFile(join(repo, "flaky/1/model.onnx"), "not an onnx model");
    const load = await postJsonTo(`${url}/v2/repository/models/flaky/load`, {});
    expect(load.status).toBeGreaterThanOrEqual(400);
    const ready = await getFrom(`${url}/v2/models/flaky/ready`);
    expect(ready.status).toBe(503);
    expect(ready.json.state).toBe("UNAVAILABLE");

    const first = await deliverToWorker(url, event);
    expect(first.status, first.body).toBe(503);
    expect(first.json.error).toMatch(/^model 'flaky' version 1 is not ready: UNAVAILABLE/);
    expect(Object.keys(first.headers).filter((h) => h.startsWith("ce-"))).toEqual([]);
    expect(await status(id)).toMatchObject({ status: "running", attempts: 1 });
    const second = await deliverToWorker(url, event);
    expect(second.status).toBe(503);
    expect(await status(id)).toMatchObject({ status: "running", attempts: 2 });

    const dead = await deadLetter(url, event, second);
    expect(dead.status, dead.body).toBe(200);
    expect(dead.json).toEqual({ request_id: id, recorded: true, known: true });
    const done = await status(id);
    expect(done).toMatchObject({ status: "failed", attempts: 2, error: `delivery failed (HTTP 503): ${second.json.error}` });
    // Dead-lettered again (a second dead-letter delivery): the first failure stays.
    expect((await deadLetter(url, event, { status: 500, body: "other" })).json).toEqual({ request_id: id, recorded: false, known: true });
    expect((await status(id)).error).toBe(done.error);
  });

  it("a model unloaded before delivery: 404 (the Broker's retries, then its dead-letter sink), recorded as failed", async () => {
    const id = expectAccepted(await postJsonTo(`${url}/v2/models/gone/infer`, simpleRequest(1, 2), { prefer: "respond-async", "x-user-id": "judy" }));
    const event = await published(id);
    expect((await postJsonTo(`${url}/v2/repository/models/gone/unload`, {})).status).toBe(200);
    const res = await deliverToWorker(url, event);
    expect(res.status, res.body).toBe(404);
    expect(res.json.error).toMatch(/unknown model: 'gone'/);
    expect(await status(id)).toMatchObject({ status: "queued", attempts: 0 });
    const dead = await deadLetter(url, event, res);
    expect(dead.json).toEqual({ request_id: id, recorded: true, known: true });
    expect(await status(id)).toMatchObject({ status: "failed", error: `delivery failed (HTTP 404): ${res.json.error}` });
  });

  it("a response event for a request this store does not know is acknowledged, not recorded", async () => {
    const message = HTTP.binary(
      new CloudEvent<unknown>({ type: RESPONSE_EVENT_TYPE, source: "/elsewhere", correlationid: "no-such-request", resultstoken: TEST_RESULTS_TOKEN, datacontenttype: "application/json", data: { outputs: [] } }),
    );
    const res = await deliverReply(url, { headers: message.headers as Record<string, string>, body: message.body as string, status: 200, json: undefined });
    expect(res.status, res.body).toBe(200);
    expect(res.json).toEqual({ request_id: "no-such-request", recorded: false, known: false });
  });
});
