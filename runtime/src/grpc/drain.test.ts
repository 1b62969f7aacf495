/**
 * gRPC health as probes and load balancers see it, and the graceful drain as
 * Knative scales a pod in: health turns NOT_SERVING at once (Check and Watch),
 * calls and streams in flight finish after the listener has closed and the
 * HTTP/2 connections got GOAWAY, new connections are refused, and a call that
 * outlives the drain timeout is cut.
 */
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { removeRepository, writeRepository } from "../testing/fixtures.js";
import { failure, grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { getJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;

beforeAll(async () => {
  repo = await writeRepository({
    "simple/1/model.onnx": buildSimple(),
    // Requests wait in the batch queue for 400 ms without holding the event loop: in flight, for certain, across the drain.
    "queued/1/model.onnx": buildSimple(),
    "queued/model-settings.json": JSON.stringify({ max_batch_size: 64, dynamic_batching: { max_queue_delay_microseconds: 400_000 } }),
  });
});
afterAll(() => removeRepository(repo));

const range = <T = number>(n: number, f: (i: number) => T = (i) => i as T): T[] => Array.from({ length: n }, (_, i) => f(i));
const int32Of = (bytes: Uint8Array) => Array.from(new Int32Array(new Uint8Array(bytes).slice().buffer));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const request = (seed: number, model = "queued") => ({
  model_name: model,
  id: `r${seed}`,
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], contents: { int_contents: range(16, (i) => seed + i) } },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], contents: { int_contents: range(16, () => seed) } },
  ],
});
const sums = (seed: number) => range(16, (i) => 2 * seed + i);

/** A Watch stream that records every status it hears and how it ended. */
function watch(client: GrpcTestClient, service = "") {
  const statuses: string[] = [];
  const waiters: { status: string; resolve: () => void }[] = [];
  const call = client.health.Watch({ service }) as grpc.ClientReadableStream<{ status: string }>;
  call.on("data", (m) => {
    statuses.push(m.status);
    for (const w of waiters.filter((w) => w.status === m.status)) w.resolve();
  });
  const ended = new Promise<number>((resolve) => {
    call.on("error", (e: grpc.ServiceError) => resolve(e.code));
    call.on("status", (s: grpc.StatusObject) => resolve(s.code));
  });
  return {
    statuses,
    ended,
    call,
    /** Resolves once the stream has said `status`. */
    heard: (status: string) => (statuses.includes(status) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ status, resolve }))),
  };
}

/** Resolves once the port refuses new connections, with when that was first seen. */
async function refused(port: number): Promise<number> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.on("connect", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (!ok) return performance.now();
    await sleep(10);
  }
}

describe("health follows readiness", () => {
  it("is NOT_SERVING while a model is not ready (liveness stays SERVING), and Watch hears it turn SERVING", async () => {
    const brokenRepo = await writeRepository({ "simple/1/model.onnx": buildSimple(), "broken/1/model.onnx": "not an ONNX protobuf" });
    const server = await startTestServer(brokenRepo, { protocol: "grpc" });
    const client = grpcClient(grpcTarget(server.url));
    try {
      expect(await client.check("")).toBe("NOT_SERVING");
      expect(await client.check("inference.GRPCInferenceService")).toBe("NOT_SERVING");
      expect(await client.check("liveness")).toBe("SERVING");
      expect((await client.call("ServerReady", {})).response).toEqual({ ready: false });
      expect((await client.call("ServerLive", {})).response).toEqual({ live: true });
      expect((await getJson(`${server.url}/v2/health/ready`)).status).toBe(503);

      const readiness = watch(client, "inference.GRPCInferenceService");
      const liveness = watch(client, "liveness");
      await readiness.heard("NOT_SERVING");
      // An explicitly unloaded model does not hold readiness down.
      expect((await client.call("RepositoryModelUnload", { model_name: "broken" })).response.isUnloaded).toBe(true);
      await readiness.heard("SERVING");
      expect(readiness.statuses).toEqual(["NOT_SERVING", "SERVING"]);
      expect(liveness.statuses).toEqual(["SERVING"]);
      expect(await client.check("")).toBe("SERVING");
      expect((await client.call("ServerReady", {})).response).toEqual({ ready: true });
      readiness.call.cancel();
      liveness.call.cancel();
      expect(await readiness.ended).toBe(grpc.status.CANCELLED);
    } finally {
      client.close();
      await server.close();
      await removeRepository(brokenRepo);
    }
  });
});

describe("graceful drain", () => {
  it("turns NOT_SERVING at once, refuses new connections after the drain delay, and finishes every call and stream in flight", async () => {
    const server = await startTestServer(repo, { protocol: "grpc", drainDelayMs: 100, drainTimeoutMs: 5_000 });
    const client = grpcClient(grpcTarget(server.url));
    let drained: Promise<boolean> | undefined;
    try {
      expect(await client.check("")).toBe("SERVING");
      const readiness = watch(client);
      const liveness = watch(client, "liveness");
      await readiness.heard("SERVING");

      // In flight: 5 unary calls and a stream, all waiting in the batch queue.
      const calls = range(5, (i) => client.call("ModelInfer", request(i)).then((r) => ({ ...r, at: performance.now() })));
      const stream = client.inference.ModelStreamInfer() as grpc.ClientDuplexStream<object, { infer_response: { id: string; raw_output_contents: Uint8Array[] }; error_message?: string }>;
      const streamed: { id: string; sums: number[]; error?: string }[] = [];
      stream.on("data", (m) => streamed.push({ id: m.infer_response.id, sums: int32Of(m.infer_response.raw_output_contents?.[0] ?? new Uint8Array()), error: m.error_message }));
      const streamEnded = new Promise<number>((resolve) => {
        stream.on("error", (e: grpc.ServiceError) => resolve(e.code));
        stream.on("status", (s: grpc.StatusObject) => resolve(s.code));
      });
      stream.write(request(100));
      const entry = server.dataPlane.registry.find("queued");
      while (entry.inflight < 6) await sleep(5);

      drained = server.drain();
      // Readiness turns at once; liveness does not.
      expect(await client.check("")).toBe("NOT_SERVING");
      expect(await client.check("liveness")).toBe("SERVING");
      expect((await client.call("ServerReady", {})).response).toEqual({ ready: false });
      expect((await getJson(`${server.url}/v2/health/ready`)).body).toEqual({ ready: false, error: "not ready: shutting down" });

      // After the drain delay the listener closes: new connections are refused, and new clients get UNAVAILABLE.
      const refusedAt = await refused(server.port);
      const late = grpcClient(grpcTarget(server.url));
      try {
        expect((await failure(late.call("ServerLive", {}, { deadlineMs: 2_000 }))).code).toBe(grpc.status.UNAVAILABLE);
      } finally {
        late.close();
      }
      // Watch heard NOT_SERVING before its stream ended with the drain.
      expect(await readiness.ended).toBe(grpc.status.OK);
      expect(readiness.statuses).toEqual(["SERVING", "NOT_SERVING"]);
      expect(await liveness.ended).toBe(grpc.status.OK);
      expect(liveness.statuses).toEqual(["SERVING"]);

      // The stream opened before the GOAWAY still takes messages and answers them.
      stream.write(request(101));
      stream.write(request(102, "ghost"));
      stream.end();

      const answers = await Promise.all(calls);
      answers.forEach(({ response, at }, i) => {
        expect(response.id).toBe(`r${i}`);
        expect(int32Of(response.raw_output_contents[0])).toEqual(sums(i));
        // Answered after the listener had closed: in flight across the GOAWAY.
        expect(at).toBeGreaterThan(refusedAt);
      });
      expect(await streamEnded).toBe(grpc.status.OK);
      expect(streamed).toEqual([
        { id: "r100", sums: sums(100), error: undefined },
        { id: "r101", sums: sums(101), error: undefined },
        { id: "r102", sums: [], error: "Request for unknown model: 'ghost' is not found" },
      ]);
      expect(await drained).toBe(true);
    } finally {
      client.close();
      await drained;
      await server.close();
    }
  });

  it("cuts a stream still open when the drain timeout runs out", async () => {
    const server = await startTestServer(repo, { protocol: "grpc", drainDelayMs: 0, drainTimeoutMs: 300 });
    const client = grpcClient(grpcTarget(server.url));
    try {
      const stream = client.inference.ModelStreamInfer() as grpc.ClientDuplexStream<object, { infer_response: { id: string } }>;
      const ids: string[] = [];
      stream.on("data", (m) => ids.push(m.infer_response.id));
      const ended = new Promise<grpc.ServiceError>((resolve) => stream.on("error", resolve));
      stream.write(request(1, "simple"));
      while (ids.length < 1) await sleep(5);
      const started = performance.now();
      // The client never half-closes: the drain waits for it until the timeout, then closes the connection.
      expect(await server.drain()).toBe(false);
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(2_000);
      const err = await ended;
      // grpc-js resets the streams of the connections it destroys (RST_STREAM CANCEL): the client reads CANCELLED.
      expect(err.code).toBe(grpc.status.CANCELLED);
      expect(ids).toEqual(["r1"]);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe("SIGTERM on a real process with PROTOCOL=grpc", () => {
  it("drains gRPC calls in flight, reports NOT_SERVING, and exits 0", { timeout: 30_000 }, async () => {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "..", "main.ts")], {
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", MODEL_REPOSITORY: repo, LOG_LEVEL: "info", PROTOCOL: "grpc", DRAIN_DELAY_MS: "300", DRAIN_TIMEOUT_MS: "10000" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stderr!.on("data", (c: Buffer) => (output += c));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.on("data", (c: Buffer) => {
        output += c;
        const m = /"port":(\d+),"protocol":"grpc"[^\n]*"msg":"listening"/.exec(output);
        if (m) resolve(Number(m[1]));
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${output}`)));
    });
    const client = grpcClient(`127.0.0.1:${port}`);
    try {
      const check = () => client.check("").catch((e: grpc.ServiceError) => `error ${e.code}`);
      for (let i = 0; i < 200 && (await check()) !== "SERVING"; i++) await sleep(25);
      expect(await check()).toBe("SERVING");

      const calls = range(3, (i) => client.call("ModelInfer", request(i)));
      await sleep(50);
      child.kill("SIGTERM");
      let status = await check();
      for (let i = 0; i < 100 && status === "SERVING"; i++) {
        await sleep(10);
        status = await check();
      }
      expect(status).toBe("NOT_SERVING");
      const answers = await Promise.all(calls);
      answers.forEach(({ response }, i) => expect(int32Of(response.raw_output_contents[0])).toEqual(sums(i)));
      expect(await exited).toBe(0);
      expect(output).toMatch(/"clean":true,"msg":"drained"/);
    } finally {
      client.close();
      child.kill("SIGKILL");
    }
  });
});
