/**
 * Helpers for the asynchronous inference end-to-end tests (flow, quota-flow,
 * resilience, api): the test plays the Knative Broker between the runtime's
 * publisher (ASYNC_SINK), its worker (POST /) and its results collector
 * (POST /api/v1/results), forwarding HTTP messages as the Broker does: the
 * CloudEvent's ce-* headers and Content-Type, and the body, unchanged.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { buildSimple } from "../../../models/build/simple.js";
import { writeRepository } from "../testing/fixtures.js";
import { request, type ReceivedRequest, type Reply } from "../cloudevents/testing.js";

export const SENTIMENT_ONNX = join(import.meta.dirname, "../../../models/sentiment/1/model.onnx");
export const SENTIMENT_SETTINGS = join(import.meta.dirname, "../../../models/sentiment/model-settings.json");

/** A temp repository: sentiment (with its tokenizer rule) and simple, plus `extra` files. */
export async function asyncRepository(extra: Record<string, Uint8Array | string> = {}): Promise<string> {
  return writeRepository({
    "sentiment/1/model.onnx": await readFile(SENTIMENT_ONNX),
    "sentiment/model-settings.json": await readFile(SENTIMENT_SETTINGS, "utf8"),
    "simple/1/model.onnx": buildSimple(),
    ...extra,
  });
}

export type HttpResult = Reply;

/** RESULTS_TOKEN of the test servers that use a Broker: the shared secret of the results path. */
export const TEST_RESULTS_TOKEN = "test-results-token-0123456789";
export { request };

export function postJsonTo(url: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return request(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
}

export function getFrom(url: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return request(url, { headers });
}

/** What of an HTTP message the Broker forwards: the CloudEvent's headers (ce-*, Content-Type). */
export function eventHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower.startsWith("ce-") || lower === "content-type") out[lower] = value;
  }
  return out;
}

/**
 * The Broker delivers a published request event to its subscriber, the worker
 * (POST /), saying that it takes a reply event (`Prefer: reply`, as Knative's
 * dispatchers do).
 */
export function deliverToWorker(serverUrl: string, event: ReceivedRequest, extra: Record<string, string> = {}): Promise<HttpResult> {
  return request(`${serverUrl}/`, { method: "POST", headers: { ...eventHeaders(event.headers), prefer: "reply", ...extra }, body: event.body });
}

/** The Broker routes the worker's reply event (from its HTTP response) to the collector. */
export function deliverReply(serverUrl: string, reply: HttpResult | Reply): Promise<HttpResult> {
  return request(`${serverUrl}/api/v1/results`, { method: "POST", headers: eventHeaders(reply.headers), body: reply.body });
}

/**
 * The Broker gives up on a request event and sends it to its dead-letter sink
 * (the collector), with the extensions Knative's dispatcher adds: the last
 * HTTP status and the (base64) body of the last failed answer.
 */
export function deadLetter(serverUrl: string, event: ReceivedRequest, last: { status: number; body: string }): Promise<HttpResult> {
  return request(`${serverUrl}/api/v1/results`, {
    method: "POST",
    headers: {
      ...eventHeaders(event.headers),
      "ce-knativeerrordest": `${serverUrl}/`,
      "ce-knativeerrorcode": String(last.status),
      "ce-knativeerrordata": Buffer.from(last.body, "utf8").toString("base64"),
    },
    body: event.body,
  });
}

/** Values of one Prometheus counter by one label, from GET /metrics. */
export async function counterValues(serverUrl: string, metric: string, label: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${serverUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  const re = new RegExp(`^${metric}\\{[^}]*${label}="([^"]*)"[^}]*\\} (\\S+)$`, "gm");
  for (const m of text.matchAll(re)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Polls GET /api/v1/requests/{id} until the status is final (or the time is up). */
export async function waitForFinal(serverUrl: string, id: string, timeoutMs = 15_000, headers: Record<string, string> = {}): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  const seen: string[] = [];
  for (;;) {
    const res = await getFrom(`${serverUrl}/api/v1/requests/${id}`, headers);
    if (res.status !== 200) throw new Error(`GET request ${id}: ${res.status} ${res.body}`);
    if (seen.at(-1) !== res.json.status) seen.push(res.json.status);
    if (res.json.status === "succeeded" || res.json.status === "failed") return { ...res.json, seen };
    if (Date.now() > deadline) throw new Error(`request ${id} still ${res.json.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A pino logger whose lines are kept, parsed, for assertions on what the server logs. */
export function capturingLogger(level: "info" | "debug" = "info"): { logger: Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line.trim()) lines.push(JSON.parse(line) as Record<string, any>);
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/** Runs `n` calls of fn with at most `limit` in flight. */
export async function pool<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, limit) }, async () => {
      while (next < n) {
        const i = next++;
        results[i] = await fn(i);
      }
    }),
  );
  return results;
}
