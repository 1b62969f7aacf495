/**
 * Test helpers for CloudEvents: a client that sends SDK-built messages with
 * fetch and parses replies with the SDK, and a real node:http sink that
 * records what the inference logger delivers (and can be told to answer
 * slowly, with errors, or never).
 */
import { CloudEvent, HTTP } from "cloudevents";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json: any;
}

/** fetch, with the body read as text and, when it is JSON, parsed. */
export async function request(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, init);
  const body = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), body, json };
}

/** POSTs an SDK message (HTTP.binary / HTTP.structured), with extra or overriding headers. */
export function post(url: string, message: { headers: Record<string, unknown>; body: unknown }, extra: Record<string, string> = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(message.headers)) if (v !== undefined) headers[k] = String(v);
  return request(url, { method: "POST", headers: { ...headers, ...extra }, body: message.body as string });
}

/** The reply as a CloudEvent, parsed by the SDK (binary or structured, as the reply says). */
export function replyEvent(reply: Reply): CloudEvent<any> {
  return HTTP.toEvent({ headers: reply.headers, body: reply.body }) as CloudEvent<any>;
}

export interface ReceivedRequest {
  headers: Record<string, string>;
  body: string;
  event: CloudEvent<any>;
  at: number;
}

export type SinkBehaviour = (req: IncomingMessage, res: ServerResponse, attempt: number) => void;

/** A real HTTP sink on 127.0.0.1. `behaviour` decides each answer (default 202 at once). */
export class Sink {
  readonly received: ReceivedRequest[] = [];
  /** Requests seen, answered or not (attempts included). */
  attempts = 0;
  behaviour: SinkBehaviour = (_req, res) => {
    res.writeHead(202).end();
  };
  private readonly server: Server;
  private readonly waiters: { count: number; resolve: () => void }[] = [];
  url = "";

  private constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        this.attempts++;
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
        const body = Buffer.concat(chunks).toString("utf8");
        this.behaviour(req, res, this.attempts);
        // Recorded once answered with a 2xx: what a real sink would have accepted.
        res.once("finish", () => {
          if (res.statusCode >= 200 && res.statusCode < 300) {
            this.received.push({ headers, body, event: HTTP.toEvent({ headers, body }) as CloudEvent<any>, at: performance.now() });
            for (const w of [...this.waiters]) {
              if (this.received.length >= w.count) {
                this.waiters.splice(this.waiters.indexOf(w), 1);
                w.resolve();
              }
            }
          }
        });
      });
    });
  }

  static async start(): Promise<Sink> {
    const sink = new Sink();
    await new Promise<void>((resolve) => sink.server.listen(0, "127.0.0.1", resolve));
    sink.url = `http://127.0.0.1:${(sink.server.address() as AddressInfo).port}/`;
    return sink;
  }

  /** Resolves once `count` events have been accepted; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sink got ${this.received.length} of ${count} events within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ count, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** A URL on which nothing listens (a port bound, then released). */
export async function closedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/`;
}

/** A V2 request for the `simple` model: OUTPUT0 = a + b, OUTPUT1 = a - b. */
export function simpleRequest(a: number, b: number, id?: string) {
  return {
    ...(id === undefined ? {} : { id }),
    inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array(16).fill(a) },
      { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: Array(16).fill(b) },
    ],
  };
}
