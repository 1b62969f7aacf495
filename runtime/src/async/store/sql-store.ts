/**
 * The RequestStore in SQL, once, for both backends: PostgresStore (node-postgres)
 * and PgliteStore (Postgres in-process) differ only in the SqlClient they hand
 * it. Every write is idempotent on the request id: INSERT … ON CONFLICT DO
 * NOTHING, and UPDATEs guarded by the status they may leave.
 */
import { randomUUID } from "node:crypto";
import type { AsyncRequestRecord, ClaimRefusal, Completion, Lease, NewAsyncRequest, RequestStatus, RequestStore, SweepOptions, Usage } from "../types.js";
import { parseJsonExact, stringifyExact } from "../../codecs/json-exact.js";
import { migrate, type MigrateOptions, type Row, type SqlClient, type SqlQuerier } from "./migrate.js";

/**
 * The response is read as text (jsonb keeps JSON numbers as numeric, exact) and parsed
 * here with parseJsonExact: the drivers' own jsonb parsing (JSON.parse) would round
 * INT64/UINT64 values beyond 2^53. The request needs no such care: it is stored in the
 * "queue" encoding, its wide integers as decimal strings (codecs/v2.ts encodeInferenceRequest).
 */
const COLUMNS =
  "id, user_id, model, model_version, status, input_bytes, tokens, attempts, created_at, started_at, finished_at, request, response::text AS response, error, submission";

interface RequestRow {
  id: string;
  user_id: string;
  model: string;
  model_version: string | null;
  status: RequestStatus;
  input_bytes: string | number;
  tokens: string | number;
  attempts: string | number;
  created_at: Date | string;
  started_at: Date | string | null;
  finished_at: Date | string | null;
  request: unknown;
  /** JSON text (response::text). */
  response: string | null;
  error: string | null;
  submission: string | null;
}

/** The lease columns (runtime/migrations/002_request_leases.sql), where a statement needs them. */
interface LeaseRow {
  worker: string | null;
  lease_until: Date | string | null;
  published_at: Date | string | null;
  usage_window: Date | string | null;
  refunded_at: Date | string | null;
  /** lease_until < now(), computed by the database (one clock for every replica). */
  expired: boolean | null;
}

const LEASE_COLUMNS = "worker, lease_until, published_at, usage_window, refunded_at, (lease_until IS NULL OR lease_until < now()) AS expired";

/** now() + seconds, in SQL, for a float8 parameter (the database's clock: the same for every replica). */
const leaseEnd = (param: string) => `now() + make_interval(secs => ${param}::float8)`;

/** Ids as one jsonb parameter (the same for node-postgres and PGlite). */
const IDS = (param: string) => `(SELECT jsonb_array_elements_text(${param}::jsonb))`;

/** bigint columns arrive as text from node-postgres (exact beyond 2^53); counts here never get there. */
const num = (v: string | number | bigint): number => Number(v);
const date = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));

export function toRecord(row: RequestRow): AsyncRequestRecord {
  const record: AsyncRequestRecord = {
    id: row.id,
    userId: row.user_id,
    model: row.model,
    status: row.status,
    inputBytes: num(row.input_bytes),
    tokens: num(row.tokens),
    attempts: num(row.attempts),
    createdAt: date(row.created_at),
    request: row.request,
  };
  if (row.model_version !== null) record.modelVersion = row.model_version;
  if (row.started_at !== null) record.startedAt = date(row.started_at);
  if (row.finished_at !== null) record.finishedAt = date(row.finished_at);
  if (row.response !== null) record.response = parseStoredJson(row.response);
  if (row.error !== null) record.error = row.error;
  return record;
}

/** A stored response (jsonb read as text), parsed exactly: see exactOutputs. */
function parseStoredJson(text: string): unknown {
  return exactOutputs(parseJsonExact(Buffer.from(text, "utf8"), "a stored response"));
}

const TWO_53 = 2 ** 53;

/** An INT64/UINT64 element as a JSON value: an integer a double holds from 2^53 up becomes BigInt; anything else stays. */
function exactElement(value: unknown): unknown {
  if (typeof value === "number" && Number.isInteger(value) && Math.abs(value) >= TWO_53) return BigInt(value);
  if (!Array.isArray(value)) return value;
  let copy: unknown[] | undefined;
  for (let i = 0; i < value.length; i++) {
    const e = value[i];
    const exact = exactElement(e);
    if (exact !== e) (copy ??= value.slice())[i] = exact;
  }
  return copy ?? value;
}

/**
 * A V2 response whose INT64/UINT64 output data is exact for writing with stringifyExact.
 * parseJsonExact gives BigInt only for integers a double cannot hold; one a double holds
 * exactly (-2^63, 2^63, 2^60, …) stays a number, which JSON.stringify would write in its
 * shortest form ("-9223372036854776000": another integer to a 64-bit reader). Those become
 * BigInt too, so their exact digits are written. Other datatypes (FP64 among them) keep
 * their numbers, and their usual text. Copies only what changes.
 */
export function exactOutputs(response: unknown): unknown {
  if (typeof response !== "object" || response === null || Array.isArray(response)) return response;
  const outputs = (response as { outputs?: unknown }).outputs;
  if (!Array.isArray(outputs)) return response;
  let copy: unknown[] | undefined;
  for (let i = 0; i < outputs.length; i++) {
    const output = outputs[i] as { datatype?: unknown; data?: unknown } | null;
    if (typeof output !== "object" || output === null || (output.datatype !== "INT64" && output.datatype !== "UINT64")) continue;
    const data = exactElement(output.data);
    if (data !== output.data) (copy ??= outputs.slice())[i] = { ...output, data };
  }
  return copy ? { ...response, outputs: copy } : response;
}

/**
 * JSON for a jsonb parameter: always text, so node-postgres never turns a JS
 * array into a Postgres array; undefined is stored as JSON null; BigInt (parseJsonExact's
 * integers beyond 2^53) as its exact digits, which jsonb keeps (numeric).
 */
const json = (value: unknown): string => stringifyExact(value);

export interface SqlRequestStoreOptions {
  migrations?: MigrateOptions;
  /** Releases the connections (pool.end, db.close). */
  close: () => Promise<void>;
}

export class SqlRequestStore implements RequestStore {
  private closed = false;

  constructor(
    readonly kind: string,
    protected readonly db: SqlClient,
    private readonly options: SqlRequestStoreOptions,
  ) {}

  /** op again while the database is unreachable, where the client retries (PostgreSQL). */
  protected run<T>(op: () => Promise<T>, idempotent = true): Promise<T> {
    return this.db.retrying ? this.db.retrying(op, idempotent) : op();
  }

  migrate(): Promise<{ applied: string[] }> {
    return migrate(this.db, this.options.migrations);
  }

  createRequest(request: NewAsyncRequest, window: Date, lease?: Lease): Promise<{ record: AsyncRequestRecord; created: boolean }> {
    // The nonce tells a retry whose first attempt did commit (unacknowledged) that the row is its own.
    const submission = randomUUID();
    return this.run(() =>
      this.db.transaction(async (tx) => {
        const inserted = await tx.query<RequestRow & Row>(
          `INSERT INTO requests (id, user_id, model, model_version, status, input_bytes, tokens, attempts, request, submission, worker, lease_until, usage_window)
           VALUES ($1, $2, $3, $4, 'queued', $5, $6, 0, $7::jsonb, $8, $9::text, ${leaseEnd("$10")}, $11)
           ON CONFLICT (id) DO NOTHING
           RETURNING ${COLUMNS}`,
          [
            request.id,
            request.userId,
            request.model,
            request.modelVersion ?? null,
            request.inputBytes,
            request.tokens,
            json(request.request),
            submission,
            lease?.worker ?? null,
            lease?.leaseSeconds ?? null,
            window,
          ],
        );
        if (inserted[0]) {
          await addUsage(tx, request.userId, window, { requests: 1, tokens: request.tokens });
          return { record: toRecord(inserted[0]), created: true };
        }
        const existing = await selectRequest(tx, request.id);
        if (!existing) throw new Error(`request ${request.id}: the insert conflicted but the row is not there`);
        return { record: toRecord(existing), created: existing.submission === submission };
      }),
    );
  }

  markRunning(
    id: string,
    claim?: Lease & { maxAttempts: number },
  ): Promise<{ record: AsyncRequestRecord; changed: boolean; refused?: ClaimRefusal } | undefined> {
    return this.run(() =>
      this.db.transaction(async (tx) => {
        // Without a claim (no leases): any unfinished request runs again. With one: a queued request, or a
        // running one whose holder is gone (expired lease) or is this worker, and only while runs are left.
        const updated = claim
          ? await tx.query<RequestRow & Row>(
              `UPDATE requests SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, now()),
                 worker = $2::text, lease_until = ${leaseEnd("$3")}
               WHERE id = $1 AND attempts < $4::int
                 AND (status = 'queued' OR (status = 'running' AND (worker IS NULL OR worker = $2::text OR lease_until IS NULL OR lease_until < now())))
               RETURNING ${COLUMNS}`,
              [id, claim.worker, claim.leaseSeconds, claim.maxAttempts],
            )
          : await tx.query<RequestRow & Row>(
              `UPDATE requests SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, now())
               WHERE id = $1 AND status IN ('queued', 'running')
               RETURNING ${COLUMNS}`,
              [id],
            );
        if (updated[0]) return { record: toRecord(updated[0]), changed: true };
        const rows = await tx.query<RequestRow & LeaseRow & Row>(`SELECT ${COLUMNS}, ${LEASE_COLUMNS} FROM requests WHERE id = $1`, [id]);
        const row = rows[0];
        if (!row) return undefined;
        const refused: ClaimRefusal =
          row.status === "succeeded" || row.status === "failed"
            ? "finished"
            : row.status === "running" && row.expired === false && row.worker !== null && row.worker !== claim?.worker
              ? "busy"
              : "exhausted";
        return claim ? { record: toRecord(row), changed: false, refused } : { record: toRecord(row), changed: false };
      }),
    );
  }

  complete(
    id: string,
    completion: Completion,
    options: { refund?: boolean; expected?: { states: readonly RequestStatus[]; attempt?: number } } = {},
  ): Promise<{ record: AsyncRequestRecord; changed: boolean; refunded?: boolean } | undefined> {
    const [response, error] = completion.status === "succeeded" ? [json(exactOutputs(completion.response)), null] : [null, completion.error];
    // The expected state and attempt are part of the write's own condition: a redelivery claiming the
    // request between a check and the write cannot let an older attempt's result through.
    const states = JSON.stringify(options.expected?.states ?? ["queued", "running"]);
    const attempt = options.expected?.attempt ?? null;
    return this.run(() =>
      this.db.transaction(async (tx) => {
        const updated = await tx.query<RequestRow & Row>(
          // A request sent without a version gets the one that answered (the response's model_version) once it is known.
          `UPDATE requests SET status = $2, response = $3::jsonb, error = $4, finished_at = now(), worker = NULL, lease_until = NULL,
             model_version = COALESCE(model_version, $3::jsonb ->> 'model_version')
           WHERE id = $1 AND status IN ('queued', 'running') AND status IN ${IDS("$5")} AND ($6::int IS NULL OR attempts = $6::int)
           RETURNING ${COLUMNS}`,
          [id, completion.status, response, error, states, attempt],
        );
        if (updated[0]) {
          const refunded = options.refund === true && completion.status === "failed" && (await refundUsage(tx, id));
          return refunded ? { record: toRecord(updated[0]), changed: true, refunded } : { record: toRecord(updated[0]), changed: true };
        }
        const row = await selectRequest(tx, id);
        return row ? { record: toRecord(row), changed: false } : undefined;
      }),
    );
  }

  async renewLeases(lease: Lease & { ids?: readonly string[] }): Promise<number> {
    const rows = await this.run(() =>
      this.db.query<{ n: number }>(
        `WITH renewed AS (
           UPDATE requests SET lease_until = ${leaseEnd("$2")}
           WHERE worker = $1 AND status IN ('queued', 'running')${lease.ids ? ` AND id IN ${IDS("$3")}` : ""}
           RETURNING 1)
         SELECT count(*)::int AS n FROM renewed`,
        lease.ids ? [lease.worker, lease.leaseSeconds, JSON.stringify(lease.ids)] : [lease.worker, lease.leaseSeconds],
      ),
    );
    return Number(rows[0]?.n ?? 0);
  }

  async releaseLease(id: string, lease: Lease): Promise<void> {
    // Back to the Broker, which redelivers it: still running, held by no process, so that any replica's
    // worker may claim it at once; the sweeper takes it only if nothing claimed it within a lease.
    await this.run(() =>
      this.db.query(
        `UPDATE requests SET worker = NULL, lease_until = ${leaseEnd("$3")}, published_at = COALESCE(published_at, now())
         WHERE id = $1 AND worker = $2 AND status = 'running'`,
        [id, lease.worker, lease.leaseSeconds],
      ),
    );
  }

  async markPublished(id: string, worker: string): Promise<void> {
    // A queued request the Broker has is the Broker's: no process holds it any more (the worker may already have claimed it).
    await this.run(() =>
      this.db.query(
        `UPDATE requests SET published_at = COALESCE(published_at, now()),
           lease_until = CASE WHEN status = 'queued' AND worker = $2 THEN NULL ELSE lease_until END,
           worker = CASE WHEN status = 'queued' AND worker = $2 THEN NULL ELSE worker END
         WHERE id = $1`,
        [id, worker],
      ),
    );
  }

  sweep(options: SweepOptions & { held?: readonly string[] }): Promise<{ requeued: AsyncRequestRecord[]; failed: Array<{ record: AsyncRequestRecord; refunded: boolean }> }> {
    const expired = "(lease_until IS NULL OR lease_until < now())";
    const scope =
      options.scope === "all"
        ? `status IN ('queued', 'running') AND (worker IS DISTINCT FROM $1::text OR ${expired})`
        : options.scope === "outbox"
          ? `((status = 'running' AND ${expired}) OR (status = 'queued' AND published_at IS NULL AND ${expired}))`
          : `status IN ('queued', 'running') AND ${expired}`;
    return this.run(() =>
      this.db.transaction(async (tx) => {
        // Claimed here, once: another replica's sweep skips the rows this one has locked.
        const stale = await tx.query<RequestRow & LeaseRow & Row>(
          `SELECT ${COLUMNS}, ${LEASE_COLUMNS} FROM requests
           WHERE ${scope} AND id NOT IN ${IDS("$2")} AND $1::text IS NOT NULL
           ORDER BY created_at
           LIMIT $3::int
           FOR UPDATE SKIP LOCKED`,
          [options.worker, JSON.stringify(options.held ?? []), options.limit ?? 100],
        );
        const requeued: AsyncRequestRecord[] = [];
        const failed: Array<{ record: AsyncRequestRecord; refunded: boolean }> = [];
        for (const row of stale) {
          const attempts = num(row.attempts);
          if (attempts >= options.maxAttempts) {
            const error =
              `abandoned after ${attempts} attempt${attempts === 1 ? "" : "s"}: each run was interrupted (the server running it stopped or lost its lease)` +
              ` and the limit is ${options.maxAttempts} attempts (ASYNC_MAX_ATTEMPTS); it was not charged`;
            const done = await tx.query<RequestRow & Row>(
              `UPDATE requests SET status = 'failed', error = $2, finished_at = now(), worker = NULL, lease_until = NULL
               WHERE id = $1 RETURNING ${COLUMNS}`,
              [row.id, error],
            );
            const refunded = await refundUsage(tx, row.id);
            failed.push({ record: toRecord(done[0]!), refunded });
          } else {
            const again = await tx.query<RequestRow & Row>(
              `UPDATE requests SET status = 'queued', worker = $2::text, lease_until = ${leaseEnd("$3")}, published_at = NULL
               WHERE id = $1 RETURNING ${COLUMNS}`,
              [row.id, options.worker, options.leaseSeconds],
            );
            requeued.push(toRecord(again[0]!));
          }
        }
        return { requeued, failed };
      }),
    );
  }

  async getRequest(id: string): Promise<AsyncRequestRecord | undefined> {
    const row = await this.run(() => selectRequest(this.db, id));
    return row ? toRecord(row) : undefined;
  }

  addUsage(userId: string, window: Date, usage: Usage): Promise<void> {
    if (usage.requests === 0 && usage.tokens === 0) return Promise.resolve();
    // Not idempotent (a batch of counts): in a transaction so that a retry happens
    // only where the first attempt certainly did not commit.
    return this.run(() => this.db.transaction((tx) => addUsage(tx, userId, window, usage)), false);
  }

  async usage(userId: string, window: Date): Promise<Usage> {
    const rows = await this.run(() =>
      this.db.query<{ requests: string | number; tokens: string | number }>("SELECT requests, tokens FROM usage WHERE user_id = $1 AND window_start = $2", [
        userId,
        window,
      ]),
    );
    const row = rows[0];
    return row ? { requests: num(row.requests), tokens: num(row.tokens) } : { requests: 0, tokens: 0 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.options.close();
  }
}

async function selectRequest(db: SqlQuerier, id: string): Promise<RequestRow | undefined> {
  const rows = await db.query<RequestRow & Row>(`SELECT ${COLUMNS} FROM requests WHERE id = $1`, [id]);
  return rows[0];
}

/**
 * Takes a request's usage back from the window it was counted in, once (refunded_at);
 * whether it did. Requests recorded before migration 002 have no window: nothing to do.
 */
async function refundUsage(db: SqlQuerier, id: string): Promise<boolean> {
  const rows = await db.query<{ user_id: string; usage_window: Date | string; tokens: string | number } & Row>(
    `UPDATE requests SET refunded_at = now() WHERE id = $1 AND refunded_at IS NULL AND usage_window IS NOT NULL RETURNING user_id, usage_window, tokens`,
    [id],
  );
  const row = rows[0];
  if (!row) return false;
  await db.query(
    `UPDATE usage SET requests = GREATEST(requests - 1, 0), tokens = GREATEST(tokens - $3, 0) WHERE user_id = $1 AND window_start = $2`,
    [row.user_id, date(row.usage_window), num(row.tokens)],
  );
  return true;
}

async function addUsage(db: SqlQuerier, userId: string, window: Date, usage: Usage): Promise<void> {
  await db.query(
    `INSERT INTO usage (user_id, window_start, requests, tokens) VALUES ($1, $2, $3, $4)
     ON CONFLICT (user_id, window_start) DO UPDATE SET requests = usage.requests + EXCLUDED.requests, tokens = usage.tokens + EXCLUDED.tokens`,
    [userId, window, usage.requests, usage.tokens],
  );
}
