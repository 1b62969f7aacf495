/**
 * One behaviour suite, run against both request stores: PostgreSQL (a real
 * server, runtime/src/testing/postgres.ts) and PGlite (in-process). Then what
 * only PostgreSQL has: several replicas migrating at once, and a server restart
 * in the middle of the run.
 */
import { mkdtemp, rm, writeFile, readFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type TestPostgres } from "../../testing/postgres.js";
import { windowStart, type NewAsyncRequest, type RequestStore } from "../types.js";
import { MigrationError, loadMigrations, migrationsDirectory } from "./migrate.js";
import { main as migrateCli } from "./migrate-cli.js";
import { PgliteStore } from "./pglite.js";
import { PostgresStore, isTransientError } from "./postgres.js";
import { openRequestStore } from "./index.js";

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined } as never;

let server: TestPostgres;
let databases = 0;

/** A fresh, empty database on the test server (each suite gets its own). */
async function freshDatabase(): Promise<string> {
  const name = `store_test_${process.pid}_${++databases}`;
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return server.url.replace(/\/postgres$/, `/${name}`);
}

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const WINDOW = 3600;
const T0 = windowStart(new Date("2030-01-01T10:20:00Z"), WINDOW);

function newRequest(id: string, over: Partial<NewAsyncRequest> = {}): NewAsyncRequest {
  return { id, userId: "alice", model: "simple", inputBytes: 120, tokens: 32, request: { inputs: [{ name: "INPUT0", data: [1, 2] }] }, ...over };
}

const backends: Array<{ name: string; open: () => Promise<RequestStore> }> = [
  { name: "PostgresStore", open: async () => PostgresStore.create({ connectionString: await freshDatabase(), logger: silent }) },
  { name: "PgliteStore", open: () => PgliteStore.create() },
];

describe.each(backends)("$name", ({ open }) => {
  let store: RequestStore;

  beforeAll(async () => {
    store = await open();
  }, 30_000);
  afterAll(async () => {
    await store?.close();
  });

  it("applies the migrations once; a second run applies nothing", async () => {
    const files = (await readdir(migrationsDirectory())).filter((f) => f.endsWith(".sql")).sort();
    expect(await store.migrate()).toEqual({ applied: files });
    expect(await store.migrate()).toEqual({ applied: [] });
  });

  it("records a queued request and counts it in its user's window, once per id", async () => {
    const before = Date.now();
    const first = await store.createRequest(newRequest("r1", { modelVersion: "2" }), T0);
    expect(first.created).toBe(true);
    expect(first.record).toMatchObject({ id: "r1", userId: "alice", model: "simple", modelVersion: "2", status: "queued", inputBytes: 120, tokens: 32, attempts: 0 });
    expect(first.record.createdAt).toBeInstanceOf(Date);
    expect(first.record.createdAt.getTime()).toBeGreaterThanOrEqual(before - 5_000);
    expect(first.record.startedAt).toBeUndefined();
    expect(first.record.finishedAt).toBeUndefined();
    expect(first.record.response).toBeUndefined();
    expect(first.record.error).toBeUndefined();
    expect(await store.usage("alice", T0)).toEqual({ requests: 1, tokens: 32 });

    // Redelivered submission: same id, even with other contents: nothing changes.
    const again = await store.createRequest(newRequest("r1", { tokens: 999, userId: "mallory" }), T0);
    expect(again.created).toBe(false);
    expect(again.record).toEqual(first.record);
    expect(await store.usage("alice", T0)).toEqual({ requests: 1, tokens: 32 });
    expect(await store.usage("mallory", T0)).toEqual({ requests: 0, tokens: 0 });
    expect(await store.getRequest("r1")).toEqual(first.record);
  });

  it("leaves modelVersion undefined when the client did not ask for one", async () => {
    const { record } = await store.createRequest(newRequest("r-noversion"), T0);
    expect("modelVersion" in record).toBe(false);
    expect((await store.getRequest("r-noversion"))!.modelVersion).toBeUndefined();
  });

  it("moves queued → running → succeeded; the first completion wins", async () => {
    await store.createRequest(newRequest("r2"), T0);
    const running = await store.markRunning("r2");
    expect(running!.changed).toBe(true);
    expect(running!.record).toMatchObject({ status: "running", attempts: 1 });
    const startedAt = running!.record.startedAt!;
    expect(startedAt).toBeInstanceOf(Date);

    // Redelivery to the worker: still running, one more attempt, the first start time kept.
    const redelivered = await store.markRunning("r2");
    expect(redelivered!.changed).toBe(true);
    expect(redelivered!.record.attempts).toBe(2);
    expect(redelivered!.record.startedAt).toEqual(startedAt);

    const response = { model_name: "simple", outputs: [{ name: "OUTPUT0", datatype: "INT32", shape: [1, 2], data: [2, 3] }] };
    const done = await store.complete("r2", { status: "succeeded", response });
    expect(done!.changed).toBe(true);
    expect(done!.record).toMatchObject({ status: "succeeded", response, attempts: 2 });
    expect(done!.record.finishedAt).toBeInstanceOf(Date);
    expect(done!.record.error).toBeUndefined();

    const late = await store.complete("r2", { status: "failed", error: "worker timed out" });
    expect(late!.changed).toBe(false);
    expect(late!.record).toEqual(done!.record);

    // A finished request is not started again.
    const restart = await store.markRunning("r2");
    expect(restart).toEqual({ record: done!.record, changed: false });
    expect(await store.getRequest("r2")).toEqual(done!.record);
  });

  it("records failures, and completes a request still queued", async () => {
    await store.createRequest(newRequest("r3"), T0);
    const failed = await store.complete("r3", { status: "failed", error: "model simple version 9 not found" });
    expect(failed!.changed).toBe(true);
    expect(failed!.record).toMatchObject({ status: "failed", error: "model simple version 9 not found", attempts: 0 });
    expect(failed!.record.response).toBeUndefined();
    expect(failed!.record.startedAt).toBeUndefined();
    const again = await store.complete("r3", { status: "succeeded", response: {} });
    expect(again).toEqual({ record: failed!.record, changed: false });
  });

  it("answers undefined for unknown ids", async () => {
    expect(await store.getRequest("nope")).toBeUndefined();
    expect(await store.markRunning("nope")).toBeUndefined();
    expect(await store.complete("nope", { status: "succeeded", response: {} })).toBeUndefined();
  });

  it("keeps usage per user and per window, and adds synchronous usage", async () => {
    const t1 = new Date(T0.getTime() + WINDOW * 1000);
    await store.createRequest(newRequest("u1", { userId: "bob", tokens: 10 }), T0);
    await store.createRequest(newRequest("u2", { userId: "bob", tokens: 5 }), T0);
    await store.createRequest(newRequest("u3", { userId: "bob", tokens: 7 }), t1);
    await store.createRequest(newRequest("u4", { userId: "carol", tokens: 1 }), t1);
    expect(await store.usage("bob", T0)).toEqual({ requests: 2, tokens: 15 });
    expect(await store.usage("bob", t1)).toEqual({ requests: 1, tokens: 7 });
    expect(await store.usage("carol", T0)).toEqual({ requests: 0, tokens: 0 });
    expect(await store.usage("carol", t1)).toEqual({ requests: 1, tokens: 1 });

    await store.addUsage("bob", T0, { requests: 3, tokens: 300 });
    await store.addUsage("dave", T0, { requests: 1, tokens: 2 });
    await store.addUsage("dave", T0, { requests: 0, tokens: 0 });
    expect(await store.usage("bob", T0)).toEqual({ requests: 5, tokens: 315 });
    expect(await store.usage("dave", T0)).toEqual({ requests: 1, tokens: 2 });
    // Big counts stay exact numbers (bigint columns come back as numbers, not strings).
    await store.addUsage("erin", T0, { requests: 1, tokens: 2 ** 40 });
    expect(await store.usage("erin", T0)).toEqual({ requests: 1, tokens: 2 ** 40 });
  });

  it("round-trips requests and responses as JSON: nested, unicode, arrays, scalars", async () => {
    const request = {
      id: "client-id",
      parameters: { nested: { deeper: [1, [2, [3, { x: null }]]], flag: true }, text: "héllo wörld — 日本語 🚀", quote: 'a "b" \\ c' },
      inputs: [{ name: "TEXT", datatype: "BYTES", shape: [2], data: ["ünïcödé", "emoji 🎉 and\nnewline\ttab"] }],
      big: 1.5e300,
      negative: -0.25,
    };
    const { record } = await store.createRequest(newRequest("json1", { request }), T0);
    expect(record.request).toEqual(request);
    expect((await store.getRequest("json1"))!.request).toEqual(request);

    const response = [{ outputs: [{ data: [0.1, 2.5e-10, -3] }] }, "ok", 42, null];
    const done = await store.complete("json1", { status: "succeeded", response });
    expect(done!.record.response).toEqual(response);
    expect((await store.getRequest("json1"))!.response).toEqual(response);

    const { record: scalar } = await store.createRequest(newRequest("json2", { request: "just a string" }), T0);
    expect(scalar.request).toBe("just a string");
    const { record: list } = await store.createRequest(newRequest("json3", { request: [1, "two", { three: 3 }] }), T0);
    expect(list.request).toEqual([1, "two", { three: 3 }]);
  });

  it("creates exactly once when many submit the same id at the same time", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => store.createRequest(newRequest("same", { userId: "frank", tokens: 4 }), T0)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    for (const r of results) expect(r.record).toEqual(results[0]!.record);
    expect(await store.usage("frank", T0)).toEqual({ requests: 1, tokens: 4 });

    const completions = await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.complete("same", i % 2 ? { status: "failed", error: `e${i}` } : { status: "succeeded", response: { i } })),
    );
    expect(completions.filter((c) => c!.changed)).toHaveLength(1);
    const final = await store.getRequest("same");
    for (const c of completions) expect(c!.record).toEqual(final);
  });

  it("refuses a database whose schema is newer than this build", async () => {
    const dir = await mkdtemp(join(tmpdir(), "migrations-"));
    try {
      // This build's migrations plus one from a later release.
      for (const m of await loadMigrations()) await writeFile(join(dir, m.name), await readFile(join(migrationsDirectory(), m.name), "utf8"));
      await writeFile(join(dir, "999_from_the_future.sql"), "CREATE TABLE from_the_future (x int);");
      // A newer release migrates the shared database...
      const newer = await reopenWith(store, { directory: dir });
      expect(await newer.migrate()).toEqual({ applied: ["999_from_the_future.sql"] });
      if (newer !== store) await newer.close();
      // ...and this build then refuses to use it.
      const error = await store.migrate().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as Error).message).toMatch(/the database schema is newer than this build: it has migration 999_from_the_future\.sql/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** The same database through a store built with other migrations (PGlite: the same in-process database). */
async function reopenWith(store: RequestStore, migrations: { directory: string }): Promise<RequestStore> {
  if (store instanceof PostgresStore) {
    const url = (store as unknown as { db: { pool: { options: { connectionString: string } } } }).db.pool.options.connectionString;
    return PostgresStore.create({ connectionString: url, logger: silent, migrations });
  }
  // PGlite cannot be opened twice: the same SqlClient with the other migrations.
  const { SqlRequestStore } = await import("./sql-store.js");
  const db = (store as unknown as { db: ConstructorParameters<typeof SqlRequestStore>[1] }).db;
  return new SqlRequestStore("pglite", db, { migrations, close: async () => undefined });
}

describe("migrations", () => {
  it("refuses a changed migration file, and a file with a bad name", async () => {
    const url = await freshDatabase();
    const store = await PostgresStore.create({ connectionString: url, logger: silent });
    const dir = await mkdtemp(join(tmpdir(), "migrations-"));
    try {
      await store.migrate();
      const original = await loadMigrations();
      for (const m of original) await writeFile(join(dir, m.name), `${m.sql}\n-- edited afterwards\n`);
      const edited = await PostgresStore.create({ connectionString: url, logger: silent, migrations: { directory: dir } });
      await expect(edited.migrate()).rejects.toThrow(/has changed since it was applied/);
      await edited.close();
      await writeFile(join(dir, "two.sql"), "SELECT 1;");
      await expect(loadMigrations(dir)).rejects.toThrow(/must be <number>_<name>\.sql/);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("applies a failing migration not at all", async () => {
    const url = await freshDatabase();
    const store = await PostgresStore.create({
      connectionString: url,
      logger: silent,
      migrations: { migrations: [{ version: 1, name: "001_broken.sql", sql: "CREATE TABLE half (x int); SELECT no_such_function();", checksum: "x" }] },
    });
    try {
      await expect(store.migrate()).rejects.toThrow(/migration 001_broken\.sql failed \(nothing of it was applied\)/);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const { rows } = await client.query("SELECT to_regclass('half') AS half, (SELECT count(*) FROM schema_migrations)::int AS n");
      await client.end();
      expect(rows[0]).toEqual({ half: null, n: 0 });
    } finally {
      await store.close();
    }
  });

  it("lets a migration run longer than the pool's query timeout", async () => {
    const store = await PostgresStore.create({
      connectionString: await freshDatabase(),
      logger: silent,
      queryTimeoutMs: 100,
      migrations: { migrations: [{ version: 1, name: "001_slow.sql", sql: "SELECT pg_sleep(0.3); CREATE TABLE slow (x int);", checksum: "s" }] },
    });
    try {
      expect(await store.migrate()).toEqual({ applied: ["001_slow.sql"] });
      // Ordinary statements keep the limit.
      const error = await store.getRequest("x").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error); // no requests table in this schema: an SQL error, not retried
    } finally {
      await store.close();
    }
  });

  it("lets exactly one of several replicas starting at once apply them", async () => {
    const url = await freshDatabase();
    const replicas = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.create({ connectionString: url, logger: silent })));
    try {
      const results = await Promise.all(replicas.map((r) => r.migrate()));
      const files = (await loadMigrations()).map((m) => m.name);
      expect(results.filter((r) => r.applied.length > 0)).toEqual([{ applied: files }]);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });

  it("migrate CLI: applies, then reports nothing to apply; clear errors", async () => {
    const url = await freshDatabase();
    const capture = () => {
      let text = "";
      return { stream: { write: (s: string) => (text += s) }, text: () => text };
    };
    let out = capture();
    let err = capture();
    expect(await migrateCli([], { DATABASE_URL: url }, out.stream, err.stream)).toBe(0);
    expect(out.text()).toMatch(/applied 2 migration\(s\) to postgres:\/\/REDACTED@127\.0\.0\.1:\d+\/store_test_\w+:\n {2}001_requests_and_usage\.sql\n {2}002_request_leases\.sql\n/);
    out = capture();
    expect(await migrateCli([], { DATABASE_URL: url }, out.stream, err.stream)).toBe(0);
    expect(out.text()).toMatch(/is up to date; nothing to apply/);

    err = capture();
    expect(await migrateCli([], {}, out.stream, err.stream)).toBe(2);
    expect(err.text()).toMatch(/DATABASE_URL is not set/);

    err = capture();
    const closedPort = `postgres://postgres:s3cret@127.0.0.1:1/postgres`;
    expect(await migrateCli([], { DATABASE_URL: closedPort, MIGRATE_RETRY_MS: "200" }, out.stream, err.stream)).toBe(1);
    expect(err.text()).toMatch(/cannot migrate postgres:\/\/REDACTED@127\.0\.0\.1:1\/postgres: .*ECONNREFUSED/);
    expect(err.text()).not.toMatch(/s3cret/);
  });
});

describe("openRequestStore", () => {
  it("opens PostgreSQL with a URL and PGlite without, migrated, and says which", async () => {
    const lines: string[] = [];
    const logger = { info: (_o: unknown, m: string) => lines.push(m), warn: (_o: unknown, m: string) => lines.push(m), error: () => undefined } as never;
    const pgStore = await openRequestStore({ databaseUrl: await freshDatabase(), logger });
    expect(pgStore.kind).toBe("postgres");
    expect(await pgStore.migrate()).toEqual({ applied: [] });
    await pgStore.close();
    const dir = await mkdtemp(join(tmpdir(), "pglite-"));
    try {
      const lite = await openRequestStore({ pgliteDir: dir, logger });
      expect(lite.kind).toBe("pglite");
      await lite.createRequest(newRequest("kept"), T0);
      await lite.close();
      const reopened = await openRequestStore({ pgliteDir: dir, logger });
      expect((await reopened.getRequest("kept"))?.status).toBe("queued");
      await reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(lines.join("\n")).toMatch(/request store: PostgreSQL/);
    expect(lines.join("\n")).toMatch(/no DATABASE_URL: using the embedded PGlite store; data is kept in .*pglite-/);
    expect(lines.join("\n")).toMatch(/applied 2 migration\(s\): 001_requests_and_usage\.sql, 002_request_leases\.sql/);
  }, 30_000);
});

describe("PostgreSQL restarted mid-run", () => {
  it("tells connection failures from SQL errors", () => {
    expect(isTransientError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }))).toBe(true);
    expect(isTransientError(Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" }))).toBe(true);
    expect(isTransientError(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isTransientError(new Error("wrapped", { cause: Object.assign(new Error("x"), { code: "08006" }) }))).toBe(true);
    expect(isTransientError(Object.assign(new Error('relation "x" does not exist'), { code: "42P01" }))).toBe(false);
    expect(isTransientError(Object.assign(new Error("duplicate key"), { code: "23505" }))).toBe(false);
  });

  it("waits out a restart: nothing recorded is lost, a write issued while it is down lands", async () => {
    const warnings: string[] = [];
    const logger = { info: () => undefined, warn: (_o: unknown, m: string) => warnings.push(m), error: () => undefined } as never;
    const store = await PostgresStore.create({ connectionString: await freshDatabase(), logger, retryForMs: 20_000 });
    try {
      await store.migrate();
      for (let i = 0; i < 5; i++) await store.createRequest(newRequest(`before-${i}`, { userId: "gina" }), T0);
      await store.markRunning("before-0");
      await store.complete("before-0", { status: "succeeded", response: { ok: true } });

      await server.halt();
      // Issued while the server is down: it must wait and retry, not fail.
      let settled = false;
      const during = store.createRequest(newRequest("during", { userId: "gina", tokens: 100 }), T0).finally(() => (settled = true));
      const usageDuring = store.addUsage("gina", T0, { requests: 2, tokens: 20 });
      const completeDuring = store.complete("before-1", { status: "failed", error: "boom" });
      await new Promise((r) => setTimeout(r, 1_000));
      expect(settled).toBe(false);
      await server.resume();

      const created = await during;
      expect(created.created).toBe(true);
      await usageDuring;
      expect((await completeDuring)!.changed).toBe(true);

      for (let i = 0; i < 5; i++) expect((await store.getRequest(`before-${i}`))?.id).toBe(`before-${i}`);
      expect((await store.getRequest("before-0"))!).toMatchObject({ status: "succeeded", response: { ok: true } });
      expect((await store.getRequest("before-1"))!).toMatchObject({ status: "failed", error: "boom" });
      expect((await store.getRequest("during"))!.status).toBe("queued");
      expect(await store.usage("gina", T0)).toEqual({ requests: 5 + 1 + 2, tokens: 5 * 32 + 100 + 20 });

      // A full restart between two writes: the pool's dead connections are replaced, no error surfaces.
      await server.restart();
      expect((await store.createRequest(newRequest("after", { userId: "gina" }), T0)).created).toBe(true);
      expect(await store.usage("gina", T0)).toEqual({ requests: 9, tokens: 5 * 32 + 100 + 20 + 32 });
      expect(warnings).toContain("PostgreSQL unreachable; retrying");
      expect(warnings).toContain("PostgreSQL dropped an idle connection"); // handled: the process lives on
    } finally {
      await store.close();
    }
  }, 30_000);

  it("gives up after retryForMs with the connection error", async () => {
    const store = await PostgresStore.create({ connectionString: "postgres://postgres@127.0.0.1:1/postgres", logger: silent, retryForMs: 300 });
    const started = Date.now();
    try {
      await expect(store.getRequest("x")).rejects.toMatchObject({ code: "ECONNREFUSED" });
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await store.close();
    }
  });
});
