/**
 * Graceful drain as Knative scales a pod in: a real server process, slow
 * requests in flight, SIGTERM. Every in-flight request completes, readiness is
 * 503 at once, and the process exits 0 in time.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../models/build/simple.js";
import { removeRepository, slowInput, slowModel, writeRepository } from "./testing/fixtures.js";
import { startTestServer } from "./testing/server.js";

const main = join(import.meta.dirname, "main.ts");
let repo: string;

beforeAll(async () => {
  repo = await writeRepository({ "slow/1/model.onnx": slowModel(), "simple/1/model.onnx": buildSimple() });
});
afterAll(() => removeRepository(repo));

async function startProcess(env: Record<string, string>): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, ["--import", "tsx", main], {
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", MODEL_REPOSITORY: repo, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stderr!.on("data", (c: Buffer) => (output += c));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (c: Buffer) => {
      output += c;
      const m = /"port":(\d+)[^\n]*"msg":"listening"/.exec(output);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`exited ${code}: ${output}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200 && (await fetch(`${url}/v2/health/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 25));
  return { child, url, output: () => output };
}

describe("graceful drain on SIGTERM", () => {
  it("finishes every in-flight request, reports not ready at once, and exits 0 within the drain timeout", { timeout: 60_000 }, async () => {
    // The drain delay must outlast the in-flight model runs, which hold the server's event loop.
    const { child, url, output } = await startProcess({ DRAIN_DELAY_MS: "2000", DRAIN_TIMEOUT_MS: "20000" });
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.once("exit", (code) => resolve({ code, at: performance.now() })));
    const inflight = Array.from({ length: 4 }, () =>
      fetch(`${url}/v2/models/slow/infer`, { method: "POST", body: slowInput(128), headers: { "inference-header-content-length": "0" } }),
    );
    // Let the requests reach the server before the signal.
    await new Promise((r) => setTimeout(r, 50));
    const signalled = performance.now();
    child.kill("SIGTERM");
    // The signal is handled on the server's event loop, between model runs: poll until it has been
    // (a new connection each time, so no poll races the server closing an idle keep-alive socket).
    const ready = () => fetch(`${url}/v2/health/ready`, { headers: { connection: "close" } });
    let readiness = await ready();
    for (let i = 0; i < 100 && readiness.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      readiness = await ready();
    }
    expect(readiness.status).toBe(503);
    expect(await readiness.json()).toEqual({ ready: false, error: "not ready: shutting down" });

    const answers = await Promise.all(inflight);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const { code, at } = await exited;
    expect(code).toBe(0);
    expect(at - signalled).toBeLessThan(20_000);
    expect(output()).toMatch(/"msg":"drained"[^\n]*|"clean":true/);
    // After exit the port no longer takes connections.
    await expect(fetch(`${url}/v2/health/live`)).rejects.toThrow();
  });

  it("SIGINT drains the same way", { timeout: 30_000 }, async () => {
    const { child } = await startProcess({ DRAIN_DELAY_MS: "0" });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
  });
});

describe("slow clients", () => {
  it("times out a slowloris connection without starving other clients", { timeout: 30_000 }, async () => {
    const server = await startTestServer(repo, { requestTimeoutMs: 1500 });
    try {
      const socket = connect(server.port, "127.0.0.1");
      const closed = new Promise<string>((resolve) => {
        let received = "";
        socket.on("data", (d) => (received += d));
        socket.on("close", () => resolve(received));
      });
      socket.write("POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"inputs\":");
      const trickle = setInterval(() => socket.writable && socket.write(" "), 200);
      // Meanwhile other clients are served normally.
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${server.url}/v2/models/simple/infer`, {
          method: "POST",
          body: JSON.stringify({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(i) })) }),
        });
        expect(res.status).toBe(200);
      }
      const received = await closed;
      clearInterval(trickle);
      // Timed out by the server: the request timeout answers 504 (or Node's own 408), then the connection closes.
      expect(received).toMatch(/^HTTP\/1\.1 (504|408) /);
    } finally {
      await server.close();
    }
  });
});
