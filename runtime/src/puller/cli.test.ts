import { existsSync, readFileSync, readdirSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { readMarker } from "./marker.js";
import { buildCli, bytes, removeBuiltCli, runCli, serveBytes, sha256, startCli, tempDir, TestServer, waitFor } from "./test-support.js";

// The real CLI, bundled like dist/model-puller.js, in child processes.

let server: TestServer;
let tmp: ReturnType<typeof tempDir>;
let dest: string;
let state: string;
const DATA = bytes(400_000, 11);

beforeAll(async () => {
  await buildCli();
}, 60_000);
afterAll(removeBuiltCli);
beforeEach(async () => {
  server = await new TestServer().start();
  tmp = tempDir("puller-cli-");
  dest = join(tmp.path, "models", "resnet");
  state = join(tmp.path, "models", ".resnet.model-puller");
});
afterEach(async () => {
  await server.close();
  tmp.cleanup();
});

const msgs = (logs: Array<Record<string, unknown>>) => logs.map((l) => l.msg);

describe("model-puller CLI", () => {
  it("prints help and version, and exits 2 on usage errors", async () => {
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("model-puller <source-uri> <dest-dir>");
    expect(help.stdout).toContain("Exit codes");
    const version = await runCli(["--version"]);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const bad = await runCli(["http://x/m.onnx", dest, "--max-bytes", "a lot"]);
    expect(bad.code).toBe(2);
    // The server's level format ("level":"error"), from runtime/src/log-format.ts.
    expect(bad.logs[0]).toMatchObject({ code: "USAGE", level: "error" });
    expect(bad.logs[0]).not.toHaveProperty("severity");
    expect(String(bad.logs[0]!.msg)).toMatch(/--max-bytes: not a size/);
    const none = await runCli([]);
    expect(none.code).toBe(2);
    const scheme = await runCli(["gs://bucket/model", dest]);
    expect(scheme.code).toBe(2);
    expect(String(scheme.logs[0]!.msg)).toMatch(/unsupported source scheme gs/);
  });

  it("runs as an init container from STORAGE_URI and MODEL_DIR, then starts warm without network or lock", async () => {
    server.route("/resnet.onnx", (req, res) => serveBytes(req, res, DATA));
    const env = { STORAGE_URI: server.url("/resnet.onnx"), MODEL_DIR: dest, MODEL_SHA256: sha256(DATA) };
    const first = await runCli([], env);
    expect(first.code).toBe(0);
    expect(msgs(first.logs)).toEqual(expect.arrayContaining(["pulling", "downloaded and verified", "model published"]));
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);

    await server.close();
    const warm = await runCli([], env);
    expect(warm.code).toBe(0);
    expect(warm.logs).toHaveLength(1);
    expect(warm.logs[0]).toMatchObject({ level: "info", msg: "model already present", sha256: sha256(DATA), dest });
    expect(first.logs.every((l) => typeof l.level === "string")).toBe(true);
    expect(readdirSync(state).filter((n) => !n.startsWith("v-"))).toEqual([]); // no lock was taken
    server = await new TestServer().start();
  });

  it("exits 1 on a checksum mismatch, naming both digests, and publishes nothing", async () => {
    server.route("/resnet.onnx", (req, res) => serveBytes(req, res, DATA));
    const wrong = "ab".repeat(32);
    const r = await runCli([server.url("/resnet.onnx"), dest, "--sha256", wrong]);
    expect(r.code).toBe(1);
    const err = r.logs.find((l) => l.level === "error")!;
    expect(err).toMatchObject({ code: "CHECKSUM_MISMATCH", expected: wrong, actual: sha256(DATA) });
    expect(String(err.msg)).toContain(`expected ${wrong}, got ${sha256(DATA)}`);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(state)).toEqual([]);
  });

  it("two pullers started at once download once; the second waits and then sees the model", async () => {
    const held: ServerResponse[] = [];
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    server.route("/resnet.onnx", async (req, res) => {
      held.push(res);
      await released;
      serveBytes(req, res, DATA);
    });
    const args = [server.url("/resnet.onnx"), dest, "--lock-stale", "10s"];
    const a = await startCli(args);
    const b = await startCli(args);
    // One of them holds the lock and is stuck in the download; the other must be waiting for it.
    await waitFor(() => held.length === 1 && /waiting for lock held by another puller/.test(a.stderrSoFar() + b.stderrSoFar()), "one puller waiting");
    release();
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect(ra.code).toBe(0);
    expect(rb.code).toBe(0);
    expect(server.hits("/resnet.onnx")).toHaveLength(1);
    const all = [...msgs(ra.logs), ...msgs(rb.logs)];
    expect(all.filter((m) => m === "model published")).toHaveLength(1);
    expect(all.filter((m) => m === "model published by another puller")).toHaveLength(1);
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
    expect(existsSync(join(state, "lock"))).toBe(false);
  });

  it("a fresh puller recovers after one was killed mid-download (stale lock, leftovers)", async () => {
    server.route("/resnet.onnx", (req, res, n) => serveBytes(req, res, DATA, n === 1 ? { stallAfter: 100_000 } : {}));
    const victim = await startCli([server.url("/resnet.onnx"), dest, "--idle-timeout", "1h"]);
    await waitFor(() => server.hits("/resnet.onnx").length === 1 && existsSync(join(state, "lock")), "the first puller to download");
    await waitFor(() => readdirSync(state).some((n) => n.startsWith("tmp-")), "a staging directory");
    victim.child.kill("SIGKILL");
    const killed = await victim.done;
    expect(killed.signal).toBe("SIGKILL");
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(join(state, "lock"))).toBe(true);

    const fresh = await runCli([server.url("/resnet.onnx"), dest]);
    expect(fresh.code).toBe(0);
    expect(fresh.logs.find((l) => l.msg === "taking over a stale lock")).toMatchObject({ reason: "holder process is gone" });
    expect(msgs(fresh.logs)).toContain("removing leftover of an interrupted run");
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
    expect(readdirSync(state).filter((n) => !n.startsWith("v-"))).toEqual([]);
  });

  it("on SIGTERM stops, cleans up, releases the lock and exits 143", async () => {
    server.route("/resnet.onnx", (req, res) => serveBytes(req, res, DATA, { stallAfter: 50_000 }));
    const p = await startCli([server.url("/resnet.onnx"), dest, "--idle-timeout", "1h"]);
    await waitFor(() => server.hits("/resnet.onnx").length === 1, "the download to start");
    p.child.kill("SIGTERM");
    const r = await p.done;
    expect(r.code).toBe(143);
    expect(r.logs.find((l) => l.level === "error")?.msg).toMatch(/interrupted by SIGTERM/);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(state)).toEqual([]);
  });

  it("logs structured progress lines when stderr is not a TTY", async () => {
    server.route("/resnet.onnx", (req, res) => serveBytes(req, res, DATA, { slow: { chunk: 20_000, delayMs: 15 } }));
    const r = await runCli([server.url("/resnet.onnx"), dest, "--progress-interval", "50ms"]);
    expect(r.code).toBe(0);
    const progress = r.logs.filter((l) => l.msg === "progress");
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]).toMatchObject({ totalBytes: DATA.length });
    for (const key of ["bytes", "percent", "bytesPerSecond", "etaSeconds", "rate"]) expect(progress[0]).toHaveProperty(key);
  });

  it("keeps secrets out of its output", async () => {
    server.route("/resnet.onnx", (req, res) => serveBytes(req, res, DATA));
    const url = server.url("/resnet.onnx?X-Amz-Signature=sig-0123456789&X-Amz-Credential=AKIA1234").replace("http://", "http://user:pw-secret-42@");
    const r = await runCli([url, dest, "--log-level", "debug"], { AWS_SECRET_ACCESS_KEY: "aws-secret-987654", PULLER_HTTP_AUTHORIZATION: "Bearer bearer-555555" });
    expect(r.code).toBe(0);
    for (const s of ["sig-0123456789", "AKIA1234", "pw-secret-42", "aws-secret-987654", "bearer-555555"]) expect(r.stderr).not.toContain(s);
    expect((await readMarker(dest))?.source).not.toContain("sig-0123456789");
  });
});
