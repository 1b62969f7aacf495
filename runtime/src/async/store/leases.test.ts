/**
 * The request state machine's leases (runtime/migrations/002_request_leases.sql),
 * on both stores: PostgreSQL (a real server) and PGlite. Who may claim a
 * request, what the sweeper takes over (and that two sweepers never take the
 * same request), the outbox, and refunds. Leases are short and waited out by
 * the database's clock; nothing depends on the machine's speed.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type TestPostgres } from "../../testing/postgres.js";
import { windowStart, type NewAsyncRequest, type RequestStore } from "../types.js";
import { PgliteStore } from "./pglite.js";
import { PostgresStore } from "./postgres.js";

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined } as never;

let server: TestPostgres;
let databases = 0;

async function freshDatabase(): Promise<string> {
  const name = `leases_test_${process.pid}_${++databases}`;
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

const WINDOW = windowStart(new Date(), 3600);
const SHORT = 0.2;
/** Longer than SHORT leases, by the wall clock the database also follows. */
const expire = () => new Promise((r) => setTimeout(r, 400));

function newRequest(id: string, over: Partial<NewAsyncRequest> = {}): NewAsyncRequest {
  return { id, userId: "alice", model: "simple", inputBytes: 10, tokens: 5, request: { inputs: [] }, ...over };
}

const backends: Array<{ name: string; open: () => Promise<RequestStore> }> = [
  { name: "PostgresStore", open: async () => PostgresStore.create({ connectionString: await freshDatabase(), logger: silent }) },
  { name: "PgliteStore", open: () => PgliteStore.create() },
];

describe.each(backends)("$name: leases", ({ open }) => {
  let store: RequestStore;
  beforeAll(async () => {
    store = await open();
    await store.migrate();
  }, 30_000);
  afterAll(() => store?.close());

  it("completes only in the expected state and attempt, checked in the write itself", async () => {
    await store.createRequest(newRequest("x1"), WINDOW, { worker: "A", leaseSeconds: 30 });
    const expected = (attempt: number) => ({ expected: { states: ["running"] as const, attempt } });
    // Still queued: a result expecting a running request changes nothing.
    expect(await store.complete("x1", { status: "succeeded", response: { forged: true } }, expected(1))).toMatchObject({ changed: false, record: { status: "queued" } });
    await store.markRunning("x1", { worker: "A", leaseSeconds: 30, maxAttempts: 3 });
    // Attempt 1 is running: a result of another attempt changes nothing, the right one is recorded.
    expect(await store.complete("x1", { status: "succeeded", response: { late: true } }, expected(2))).toMatchObject({ changed: false, record: { status: "running", attempts: 1 } });
    expect(await store.complete("x1", { status: "succeeded", response: { ok: true } }, expected(1))).toMatchObject({ changed: true, record: { status: "succeeded", response: { ok: true } } });
  });

  it("a running request under a live lease is busy for another worker, claimable by its own and by anyone once the lease expired", async () => {
    await store.createRequest(newRequest("c1"), WINDOW, { worker: "A", leaseSeconds: 30 });
    const a = await store.markRunning("c1", { worker: "A", leaseSeconds: SHORT, maxAttempts: 3 });
    expect(a).toMatchObject({ changed: true, record: { status: "running", attempts: 1 } });
    expect(await store.markRunning("c1", { worker: "B", leaseSeconds: 30, maxAttempts: 3 })).toMatchObject({ changed: false, refused: "busy" });
    await expire();
    expect(await store.markRunning("c1", { worker: "B", leaseSeconds: 30, maxAttempts: 3 })).toMatchObject({ changed: true, record: { attempts: 2 } });
    // Renewed by its holder, it stays B's.
    expect(await store.renewLeases({ worker: "B", leaseSeconds: 30, ids: ["c1"] })).toBe(1);
    expect(await store.renewLeases({ worker: "A", leaseSeconds: 30 })).toBe(0);
    expect(await store.markRunning("c1", { worker: "A", leaseSeconds: 30, maxAttempts: 3 })).toMatchObject({ changed: false, refused: "busy" });
    await store.complete("c1", { status: "succeeded", response: { ok: true } });
    expect(await store.markRunning("c1", { worker: "A", leaseSeconds: 30, maxAttempts: 3 })).toMatchObject({ changed: false, refused: "finished" });
  });

  it("the sweeper re-queues stranded requests, once, and fails (and refunds) those whose attempts are spent", async () => {
    const window = new Date(WINDOW.getTime() - 3600_000 * 24); // a window of its own
    await store.createRequest(newRequest("s1", { userId: "sam" }), window, { worker: "dead", leaseSeconds: SHORT });
    await store.createRequest(newRequest("s2", { userId: "sam" }), window, { worker: "dead", leaseSeconds: SHORT });
    await store.markRunning("s2", { worker: "dead", leaseSeconds: SHORT, maxAttempts: 1 });
    await store.createRequest(newRequest("s3", { userId: "sam" }), window, { worker: "alive", leaseSeconds: 30 });
    expect(await store.usage("sam", window)).toEqual({ requests: 3, tokens: 15 });
    await expire();
    // Two sweepers at once: each stranded request is taken by exactly one of them.
    const [x, y] = await Promise.all([
      store.sweep({ worker: "X", leaseSeconds: 30, maxAttempts: 1, scope: "lease" }),
      store.sweep({ worker: "Y", leaseSeconds: 30, maxAttempts: 1, scope: "lease" }),
    ]);
    const requeued = [...x.requeued, ...y.requeued].map((r) => r.id).filter((id) => id.startsWith("s"));
    const failed = [...x.failed, ...y.failed].filter((f) => f.record.id.startsWith("s"));
    expect(requeued).toEqual(["s1"]);
    expect(failed.map((f) => [f.record.id, f.record.status, f.refunded])).toEqual([["s2", "failed", true]]);
    expect(failed[0]!.record.error).toMatch(/^abandoned after 1 attempt: .*ASYNC_MAX_ATTEMPTS/);
    // The refund: s2 no longer counts; the others do.
    expect(await store.usage("sam", window)).toEqual({ requests: 2, tokens: 10 });
    // s1 is now held by its sweeper (a live lease): nobody takes it again; s3's holder is alive.
    const again = await store.sweep({ worker: "Z", leaseSeconds: 30, maxAttempts: 1, scope: "lease" });
    expect([...again.requeued, ...again.failed.map((f) => f.record)].map((r) => r.id).filter((id) => id.startsWith("s"))).toEqual([]);
    // A failure recorded later changes nothing, and refunds nothing again.
    expect(await store.complete("s2", { status: "failed", error: "late" }, { refund: true })).toMatchObject({ changed: false });
    expect(await store.usage("sam", window)).toEqual({ requests: 2, tokens: 10 });
  });

  it("scope all takes every unfinished request of other workers at once (one process per database: PGlite at start-up)", async () => {
    await store.createRequest(newRequest("a1"), WINDOW, { worker: "old", leaseSeconds: 30 });
    await store.createRequest(newRequest("a2"), WINDOW, { worker: "me", leaseSeconds: 30 });
    const { requeued } = await store.sweep({ worker: "me", leaseSeconds: 30, maxAttempts: 3, scope: "all" });
    const ids = requeued.map((r) => r.id);
    expect(ids).toContain("a1");
    expect(ids).not.toContain("a2");
    await store.complete("a1", { status: "succeeded", response: null });
    await store.complete("a2", { status: "succeeded", response: null });
  });

  it("the outbox: a queued request confirmed published is the Broker's; one never confirmed is published again after its lease", async () => {
    await store.createRequest(newRequest("o1"), WINDOW, { worker: "P", leaseSeconds: SHORT });
    await store.createRequest(newRequest("o2"), WINDOW, { worker: "P", leaseSeconds: SHORT });
    await store.markPublished("o1", "P");
    await expire();
    const { requeued } = await store.sweep({ worker: "Q", leaseSeconds: 30, maxAttempts: 3, scope: "outbox" });
    const ids = requeued.map((r) => r.id).filter((id) => id.startsWith("o"));
    expect(ids).toEqual(["o2"]);
    // Given back to the Broker after a transient failure: claimable at once by any worker.
    await store.markRunning("o1", { worker: "P", leaseSeconds: 30, maxAttempts: 3 });
    await store.releaseLease("o1", { worker: "P", leaseSeconds: 30 });
    expect(await store.markRunning("o1", { worker: "R", leaseSeconds: 30, maxAttempts: 3 })).toMatchObject({ changed: true, record: { attempts: 2 } });
  });

  it("a claim refuses a request whose attempts are spent", async () => {
    await store.createRequest(newRequest("e1"), WINDOW, { worker: "A", leaseSeconds: SHORT });
    await store.markRunning("e1", { worker: "A", leaseSeconds: SHORT, maxAttempts: 1 });
    await expire();
    expect(await store.markRunning("e1", { worker: "B", leaseSeconds: 30, maxAttempts: 1 })).toMatchObject({ changed: false, refused: "exhausted" });
    const done = await store.complete("e1", { status: "failed", error: "abandoned" }, { refund: true });
    expect(done).toMatchObject({ changed: true, refunded: true });
  });
});
