/**
 * The request store on PostgreSQL (node-postgres Pool).
 *
 * Connection settings come from the caller: a connection string (DATABASE_URL,
 * which the deployment takes from a Secret) or, without one, libpq's standard
 * environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
 * PGSSLMODE, …). Nothing is hard-coded.
 *
 * A PostgreSQL restart (or fail-over) mid-run loses nothing: idle connections
 * that die are dropped from the pool with a log line (never an uncaught 'error'),
 * and an operation that fails because the server cannot be reached is run again
 * with backoff for a bounded time (`retryForMs`, 10 s by default) before the
 * error reaches the caller. That is safe because every write is idempotent on
 * the request id; the one that is not (addUsage, a batch of counts) runs in a
 * transaction and is retried only when its COMMIT certainly did not happen.
 */
import type { Logger } from "pino";
import type pg from "pg";
import type { Row, SqlClient, SqlQuerier } from "./migrate.js";
import { SqlRequestStore, type SqlRequestStoreOptions } from "./sql-store.js";

export type StoreLogger = Pick<Logger, "info" | "warn" | "error">;

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/db?sslmode=…; absent: libpq's PG* environment variables. */
  connectionString?: string;
  /** Pool size (default 10). */
  max?: number;
  /** How long operations are retried while PostgreSQL is unreachable (default 10 000 ms; 0: never). */
  retryForMs?: number;
  /** How long one connection attempt may take (default 5 000 ms). */
  connectTimeoutMs?: number;
  /** Client-side limit for one query, so a half-open connection cannot hang a request (default 30 000 ms). */
  queryTimeoutMs?: number;
  logger?: StoreLogger;
  /** Extra node-postgres pool settings (tests). */
  pool?: pg.PoolConfig;
  migrations?: SqlRequestStoreOptions["migrations"];
}

/** SQLSTATEs and error codes that mean "the server is gone or not there yet", not "your SQL is wrong". */
const CONNECTION_SQLSTATES = new Set([
  "57P01", // admin_shutdown (fast/smart shutdown, restart)
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, recovering)
  "53300", // too_many_connections
  "40001", // serialization_failure: a retry is the documented answer
  "40P01", // deadlock_detected: likewise
]);
const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ECONNABORTED"]);
const CONNECTION_MESSAGES = [
  /connection terminated/i,
  /terminating connection/i,
  /timeout exceeded when trying to connect/i,
  /query read timeout/i,
  /client has encountered a connection error/i,
  /connection (is )?closed/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
];

/** Whether err (or its cause) says the server could not be reached or dropped the connection. */
export function isTransientError(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_SQLSTATES.has(code) || code.startsWith("08") || SOCKET_CODES.has(code))) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === "string" && CONNECTION_MESSAGES.some((re) => re.test(message))) return true;
    if (e instanceof AggregateError && e.errors.some((x) => isTransientError(x))) return true;
  }
  return false;
}

/** Set on an error when the operation may have taken effect anyway (a COMMIT or an autocommit statement that was sent). */
const UNCERTAIN = Symbol("uncertain outcome");
const markUncertain = (err: unknown): unknown => {
  if (err && typeof err === "object") (err as { [UNCERTAIN]?: boolean })[UNCERTAIN] = true;
  return err;
};
const isUncertain = (err: unknown): boolean => Boolean(err && typeof err === "object" && (err as { [UNCERTAIN]?: boolean })[UNCERTAIN]);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** No client-side limit (setTimeout's largest delay, 24.8 days): waiting for the migration lock, and migrations, may take long. */
const NO_QUERY_TIMEOUT = 2 ** 31 - 1;

/**
 * A SqlQuerier over one node-postgres connection (a transaction, or the migration
 * lock's session). queryTimeoutMs overrides the pool's query_timeout (a per-query
 * setting node-postgres has but its types do not declare).
 */
function sessionQuerier(client: pg.PoolClient, queryTimeoutMs?: number): SqlQuerier {
  const run = <R extends Row>(text: string, values?: readonly unknown[]) =>
    client.query<R>(queryTimeoutMs ? ({ text, values, query_timeout: queryTimeoutMs } as pg.QueryConfig) : { text, values: values as unknown[] | undefined });
  return {
    async query<R extends Row>(sql: string, params?: readonly unknown[]) {
      return (await run<R>(sql, params)).rows;
    },
    async exec(sql: string) {
      await run(sql); // no parameters: the simple protocol, several statements allowed
    },
  };
}

/** The SqlClient on a node-postgres Pool: connection handling, retries, the advisory lock. */
export class PgSqlClient implements SqlClient {
  private readonly retryForMs: number;
  private outage: { since: number } | undefined;

  constructor(
    readonly pool: pg.Pool,
    private readonly options: { retryForMs?: number; logger?: StoreLogger } = {},
  ) {
    this.retryForMs = options.retryForMs ?? 10_000;
  }

  /** A pooled connection; its failures are handled while it is out (the pool only watches idle ones). */
  private async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let failure: unknown;
    const onError = (err: Error) => {
      failure = err; // the query in flight fails too and says why; keep the process alive
    };
    client.on("error", onError);
    try {
      return await fn(client);
    } catch (err) {
      failure ??= err;
      throw err;
    } finally {
      client.removeListener("error", onError);
      // A connection that failed is destroyed rather than handed to the next caller.
      client.release(failure !== undefined && isTransientError(failure) ? (failure as Error) : undefined);
    }
  }

  async query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]> {
    return this.withClient(async (client) => {
      try {
        return (await client.query<R>(sql, params as unknown[] | undefined)).rows;
      } catch (err) {
        throw markUncertain(err); // an autocommit statement that was sent may have run
      }
    });
  }

  async exec(sql: string): Promise<void> {
    await this.withClient(async (client) => {
      try {
        await client.query(sql);
      } catch (err) {
        throw markUncertain(err);
      }
    });
  }

  transaction<T>(fn: (tx: SqlQuerier) => Promise<T>): Promise<T> {
    return this.withClient((client) => runTransaction(client, fn));
  }

  async withLock<T>(key: bigint, fn: (client: SqlClient) => Promise<T>): Promise<T> {
    return this.withClient(async (client) => {
      const session = sessionQuerier(client, NO_QUERY_TIMEOUT);
      // Session-level: held across the migrations' own transactions; a lost
      // connection releases it on the server, so a crashed replica blocks no one.
      await session.query("SELECT pg_advisory_lock($1::bigint)", [key.toString()]);
      try {
        return await fn({ ...session, transaction: (f) => runTransaction(client, f, NO_QUERY_TIMEOUT) });
      } finally {
        await session.query("SELECT pg_advisory_unlock($1::bigint)", [key.toString()]).catch(() => undefined);
      }
    });
  }

  async retrying<T>(op: () => Promise<T>, idempotent: boolean): Promise<T> {
    const deadline = Date.now() + this.retryForMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await op();
        if (this.outage) {
          this.options.logger?.info({ downMs: Date.now() - this.outage.since }, "PostgreSQL reachable again");
          this.outage = undefined;
        }
        return result;
      } catch (err) {
        if (!isTransientError(err) || (!idempotent && isUncertain(err)) || Date.now() >= deadline) throw err;
        if (!this.outage) {
          this.outage = { since: Date.now() };
          this.options.logger?.warn({ err: String((err as Error).message ?? err), retryForMs: this.retryForMs }, "PostgreSQL unreachable; retrying");
        }
        // 50 ms, 100 ms, … up to 1 s, with jitter so that replicas do not reconnect in step.
        const backoff = Math.min(1000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2);
        await sleep(Math.max(0, Math.min(backoff, deadline - Date.now())));
      }
    }
  }
}

async function runTransaction<T>(client: pg.PoolClient, fn: (tx: SqlQuerier) => Promise<T>, queryTimeoutMs?: number): Promise<T> {
  await client.query("BEGIN");
  let result: T;
  try {
    result = await fn(sessionQuerier(client, queryTimeoutMs));
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined); // a dead connection rolls back by itself
    throw err;
  }
  try {
    await client.query("COMMIT");
  } catch (err) {
    // The COMMIT may have reached the server before the connection dropped.
    throw markUncertain(err);
  }
  return result;
}

export class PostgresStore extends SqlRequestStore {
  private constructor(client: PgSqlClient, options: PostgresStoreOptions) {
    super("postgres", client, { migrations: options.migrations, close: () => client.pool.end() });
  }

  /** Creates the pool (connections are opened on first use). pg is loaded only here. */
  static async create(options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const { default: pgModule } = await import("pg");
    const pool = new pgModule.Pool({
      connectionString: options.connectionString,
      max: options.max ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      query_timeout: options.queryTimeoutMs ?? 30_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: "inference-runtime",
      ...options.pool,
    });
    // An idle connection that the server drops (restart, fail-over, idle timeout)
    // is removed from the pool; without a listener the process would crash.
    pool.on("error", (err) => {
      options.logger?.warn({ err: err.message, code: (err as { code?: string }).code }, "PostgreSQL dropped an idle connection");
    });
    return new PostgresStore(new PgSqlClient(pool, { retryForMs: options.retryForMs, logger: options.logger }), options);
  }
}
