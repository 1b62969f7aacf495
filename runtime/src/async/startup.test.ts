/**
 * Fast embedded start: with ASYNC_INFERENCE and no DATABASE_URL, the embedded
 * PGlite store starts in the background while the server listens and loads its
 * models. Until the store is ready the async API answers 503 with Retry-After
 * (the model endpoints, liveness and readiness do not wait for it); the log
 * says when the store starts and when it is ready, with the time it took. The
 * store is held at a gate here, so nothing depends on timing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeRepository } from "../testing/fixtures.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import { asyncRepository, capturingLogger, getFrom, postJsonTo, waitForFinal } from "./testing.js";

let repo: string;
let server: RunningServer;
let lines: Record<string, any>[];
let openStore: () => void;

beforeAll(async () => {
  repo = await asyncRepository();
  const captured = capturingLogger();
  lines = captured.lines;
  const gate = new Promise<void>((resolve) => (openStore = resolve));
  // Resolves once the models are loaded: the store is still held at the gate.
  server = await startTestServer(repo, { asyncInference: true, quotaRequests: 100 }, { logger: captured.logger, asyncStoreGate: gate });
}, 60_000);

afterAll(async () => {
  openStore?.();
  await server?.close();
  if (repo) await removeRepository(repo);
});

const messages = () => lines.map((l) => l.msg as string);

describe("the embedded store starts concurrently with the server", () => {
  it("before the store is ready: listening, live, ready, the models answer; the async API answers 503 with Retry-After", async () => {
    expect(messages()).toContain("listening");
    expect(messages()).not.toContain("embedded PGlite request store ready");
    const started = lines.find((l) => /^starting the embedded PGlite request store/.test(l.msg));
    expect(started).toMatchObject({ level: 30, component: "async", store: "pglite" });
    expect(lines.indexOf(started!)).toBeLessThan(messages().indexOf("listening"));

    expect((await getFrom(`${server.url}/v2/health/live`)).status).toBe(200);
    expect((await getFrom(`${server.url}/v2/health/ready`)).status).toBe(200);
    const sync = await postJsonTo(`${server.url}/v2/models/sentiment/infer`, { inputs: [{ name: "text", datatype: "BYTES", shape: [1], data: ["great"] }] });
    expect(sync.status, sync.body).toBe(200);

    const submit = await postJsonTo(`${server.url}/api/v1/inference`, { prompt: "great", model: "sentiment" }, { "x-user-id": "early" });
    expect(submit.status, submit.body).toBe(503);
    expect(submit.headers["retry-after"]).toBe("1");
    expect(submit.json).toEqual({ error: "the request store (pglite) is starting; retry shortly" });
    const prefer = await postJsonTo(`${server.url}/v2/models/sentiment/infer`, { inputs: [{ name: "text", datatype: "BYTES", shape: [1], data: ["great"] }] }, { prefer: "respond-async", "x-user-id": "early" });
    expect(prefer.status, prefer.body).toBe(503);
    const get = await getFrom(`${server.url}/api/v1/requests/00000000-0000-4000-8000-000000000000`);
    expect(get.status).toBe(503);
    expect(get.headers["retry-after"]).toBe("1");
    expect((await getFrom(`${server.url}/api/v1/users/early/usage`)).status).toBe(503);
  });

  it("once the store is ready: logged with its duration, and the async API works", async () => {
    openStore();
    await server.asyncStoreReady;
    const ready = lines.find((l) => l.msg === "embedded PGlite request store ready");
    expect(ready).toMatchObject({ level: 30, component: "async", store: "pglite", ms: expect.any(Number) });
    const submit = await postJsonTo(`${server.url}/api/v1/inference`, { prompt: "great", model: "sentiment" }, { "x-user-id": "later" });
    expect(submit.status, submit.body).toBe(202);
    expect((await waitForFinal(server.url, submit.json.request_id)).status).toBe("succeeded");
    const usage = await getFrom(`${server.url}/api/v1/users/later/usage`);
    expect(usage.status).toBe(200);
    expect(usage.json.requests).toBe(1);
  });
});
