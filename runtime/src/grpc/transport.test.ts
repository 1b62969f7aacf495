/**
 * One port, two protocols: in grpc mode the listener sends each connection to
 * gRPC (HTTP/2 preface) or to the HTTP/1.1 server by its first bytes, however
 * they are split; REST keeps working there; in the default http mode h2c is not
 * served; and a connection that never says which protocol it speaks is closed.
 */
import * as grpc from "@grpc/grpc-js";
import { connect, createServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget } from "../testing/grpc-client.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;
let httpOnly: RunningServer;

beforeAll(async () => {
  repo = await writeRepository({ "simple/1/model.onnx": buildSimple() });
  // A short request timeout: connections that say nothing are closed after it (at most 30 s in production).
  [server, httpOnly] = await Promise.all([startTestServer(repo, { protocol: "grpc", requestTimeoutMs: 300 }), startTestServer(repo)]);
});
afterAll(async () => {
  await Promise.all([server?.close(), httpOnly?.close()]);
  await removeRepository(repo);
});

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const restRequest = { inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: range(16) })) };
const grpcRequest = { model_name: "simple", inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", contents: { int_contents: range(16) } })), parameters: { raw_output_contents: { bool_param: false } } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Writes `chunks` on a fresh connection, pausing between them, and resolves with everything received once the
 * server closes it (closedAfterMs is Infinity, and the socket closed here, when the server has not within 5 s).
 */
function exchange(port: number, chunks: string[], pauseMs = 5): Promise<{ received: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, "127.0.0.1");
    const giveUp = setTimeout(() => {
      resolve({ received, closedAfterMs: Infinity });
      socket.destroy();
    }, 5_000);
    socket.on("close", () => clearTimeout(giveUp));
    let received = "";
    socket.on("data", (d) => (received += d));
    socket.on("error", reject);
    socket.on("close", () => resolve({ received, closedAfterMs: performance.now() - started }));
    socket.on("connect", async () => {
      for (const c of chunks) {
        if (socket.destroyed) return;
        socket.write(c);
        await sleep(pauseMs);
      }
    });
  });
}

/** A proxy that counts connections and delivers the first `bytes` bytes of each one at a time, then the rest as it comes. */
async function tricklingProxy(port: number, bytes: number) {
  const sockets = new Set<Socket>();
  let connections = 0;
  const proxy = createServer((downstream) => {
    connections++;
    const upstream = connect(port, "127.0.0.1");
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => (downstream.destroy(), upstream.destroy()));
    }
    upstream.pipe(downstream);
    downstream.once("data", async (first: Buffer) => {
      downstream.pause();
      for (let i = 0; i < Math.min(bytes, first.length); i++) {
        upstream.write(first.subarray(i, i + 1));
        await sleep(2);
      }
      upstream.write(first.subarray(bytes));
      downstream.pipe(upstream);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    target: `127.0.0.1:${(proxy.address() as { port: number }).port}`,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), proxy.close(() => resolve()))),
  };
}

describe("gRPC and REST on one port", () => {
  it("serves REST over HTTP/1.1 beside gRPC, on the same port, the same answers", async () => {
    expect(await getJson(`${server.url}/v2/health/ready`)).toEqual({ status: 200, body: { ready: true } });
    const rest = await postJson(`${server.url}/v2/models/simple/infer`, restRequest);
    expect(rest.status).toBe(200);
    const client = grpcClient(grpcTarget(server.url));
    try {
      const { response } = await client.call("ModelInfer", grpcRequest);
      expect(response.outputs.map((o: { contents: { int_contents: number[] } }) => o.contents.int_contents)).toEqual(rest.body.outputs.map((o: { data: number[] }) => o.data));
      // Interleaved, neither disturbs the other.
      const mixed = await Promise.all([client.call("ServerReady", {}), getJson(`${server.url}/v2/health/ready`), client.call("ModelInfer", grpcRequest), postJson(`${server.url}/v2/models/simple/infer`, restRequest)]);
      expect(mixed[0].response).toEqual({ ready: true });
      expect(mixed[1].status).toBe(200);
      expect(mixed[3].status).toBe(200);
    } finally {
      client.close();
    }
    expect(await (await fetch(`${server.url}/metrics`)).text()).toMatch(/^inference_server_requests_total\{model="simple",version="",protocol="grpc",status_code="200"\} [1-9]/m);
  });

  it("keeps an HTTP/1.1 connection alive across requests", async () => {
    const { received } = await exchange(server.port, [
      "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    expect(received.match(/HTTP\/1\.1 200 OK\r\n/g)).toHaveLength(2);
    expect(received).toContain('{"live":true}');
    expect(received).toContain('{"ready":true}');
  });

  it("routes an HTTP/1.1 request whose first bytes arrive one at a time", async () => {
    const { received } = await exchange(server.port, ["P", "O", "ST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"]);
    expect(received).toMatch(/^HTTP\/1\.1 400 /);
    expect(received).toContain("invalid inference request");
  });

  it("sends methods that merely start like the preface (PROPFIND) to HTTP/1.1", async () => {
    const { received } = await exchange(server.port, ["PR", "OPFIND /v2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
    expect(received).toMatch(/^HTTP\/1\.1 404 /);
    expect(received).toContain('"error":"no route for PROPFIND /v2"');
  });

  it("serves gRPC whose HTTP/2 preface arrives a byte at a time", async () => {
    const proxy = await tricklingProxy(server.port, 30);
    const client = grpcClient(proxy.target);
    try {
      expect((await client.call("ServerLive", {})).response).toEqual({ live: true });
      expect((await client.call("ModelInfer", grpcRequest)).response.outputs[0].contents.int_contents).toEqual(range(16).map((i) => 2 * i));
    } finally {
      client.close();
      await proxy.close();
    }
  });
});

describe("the default http mode", () => {
  it("does not serve h2c: a gRPC client gets UNAVAILABLE and REST keeps answering", async () => {
    const client = grpcClient(grpcTarget(httpOnly.url));
    try {
      const err = await failure(client.call("ServerLive", {}, { deadlineMs: 3_000 }));
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect(err.details).toMatch(/Protocol error/);
    } finally {
      client.close();
    }
    const { received } = await exchange(httpOnly.port, ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]);
    expect(received).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    expect((await getJson(`${httpOnly.url}/v2/health/ready`)).status).toBe(200);
  });
});

describe("connections that never say what they speak", () => {
  it("closes a connection that sends nothing, part of the HTTP/2 preface, or the preface and nothing more, after the request timeout", async () => {
    const client = grpcClient(grpcTarget(server.url));
    try {
      const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
      const emptySettings = "\u0000\u0000\u0000\u0004\u0000\u0000\u0000\u0000\u0000";
      const sniffing = [exchange(server.port, []), exchange(server.port, ["PR"])];
      const http2 = [exchange(server.port, ["PRI * HTTP/2.0\r\n"]), exchange(server.port, [preface]), exchange(server.port, [preface + emptySettings])];
      // Meanwhile everyone else is served.
      for (let i = 0; i < 5; i++) expect(await client.check("")).toBe("SERVING");
      for (const { received, closedAfterMs } of await Promise.all(sniffing)) {
        expect(received).toBe("");
        expect(closedAfterMs).toBeGreaterThanOrEqual(250);
        expect(closedAfterMs).toBeLessThan(2_000);
      }
      // Past "PRI " the connection is HTTP/2's: its SETTINGS and GOAWAY frames, never an HTTP/1.1 answer.
      for (const { received, closedAfterMs } of await Promise.all(http2)) {
        expect(received).not.toMatch(/HTTP\/1\.1/);
        expect(received.charCodeAt(3)).toBe(0x4); // a SETTINGS frame first
        expect(closedAfterMs).toBeGreaterThanOrEqual(250);
        expect(closedAfterMs).toBeLessThan(2_000);
      }
    } finally {
      client.close();
    }
  });

  it("closes an idle gRPC connection the same way; the client reconnects for its next call", async () => {
    const proxy = await tricklingProxy(server.port, 0);
    const client = grpcClient(proxy.target);
    try {
      expect((await client.call("ServerLive", {})).response).toEqual({ live: true });
      expect(proxy.connections()).toBe(1);
      // A call in progress keeps its connection however long it takes (a Watch stream here).
      const watch = client.health.Watch({ service: "" }) as grpc.ClientReadableStream<{ status: string }>;
      const statuses: string[] = [];
      watch.on("data", (m) => statuses.push(m.status));
      watch.on("error", () => undefined);
      await sleep(600);
      expect(statuses).toEqual(["SERVING"]);
      expect((await client.call("ServerLive", {})).response).toEqual({ live: true });
      expect(proxy.connections()).toBe(1);
      watch.cancel();
      // Idle past the timeout: the server closes the connection and the next call opens another.
      await sleep(600);
      expect((await client.call("ServerLive", {})).response).toEqual({ live: true });
      expect(proxy.connections()).toBe(2);
    } finally {
      client.close();
      await proxy.close();
    }
  });

  it("closes an HTTP/1.1 connection whose headers never finish (the HTTP server's own timeout still applies after sniffing)", async () => {
    const { received, closedAfterMs } = await exchange(server.port, ["GET /v2/health/ready HTTP/1.1\r\n", "Host: x\r\n"]);
    expect(received === "" || /^HTTP\/1\.1 408 /.test(received)).toBe(true);
    expect(closedAfterMs).toBeLessThan(2_500);
  });
});
