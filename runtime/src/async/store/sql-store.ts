/**
 * The RequestStore in SQL, once, for both backends: PostgresStore (node-postgres)
 * and PgliteStore (Postgres in-process) differ only in the SqlClient they hand
 * it. Every write is idempotent on the request id: INSERT … ON CONFLICT DO
 * NOTHING, and UPDATEs guarded by the status they may leave.
 */
import { randomUUID } from "node:crypto";
import type { AsyncRequestRecord, Completion, NewAsyncRequest, RequestStatus, RequestStore, Usage } from "../types.js";
import { migrate, type MigrateOptions, type Row, type SqlClient, type SqlQuerier } from "./migrate.js";

const COLUMNS =
  "id, user_id, model, model_version, status, input_bytes, tokens, attempts, created_at, started_at, finished_at, request, response, error, submission";

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
  response: unknown;
  error: string | null;
  submission: string | null;
}

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
  if (row.response !== null) record.response = row.response;
  if (row.error !== null) record.error = row.error;
  return record;
}

/**
 * JSON for a jsonb parameter: always text, so node-postgres never turns a JS
 * array into a Postgres array; undefined is stored as JSON null.
 */
const json = (value: unknown): string => JSON.stringify(value) ?? "null";

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

  createRequest(request: NewAsyncRequest, window: Date): Promise<{ record: AsyncRequestRecord; created: boolean }> {
    // The nonce tells a retry whose first attempt did commit (unacknowledged) that the row is its own.
    const submission = randomUUID();
    return this.run(() =>
      this.db.transaction(async (tx) => {
        const inserted = await tx.query<RequestRow & Row>(
          `INSERT INTO requests (id, user_id, model, model_version, status, input_bytes, tokens, attempts, request, submission)
           VALUES ($1, $2, $3, $4, 'queued', $5, $6, 0, $7::jsonb, $8)
           ON CONFLICT (id) DO NOTHING
           RETURNING ${COLUMNS}`,
          [request.id, request.userId, request.model, request.modelVersion ?? null, request.inputBytes, request.tokens, json(request.request), submission],
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

  markRunning(id: string): Promise<{ record: AsyncRequestRecord; changed: boolean } | undefined> {
    return this.run(() =>
      this.db.transaction(async (tx) => {
        const updated = await tx.query<RequestRow & Row>(
          `UPDATE requests SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, now())
           WHERE id = $1 AND status IN ('queued', 'running')
           RETURNING ${COLUMNS}`,
          [id],
        );
        if (updated[0]) return { record: toRecord(updated[0]), changed: true };
        const row = await selectRequest(tx, id);
        return row ? { record: toRecord(row), changed: false } : undefined;
      }),
    );
  }

  complete(id: string, completion: Completion): Promise<{ record: AsyncRequestRecord; changed: boolean } | undefined> {
    const [response, error] = completion.status === "succeeded" ? [json(completion.response), null] : [null, completion.error];
    return this.run(() =>
      this.db.transaction(async (tx) => {
        const updated = await tx.query<RequestRow & Row>(
          `UPDATE requests SET status = $2, response = $3::jsonb, error = $4, finished_at = now()
           WHERE id = $1 AND status IN ('queued', 'running')
           RETURNING ${COLUMNS}`,
          [id, completion.status, response, error],
        );
        if (updated[0]) return { record: toRecord(updated[0]), changed: true };
        const row = await selectRequest(tx, id);
        return row ? { record: toRecord(row), changed: false } : undefined;
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

async function addUsage(db: SqlQuerier, userId: string, window: Date, usage: Usage): Promise<void> {
  await db.query(
    `INSERT INTO usage (user_id, window_start, requests, tokens) VALUES ($1, $2, $3, $4)
     ON CONFLICT (user_id, window_start) DO UPDATE SET requests = usage.requests + EXCLUDED.requests, tokens = usage.tokens + EXCLUDED.tokens`,
    [userId, window, usage.requests, usage.tokens],
  );
}
