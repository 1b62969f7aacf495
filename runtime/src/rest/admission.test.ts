/**
 * Admission before the body: a request is refused (404, 503, 413) from its URL and
 * headers while the client is still sending, requests whose bodies are still arriving
 * count as in flight, and the budget of buffered request bytes sheds what it cannot
 * hold. Real HTTP on loopback (raw sockets where the client must stall mid-body),
 * real ONNX Runtime models.
 */
import { connect, type Socket } from "node:net";
import { request as httpRequest } from "node:http";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { largestRequestBytes } from "../admission/limits.js";
import { buildSimple } from "../../../models/build/simple.js";
import { healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";

interface Answer {
  status: number;
  headers: Record<string, string>;
  json: any;
}

/** A raw HTTP/1.1 connection: write anything, read answers one at a time, see when the server closes it. */
class RawClient {
  private buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly ended: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on("error", () => undefined);
    this.ended = new Promise((resolve) => socket.once("close", () => {
      this.closed = true;
      this.wake();
      resolve();
    }));
  }

  static async open(url: string): Promise<RawClient> {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    return new RawClient(socket);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  write(data: string | Uint8Array): void {
    this.socket.write(data);
  }

  /** The head of a POST, with `length` as its Content-Length (or chunked when undefined). */
  head(path: string, length: number | undefined, headers: Record<string, string> = {}): void {
    const lines = [`POST ${path} HTTP/1.1`, "Host: localhost", "Content-Type: application/json"];
    lines.push(length === undefined ? "Transfer-Encoding: chunked" : `Content-Length: ${length}`);
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    this.write(`${lines.join("\r\n")}\r\n\r\n`);
  }

  /** The next complete answer (Content-Length framed, as this server sends them). */
  async answer(): Promise<Answer> {
    for (;;) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end >= 0) {
        const [statusLine, ...lines] = this.buffer.subarray(0, end).toString("latin1").split("\r\n");
        const headers: Record<string, string> = {};
        for (const l of lines) {
          const i = l.indexOf(":");
          headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        const length = Number(headers["content-length"] ?? 0);
        if (this.buffer.byteLength >= end + 4 + length) {
          const body = this.buffer.subarray(end + 4, end + 4 + length).toString("utf8");
          this.buffer = this.buffer.subarray(end + 4 + length);
          return { status: Number(statusLine!.split(" ")[1]), headers, json: body ? JSON.parse(body) : undefined };
        }
      }
      if (this.closed) throw new Error(`connection closed before a complete answer (${this.buffer.byteLength} bytes: ${this.buffer.toString("latin1").slice(0, 200)})`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Waits for a condition the server reaches on its own (no assertion on how long it takes). */
async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function metric(server: RunningServer, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = pattern.exec(text);
  return m ? Number(m[1]) : 0;
}
const buffered = (server: RunningServer) => metric(server, /^inference_server_request_bytes_buffered (\d+)$/m);

const simpleRequest = () => ({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(2) })) });
/** A valid `simple` request padded with whitespace to exactly `bytes`. */
function simpleBody(bytes: number): Buffer {
  const json = JSON.stringify(simpleRequest());
  if (json.length > bytes) throw new Error(`a simple request takes ${json.length} bytes`);
  return Buffer.from(json + " ".repeat(bytes - json.length));
}

const BIG = 8 * 1024 * 1024;
let repo: string;

beforeAll(async () => {
  repo = await writeRepository({
    ...healthyLayout(),
    "broken/1/model.onnx": "this is not an ONNX model",
    "sentiment/1/model.onnx": await readFile(join(import.meta.dirname, "../../../models/sentiment/1/model.onnx")),
  });
});
afterAll(async () => {
  await removeRepository(repo);
});

describe("admission before the body", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer(repo, { maxInflightPerModel: 2, strictReadiness: false });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Sends the head and 1 KiB of an 8 MiB body, then stalls: the answer must come without the rest. */
  async function stalled(path: string, headers: Record<string, string> = {}): Promise<{ answer: Answer; client: RawClient }> {
    const client = await RawClient.open(server.url);
    client.head(path, BIG, headers);
    client.write(Buffer.alloc(1024, 0x20));
    const answer = await client.answer();
    await client.ended; // the server closes the connection rather than read 8 MiB
    return { answer, client };
  }

  it("answers 404 for an unknown model or version while the client is still sending, and closes the connection", async () => {
    const { answer } = await stalled("/v2/models/ghost/infer");
    expect(answer.status).toBe(404);
    expect(answer.headers.connection).toBe("close");
    expect(answer.headers["content-type"]).toMatch(/^application\/json/);
    expect(answer.json).toEqual({ error: "Request for unknown model: 'ghost' is not found" });
    const version = await stalled("/v2/models/simple/versions/7/infer");
    expect(version.answer.status).toBe(404);
    expect(version.answer.json.error).toBe("Request for unknown model: 'simple' version 7 is not found (versions: 1)");
  });

  it("answers 503 with Retry-After for a model that is not ready, before its body", async () => {
    const { answer } = await stalled("/v2/models/broken/infer");
    expect(answer.status).toBe(503);
    expect(answer.headers["retry-after"]).toBe("30");
    expect(answer.json.error).toMatch(/^model 'broken' version 1 is not ready: UNAVAILABLE \(failed to load /);
  });

  it("answers 413 from the model's signature at once, naming the model and its bound", async () => {
    const bound = largestRequestBytes([{ name: "INPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "INPUT1", datatype: "INT32", shape: [-1, 16] }], 4)!;
    const { answer } = await stalled("/v2/models/batched/infer");
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe("close");
    expect(answer.json).toEqual({ error: `request body of ${BIG} bytes exceeds the largest request model 'batched' can take (${bound} bytes)` });
    // Binary requests too.
    const binary = await stalled("/v2/models/batched/infer", { "Inference-Header-Content-Length": "0" });
    expect(binary.answer.status).toBe(413);
    // A legal request, however padded, below the bound is served.
    const padded = JSON.stringify({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [4, 16], datatype: "INT32", data: Array(64).fill(-2147483648) })) }, null, 10);
    expect(Buffer.byteLength(padded)).toBeLessThan(bound);
    expect((await postJson(`${server.url}/v2/models/batched/infer`, padded)).status).toBe(200);
    // Models whose signature has no bound (simple: no max_batch_size) keep the configured limit.
    expect((await postJson(`${server.url}/v2/models/simple/infer`, JSON.stringify(simpleRequest()) + " ".repeat(bound))).status).toBe(200);
  });

  it("answers V1 and CloudEvents requests for unknown models with 404 before their body", async () => {
    const v1 = await stalled("/v1/models/ghost:predict");
    expect(v1.answer.status).toBe(404);
    expect(v1.answer.json.error).toBe("Request for unknown model: 'ghost' is not found");
    const ce = await stalled("/v2/models/ghost/infer", { "ce-specversion": "1.0", "ce-id": "1", "ce-source": "/test", "ce-type": "org.kserve.inference.request" });
    expect(ce.answer.status).toBe(404);
    expect(ce.answer.json.error).toBe("Request for unknown model: 'ghost' is not found");
  });

  it("counts requests whose bodies are still arriving against the per-model in-flight limit, and sheds the next with 503", async () => {
    const body = simpleBody(2000);
    const senders = await Promise.all([RawClient.open(server.url), RawClient.open(server.url)]);
    for (const s of senders) {
      s.head("/v2/models/simple/infer", body.byteLength);
      s.write(body.subarray(0, 10));
    }
    await until("both requests are admitted", () => server.dataPlane.registry.find("simple").inflight === 2);
    for (const [path, body] of [["/v2/models/simple/infer", simpleRequest()], ["/v1/models/simple:predict", { instances: [] }]] as const) {
      const shed = await postJson(`${server.url}${path}`, body);
      expect(shed.status).toBe(503);
      expect(shed.headers.get("retry-after")).toBe("1");
      expect(shed.body).toEqual({ error: "model 'simple' has 2 requests in progress, its limit; retry shortly" });
    }
    // Another model is not affected.
    expect((await postJson(`${server.url}/v2/models/batched/infer`, simpleRequest())).status).toBe(200);
    for (const s of senders) s.write(body.subarray(10));
    const answers = await Promise.all(senders.map((s) => s.answer()));
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(answers[0]!.json.outputs[0]).toMatchObject({ name: "OUTPUT0", data: Array(16).fill(4) });
    for (const s of senders) s.destroy();
    await until("both are released", () => server.dataPlane.registry.find("simple").inflight === 0);
    expect(await metric(server, /^inference_server_admission_refusals_total\{reason="inflight_limit"\} (\d+)$/m)).toBeGreaterThanOrEqual(2);
  });

  it("keeps a keep-alive connection usable after an error answered to a small body", async () => {
    const client = await RawClient.open(server.url);
    try {
      const small = Buffer.from(JSON.stringify(simpleRequest()));
      client.head("/v2/models/ghost/infer", small.byteLength);
      client.write(small);
      const first = await client.answer();
      expect(first.status).toBe(404);
      expect(first.headers.connection).not.toBe("close");
      client.head("/v2/models/broken/infer", small.byteLength);
      client.write(small);
      expect((await client.answer()).status).toBe(503);
      client.head("/v2/models/simple/infer", small.byteLength);
      client.write(small);
      const ok = await client.answer();
      expect(ok.status).toBe(200);
      expect(client.closed).toBe(false);
    } finally {
      client.destroy();
    }
  });

  it("keeps serving afterwards", async () => {
    expect((await postJson(`${server.url}/v2/models/simple/infer`, simpleRequest())).status).toBe(200);
    expect((await fetch(`${server.url}/v2/health/live`)).status).toBe(200);
  });
});

describe("the budget of buffered request bytes", () => {
  it("with a 1-byte budget, sheds every request with a body (503, Retry-After) before reading it, and nothing else", async () => {
    const server = await startTestServer(repo, { maxBufferedRequestBytes: 1, strictReadiness: false });
    try {
      const shed = await postJson(`${server.url}/v2/models/simple/infer`, simpleRequest());
      expect(shed.status).toBe(503);
      expect(shed.headers.get("retry-after")).toBe("1");
      expect(shed.body.error).toMatch(/^the server is holding 0 bytes of request bodies, and a request body of \d+ bytes does not fit its budget of 1 bytes \(MAX_BUFFERED_REQUEST_BYTES\); retry shortly$/);
      expect((await postJson(`${server.url}/v1/models/sentiment:predict`, { instances: ["good"] })).status).toBe(503);
      expect((await postJson(`${server.url}/v2/repository/index`, {})).status).toBe(503);
      // Still sending a large body: answered at once, connection closed.
      const client = await RawClient.open(server.url);
      client.head("/v2/models/simple/infer", BIG);
      client.write(Buffer.alloc(100, 0x20));
      const answer = await client.answer();
      expect(answer.status).toBe(503);
      expect(answer.headers.connection).toBe("close");
      await client.ended;
      // A chunked body is refused as its first bytes arrive.
      const chunked = await RawClient.open(server.url);
      chunked.head("/v2/models/simple/infer", undefined);
      chunked.write("10\r\n{\"inputs\": [   \r\n");
      const refused = await chunked.answer();
      expect(refused.status).toBe(503);
      expect(refused.headers.connection).toBe("close");
      expect(refused.json.error).toMatch(/chunked request body/);
      await chunked.ended;
      // Admission still comes first; requests without a body pass.
      expect((await postJson(`${server.url}/v2/models/ghost/infer`, simpleRequest())).status).toBe(404);
      expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(200);
      expect((await fetch(`${server.url}/v2/models/simple`)).status).toBe(200);
      expect(await metric(server, /^inference_server_admission_refusals_total\{reason="memory_budget"\} (\d+)$/m)).toBeGreaterThanOrEqual(5);
      expect(await metric(server, /^inference_server_request_bytes_budget (\d+)$/m)).toBe(1);
      expect(await buffered(server)).toBe(0);
    } finally {
      await server.close();
    }
  });

  it("holds a body's bytes while it arrives, refuses what does not fit beside it, and gives them back when it finishes or the client goes", async () => {
    const server = await startTestServer(repo, { maxBufferedRequestBytes: 3000 });
    try {
      const body = simpleBody(2000);
      const first = await RawClient.open(server.url);
      first.head("/v2/models/simple/infer", body.byteLength);
      first.write(body.subarray(0, 10));
      await until("the first body is reserved", async () => (await buffered(server)) === 2000);
      const refused = await postJson(`${server.url}/v2/models/simple/infer`, simpleBody(1500).toString());
      expect(refused.status).toBe(503);
      expect(refused.body.error).toMatch(/^the server is holding 2000 bytes of request bodies, and a request body of 1500 bytes does not fit/);
      // A smaller one fits beside it.
      expect((await postJson(`${server.url}/v2/models/simple/infer`, simpleBody(900).toString())).status).toBe(200);
      first.write(body.subarray(10));
      expect((await first.answer()).status).toBe(200);
      first.destroy();
      await until("the first body is given back", async () => (await buffered(server)) === 0);
      expect((await postJson(`${server.url}/v2/models/simple/infer`, simpleBody(1500).toString())).status).toBe(200);

      // A client that goes away mid-body gives its reservation back.
      const quitter = await RawClient.open(server.url);
      quitter.head("/v2/models/simple/infer", body.byteLength);
      quitter.write(body.subarray(0, 10));
      await until("the quitter's body is reserved", async () => (await buffered(server)) === 2000);
      quitter.destroy();
      await until("the quitter's body is given back", async () => (await buffered(server)) === 0);

      // Compressed bodies count what they inflate to: a 2 KiB body inflating past the budget is refused.
      const { gzipSync } = await import("node:zlib");
      const bomb = gzipSync(simpleBody(10_000));
      const inflated = await fetch(`${server.url}/v2/models/simple/infer`, { method: "POST", body: bomb, headers: { "content-encoding": "gzip" } });
      expect(inflated.status).toBe(503);
      expect(((await inflated.json()) as { error: string }).error).toMatch(/decompressed request body/);
      expect(bomb.byteLength).toBeLessThan(1000);
      expect(await buffered(server)).toBe(0);
    } finally {
      await server.close();
    }
  });
});

describe("answers Node's HTTP server gives itself", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer(repo, { requestTimeoutMs: 500, maxBufferedRequestBytes: 1_000_000 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("a request whose headers never finish gets a JSON 408, counted in the metrics", async () => {
    const client = await RawClient.open(server.url);
    client.write("POST /v2/models/simple/infer HTTP/1.1\r\nHost: localhost\r\n");
    const answer = await client.answer();
    expect(answer.status).toBe(408);
    expect(answer.headers.connection).toBe("close");
    expect(answer.json).toEqual({ error: "the request did not arrive within 500 ms (REQUEST_TIMEOUT_MS); the connection is closed" });
    await client.ended;
    expect(await metric(server, /^inference_server_client_errors_total\{status_code="408",code="ERR_HTTP_REQUEST_TIMEOUT"\} (\d+)$/m)).toBe(1);
  });

  it("an unparsable request gets a JSON 400, counted in the metrics", async () => {
    const client = await RawClient.open(server.url);
    client.write("THIS IS NOT HTTP\r\n\r\n");
    const answer = await client.answer();
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatch(/^the request could not be parsed as HTTP\/1.1 \(HPE_/);
    await client.ended;
    expect(await metric(server, /^inference_server_client_errors_total\{status_code="400",code="HPE_[A-Z_]+"\} (\d+)$/m)).toBe(1);
  });

  it("a body that never finishes is answered, and its reservation given back once the connection is closed", async () => {
    const client = await RawClient.open(server.url);
    const body = simpleBody(2000);
    client.head("/v2/models/simple/infer", body.byteLength);
    client.write(body.subarray(0, 10));
    await until("the body is reserved", async () => (await buffered(server)) === 2000);
    const answer = await client.answer();
    // The application's request timeout (504) or Node's (408), whichever fires first.
    expect([408, 504]).toContain(answer.status);
    expect(answer.json.error).toMatch(/within 500 ms/);
    await until("the reservation is given back", async () => (await buffered(server)) === 0);
    client.destroy();
    expect((await postJson(`${server.url}/v2/models/simple/infer`, simpleRequest())).status).toBe(200);
  });

  it("a chunked upload is answered by node:http clients too (not only raw sockets)", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${server.url}/v2/models/ghost/infer`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on("error", reject);
      req.write("{\"inputs\": [");
    });
    expect(status).toBe(404);
  });
});

describe("a full dynamic-batch queue", () => {
  it("sheds the next request with 503 and Retry-After before reading its body", async () => {
    // A one-row request waits in the queue for a second row (its preferred batch size), at most 4 s:
    // ample for one more request on loopback to be refused meanwhile, on the slowest machine.
    const dir = await writeRepository({
      "dyn/1/model.onnx": buildSimple(),
      "dyn/model-settings.json": JSON.stringify({ max_batch_size: 4, dynamic_batching: { max_queue_size: 1, max_queue_delay_microseconds: 4_000_000, preferred_batch_size: [2] } }),
    });
    const server = await startTestServer(dir);
    try {
      const first = postJson(`${server.url}/v2/models/dyn/infer`, simpleRequest());
      const entry = server.dataPlane.registry.find("dyn");
      await until("the first request waits in the batch queue", () => entry.batcher?.queued === 1);
      const client = await RawClient.open(server.url);
      client.head("/v2/models/dyn/infer", BIG);
      client.write(Buffer.alloc(100, 0x20));
      const shed = await client.answer();
      expect(shed.status).toBe(503);
      expect(shed.headers["retry-after"]).toBe("1");
      expect(shed.json).toEqual({ error: "model 'dyn' version 1: the batch queue is full (1 requests waiting); retry shortly" });
      await client.ended;
      // The waiting request runs alone once its delay is over.
      expect((await first).status).toBe(200);
      expect(await metric(server, /^inference_server_admission_refusals_total\{reason="batch_queue_full"\} (\d+)$/m)).toBe(1);
    } finally {
      await server.close();
      await removeRepository(dir);
    }
  });
});
