/** Request ids, the access log, Prometheus metrics, timeouts and load shedding, observed from outside. */
import { Writable } from "node:stream";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { createLogger } from "../logging.js";
import { removeRepository, slowInput, slowModel, writeRepository } from "../testing/fixtures.js";
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
const slow = (url: string, rows = 256) => fetch(`${url}/v2/models/slow/infer`, { method: "POST", body: slowInput(rows), headers: { "inference-header-content-length": "0" } });

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
  it("answers 504 past the request timeout, keeps serving, and the late run still finishes and releases its model", async () => {
    const quick = await startTestServer(repo, { requestTimeoutMs: 40 });
    try {
      const res = await slow(quick.url);
      expect(res.status).toBe(504);
      expect(await res.json()).toEqual({ error: "the request did not finish within 40 ms" });
      expect((await postJson(`${quick.url}/v2/models/simple/infer`, simple())).status).toBe(200);
      // The abandoned run completes: its statistics count it and the model can be unloaded (nothing holds it).
      const stats = await (await fetch(`${quick.url}/v2/models/slow/stats`)).json() as { model_stats: { inference_stats: { success: { count: number } } }[] };
      expect(stats.model_stats[0]!.inference_stats.success.count).toBe(1);
      expect((await postJson(`${quick.url}/v2/repository/models/slow/unload`, {})).status).toBe(200);
    } finally {
      await quick.close();
    }
  });

  it("answers 504 when the model run itself overran the timeout (the run blocks the timer), whatever the client accepts", async () => {
    const quick = await startTestServer(repo, { requestTimeoutMs: 40 });
    try {
      // node:http without Accept-Encoding: no compression step between the run and the answer.
      const status = await new Promise<number>((resolve, reject) => {
        const body = slowInput(256);
        const req = request(`${quick.url}/v2/models/slow/infer`, { method: "POST", headers: { "inference-header-content-length": "0", "content-length": body.byteLength } }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode!));
        });
        req.on("error", reject);
        req.end(body);
      });
      expect(status).toBe(504);
    } finally {
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
