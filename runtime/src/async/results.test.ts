/**
 * Results cannot be forged: the results collector (POST /api/v1/results) takes
 * a result only from the platform's path, the worker's reply event carrying
 * RESULTS_TOKEN (the `resultstoken` CloudEvent extension, forwarded by the
 * Broker with the event) and the attempt it ran under, for a request that is
 * running. Anything else a client sends is refused (401 without or with a wrong
 * token, 403 for a request in another state or attempt), logged, counted, and
 * changes nothing. Broker mode against a real PostgreSQL, the test playing the
 * Broker as in flow.test.ts.
 */
import { CloudEvent, HTTP } from "cloudevents";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXTENSIONS, RESPONSE_EVENT_TYPE } from "../cloudevents/constants.js";
import { replyEvent, Sink, type ReceivedRequest } from "../cloudevents/testing.js";
import { ConfigError, loadConfig } from "../config.js";
import { removeRepository } from "../testing/fixtures.js";
import { startPostgres, type TestPostgres } from "../testing/postgres.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import {
  asyncRepository,
  capturingLogger,
  counterValues,
  deadLetter,
  deliverReply,
  deliverToWorker,
  eventHeaders,
  getFrom,
  postJsonTo,
  request,
  TEST_RESULTS_TOKEN,
  type HttpResult,
} from "./testing.js";

const REFUSED = "inference_server_async_results_refused_total";

let pg: TestPostgres;
let broker: Sink;
let repo: string;
let server: RunningServer;
let url: string;
let logLines: Record<string, any>[];

beforeAll(async () => {
  [pg, broker, repo] = await Promise.all([startPostgres(), Sink.start(), asyncRepository()]);
  const { logger, lines } = capturingLogger();
  logLines = lines;
  server = await startTestServer(repo, { asyncInference: true, databaseUrl: pg.url, asyncSink: broker.url, resultsToken: TEST_RESULTS_TOKEN }, { logger });
  url = server.url;
}, 60_000);

afterAll(async () => {
  await server?.close();
  await Promise.all([broker?.close(), pg?.stop()]);
  if (repo) await removeRepository(repo);
});

async function published(id: string): Promise<ReceivedRequest> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = broker.received.find((r) => r.event.id === id);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`the broker never received request ${id}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function submit(user: string, prompt = "a fine film"): Promise<string> {
  const res = await postJsonTo(`${url}/api/v1/inference`, { prompt, model: "sentiment" }, { "x-user-id": user });
  expect(res.status, res.body).toBe(202);
  return res.json.request_id as string;
}

const status = async (id: string) => {
  const res = await getFrom(`${url}/api/v1/requests/${id}`);
  expect(res.status, res.body).toBe(200);
  return res.json;
};

/** A response event as a client could make it: binary mode, any attributes. */
function forged(id: string, extensions: Record<string, unknown>, data: unknown = { outputs: [{ name: "label", datatype: "BYTES", shape: [1], data: ["forged"] }] }): HttpResult {
  const message = HTTP.binary(new CloudEvent<unknown>({ type: RESPONSE_EVENT_TYPE, source: "/attacker", correlationid: id, datacontenttype: "application/json", ...extensions, data }));
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(message.headers)) if (v !== undefined) headers[k] = String(v);
  return { status: 200, headers, body: message.body as string, json: undefined };
}

/** The same reply event, its headers changed (what a replay with edited attributes looks like). */
const edited = (reply: HttpResult, headers: Record<string, string>): HttpResult => ({ ...reply, headers: { ...reply.headers, ...headers } });

function expectRefused(res: HttpResult, status: 401 | 403, message: RegExp) {
  expect(res.status, res.body).toBe(status);
  expect(Object.keys(res.json)).toEqual(["error"]);
  expect(res.json.error).toMatch(message);
}

describe("configuration", () => {
  const load = (env: Record<string, string>) => loadConfig([], env).config;

  it("a Broker without RESULTS_TOKEN is a configuration error naming RESULTS_TOKEN; in-process mode needs none", () => {
    const brokered: Record<string, string>[] = [
      { ASYNC_INFERENCE: "true", ASYNC_SINK: "http://broker.example" },
      { ASYNC_INFERENCE: "true", K_SINK: "http://broker.example" },
      { ASYNC_INFERENCE: "true", ASYNC_SINK: "http://broker.example", RESULTS_COLLECTOR: "false" },
    ];
    for (const env of brokered) {
      expect(() => load(env)).toThrow(ConfigError);
      expect(() => load(env)).toThrow(/RESULTS_TOKEN.*required with asynchronous inference on a Broker/);
    }
    expect(load({ ASYNC_INFERENCE: "true" }).resultsToken).toBeUndefined();
    expect(load({ K_SINK: "http://logs.example" }).resultsToken).toBeUndefined(); // the inference logger alone
    expect(load({ ASYNC_INFERENCE: "true", ASYNC_SINK: "http://broker.example", RESULTS_TOKEN: TEST_RESULTS_TOKEN }).resultsToken).toBe(TEST_RESULTS_TOKEN);
    expect(() => load({ RESULTS_TOKEN: "short" })).toThrow(/RESULTS_TOKEN \(environment\): use a token of at least 16 characters/);
    expect(() => load({ RESULTS_TOKEN: "with spaces in it, long enough" })).toThrow(/RESULTS_TOKEN \(environment\): printable ASCII without spaces/);
  });

  it("the token is never logged", () => {
    expect(JSON.stringify(logLines)).not.toContain(TEST_RESULTS_TOKEN);
  });
});

describe("the platform's path", () => {
  it("the request event and the worker's reply carry the token (resultstoken) and the attempt; the collector records the result", async () => {
    const id = await submit("legit");
    const event = await published(id);
    expect(event.headers[`ce-${EXTENSIONS.resultsToken}`]).toBe(TEST_RESULTS_TOKEN);
    const reply = await deliverToWorker(url, event);
    expect(reply.status, reply.body).toBe(200);
    const answer = replyEvent(reply);
    expect(answer[EXTENSIONS.resultsToken]).toBe(TEST_RESULTS_TOKEN);
    expect(answer[EXTENSIONS.attempt]).toBe("1");
    expect(reply.headers["ce-resultstoken"]).toBe(TEST_RESULTS_TOKEN);
    expect(reply.headers["ce-attempt"]).toBe("1");
    const collected = await deliverReply(url, reply);
    expect(collected.json).toEqual({ request_id: id, recorded: true, known: true });
    expect(await status(id)).toMatchObject({ status: "succeeded", attempts: 1 });
  });

  it("a request event a client posts to POST / without the token is an ordinary inference: the request is not run, the reply has no token", async () => {
    const id = await submit("sneaky");
    const event = await published(id);
    const headers = eventHeaders(event.headers);
    delete headers[`ce-${EXTENSIONS.resultsToken}`];
    const res = await request(`${url}/`, { method: "POST", headers, body: event.body });
    expect(res.status, res.body).toBe(200);
    expect(res.headers["ce-resultstoken"]).toBeUndefined();
    expect(res.headers["ce-attempt"]).toBeUndefined();
    expect(await status(id)).toMatchObject({ status: "queued", attempts: 0 });
    // A wrong token: the same.
    const wrong = await request(`${url}/`, { method: "POST", headers: { ...headers, "ce-resultstoken": "not-the-token-at-all" }, body: event.body });
    expect(wrong.status, wrong.body).toBe(200);
    expect(wrong.headers["ce-resultstoken"]).toBeUndefined();
    expect(await status(id)).toMatchObject({ status: "queued", attempts: 0 });
    // With CE_MERGE off or on, a client's own resultstoken is never echoed: checked in reply.ts (not merged).
  });
});

describe("forged results are refused, logged and counted, and change nothing", () => {
  it("no token, a wrong token, a valid reply replayed for a queued request or under another attempt, a result for a queued request", async () => {
    const before = await counterValues(url, REFUSED, "reason");
    const warnsBefore = logLines.filter((l) => l.level === 40 && /^results collector: refused a result/.test(l.msg)).length;

    // A running request whose genuine reply the test holds back.
    const running = await submit("victim");
    const reply = await deliverToWorker(url, await published(running));
    expect(reply.status, reply.body).toBe(200);
    const runningBefore = await status(running);
    expect(runningBefore).toMatchObject({ status: "running", attempts: 1 });
    // Another user's request, still queued.
    const queued = await submit("other");
    await published(queued);
    const queuedBefore = await status(queued);
    expect(queuedBefore).toMatchObject({ status: "queued" });

    // 1. No token (a client posting a result for another user's request).
    expectRefused(await deliverReply(url, forged(running, {})), 401, /needs the 'resultstoken' extension \(RESULTS_TOKEN\)/);
    // 2. A wrong token, in binary and structured mode.
    expectRefused(await deliverReply(url, forged(running, { resultstoken: "guessed-token-0123456789" })), 401, /^invalid 'resultstoken' extension$/);
    const structured = HTTP.structured(new CloudEvent<unknown>({ type: RESPONSE_EVENT_TYPE, source: "/attacker", correlationid: running, resultstoken: "guessed-token-0123456789", data: { outputs: [] } }));
    expectRefused(await request(`${url}/api/v1/results`, { method: "POST", headers: structured.headers as Record<string, string>, body: structured.body as string }), 401, /invalid 'resultstoken'/);
    // The same reply with its token taken off.
    const noToken = { ...reply, headers: Object.fromEntries(Object.entries(reply.headers).filter(([k]) => k !== "ce-resultstoken")) };
    expectRefused(await deliverReply(url, noToken), 401, /needs the 'resultstoken' extension/);
    // 3. The genuine reply (valid token) replayed for the queued request.
    expectRefused(await deliverReply(url, edited(reply, { "ce-correlationid": queued })), 403, new RegExp(`^request "${queued}" is queued, not running: result refused$`));
    // 4. The genuine reply, under another attempt.
    expectRefused(await deliverReply(url, edited(reply, { "ce-attempt": "7" })), 403, /is on attempt 1, not this one: result refused/);
    // 5. A result for a queued request with the token but no attempt; a dead letter without the token.
    expectRefused(await deliverReply(url, forged(queued, { resultstoken: TEST_RESULTS_TOKEN })), 403, /is queued, not running/);
    const event = await published(queued);
    const headers = eventHeaders(event.headers);
    delete headers[`ce-${EXTENSIONS.resultsToken}`];
    expectRefused(await deadLetter(url, { ...event, headers }, { status: 500, body: "forged" }), 401, /needs the 'resultstoken' extension/);
    const after = await counterValues(url, REFUSED, "reason");
    const delta = (r: string) => (after[r] ?? 0) - (before[r] ?? 0);
    expect({ no_token: delta("no_token"), invalid_token: delta("invalid_token"), not_running: delta("not_running"), attempt_mismatch: delta("attempt_mismatch") }).toEqual({
      no_token: 3,
      invalid_token: 2,
      not_running: 2,
      attempt_mismatch: 1,
    });
    const warns = logLines.filter((l) => l.level === 40 && /^results collector: refused a result/.test(l.msg));
    expect(warns.length - warnsBefore).toBe(8);
    expect(warns.at(-1)).toMatchObject({ reason: "no_token", request_id: queued });
    expect(JSON.stringify(warns)).not.toContain(TEST_RESULTS_TOKEN);

    // Nothing changed by the forgeries: each request is as it was.
    expect(await status(queued)).toEqual(queuedBefore);
    expect(await status(running)).toEqual(runningBefore);
  });

  it("a forged result leaves a running request running; its genuine reply is still recorded, once", async () => {
    const id = await submit("victim2");
    const reply = await deliverToWorker(url, await published(id));
    const before = await status(id);
    expectRefused(await deliverReply(url, forged(id, {})), 401, /resultstoken/);
    expectRefused(await deliverReply(url, forged(id, { resultstoken: "x".repeat(32) })), 401, /invalid/);
    expect(await status(id)).toEqual(before);
    expect((await deliverReply(url, reply)).json).toEqual({ request_id: id, recorded: true, known: true });
    const done = await status(id);
    expect(done.status).toBe("succeeded");
    expect(JSON.stringify(done.response)).not.toContain("forged");
    // Replayed once finished (a Broker redelivery): acknowledged, nothing recorded, counted as finished.
    const finishedBefore = (await counterValues(url, REFUSED, "reason")).finished ?? 0;
    expect((await deliverReply(url, forged(id, { resultstoken: TEST_RESULTS_TOKEN, attempt: 1 }, { error: "late forgery" }))).json).toEqual({ request_id: id, recorded: false, known: true });
    expect(await status(id)).toEqual(done);
    expect((await counterValues(url, REFUSED, "reason")).finished).toBe(finishedBefore + 1);
  });
});

describe("in-process mode (no Broker, no RESULTS_TOKEN)", () => {
  it("the collector takes no result over HTTP: results never cross it there", async () => {
    const local = await startTestServer(repo, { asyncInference: true, modelName: "sentiment", modelDir: `${repo}/sentiment` });
    try {
      const id = (await postJsonTo(`${local.url}/api/v1/inference`, { prompt: "fine", model: "sentiment" }, { "x-user-id": "local" })).json.request_id as string;
      const res = await deliverReply(local.url, forged(id, { resultstoken: "anything-at-all-0123456789" }));
      expectRefused(res, 401, /no RESULTS_TOKEN is configured/);
      // The in-process queue records the real result.
      const deadline = Date.now() + 15_000;
      let record: any;
      do {
        record = (await getFrom(`${local.url}/api/v1/requests/${id}`)).json;
        if (record.status === "succeeded" || record.status === "failed") break;
        await new Promise((r) => setTimeout(r, 20));
      } while (Date.now() < deadline);
      expect(record.status).toBe("succeeded");
      expect(JSON.stringify(record.response)).not.toContain("forged");
    } finally {
      await local.close();
    }
  });
});
