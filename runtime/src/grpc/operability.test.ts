/**
 * gRPC calls observed from outside as REST requests are: request ids honoured or
 * generated and echoed in the initial metadata, one access log line per call (per
 * message on a stream), Prometheus series with protocol="grpc", dynamic batching
 * across gRPC calls, and many calls and streams multiplexed on one HTTP/2 connection.
 */
import * as grpc from "@grpc/grpc-js";
import { readFile } from "node:fs/promises";
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { createLogger } from "../logging.js";
import { addConstantModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { startTestServer, type RunningServer } from "../testing/server.js";

const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _e, done) {
    for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
    done();
  },
});
const accessLines = () => lines.filter((l) => l.msg === "request");

let repo: string;
let server: RunningServer;
let client: GrpcTestClient;

beforeAll(async () => {
  repo = await writeRepository({
    "simple/1/model.onnx": buildSimple(),
    "counted/1/model.onnx": addConstantModel(0),
    "sentiment/1/model.onnx": await readFile(join(import.meta.dirname, "../../../models/sentiment/1/model.onnx")),
    // Batches form when 8 rows are queued, or after 2 s: every assertion below holds however they group.
    "queued/1/model.onnx": buildSimple(),
    "queued/model-settings.json": JSON.stringify({ max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 2_000_000 } }),
  });
  server = await startTestServer(repo, { protocol: "grpc" }, { logger: createLogger("info", "json", sink) });
  client = grpcClient(grpcTarget(server.url));
});
afterAll(async () => {
  client?.close();
  await server?.close();
  await removeRepository(repo);
});

const range = <T = number>(n: number, f: (i: number) => T = (i) => i as T): T[] => Array.from({ length: n }, (_, i) => f(i));
const int32Of = (bytes: Uint8Array) => Array.from(new Int32Array(new Uint8Array(bytes).slice().buffer));
const simple = (seed: number, extra: Record<string, unknown> = {}, model = "simple") => ({
  model_name: model,
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], contents: { int_contents: range(16, (i) => seed * 100 + i) } },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], contents: { int_contents: range(16, (i) => (i * 7) % 13 - seed) } },
  ],
  ...extra,
});
const expectedSums = (seed: number) => range(16, (i) => seed * 100 + i + ((i * 7) % 13 - seed));
const expectedDifferences = (seed: number) => range(16, (i) => seed * 100 + i - ((i * 7) % 13 - seed));

/** One sample from /metrics (served over HTTP/1.1 on the gRPC port), by name and exact label set; 0 when absent. */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  for (const line of text.split("\n")) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(found).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe("request ids and the access log", () => {
  it("honours x-request-id, echoes it in the initial metadata, and logs one access line carrying it", async () => {
    const { metadata } = await client.call("ModelInfer", simple(1), { metadata: { "x-request-id": "grpc-chose-this-1" } });
    expect(metadata.get("x-request-id")).toEqual(["grpc-chose-this-1"]);
    const mine = accessLines().filter((l) => l.request_id === "grpc-chose-this-1");
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ level: "info", msg: "request", method: "POST", path: "/inference.GRPCInferenceService/ModelInfer", status: 200, grpc_code: 0, model: "simple", protocol: "grpc" });
    expect(typeof mine[0]!.latency_ms).toBe("number");
  });

  it("generates a request id when none, or an unusable one, is given, for every RPC", async () => {
    const none = await client.call("ServerLive", {});
    const bad = await client.call("ModelInfer", simple(2), { metadata: { "x-request-id": "bad id with spaces" } });
    const ids = [none.metadata.get("x-request-id")[0], bad.metadata.get("x-request-id")[0]] as string[];
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(accessLines().find((l) => l.request_id === ids[0])).toMatchObject({ path: "/inference.GRPCInferenceService/ServerLive", status: 200, grpc_code: 0 });
    expect(accessLines().find((l) => l.request_id === ids[1])).toMatchObject({ model: "simple", status: 200 });
  });

  it("echoes the request id on a failed call too, and logs the gRPC code beside the HTTP status REST would give", async () => {
    const err = await failure(client.call("ModelInfer", simple(3, {}, "ghost"), { metadata: { "x-request-id": "failed-call-1" } }));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    const line = accessLines().find((l) => l.request_id === "failed-call-1");
    expect(line).toMatchObject({ level: "info", path: "/inference.GRPCInferenceService/ModelInfer", status: 404, grpc_code: grpc.status.NOT_FOUND });
    // An unknown model name never reaches the log line's model field (nor a metric label).
    expect(line!.model).toBeUndefined();
    await failure(client.call("ModelInfer", { ...simple(3), inputs: [] }, { metadata: { "x-request-id": "failed-call-2" } }));
    expect(accessLines().find((l) => l.request_id === "failed-call-2")).toMatchObject({ status: 400, grpc_code: grpc.status.INVALID_ARGUMENT, model: "simple", protocol: "grpc" });
  });

  it("puts the W3C traceparent's trace and span ids in the log line", async () => {
    await client.call("ModelInfer", simple(4), { metadata: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-request-id": "traced-1" } });
    expect(accessLines().find((l) => l.request_id === "traced-1")).toMatchObject({ trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" });
  });

  it("logs one line per ModelStreamInfer message, each with the stream's request id", async () => {
    const { responses, metadata } = await client.stream([simple(5, { id: "m1" }), simple(6, { id: "m2" }, "ghost"), simple(7, { id: "m3" })], { metadata: { "x-request-id": "stream-7" } });
    expect(metadata.get("x-request-id")).toEqual(["stream-7"]);
    expect(responses.map((r) => r.error_message ?? "ok")).toEqual(["ok", "Request for unknown model: 'ghost' is not found", "ok"]);
    const mine = accessLines().filter((l) => l.request_id === "stream-7");
    // Lines come as the inferences finish (the unknown model fails at once); answers go back in request order.
    expect(mine.map((l) => [l.path, l.status, l.grpc_code]).sort()).toEqual([
      ["/inference.GRPCInferenceService/ModelStreamInfer", 200, 0],
      ["/inference.GRPCInferenceService/ModelStreamInfer", 200, 0],
      ["/inference.GRPCInferenceService/ModelStreamInfer", 404, grpc.status.NOT_FOUND],
    ]);
    expect(mine.filter((l) => l.status === 200).every((l) => l.model === "simple" && l.protocol === "grpc")).toBe(true);
  });

  it("gives a stream without x-request-id one generated id, the one echoed, on every message's line", async () => {
    const { metadata } = await client.stream([simple(8), simple(9), simple(10)]);
    const id = metadata.get("x-request-id")[0] as string;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(accessLines().filter((l) => l.request_id === id).map((l) => l.status)).toEqual([200, 200, 200]);
  });

  it("logs a classifier's top label and confidence", async () => {
    await client.call("ModelInfer", { model_name: "sentiment", inputs: [{ name: "text", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("This movie was fantastic!")] } }] }, { metadata: { "x-request-id": "classified-1" } });
    const line = accessLines().find((l) => l.request_id === "classified-1");
    expect(line).toMatchObject({ label: "positive", model: "sentiment", protocol: "grpc" });
    expect(line!.confidence).toBeGreaterThan(0.5);
  });
});

describe("Prometheus metrics", () => {
  it("counts gRPC inferences per model, version and REST status with protocol=\"grpc\", with latency and input size", async () => {
    const series = (version: string, status: string) => ({ model: "counted", version, protocol: "grpc", status_code: status });
    const before = {
      ok: await metric("inference_server_requests_total", series("", "200")),
      okV1: await metric("inference_server_requests_total", series("1", "200")),
      bad: await metric("inference_server_requests_total", series("", "400")),
      unknown: await metric("inference_server_requests_total", { model: "", version: "", protocol: "grpc", status_code: "404" }),
      latency: await metric("inference_server_request_duration_seconds_count", { model: "counted", version: "", protocol: "grpc" }),
      bytes: await metric("inference_server_request_input_bytes_sum", { model: "counted", protocol: "grpc" }),
    };
    const request = (n: number) => ({ model_name: "counted", inputs: [{ name: "INPUT", datatype: "INT32", shape: [1], contents: { int_contents: [n] } }] });
    const sent = [request(1), request(22), request(333)];
    for (const r of sent) await client.call("ModelInfer", r);
    await client.call("ModelInfer", { ...request(4), model_version: "1" });
    await client.stream([request(5)]);
    await failure(client.call("ModelInfer", { model_name: "counted", inputs: [{ name: "WRONG", datatype: "INT32", shape: [1], contents: { int_contents: [1] } }] }));
    for (const name of ["ghost-a", "ghost-b"]) await failure(client.call("ModelInfer", { ...request(1), model_name: name }));
    // Metadata, readiness and statistics calls are not inference requests.
    await client.call("ModelMetadata", { name: "counted" });
    await client.call("ModelStatistics", { name: "counted" });

    expect(await metric("inference_server_requests_total", series("", "200"))).toBe(before.ok + 4);
    expect(await metric("inference_server_requests_total", series("1", "200"))).toBe(before.okV1 + 1);
    expect(await metric("inference_server_requests_total", series("", "400"))).toBe(before.bad + 1);
    expect(await metric("inference_server_requests_total", { model: "", version: "", protocol: "grpc", status_code: "404" })).toBe(before.unknown + 2);
    expect(await metric("inference_server_request_duration_seconds_count", { model: "counted", version: "", protocol: "grpc" })).toBe(before.latency + 5);
    // Input bytes are the encoded request messages' sizes.
    const encode = (client.inference as unknown as { ModelInfer: { requestSerialize: (m: object) => Buffer } }).ModelInfer.requestSerialize;
    const sizes = [...sent, { ...request(4), model_version: "1" }, request(5), { model_name: "counted", inputs: [{ name: "WRONG", datatype: "INT32", shape: [1], contents: { int_contents: [1] } }] }].map((m) => encode(m).byteLength);
    expect(await metric("inference_server_request_input_bytes_sum", { model: "counted", protocol: "grpc" })).toBe(before.bytes + sizes.reduce((a, b) => a + b, 0));
    expect(await metric("inference_server_requests_in_flight", { model: "counted", protocol: "grpc" })).toBe(0);

    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).not.toContain("ghost");
    expect(text).toMatch(/^inference_server_request_duration_seconds_bucket\{le="0.0001",model="counted",version="",protocol="grpc"\} \d+$/m);
  });
});

describe("dynamic batching applies to gRPC calls", () => {
  it("batches concurrent ModelInfer calls and stream messages, each answered exactly as the unbatched model answers it alone", async () => {
    const stats = async () => (await client.call("ModelStatistics", { name: "queued" })).response.model_stats[0];
    const before = await stats();
    const batches = await metric("inference_server_batch_size_count", { model: "queued", version: "1" });
    const rows = await metric("inference_server_batch_size_sum", { model: "queued", version: "1" });

    // 6 unary calls and a stream of 2 messages, 1 row each: 8 rows, max_batch_size.
    const unary = range(6, (i) => client.call("ModelInfer", simple(10 + i, { id: `u${i}` }, "queued")));
    const stream = client.stream([simple(20, { id: "s0" }, "queued"), simple(21, { id: "s1", outputs: [{ name: "OUTPUT1" }] }, "queued")]);
    const together = [...(await Promise.all(unary)).map((r) => r.response), ...(await stream).responses.map((r) => r.infer_response)];

    const alone = [];
    for (let i = 0; i < 6; i++) alone.push((await client.call("ModelInfer", simple(10 + i, { id: `u${i}` }))).response);
    alone.push((await client.call("ModelInfer", simple(20, { id: "s0" }))).response);
    alone.push((await client.call("ModelInfer", simple(21, { id: "s1", outputs: [{ name: "OUTPUT1" }] }))).response);
    for (let i = 0; i < together.length; i++) {
      expect({ ...together[i], model_name: "simple" }, `answer ${i}`).toEqual(alone[i]);
    }
    expect(int32Of(together[0].raw_output_contents[0])).toEqual(expectedSums(10));
    expect(int32Of(together[7].raw_output_contents[0])).toEqual(expectedDifferences(21));

    const after = await stats();
    expect(Number(after.inference_count) - Number(before.inference_count)).toBe(8);
    const executions = Number(after.execution_count) - Number(before.execution_count);
    expect(executions).toBeGreaterThanOrEqual(1);
    expect(executions).toBeLessThan(8);
    expect(await metric("inference_server_batch_size_count", { model: "queued", version: "1" })).toBe(batches + executions);
    expect(await metric("inference_server_batch_size_sum", { model: "queued", version: "1" })).toBe(rows + 8);
  });
});

/** A TCP proxy in front of the server that counts the connections clients open. */
async function countingProxy(port: number): Promise<{ target: string; connections: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let count = 0;
  const proxy: NetServer = createServer((downstream) => {
    count++;
    const upstream = connect(port, "127.0.0.1");
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => {
        downstream.destroy();
        upstream.destroy();
      });
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const { port: proxyPort } = proxy.address() as { port: number };
  return {
    target: `127.0.0.1:${proxyPort}`,
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        proxy.close(() => resolve());
      }),
  };
}

describe("HTTP/2 multiplexing", () => {
  it("answers 200 concurrent ModelInfer calls and 5 interleaved ModelStreamInfer streams on one connection, each exactly", async () => {
    const proxy = await countingProxy(server.port);
    const one = grpcClient(proxy.target);
    try {
      const calls = range(200, (i) => one.call("ModelInfer", simple(i, { id: `call-${i}`, ...(i % 2 ? { parameters: { raw_output_contents: { bool_param: false } } } : {}) })));

      const streams = range(5, (k) => {
        const call = one.inference.ModelStreamInfer() as grpc.ClientDuplexStream<object, { infer_response: { id: string; raw_output_contents: Uint8Array[] } }>;
        const answers: { id: string; sums: number[] }[] = [];
        const done = new Promise<grpc.StatusObject>((resolve, reject) => {
          call.on("data", (m) => answers.push({ id: m.infer_response.id, sums: int32Of(m.infer_response.raw_output_contents[0]!) }));
          call.on("error", reject);
          call.on("status", resolve);
        });
        return { call, answers, done };
      });
      // Round-robin: message j of every stream before message j+1 of any.
      for (let j = 0; j < 20; j++) for (let k = 0; k < 5; k++) streams[k]!.call.write(simple(1000 + k * 100 + j, { id: `stream-${k}-${j}` }));
      for (const s of streams) s.call.end();

      const answers = await Promise.all(calls);
      answers.forEach(({ response }, i) => {
        expect(response.id).toBe(`call-${i}`);
        const sums = i % 2 ? response.outputs[0].contents.int_contents : int32Of(response.raw_output_contents[0]);
        expect(sums, `call ${i}`).toEqual(expectedSums(i));
      });
      for (let k = 0; k < 5; k++) {
        expect((await streams[k]!.done).code).toBe(grpc.status.OK);
        expect(streams[k]!.answers.map((a) => a.id)).toEqual(range(20, (j) => `stream-${k}-${j}`));
        streams[k]!.answers.forEach((a, j) => expect(a.sums).toEqual(expectedSums(1000 + k * 100 + j)));
      }
      expect(proxy.connections()).toBe(1);
    } finally {
      one.close();
      await proxy.close();
    }
  });
});
