/**
 * "Every 202 ends": real server processes (`tsx runtime/src/main.ts`) with
 * asynchronous inference and the in-process queue, killed with SIGKILL after
 * accepting requests or while running them, then restarted (the embedded
 * PGlite store kept in PGLITE_DATA_DIR, or a real PostgreSQL); and two replicas
 * sharing PostgreSQL and Redis, one killed mid-run. Every accepted request ends
 * succeeded or failed (with a reason) within a bounded time, and is counted
 * once in usage (and in the quota counter), or not at all when the platform
 * failed it before it could run.
 *
 * Short leases (ASYNC_LEASE_SECONDS=2, sweep every 0.5 s) keep the tests quick;
 * nothing here times the machine: "mid-run" is observed (a request reported
 * running), and the bound on the end is generous.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeRepository, slowModel, writeRepository } from "../testing/fixtures.js";
import { startPostgres, type TestPostgres } from "../testing/postgres.js";
import { startRedis, type RedisServer } from "../testing/redis.js";
import { Sink } from "../cloudevents/testing.js";
import { counterValues, deliverReply, deliverToWorker, getFrom, postJsonTo, TEST_RESULTS_TOKEN, waitForFinal } from "./testing.js";

const main = join(import.meta.dirname, "../main.ts");
const WIDTH = 512;
const LAYERS = 320;
/**
 * Rows per request: about 50 GFLOP, a second or more of compute each (slowModel), so that a kill
 * sent as soon as a request is seen running lands while it, and those queued behind it, are unfinished.
 */
const ROWS = 300;
/** How long every accepted request may take to end after the restart (lease 2 s + sweeps + the runs themselves, with a wide margin). */
const END_BOUND_MS = 90_000;

const LEASE = { ASYNC_LEASE_SECONDS: "2", ASYNC_SWEEP_SECONDS: "0.5" };

let repo: string;
let postgres: TestPostgres;
let databases = 0;

beforeAll(async () => {
  repo = await writeRepository({ "slow/1/model.onnx": slowModel(LAYERS, WIDTH) });
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  await postgres?.stop();
  await removeRepository(repo);
});

async function freshDatabase(): Promise<string> {
  const name = `durability_${process.pid}_${++databases}`;
  const admin = new pg.Client({ connectionString: postgres.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return postgres.url.replace(/\/postgres$/, `/${name}`);
}

interface Server {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<unknown>;
}

const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) child.kill("SIGKILL");
});

/** A server process; resolves once its models are loaded and its async API answers (the store is open). */
async function startServer(env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, ["--import", "tsx", main], {
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", MODEL_REPOSITORY: repo, LOG_LEVEL: "info", ASYNC_INFERENCE: "true", ...LEASE, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  const exited = new Promise((resolve) => child.once("exit", resolve)).finally(() => running.delete(child));
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
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = (await fetch(`${url}/v2/health/ready`)).status === 200;
    const store = (await fetch(`${url}/api/v1/users/alice/usage`)).status === 200;
    if (ready && store) break;
    if (Date.now() > deadline) throw new Error(`server not ready: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url, output: () => output, exited };
}

async function kill(server: Server): Promise<void> {
  server.child.kill("SIGKILL");
  await server.exited;
}

const body = JSON.stringify({ inputs: [{ name: "INPUT", shape: [ROWS, WIDTH], datatype: "FP32", data: new Array(ROWS * WIDTH).fill(1) }] });

/** Submits n slow requests for alice; their ids (each answered 202). */
async function submit(url: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await postJsonTo(`${url}/v2/models/slow/infer`, body, { prefer: "respond-async", "x-user-id": "alice" });
    expect(res.status, res.body).toBe(202);
    ids.push(res.json.request_id as string);
  }
  return ids;
}

/**
 * Polls until one of the requests is reported running (true), or all of them have ended (false:
 * on a starved machine the polls can miss every run; the caller then submits more).
 */
async function untilRunning(url: string, ids: string[]): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const statuses = await Promise.all(ids.map(async (id) => (await getFrom(`${url}/api/v1/requests/${id}`)).json.status as string));
    if (statuses.includes("running")) return true;
    if (statuses.every((s) => s === "succeeded" || s === "failed")) return false;
    if (Date.now() > deadline) throw new Error(`no request running: ${statuses.join(", ")}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function finals(url: string, ids: string[]): Promise<any[]> {
  return Promise.all(ids.map((id) => waitForFinal(url, id, END_BOUND_MS)));
}

async function usage(url: string): Promise<{ requests: number; tokens: number }> {
  const res = await getFrom(`${url}/api/v1/users/alice/usage`);
  expect(res.status, res.body).toBe(200);
  return { requests: res.json.requests as number, tokens: res.json.tokens as number };
}

/** Rows of the requests table by status (PostgreSQL). */
async function statusCounts(databaseUrl: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ status: string; n: number }>("SELECT status, count(*)::int AS n FROM requests GROUP BY status");
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  } finally {
    await client.end();
  }
}

describe("every 202 ends: SIGKILL and restart, embedded PGlite store (PGLITE_DATA_DIR kept)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "durability-pglite-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("killed right after accepting, then killed mid-run: after each restart every request ends succeeded, counted once", { timeout: 300_000 }, async () => {
    const env = { PGLITE_DATA_DIR: dir };
    let server = await startServer(env);
    // Killed as soon as the last 202 is out: queued (or just started) requests only.
    const accepted = await submit(server.url, 4);
    await kill(server);

    server = await startServer(env);
    // More work, killed while some of it runs.
    // Whether a poll sees a run depends on the machine's speed, not on the behaviour under test:
    // a batch that ended unseen is followed by another, so the kill still lands mid-run.
    const more: string[] = [];
    for (let batch = 0; ; batch++) {
      const ids = await submit(server.url, 4);
      more.push(...ids);
      if (await untilRunning(server.url, ids)) break;
      if (batch === 4) throw new Error("five batches of slow requests ended before any poll saw one running");
    }
    await kill(server);

    server = await startServer(env);
    try {
      const all = await finals(server.url, [...accepted, ...more]);
      expect(all.map((r) => r.status)).toEqual(new Array(accepted.length + more.length).fill("succeeded"));
      for (const r of all) expect(r.attempts).toBeLessThanOrEqual(3);
      const used = await usage(server.url);
      expect(used.requests).toBe(accepted.length + more.length);
      expect(server.output()).toMatch(/took over stranded asynchronous requests/);
    } finally {
      await kill(server);
    }
  });
});

describe("every 202 ends: SIGKILL and restart, PostgreSQL", () => {
  it("killed right after accepting: the restarted server runs every queued request once its lease has expired", { timeout: 300_000 }, async () => {
    const env = { DATABASE_URL: await freshDatabase() };
    let server = await startServer(env);
    const ids = await submit(server.url, 4);
    await kill(server);
    const stranded = await statusCounts(env.DATABASE_URL);
    expect((stranded.queued ?? 0) + (stranded.running ?? 0)).toBeGreaterThan(0);

    server = await startServer(env);
    try {
      const all = await finals(server.url, ids);
      expect(all.map((r) => r.status)).toEqual(new Array(4).fill("succeeded"));
      expect((await usage(server.url)).requests).toBe(4);
      expect(await statusCounts(env.DATABASE_URL)).toEqual({ succeeded: 4 });
    } finally {
      await kill(server);
    }
  });

  it("killed mid-run with ASYNC_MAX_ATTEMPTS=1: the interrupted runs fail with a reason and are not charged; the queued ones run", { timeout: 300_000 }, async () => {
    const env = { DATABASE_URL: await freshDatabase(), ASYNC_MAX_ATTEMPTS: "1" };
    let server = await startServer(env);
    const ids = await submit(server.url, 4);
    expect(await untilRunning(server.url, ids), "a poll saw a run before the kill").toBe(true);
    await kill(server);
    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    const { rows } = await client.query<{ id: string; status: string }>("SELECT id, status FROM requests");
    await client.end();
    const interrupted = new Set(rows.filter((r) => r.status === "running").map((r) => r.id));
    const done = rows.filter((r) => r.status === "succeeded").length;
    expect(interrupted.size).toBeGreaterThan(0);

    server = await startServer(env);
    try {
      const all = await finals(server.url, ids);
      for (const r of all) {
        if (interrupted.has(r.request_id)) {
          expect(r.status).toBe("failed");
          expect(r.error).toMatch(/^abandoned after 1 attempt: each run was interrupted .*ASYNC_MAX_ATTEMPTS.*not charged/);
        } else {
          expect(r.status).toBe("succeeded");
        }
      }
      // Charged once per request that ran to the end; the abandoned ones were refunded.
      expect((await usage(server.url)).requests).toBe(ids.length - interrupted.size);
      expect(ids.length - interrupted.size).toBeGreaterThanOrEqual(done);
    } finally {
      await kill(server);
    }
  });
});

describe("every 202 ends: two replicas sharing PostgreSQL and Redis (quota on)", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  }, 30_000);
  afterAll(() => redis?.close());

  it("one replica killed mid-run: its requests finish on the other, each counted once in usage and in the quota counter", { timeout: 300_000 }, async () => {
    const env = { DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, QUOTA_REQUESTS: "100" };
    const [a, b] = await Promise.all([startServer(env), startServer(env)]);
    try {
      const ids = await submit(a.url, 4);
      expect(await untilRunning(a.url, ids), "a poll saw a run before the kill").toBe(true);
      await kill(a);

      const all = await finals(b.url, ids);
      expect(all.map((r) => r.status)).toEqual(new Array(4).fill("succeeded"));
      expect(Math.max(...all.map((r) => r.attempts as number))).toBeGreaterThanOrEqual(2);
      expect((await counterValues(b.url, "inference_server_async_requests_total", "event")).requeued).toBeGreaterThan(0);
      expect((await usage(b.url)).requests).toBe(4);
      // The quota counter (Redis) was charged once per request: exactly 4 in alice's window(s).
      const { Redis } = await import("ioredis");
      const client = new Redis(redis.url);
      try {
        const keys = await client.keys("quota:{alice}:*");
        let counted = 0;
        for (const key of keys) counted += Number(await client.hget(key, "requests"));
        expect(counted).toBe(4);
      } finally {
        client.disconnect();
      }
    } finally {
      await kill(b);
      if (a.child.exitCode === null && a.child.signalCode === null) await kill(a);
    }
  });
});

describe("every 202 ends: the Broker's outbox", () => {
  it("killed between the insert and the Broker's answer: the request is published again after its lease, then runs and is recorded", { timeout: 300_000 }, async () => {
    const sink = await Sink.start();
    // The Broker takes the event but never answers: the publication is in flight when the server dies.
    sink.behaviour = () => undefined;
    const env = { DATABASE_URL: await freshDatabase(), ASYNC_SINK: sink.url, RESULTS_TOKEN: TEST_RESULTS_TOKEN };
    let server = await startServer(env);
    try {
      const submitted = postJsonTo(`${server.url}/v2/models/slow/infer`, body, { prefer: "respond-async", "x-user-id": "alice" }).catch(() => undefined);
      while (sink.attempts === 0) await new Promise((r) => setTimeout(r, 10));
      await kill(server);
      await submitted;
      const client = new pg.Client({ connectionString: env.DATABASE_URL });
      await client.connect();
      const { rows } = await client.query<{ id: string; status: string; published_at: Date | null }>("SELECT id, status, published_at FROM requests");
      await client.end();
      expect(rows).toEqual([{ id: expect.any(String), status: "queued", published_at: null }]);
      const id = rows[0]!.id;

      sink.behaviour = (_req, res) => void res.writeHead(202).end();
      server = await startServer(env);
      const deadline = Date.now() + END_BOUND_MS;
      while (!sink.received.some((r) => r.event.id === id)) {
        if (Date.now() > deadline) throw new Error("the request was never published again");
        await new Promise((r) => setTimeout(r, 20));
      }
      const event = sink.received.find((r) => r.event.id === id)!;
      const reply = await deliverToWorker(server.url, event);
      expect(reply.status, reply.body).toBe(200);
      expect((await deliverReply(server.url, reply)).json).toMatchObject({ request_id: id, recorded: true });
      expect(await waitForFinal(server.url, id, END_BOUND_MS)).toMatchObject({ status: "succeeded" });
      expect((await usage(server.url)).requests).toBe(1);
    } finally {
      await kill(server);
      await sink.close();
    }
  });
});
