/**
 * V2 JSON bodies are decoded as they arrive (codecs/v2-decoder.ts fed by rest/body.ts
 * streamBody): the hostile body, 63 MB of `[{},{},...]` under the 64 MiB limit,
 * is answered 400 after the client has sent only its first megabyte, and the server
 * keeps answering the probes and other requests meanwhile; a large valid body arriving
 * slowly is decoded chunk by chunk and served. Nothing here measures time: the client
 * sends part of a body and waits for the answer, which can only come from an early refusal.
 */
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { identityModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;

beforeAll(async () => {
  repo = await writeRepository({ "simple/1/model.onnx": buildSimple(), "identity_fp32/1/model.onnx": identityModel("FLOAT") });
  server = await startTestServer(repo);
});

afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

/** A raw HTTP/1.1 client: sends headers and as much of a body as told, collects whatever comes back. */
function rawClient(port: number): { socket: Socket; answer: Promise<string> } {
  const socket = connect(port, "127.0.0.1");
  const answer = new Promise<string>((resolve) => {
    let received = "";
    socket.on("data", (d) => {
      received += d.toString("latin1");
      const end = received.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: (\d+)/i.exec(received)?.[1];
      if (end >= 0 && length !== undefined && received.length >= end + 4 + Number(length)) resolve(received);
    });
    socket.on("close", () => resolve(received));
    socket.on("error", () => resolve(received));
  });
  return { socket, answer };
}

/** The hostile body's first `bytes` bytes: the JSON head, then `{},` repeated. */
function hostilePrefix(bytes: number): Buffer {
  const head = '{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[';
  return Buffer.concat([Buffer.from(head), Buffer.alloc(bytes - head.length, "{},")]);
}

describe("streaming decode of V2 JSON bodies", () => {
  it("answers the issue's 63 MB hostile body with 400 after its first megabyte, naming the element", async () => {
    const declared = 63 * 1024 * 1024;
    const { socket, answer } = rawClient(server.port);
    socket.write(`POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n`);
    socket.write(hostilePrefix(1024 * 1024));
    // The rest is never sent: only a refusal at the first bad element can answer this request.
    const received = await answer;
    socket.destroy();
    expect(received).toMatch(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(received.slice(received.indexOf("\r\n\r\n") + 4)) as { error: string };
    expect(body.error).toMatch(/input 'INPUT0'.*element 0.*\{/);
    // The connection is not kept for the unread 62 MB.
    expect(received).toMatch(/\r\nconnection: close\r\n/i);
  });

  it("keeps answering probes and other requests while 20 hostile bodies arrive, and gives their memory back", async () => {
    const clients = Array.from({ length: 20 }, () => rawClient(server.port));
    for (const { socket } of clients) {
      socket.write(`POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: ${63 * 1024 * 1024}\r\n\r\n`);
      socket.write(hostilePrefix(256 * 1024));
    }
    const live = await fetch(`${server.url}/v2/health/live`);
    expect(live.status).toBe(200);
    const simple = await fetch(`${server.url}/v2/models/simple/infer`, {
      method: "POST",
      body: JSON.stringify({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(2) })) }),
    });
    expect(simple.status).toBe(200);
    const answers = await Promise.all(clients.map((c) => c.answer));
    for (const c of clients) c.socket.destroy();
    expect(answers.every((a) => a.startsWith("HTTP/1.1 400 "))).toBe(true);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^inference_server_request_bytes_buffered 0$/m);
  });

  it("decodes a large valid body arriving in small pieces, exactly", async () => {
    const n = 200_000;
    const values = Array.from({ length: n }, (_, i) => (i % 1000) / 8 - 60);
    const body = Buffer.from(JSON.stringify({ inputs: [{ name: "INPUT", shape: [1, n], datatype: "FP32", data: values }], parameters: { binary_data_output: true } }));
    const { socket, answer } = rawClient(server.port);
    socket.write(`POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    for (let i = 0; i < body.length; i += 7_919) socket.write(body.subarray(i, i + 7_919));
    const received = await answer;
    socket.destroy();
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    const raw = Buffer.from(received.slice(received.indexOf("\r\n\r\n") + 4), "latin1");
    const headerLength = Number(/inference-header-content-length: (\d+)/i.exec(received)![1]);
    const output = new Float32Array(raw.buffer.slice(raw.byteOffset + headerLength, raw.byteOffset + raw.byteLength));
    expect(Array.from(output)).toEqual(values);
  });
});
