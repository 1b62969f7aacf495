/**
 * The inference logger against a real local HTTP sink: events arrive in
 * binary mode with KServe's types and attributes, request before response for
 * every request; a sink that is down, slow, or failing costs the inference
 * nothing, and every event ends counted as sent, failed or dropped.
 */
import { CloudEvent, HTTP } from "cloudevents";
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { Metrics } from "../metrics.js";
import { removeRepository, writeRepository } from "../testing/fixtures.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";
import { LOGGER_REQUEST_TYPE, LOGGER_RESPONSE_TYPE, REQUEST_EVENT_TYPE } from "./constants.js";
import { InferenceLogger, type InferenceLoggerOptions, type LoggerStats } from "./logger.js";
import { closedUrl, post, simpleRequest, Sink } from "./testing.js";

let repo: string;
let server: RunningServer;
const cleanup: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  repo = await writeRepository({ "simple/1/model.onnx": buildSimple() });
  server = await startTestServer(repo);
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

/** A pino logger whose lines a test can read. */
function capturedLogger(): { logger: Logger; lines: () => Record<string, any>[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines: () => lines.map((l) => JSON.parse(l) as Record<string, any>) };
}

async function sinkFor(): Promise<Sink> {
  const sink = await Sink.start();
  cleanup.push(() => sink.close());
  return sink;
}

/** A logger on the shared server's data plane; detached (closed) after the test. */
function attach(options: Partial<InferenceLoggerOptions> & { url: string }) {
  const metrics = new Metrics();
  const captured = capturedLogger();
  const logger = new InferenceLogger({ mode: "all", queueSize: 100, metrics, logger: captured.logger, timeoutMs: 2_000, ...options });
  let enabled = true;
  // The data plane has no removeListener: a closed logger ignores further inferences by being switched off here.
  server.dataPlane.addListener((e) => enabled && logger.listener(e));
  cleanup.push(async () => {
    enabled = false;
    await logger.close(0);
  });
  return { logger, metrics, lines: captured.lines };
}

const infer = (id: string, a = 1, b = 1) => postJson(`${server.url}/v2/models/simple/infer`, simpleRequest(a, b), { "x-request-id": id });

async function counted(metrics: Metrics): Promise<Record<string, number>> {
  const { values } = await metrics.loggerEvents.get();
  return Object.fromEntries(values.map((v) => [v.labels.outcome, v.value]));
}

const total = (s: LoggerStats) => s.sent + s.failed + s.dropped + s.queued + s.inFlight;

describe("inference logger: delivery", () => {
  it("sends request then response as binary-mode CloudEvents with KServe's attributes", async () => {
    const sink = await sinkFor();
    const { logger, metrics } = attach({ url: sink.url, serviceName: "sentiment-svc", namespace: "models" });
    expect((await infer("log-1", 4, 1)).status).toBe(200);
    await sink.waitFor(2);
    const [request, response] = sink.received;
    for (const r of [request!, response!]) {
      // Binary mode: the attributes are ce-* headers and the body is the data.
      expect(r.headers["ce-specversion"]).toBe("1.0");
      expect(r.headers["content-type"]).toMatch(/^application\/json/);
      expect(r.event.id).toBe("log-1");
      expect(r.event.source).toBe("io.kserve.inference.simple");
      expect(r.event.inferenceservicename).toBe("sentiment-svc");
      expect(r.event.namespace).toBe("models");
      expect(r.event.component).toBe("predictor");
      expect(r.event.endpoint).toBe("");
      expect(r.event.model).toBe("simple");
      expect(r.event.modelversion).toBe("1");
      expect(Date.now() - Date.parse(r.event.time!)).toBeLessThan(60_000);
    }
    expect(request!.event.type).toBe(LOGGER_REQUEST_TYPE);
    expect(request!.event.data).toEqual({ inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array(16).fill(4) },
      { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: Array(16).fill(1) },
    ] });
    expect(response!.event.type).toBe(LOGGER_RESPONSE_TYPE);
    expect(response!.event.data).toMatchObject({ model_name: "simple", model_version: "1", outputs: [{ name: "OUTPUT0", data: Array(16).fill(5) }, { name: "OUTPUT1", data: Array(16).fill(3) }] });
    await logger.flush(5_000);
    expect(await counted(metrics)).toEqual({ sent: 2 });
  });

  it("keeps request before response for every request under concurrency, with a sink of varying speed", async () => {
    const sink = await sinkFor();
    sink.behaviour = (_req, res) => setTimeout(() => res.writeHead(200).end(), Math.random() * 15);
    const { logger } = attach({ url: sink.url, concurrency: 4 });
    const ids = Array.from({ length: 24 }, (_, i) => `order-${i}`);
    const answers = await Promise.all(ids.map((id, i) => infer(id, i, 1)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    await sink.waitFor(ids.length * 2);
    for (const id of ids) {
      const types = sink.received.filter((r) => r.event.id === id).map((r) => r.event.type);
      expect(types).toEqual([LOGGER_REQUEST_TYPE, LOGGER_RESPONSE_TYPE]);
    }
    // The sink records an event as it answers; the logger counts it once the answer has arrived.
    await logger.flush(5_000);
    expect(logger.stats()).toMatchObject({ sent: ids.length * 2, failed: 0, dropped: 0 });
  });

  it("mode request and mode response send only their half", async () => {
    for (const mode of ["request", "response"] as const) {
      const sink = await sinkFor();
      const { logger } = attach({ url: sink.url, mode });
      await infer(`mode-${mode}`);
      await sink.waitFor(1);
      await logger.flush(5_000);
      expect(sink.received.map((r) => r.event.type)).toEqual([mode === "request" ? LOGGER_REQUEST_TYPE : LOGGER_RESPONSE_TYPE]);
    }
  });

  it("logs failed inferences too: the response event carries the error", async () => {
    const sink = await sinkFor();
    attach({ url: sink.url, mode: "response" });
    const bad = await postJson(`${server.url}/v2/models/simple/infer`, { inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array(16).fill(1) }] }, { "x-request-id": "bad-1" });
    expect(bad.status).toBe(400);
    await sink.waitFor(1);
    expect(sink.received[0]!.event.id).toBe("bad-1");
    expect(sink.received[0]!.event.data).toEqual({ error: bad.body.error });
  });

  it("logs inferences that arrived as CloudEvents", async () => {
    const sink = await sinkFor();
    attach({ url: sink.url });
    const event = new CloudEvent({ type: REQUEST_EVENT_TYPE, source: "/tests", datacontenttype: "application/json", data: simpleRequest(2, 2, "v2-id") });
    const reply = await post(`${server.url}/v2/models/simple/infer`, HTTP.binary(event), { "x-request-id": "ce-log-1" });
    expect(reply.status).toBe(200);
    await sink.waitFor(2);
    expect(sink.received.map((r) => [r.event.id, r.event.type])).toEqual([["ce-log-1", LOGGER_REQUEST_TYPE], ["ce-log-1", LOGGER_RESPONSE_TYPE]]);
    expect(sink.received[0]!.event.data.id).toBe("v2-id");
  });
});

describe("inference logger: a sink that is slow, down or failing costs the inference nothing", () => {
  it("a sink that never answers: inferences complete while it is blocked; the overflow is dropped and the rest fail after the timeout", async () => {
    const sink = await sinkFor();
    const held: (() => void)[] = [];
    sink.behaviour = (_req, res) => held.push(() => res.writeHead(200).end());
    const { logger, metrics, lines } = attach({ url: sink.url, queueSize: 4, concurrency: 1, maxAttempts: 2, timeoutMs: 300, baseDelayMs: 10, warnIntervalMs: 60_000 });
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => infer(`blocked-${i}`)));
    // Every inference has been answered while the sink has answered nothing.
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(sink.received).toHaveLength(0);
    const now = logger.stats();
    expect(now.sent).toBe(0);
    expect(now.dropped).toBeGreaterThan(0);
    expect(total(now)).toBe(20);
    expect(await logger.flush(10_000)).toBe(true);
    const after = logger.stats();
    expect(after).toMatchObject({ sent: 0, queued: 0, inFlight: 0 });
    expect(after.failed + after.dropped).toBe(20);
    expect(await counted(metrics)).toEqual({ failed: after.failed, dropped: after.dropped });
    const warnings = lines().filter((l) => l.level === 40);
    expect(warnings.some((l) => l.msg.includes("dropped") && l.reason === "queue full")).toBe(true);
    expect(warnings.some((l) => l.msg.includes("not delivered") && /no answer within 300 ms/.test(l.error))).toBe(true);
    for (const release of held) release();
  });

  it("a sink that is down: every inference succeeds, every event is counted failed (or dropped), and logged", async () => {
    const { logger, metrics, lines } = attach({ url: await closedUrl(), queueSize: 1000, maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 });
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => infer(`down-${i}`)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(await logger.flush(10_000)).toBe(true);
    expect(logger.stats()).toMatchObject({ sent: 0, failed: 10, dropped: 0 });
    expect(await counted(metrics)).toEqual({ failed: 10 });
    const warning = lines().find((l) => l.msg === "inference logger event not delivered");
    expect(warning).toMatchObject({ attempts: 3, error: expect.stringContaining("ECONNREFUSED"), sink: expect.stringContaining("127.0.0.1") });
    // Rate-limited: the first failure is logged at once, the rest are counted into the next warning.
    expect(lines().filter((l) => l.msg === "inference logger event not delivered")).toHaveLength(1);
  });

  it("retries 5xx and 429 with backoff until the sink recovers; 4xx is not retried", async () => {
    const sink = await sinkFor();
    sink.behaviour = (_req, res, attempt) => res.writeHead(attempt === 1 ? 503 : attempt === 2 ? 429 : 200).end();
    const { logger } = attach({ url: sink.url, mode: "request", baseDelayMs: 5 });
    await infer("retry-1");
    await sink.waitFor(1);
    expect(sink.attempts).toBe(3);
    await logger.flush(5_000);
    expect(logger.stats()).toMatchObject({ sent: 1, failed: 0 });

    const rejecting = await sinkFor();
    rejecting.behaviour = (_req, res) => res.writeHead(400).end();
    const second = attach({ url: rejecting.url, mode: "request", baseDelayMs: 5 });
    await infer("reject-1");
    expect(await second.logger.flush(5_000)).toBe(true);
    expect(rejecting.attempts).toBe(1);
    expect(second.logger.stats()).toMatchObject({ sent: 0, failed: 1 });
  });

  it("the listener only enqueues: nothing is encoded or sent before the inference has returned", async () => {
    const sink = await sinkFor();
    const { logger } = attach({ url: sink.url });
    let during: LoggerStats | undefined;
    server.dataPlane.addListener(() => {
      during ??= logger.stats();
    });
    await infer("sync-1");
    // Listeners run in order: ours after the logger's, inside the inference.
    expect(during).toMatchObject({ queued: 2, inFlight: 0, sent: 0 });
    await sink.waitFor(2);
  });

  it("flush(timeout) gives up at the deadline; close() then drops what is queued and aborts what is in flight, counted", async () => {
    const sink = await sinkFor();
    sink.behaviour = () => undefined; // never answers
    const { logger, metrics, lines } = attach({ url: sink.url, concurrency: 1, timeoutMs: 60_000 });
    await Promise.all([infer("stuck-1"), infer("stuck-2"), infer("stuck-3")]);
    const started = performance.now();
    expect(await logger.flush(150)).toBe(false);
    expect(performance.now() - started).toBeLessThan(5_000);
    const stats = await logger.close(100);
    expect(stats).toMatchObject({ sent: 0, queued: 0, inFlight: 0 });
    // The first inference's request event was in flight (failed); its response event never started (failed); the other two were queued (dropped).
    expect(stats).toMatchObject({ failed: 2, dropped: 4 });
    expect(await counted(metrics)).toEqual({ failed: 2, dropped: 4 });
    expect(lines().some((l) => l.msg.includes("stopped") && l.dropped === 4 && l.failed === 2)).toBe(true);
    // After close, new inferences are dropped and counted, not queued.
    await infer("late-1");
    expect(logger.stats().dropped).toBe(6);
  });
});

describe("inference logger: wired into the server", () => {
  it("LOGGER_URL turns it on; K_SINK (a SinkBinding) too; the server's metrics count it; close() flushes", async () => {
    for (const key of ["loggerUrl", "loggerSink"] as const) {
      const sink = await sinkFor();
      const wired = await startTestServer(repo, { [key]: sink.url, serviceName: "svc", namespace: "ns", loggerMode: "all" });
      try {
        const answer = await postJson(`${wired.url}/v2/models/simple/infer`, simpleRequest(1, 1), { "x-request-id": `wired-${key}` });
        expect(answer.status).toBe(200);
      } finally {
        await wired.close();
      }
      // close() flushed the queue before returning.
      expect(sink.received.map((r) => [r.event.id, r.event.type, r.event.inferenceservicename, r.event.namespace])).toEqual([
        [`wired-${key}`, LOGGER_REQUEST_TYPE, "svc", "ns"],
        [`wired-${key}`, LOGGER_RESPONSE_TYPE, "svc", "ns"],
      ]);
      expect(await wired.metrics.registry.metrics()).toMatch(/inference_server_logger_events_total\{outcome="sent"\} 2/);
    }
  });

  it("drain (SIGTERM) flushes the queue before the models unload, within the drain timeout", async () => {
    const slow = await sinkFor();
    slow.behaviour = (_req, res) => setTimeout(() => res.writeHead(202).end(), 50);
    const wired = await startTestServer(repo, { loggerUrl: slow.url, drainDelayMs: 0, drainTimeoutMs: 10_000 });
    await Promise.all(Array.from({ length: 6 }, (_, i) => postJson(`${wired.url}/v2/models/simple/infer`, simpleRequest(i, 1), { "x-request-id": `drain-${i}` })));
    expect(await wired.drain()).toBe(true);
    // Everything queued at SIGTERM reached the sink before drain() returned.
    expect(slow.received).toHaveLength(12);
    expect(await wired.metrics.registry.metrics()).toMatch(/inference_server_logger_events_total\{outcome="sent"\} 12/);

    const stuck = await sinkFor();
    stuck.behaviour = () => undefined; // never answers
    const bounded = await startTestServer(repo, { loggerUrl: stuck.url, drainDelayMs: 0, drainTimeoutMs: 500 });
    await Promise.all(Array.from({ length: 3 }, (_, i) => postJson(`${bounded.url}/v2/models/simple/infer`, simpleRequest(i, 1))));
    const started = performance.now();
    await bounded.drain();
    // A sink that never answers cannot hold the pod past its drain timeout; what was not delivered is counted.
    expect(performance.now() - started).toBeLessThan(3_000);
    const text = await bounded.metrics.registry.metrics();
    const outcome = (name: string) => Number(new RegExp(`inference_server_logger_events_total\\{outcome="${name}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    expect(outcome("sent")).toBe(0);
    expect(outcome("failed") + outcome("dropped")).toBe(6);
  });

  it("without a sink configured there is no logger", async () => {
    const metrics = new Metrics();
    const quiet = capturedLogger();
    expect(InferenceLogger.fromConfig({ loggerUrl: undefined, loggerSink: undefined } as never, { logger: quiet.logger, metrics })).toBeUndefined();
  });
});
