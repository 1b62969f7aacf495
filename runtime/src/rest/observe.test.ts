/** Request ids, the access log, Prometheus metrics, timeouts and load shedding, observed from outside. */
import { Writable } from "node:stream";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "node:http";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { createLogger } from "../logging.js";
import { removeRepository, slowInput, slowModel, writeRepository } from "../testing/fixtures.js";
import { GatedBackend } from "../testing/gated-backend.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";

const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _e, done) {
    for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
    done();
  },
});

let repo: string;
let server: RunningServer;
const simple = () => ({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(1) })) });
const slow = (url: string, rows = 256, headers: Record<string, string> = {}) =>
  fetch(`${url}/v2/models/slow/infer`, { method: "POST", body: slowInput(rows), headers: { "inference-header-content-length": "0", ...headers } });

beforeAll(async () => {
  repo = await writeRepository({
    "simple/1/model.onnx": buildSimple(),
    "sentiment/1/model.onnx": await readFile(join(import.meta.dirname, "../../../models/sentiment/1/model.onnx")),
    "slow/1/model.onnx": slowModel(),
  });
  server = await startTestServer(repo, {}, { logger: createLogger("info", "json", sink) });
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

const accessLines = () => lines.filter((l) => l.msg === "request");

describe("request ids and the access log", () => {
  it("honours x-request-id, echoes it, and logs one access line carrying it", async () => {
    const res = await postJson(`${server.url}/v2/models/simple/infer`, simple(), { "x-request-id": "client-chose-this-1" });
    expect(res.headers.get("x-request-id")).toBe("client-chose-this-1");
    const line = accessLines().find((l) => l.request_id === "client-chose-this-1");
    expect(line).toMatchObject({ level: "info", method: "POST", path: "/v2/models/simple/infer", status: 200, model: "simple", protocol: "v2" });
    expect(typeof line!.latency_ms).toBe("number");
  });

  it("generates a request id when none (or an unusable one) is given", async () => {
    const a = await postJson(`${server.url}/v2/models/simple/infer`, simple());
    expect(a.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const b = await postJson(`${server.url}/v2/models/simple/infer`, simple(), { "x-request-id": "bad id with spaces" });
    expect(b.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("puts the W3C traceparent's trace and span ids in the log line", async () => {
    await postJson(`${server.url}/v2/models/simple/infer`, simple(), { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-request-id": "traced-1" });
    expect(accessLines().find((l) => l.request_id === "traced-1")).toMatchObject({ trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" });
  });

  it("logs a classifier's top label and confidence", async () => {
    await postJson(`${server.url}/v2/models/sentiment/infer`, { inputs: [{ name: "text", datatype: "BYTES", shape: [1], data: ["This movie was fantastic!"] }] }, { "x-request-id": "classified-1" });
    const line = accessLines().find((l) => l.request_id === "classified-1");
    expect(line).toMatchObject({ label: "positive" });
    expect(line!.confidence).toBeGreaterThan(0.5);
  });

  it("logs a genuine fault's stack but never sends it to the client", async () => {
    const errors = lines.filter((l) => l.level === "error");
    for (const e of errors) expect(e.request_id ?? e.model).toBeDefined();
    const res = await postJson(`${server.url}/v2/models/simple/infer`, "{bad");
    expect(JSON.stringify(res.body)).not.toMatch(/\bat \w+ \(|\/work\/|node_modules/);
  });
});

describe("Prometheus metrics", () => {
  it("counts requests per model, version, protocol and status, with latency histograms and process metrics", async () => {
    for (let i = 0; i < 3; i++) await postJson(`${server.url}/v2/models/simple/infer`, simple());
    await postJson(`${server.url}/v2/models/simple/infer`, { inputs: [] });
    await postJson(`${server.url}/v1/models/sentiment:predict`, { instances: ["good"] });
    const res = await fetch(`${server.url}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    const count = (labels: string) => Number(new RegExp(`^inference_server_requests_total\\{${labels}\\} (\\d+)$`, "m").exec(text)?.[1] ?? "NaN");
    expect(count('model="simple",version="",protocol="v2",status_code="200"')).toBeGreaterThanOrEqual(3);
    expect(count('model="simple",version="",protocol="v2",status_code="400"')).toBeGreaterThanOrEqual(1);
    expect(count('model="sentiment",version="1",protocol="v1",status_code="200"')).toBe(1);
    expect(text).toMatch(/^inference_server_request_duration_seconds_bucket\{le="0.0001",model="simple"/m);
    expect(text).toMatch(/^inference_server_request_duration_seconds_bucket\{le="30",/m);
    expect(text).toMatch(/^inference_server_model_ready\{model="simple",version="1"\} 1$/m);
    expect(text).toMatch(/^inference_server_model_load_duration_seconds\{model="slow",version="1"\} /m);
    expect(text).toMatch(/^inference_server_request_input_bytes_bucket/m);
    // Per model run: compute time and rows (warm-up runs are not counted).
    expect(Number(/^inference_server_inference_duration_seconds_count\{model="simple",version="1"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(/^inference_server_batch_size_bucket\{le="1",model="sentiment",version="1"\} [1-9]\d*$/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).toMatch(/^process_resident_memory_bytes /m);
  });

  it("does not create a series for an unknown model name in a URL", async () => {
    for (const name of ["ghost-a", "ghost-b", "ghost-c"]) expect((await postJson(`${server.url}/v2/models/${name}/infer`, simple())).status).toBe(404);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).not.toContain("ghost");
    expect(text).toMatch(/^inference_server_requests_total\{model="",version="",protocol="v2",status_code="404"\} 3$/m);
  });
});

describe("limits", () => {
  // The model runs of these tests are held at a gate (testing/gated-backend.ts): slow relative to the
  // timeout for certain, however fast this machine computes. 200 ms leaves the quick requests around
  // them (simple inferences, statistics, unload) ample time on a busy machine.
  const count = async (url: string) => {
    const stats = (await (await fetch(`${url}/v2/models/slow/stats`)).json()) as { model_stats: { inference_stats: { success: { count: number } } }[] };
    return stats.model_stats[0]!.inference_stats.success.count;
  };

  it("answers 504 past the request timeout, keeps serving, and the late run still finishes and releases its model", async () => {
    const gate = new GatedBackend();
    const quick = await startTestServer(repo, { requestTimeoutMs: 200 }, { backend: gate });
    try {
      const run = gate.hold("slow");
      const answer = slow(quick.url, 4);
      await run.entered;
      // The run has started and waits at the gate: the timeout answers.
      const res = await answer;
      expect(res.status).toBe(504);
      expect(await res.json()).toEqual({ error: "the request did not finish within 200 ms" });
      // The server keeps serving meanwhile; the run still in progress is not counted yet.
      expect((await postJson(`${quick.url}/v2/models/simple/infer`, simple())).status).toBe(200);
      expect(await count(quick.url)).toBe(0);
      // The abandoned run completes: its statistics count it and the model can be unloaded (nothing holds it).
      run.release();
      await run.finished;
      expect(await count(quick.url)).toBe(1);
      expect((await postJson(`${quick.url}/v2/repository/models/slow/unload`, {})).status).toBe(200);
      expect((await postJson(`${quick.url}/v2/models/simple/infer`, simple())).status).toBe(200);
    } finally {
      gate.releaseAll();
      await quick.close();
    }
  });

  it("answers 504 when the model run itself overran the timeout (the run blocks the timer), whatever the client accepts", async () => {
    const gate = new GatedBackend();
    const quick = await startTestServer(repo, { requestTimeoutMs: 200 }, { backend: gate });
    try {
      // The run holds the event loop for twice the timeout, then answers at once: the timer cannot fire first.
      // node:http without Accept-Encoding: no compression step between the run and the answer, so it is
      // the elapsed-time check that turns the answer into a 504.
      const plain = gate.blockLoop("slow", 400);
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const body = slowInput(4);
        const req = request(`${quick.url}/v2/models/slow/infer`, { method: "POST", headers: { "inference-header-content-length": "0", "content-length": body.byteLength } }, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => resolve({ status: res.statusCode!, body: text }));
        });
        req.on("error", reject);
        req.end(body);
      });
      await plain.finished;
      expect(answer.status).toBe(504);
      expect(JSON.parse(answer.body)).toEqual({ error: "the request did not finish within 200 ms" });
      // A client that accepts compressed answers gets the same.
      const compressed = gate.blockLoop("slow", 400);
      const res = await slow(quick.url, 4, { "accept-encoding": "gzip, br" });
      await compressed.finished;
      expect(res.status).toBe(504);
      expect(await res.json()).toEqual({ error: "the request did not finish within 200 ms" });
      // Both late runs finished and were counted; an unheld run answers.
      expect(await count(quick.url)).toBe(2);
      expect((await slow(quick.url, 4)).status).toBe(200);
    } finally {
      gate.releaseAll();
      await quick.close();
    }
  });

  it("does not leave a request on the in-flight gauge when its model is named only after the timeout answered", async () => {
    // POST / names its model in the event, read from the body: a body that arrives after the 504
    // names it to a request already answered and counted.
    const gate = new GatedBackend();
    const quick = await startTestServer(repo, { requestTimeoutMs: 1_000 }, { backend: gate });
    const socket = connect(quick.port, "127.0.0.1");
    try {
      const run = gate.hold("simple");
      const body = JSON.stringify(simple());
      let received = "";
      const answered = new Promise<void>((resolve) => socket.on("data", (d: Buffer) => ((received += d), received.includes("\r\n\r\n") && resolve())));
      const closed = new Promise<"closed">((resolve) => socket.on("close", () => resolve("closed")));
      const headers = ["POST / HTTP/1.1", "Host: x", "Content-Type: application/json", "ce-specversion: 1.0", "ce-id: late-1", "ce-source: tests", "ce-type: io.kserve.inference.request", "ce-subject: simple", `Content-Length: ${body.length}`];
      socket.write(`${headers.join("\r\n")}\r\n\r\n${body.slice(0, 10)}`);
      await answered;
      expect(received).toMatch(/^HTTP\/1\.1 504 /);
      socket.write(body.slice(10));
      // The late handler reads the event, names the model and runs it (unless Node's own request
      // timeout closed the connection in the meantime: then nothing is named at all).
      if ((await Promise.race([run.entered.then(() => "entered" as const), closed])) === "entered") {
        run.release();
        await run.finished;
      }
      const metrics = await (await fetch(`${quick.url}/metrics`)).text();
      expect(metrics).not.toMatch(/^inference_server_requests_in_flight\{model="simple",protocol="cloudevent"\} [1-9]/m);
    } finally {
      socket.destroy();
      gate.releaseAll();
      await quick.close();
    }
  });

  it("sheds load past the per-model in-flight limit with 503 and Retry-After", async () => {
    const limited = await startTestServer(repo, { maxInflightPerModel: 1 });
    try {
      // Inference runs on the event loop, so two HTTP requests rarely overlap on a 2-core machine;
      // two calls started in the same tick always do.
      const request = { modelName: "slow", inputs: [{ name: "INPUT", datatype: "FP32" as const, shape: [8, 512], data: new Float32Array(8 * 512) }] };
      const first = limited.dataPlane.infer(request);
      const second = limited.dataPlane.infer(request).catch((e: unknown) => e);
      await first;
      expect(await second).toMatchObject({ status: 503, headers: { "retry-after": "1" }, message: "model 'slow' has 1 requests in progress, its limit; retry shortly" });
      expect((await slow(limited.url, 8)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
