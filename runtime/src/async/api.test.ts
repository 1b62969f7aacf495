/**
 * The asynchronous API in its local mode (no broker: the in-process queue; no
 * DATABASE_URL: PGlite; no REDIS_URL: in-process quota counters), end to end,
 * and every way a client, a broker or an operator can get it wrong: each new
 * endpoint answers a clear 4xx `{"error": ...}`, counts nothing, and the server
 * keeps serving; configuration errors name the key.
 */
import { CloudEvent, HTTP } from "cloudevents";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "../cloudevents/constants.js";
import { simpleRequest } from "../cloudevents/testing.js";
import { ConfigError, loadConfig } from "../config.js";
import { buildBinaryRequest } from "../testing/binary-client.js";
import { identityModel, removeRepository } from "../testing/fixtures.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import { asyncRepository, capturingLogger, counterValues, getFrom, postJsonTo, request, TEST_RESULTS_TOKEN, waitForFinal, type HttpResult } from "./testing.js";

const MAX_BYTES = 4096;

let repo: string;
let server: RunningServer;
let url: string;
let logLines: Record<string, any>[];

beforeAll(async () => {
  repo = await asyncRepository({ "echo/1/model.onnx": identityModel("STRING"), "half/1/model.onnx": identityModel("FLOAT16") });
  const { logger, lines } = capturingLogger();
  logLines = lines;
  // A RESULTS_TOKEN without a Broker is allowed (nothing needs it: results are recorded in process); the collector tests use it.
  server = await startTestServer(repo, { asyncInference: true, quotaRequests: 3, maxRequestBytes: MAX_BYTES, resultsToken: TEST_RESULTS_TOKEN }, { logger });
  url = server.url;
}, 60_000);

afterAll(async () => {
  await server?.close();
  if (repo) await removeRepository(repo);
});

const submit = (body: unknown, headers: Record<string, string> = {}) => postJsonTo(`${url}/api/v1/inference`, body, headers);

function expectAccepted(res: HttpResult): string {
  expect(res.status, res.body).toBe(202);
  expect(res.json).toEqual({ request_id: expect.any(String), status: "queued", location: `/api/v1/requests/${res.json.request_id}` });
  return res.json.request_id;
}

/** A 4xx answer with exactly {"error": message} (a string, or a pattern for the message). */
function expectError(res: HttpResult, status: number, message: string | RegExp) {
  expect(res.status, res.body).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  expect(Object.keys(res.json)).toEqual(["error"]);
  if (typeof message === "string") expect(res.json.error).toBe(message);
  else expect(res.json.error).toMatch(message);
}

describe("in-process mode (no broker, PGlite, in-process quota)", () => {
  it("logs that the store is the embedded one, and the mode is for local use", () => {
    const store = logLines.find((l) => l.store === "pglite" && /^no DATABASE_URL: using the embedded PGlite store/.test(l.msg));
    expect(store, JSON.stringify(logLines.map((l) => l.msg))).toBeDefined();
    expect(store!.level).toBe(40); // warn
    expect(store!.msg).toBe(
      "no DATABASE_URL: using the embedded PGlite store; data is kept in memory and lost when the process exits (set DATABASE_URL for PostgreSQL)",
    );
    const summary = logLines.find((l) => typeof l.msg === "string" && l.msg.startsWith("asynchronous inference on"));
    expect(summary).toMatchObject({
      component: "async",
      store: "pglite",
      quota_counter: "memory",
      queue: "in-process",
      user_header: "x-user-id",
      window_seconds: 3600,
      msg:
        "asynchronous inference on, for local use: embedded PGlite store (no DATABASE_URL), in-process quota counters (no REDIS_URL), " +
        "in-process queue (no ASYNC_SINK or K_SINK): queued requests run again after a restart (kept in the store)",
    });
  });

  it("POST /api/v1/inference → 202 → queued/running → succeeded, with the synchronous outputs", async () => {
    const prompt = "What a wonderful, moving film";
    const sync = await postJsonTo(`${url}/v2/models/sentiment/infer`, { inputs: [{ name: "text", datatype: "BYTES", shape: [1], data: [prompt] }] });
    expect(sync.status).toBe(200);
    const id = expectAccepted(await submit({ prompt, model: "sentiment" }, { "x-user-id": "local-1" }));
    const done = await waitForFinal(url, id);
    // Polled from the 202 on: the states seen are in order and end in succeeded (the in-process queue may be quicker than the first poll).
    expect(["queued,running,succeeded", "queued,succeeded", "running,succeeded", "succeeded"]).toContain(done.seen.join(","));
    // Sent without a version: the record takes the version that answered, as the response says.
    expect(done).toMatchObject({ request_id: id, status: "succeeded", user_id: "local-1", model: "sentiment", model_version: "1", attempts: 1, tokens: 5 });
    expect(done.response.model_version).toBe("1");
    expect(done.started_at).not.toBeNull();
    expect(Date.parse(done.finished_at)).toBeGreaterThanOrEqual(Date.parse(done.started_at));
    expect(done.response).toEqual(sync.json);
    const events = await counterValues(url, "inference_server_async_requests_total", "event");
    expect(events).toMatchObject({ submitted: 1, started: 1, succeeded: 1 });
  });

  it("Prefer: respond-async on V2, and any model with a single text input (an identity model)", async () => {
    const v2 = expectAccepted(await postJsonTo(`${url}/v2/models/simple/versions/1/infer`, simpleRequest(4, 4), { prefer: "respond-async", "x-user-id": "local-2" }));
    const echo = expectAccepted(await submit({ text: "echo me", model: "echo" }, { "x-user-id": "local-2" }));
    const [a, b] = await Promise.all([waitForFinal(url, v2), waitForFinal(url, echo)]);
    expect(a).toMatchObject({ status: "succeeded", model: "simple", model_version: "1" });
    expect(a.response.outputs.map((o: { data: number[] }) => o.data)).toEqual([Array(16).fill(8), Array(16).fill(0)]);
    expect(b.status).toBe("succeeded");
    expect(b.response.outputs).toEqual([{ name: "OUTPUT", datatype: "BYTES", shape: [1, 1], data: ["echo me"] }]);
    expect(b.tokens).toBe(2);
  });

  it("the in-process quota: 3 requests, then 429 with retry-after and the limit", async () => {
    const user = "local-quota";
    const results = await Promise.all(Array.from({ length: 5 }, () => submit({ prompt: "fine", model: "sentiment" }, { "x-user-id": user })));
    expect(results.map((r) => r.status).sort()).toEqual([202, 202, 202, 429, 429]);
    for (const r of results.filter((r) => r.status === 429)) {
      expect(Number(r.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(r.json).toMatchObject({ quota: { requests: 3, tokens: null, window_seconds: 3600 }, used: { requests: 3, tokens: 3 }, exceeded: "requests" });
      expect(r.json.error).toMatch(/^quota exceeded for user 'local-quota': 3 requests per 3600 s window \(3 used\); retry after \d+ s$/);
    }
    await Promise.all(results.filter((r) => r.status === 202).map((r) => waitForFinal(url, r.json.request_id)));
    const usage = await getFrom(`${url}/api/v1/users/${user}/usage`, { "x-user-id": user });
    expect(usage.json).toMatchObject({ requests: 3, tokens: 3, quota: { requests: 3, tokens: null }, remaining: { requests: 0, tokens: null } });
  });

  it("PGLITE_DATA_DIR keeps finished requests across a restart; RESULTS_COLLECTOR=false removes the collector", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pglite-e2e-"));
    const { logger, lines } = capturingLogger();
    try {
      const config = { asyncInference: true, pgliteDir: dir, resultsCollector: false, modelName: "sentiment", modelDir: join(repo, "sentiment") };
      let local = await startTestServer(repo, config, { logger });
      expect(lines.some((l) => l.msg === `no DATABASE_URL: using the embedded PGlite store; data is kept in ${dir} (one process only: set DATABASE_URL for PostgreSQL in production)`)).toBe(true);
      const id = expectAccepted(await postJsonTo(`${local.url}/api/v1/inference`, { prompt: "brilliant", model: "sentiment" }, { "x-user-id": "keeper" }));
      const done = await waitForFinal(local.url, id);
      expect(done.status).toBe("succeeded");
      expectError(await postJsonTo(`${local.url}/api/v1/results`, {}), 404, "no route for POST /api/v1/results");
      await local.close();
      local = await startTestServer(repo, config, { logger });
      try {
        const again = await getFrom(`${local.url}/api/v1/requests/${id}`);
        expect(again.status).toBe(200);
        const { seen: _seen, ...stored } = done;
        expect(again.json).toEqual(stored);
        expect((await getFrom(`${local.url}/api/v1/users/keeper/usage`)).json).toMatchObject({ requests: 1, tokens: 1 });
      } finally {
        await local.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("bad input on POST /api/v1/inference: a clear 4xx, nothing counted", () => {
  const user = { "x-user-id": "careless" };

  it("malformed, empty, non-object and oversized bodies", async () => {
    expectError(await submit("{bad", user), 400, /^malformed JSON in the request body: /);
    expectError(await submit("", user), 400, "the request body is empty; expected a JSON inference request");
    expectError(await submit("[1, 2]", user), 400, /^invalid async inference request: /);
    expectError(await submit('"text"', user), 400, /^invalid async inference request: /);
    expectError(await submit({ prompt: "x".repeat(MAX_BYTES), model: "sentiment" }, user), 413, `request body exceeds the limit of ${MAX_BYTES} bytes`);
  });

  it("wrong fields: missing model, unknown keys, wrong types, both or neither of prompt and text", async () => {
    expectError(await submit({ prompt: "hi" }, user), 400, /^invalid async inference request: .*model is required/);
    expectError(await submit({ prompt: "hi", model: "sentiment", temperature: 0.2 }, user), 400, /^invalid async inference request: .*temperature/);
    expectError(await submit({ prompt: 42, model: "sentiment" }, user), 400, /^invalid async inference request: .*prompt/);
    expectError(await submit({ prompt: "hi", model: ["sentiment"] }, user), 400, /^invalid async inference request: .*model/);
    const both = await submit({ prompt: "hi", text: "there", model: "sentiment" }, user);
    expectError(both, 400, /^invalid async inference request: .*give exactly one of "prompt" or "text"/);
    expectError(await submit({ model: "sentiment" }, user), 400, /give exactly one of "prompt" or "text"/);
    expectError(await submit({ prompt: "hi", model: "sentiment", id: "x".repeat(300) }, user), 400, /^invalid async inference request: .*id/);
  });

  it("unknown or invalid models and versions; a model without a single text input", async () => {
    expectError(await submit({ prompt: "hi", model: "nope" }, user), 404, "Request for unknown model: 'nope' is not found");
    expectError(await submit({ prompt: "hi", model: "../etc" }, user), 400, 'invalid model name "../etc"');
    expectError(await submit({ prompt: "hi", model: "sentiment", version: "latest" }, user), 400, "failed to get model version from specified version string 'latest': versions are positive integers");
    expectError(await submit({ prompt: "hi", model: "sentiment", version: 7 }, user), 404, "Request for unknown model: 'sentiment' version 7 is not found (versions: 1)");
    expectError(
      await submit({ prompt: "hi", model: "simple" }, user),
      400,
      "model 'simple' does not take a single text (BYTES) input; send a V2 request to /v2/models/simple/infer with the header Prefer: respond-async",
    );
  });

  it("invalid user ids in the header and the body, and a body user that is not the header's", async () => {
    const header = (v: string) => submit({ prompt: "hi", model: "sentiment" }, { "x-user-id": v });
    const rule = "must be a user id of 1 to 128 letters, digits, '_', '.', '@', ':', '+' or '-'";
    expectError(await header("two words"), 400, `the x-user-id header ${rule}`);
    expectError(await header("a/b"), 400, `the x-user-id header ${rule}`);
    expectError(await header("u".repeat(129)), 400, `the x-user-id header ${rule}`);
    expectError(await submit({ prompt: "hi", model: "sentiment", user_id: "" }), 400, `user_id ${rule}`);
    expectError(await submit({ prompt: "hi", model: "sentiment", user_id: "x\ny" }), 400, `user_id ${rule}`);
    expectError(await submit({ prompt: "hi", model: "sentiment", user_id: 12 }), 400, /^invalid async inference request: .*user_id/);
    expectError(await submit({ prompt: "hi", model: "sentiment", user_id: "mallory" }, user), 403, 'user_id "mallory" does not match the authenticated user (the x-user-id header)');
  });

  it("V2 with Prefer: respond-async: invalid tensors, FP16 (no JSON form), a non-string user_id parameter", async () => {
    const headers = { ...user, prefer: "respond-async" };
    const wrongShape = { inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1, 3], data: [1, 2, 3] }, { name: "INPUT1", datatype: "INT32", shape: [1, 3], data: [1, 2, 3] }] };
    const shape = await postJsonTo(`${url}/v2/models/simple/infer`, wrongShape, headers);
    expect(shape.status, shape.body).toBe(400);
    expect(shape.json.error).toMatch(/INPUT0/);
    // FP16 arrives as binary tensor data (JSON cannot carry it) and so cannot be queued as JSON.
    const fp16 = buildBinaryRequest([{ name: "INPUT", datatype: "FP16", shape: [1, 2], bytes: new Uint8Array(new Uint16Array([0x3c00, 0x4000]).buffer) }]);
    const half = await request(`${url}/v2/models/half/infer`, { method: "POST", headers: { ...fp16.headers, ...headers }, body: fp16.body });
    expectError(half, 400, "input 'INPUT': FP16 tensors have no JSON form, so they cannot be queued; send this request synchronously");
    const param = await postJsonTo(`${url}/v2/models/simple/infer`, { ...simpleRequest(1, 1), parameters: { user_id: 5 } }, { prefer: "respond-async" });
    expectError(param, 400, "user_id must be a user id of 1 to 128 letters, digits, '_', '.', '@', ':', '+' or '-'");
    expectError(await postJsonTo(`${url}/v2/models/nope/infer`, simpleRequest(1, 1), headers), 404, "Request for unknown model: 'nope' is not found");
  });

  it("a NUL character anywhere in the request (PostgreSQL's jsonb cannot store it): a 400, not a 500", async () => {
    const message = (where: string) => `the request's ${where} contains a NUL character (\\u0000), which a queued request cannot hold`;
    expectError(await submit({ prompt: "a\u0000b", model: "sentiment" }, user), 400, message("inputs[0].data[0]"));
    expectError(await submit({ prompt: "fine", model: "sentiment", id: "x\u0000" }, user), 400, message("id"));
    const v2 = await postJsonTo(`${url}/v2/models/simple/infer`, { ...simpleRequest(1, 1), parameters: { note: "\u0000" } }, { ...user, prefer: "respond-async" });
    expectError(v2, 400, message("parameters.note"));
    const key = await postJsonTo(`${url}/v2/models/simple/infer`, { ...simpleRequest(1, 1), parameters: { "a\u0000": 1 } }, { ...user, prefer: "respond-async" });
    expectError(key, 400, message('parameters key "a\\u0000"'));
  });

  it("none of it was recorded or counted", async () => {
    const usage = await getFrom(`${url}/api/v1/users/careless/usage`);
    expect(usage.status).toBe(200);
    expect(usage.json).toMatchObject({ requests: 0, tokens: 0, remaining: { requests: 3 } });
  });
});

describe("bad input on the status and usage endpoints", () => {
  let id: string;
  beforeAll(async () => {
    id = expectAccepted(await submit({ prompt: "mine", model: "sentiment" }, { "x-user-id": "owner" }));
    await waitForFinal(url, id);
  });

  it("an unknown request id is a 404; so is another user's request (no hint that it exists)", async () => {
    expectError(await getFrom(`${url}/api/v1/requests/00000000-0000-4000-8000-000000000000`), 404, 'request "00000000-0000-4000-8000-000000000000" not found');
    expectError(await getFrom(`${url}/api/v1/requests/not.an.id`), 404, 'request "not.an.id" not found');
    expectError(await getFrom(`${url}/api/v1/requests/${"x".repeat(200)}`), 404, /^request "x+… not found$/);
    expectError(await getFrom(`${url}/api/v1/requests/${id}`, { "x-user-id": "intruder" }), 404, `request "${id}" not found`);
    expect((await getFrom(`${url}/api/v1/requests/${id}`, { "x-user-id": "owner" })).json.status).toBe("succeeded");
  });

  it("another user's usage is a 403; an invalid user id in the path or header a 400", async () => {
    expectError(await getFrom(`${url}/api/v1/users/owner/usage`, { "x-user-id": "intruder" }), 403, "the authenticated user may read only their own usage");
    expectError(await getFrom(`${url}/api/v1/users/a%20b/usage`), 400, "the user id in the path must be a user id of 1 to 128 letters, digits, '_', '.', '@', ':', '+' or '-'");
    expectError(await getFrom(`${url}/api/v1/users/${"u".repeat(129)}/usage`), 400, /^the user id in the path must be a user id/);
    expectError(await getFrom(`${url}/api/v1/users/owner/usage`, { "x-user-id": "bad user" }), 400, /^the x-user-id header must be a user id/);
    expectError(await getFrom(`${url}/api/v1/requests/${id}`, { "x-user-id": "bad user" }), 400, /^the x-user-id header must be a user id/);
  });
});

describe("bad input on the results collector", () => {
  const results = () => `${url}/api/v1/results`;
  const binary = (attributes: Record<string, unknown>, data: unknown = { outputs: [] }) =>
    HTTP.binary(new CloudEvent<unknown>({ source: "/tests", datacontenttype: "application/json", ...attributes, data }));
  const send = (message: { headers: Record<string, unknown>; body: unknown }, extra: Record<string, string> = {}) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(message.headers)) if (v !== undefined) headers[k] = String(v);
    return request(results(), { method: "POST", headers: { ...headers, ...extra }, body: message.body as string });
  };

  it("a request that is not a CloudEvent, or a batch", async () => {
    const message = "/api/v1/results takes one CloudEvent (binary or structured mode): a response event or a dead-lettered request event";
    expectError(await postJsonTo(results(), { outputs: [] }), 400, message);
    expectError(await request(results(), { method: "POST", headers: { "content-type": "application/cloudevents-batch+json" }, body: "[]" }), 400, message);
  });

  it("an event of another type", async () => {
    expectError(
      await send(binary({ type: "com.example.other", correlationid: "x" })),
      400,
      `/api/v1/results takes '${RESPONSE_EVENT_TYPE}' events and dead-lettered '${REQUEST_EVENT_TYPE}' events, not "com.example.other"`,
    );
  });

  it("a response event without correlationid", async () => {
    expectError(await send(binary({ type: RESPONSE_EVENT_TYPE })), 400, "a response event needs the 'correlationid' extension: the id of the request it answers");
    expectError(await send(binary({ type: RESPONSE_EVENT_TYPE, correlationid: "" })), 400, /needs the 'correlationid' extension/);
  });

  it("an invalid CloudEvent: missing attributes, wrong specversion, malformed data", async () => {
    expectError(
      await request(results(), { method: "POST", headers: { "ce-specversion": "1.0", "ce-type": RESPONSE_EVENT_TYPE, "content-type": "application/json" }, body: "{}" }),
      400,
      "CloudEvent is missing required attributes 'id', 'source' (binary mode: headers ce-id, ce-source)",
    );
    expectError(await send(binary({ type: RESPONSE_EVENT_TYPE, correlationid: "x" }), { "ce-specversion": "0.1" }), 400, /specversion/);
    const broken = await request(results(), {
      method: "POST",
      headers: { "ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t", "ce-type": RESPONSE_EVENT_TYPE, "ce-correlationid": "x", "content-type": "application/json" },
      body: "{not json",
    });
    expectError(broken, 400, /^malformed JSON in the event data/);
  });

  it("a structured-mode response event is taken like a binary one", async () => {
    const id = expectAccepted(await submit({ prompt: "nice", model: "sentiment" }, { "x-user-id": "structured" }));
    await waitForFinal(url, id);
    const message = HTTP.structured(new CloudEvent<unknown>({ type: RESPONSE_EVENT_TYPE, source: "/tests", correlationid: id, resultstoken: TEST_RESULTS_TOKEN, data: { error: "late" } }));
    const res = await send(message);
    expect(res.status, res.body).toBe(200);
    expect(res.json).toEqual({ request_id: id, recorded: false, known: true });
  });
});

describe("after all that", () => {
  it("the server still serves: ready, and a new request completes", async () => {
    expect((await getFrom(`${url}/v2/health/ready`)).status).toBe(200);
    const id = expectAccepted(await submit({ prompt: "still here", model: "sentiment" }, { "x-user-id": "last" }));
    expect((await waitForFinal(url, id)).status).toBe("succeeded");
  });
});

describe("configuration errors name the key", () => {
  const fails = (env: Record<string, string>, argv: string[] = []) => {
    try {
      loadConfig(argv, env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error(`accepted ${JSON.stringify(env)}`);
  };

  it.each([
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL (environment): expected a postgres:// or postgresql:// connection string"],
    [{ REDIS_URL: "http://localhost:6379" }, "REDIS_URL (environment): expected a redis:// or rediss:// URL"],
    [{ ASYNC_SINK: "not a url" }, "ASYNC_SINK (environment): expected an http(s) URL"],
    [{ ASYNC_INFERENCE: "maybe" }, "ASYNC_INFERENCE (environment): expected true or false"],
    [{ QUOTA_USERS: "{bad" }, 'QUOTA_USERS (environment): expected a JSON object such as {"alice": {"requests": 100, "tokens": 5000}}'],
    [{ QUOTA_USERS: "[1]" }, 'QUOTA_USERS (environment): expected a JSON object such as {"alice": {"requests": 100, "tokens": 5000}}'],
    [{ QUOTA_ON_STORE_ERROR: "maybe" }, 'QUOTA_ON_STORE_ERROR (environment): Invalid option: expected one of "fail-closed"|"fail-open"'],
    [{ QUOTA_REQUESTS: "abc" }, "QUOTA_REQUESTS (environment): expected a number"],
    [{ QUOTA_TOKENS: "1.5" }, "QUOTA_TOKENS (environment): expected a whole number"],
    [{ QUOTA_WINDOW_SECONDS: "0" }, "QUOTA_WINDOW_SECONDS (environment): expected seconds"],
    [{ USER_HEADER: "x user" }, "USER_HEADER (environment): expected a header name"],
  ])("%o", (env, message) => {
    expect(fails(env)).toBe(`invalid configuration: ${message}`);
  });

  it("every bad key at once, flags by their spelling", () => {
    const message = fails({ DATABASE_URL: "mysql://x", QUOTA_ON_STORE_ERROR: "maybe" }, ["--quota-requests", "many"]);
    expect(message).toMatch(/^invalid configuration: /);
    expect(message).toContain("DATABASE_URL (environment)");
    expect(message).toContain("QUOTA_ON_STORE_ERROR (environment)");
    expect(message).toContain("--quota-requests: expected a number");
  });

  it("valid values parse", () => {
    const { config } = loadConfig([], {
      ASYNC_INFERENCE: "true",
      DATABASE_URL: "postgresql://u:p@db:5432/app",
      REDIS_URL: "rediss://:secret@redis:6380/1",
      QUOTA_USERS: '{"alice": {"requests": 10}, "bob": {}}',
      QUOTA_ON_STORE_ERROR: "fail-open",
      USER_HEADER: "X-Auth-User",
    });
    expect(config).toMatchObject({ asyncInference: true, quotaUsers: { alice: { requests: 10 }, bob: {} }, quotaOnStoreError: "fail-open", userHeader: "x-auth-user" });
  });
});
