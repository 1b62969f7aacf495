/**
 * Versioned SQL migrations: the numbered plain-SQL files in runtime/migrations/
 * (`001_requests_and_usage.sql`, …), applied in order, each in its own
 * transaction, and recorded in `schema_migrations`. The same runner and the same
 * SQL serve PostgreSQL (node-postgres) and PGlite (Postgres in-process) through
 * the small SqlClient abstraction below.
 *
 * Several replicas may start at once: on PostgreSQL the runner holds a
 * session-level advisory lock while it looks and applies, so exactly one of them
 * migrates and the others then find nothing left to do. A database that holds a
 * migration this build does not know (a newer schema, written by a newer
 * release) is refused with a clear error rather than used blindly, and so is an
 * applied migration whose file has changed since.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export type Row = Record<string, unknown>;

/** Runs statements on one database session (or a transaction). */
export interface SqlQuerier {
  /** One statement with $1… parameters; the rows it returns. */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** A script of several statements, without parameters (a migration file). */
  exec(sql: string): Promise<void>;
}

export interface SqlClient extends SqlQuerier {
  /** Runs fn in one transaction: COMMIT when it resolves, ROLLBACK when it throws. */
  transaction<T>(fn: (tx: SqlQuerier) => Promise<T>): Promise<T>;
  /**
   * Runs fn holding a database-wide exclusive lock (pg_advisory_lock), with a
   * client on the lock's own session. Absent where only one process can use the
   * database anyway (PGlite).
   */
  withLock?<T>(key: bigint, fn: (client: SqlClient) => Promise<T>): Promise<T>;
  /**
   * Runs op again while it fails because the database cannot be reached, for a
   * bounded time. `idempotent`: op may be repeated even when the first attempt
   * may have taken effect (its COMMIT went unacknowledged). Absent: no retries.
   */
  retrying?<T>(op: () => Promise<T>, idempotent: boolean): Promise<T>;
}

export interface Migration {
  /** The number the file name starts with. */
  version: number;
  /** The file name, e.g. "001_requests_and_usage.sql". */
  name: string;
  sql: string;
  /** sha256 of the SQL (line endings normalised). */
  checksum: string;
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

/** Same key on every replica: "inference-runtime migrations" folded into a signed 64-bit integer. */
export const MIGRATION_LOCK_KEY = BigInt.asIntN(64, BigInt(`0x${createHash("sha256").update("inference-runtime migrations").digest("hex").slice(0, 16)}`));

const FILE_NAME = /^(\d+)_[A-Za-z0-9_.-]+\.sql$/;

/** runtime/migrations, from the sources (runtime/src/async/store) or from the bundles (dist/). */
export function migrationsDirectory(): string {
  const candidates = [new URL("../../../migrations/", import.meta.url), new URL("../runtime/migrations/", import.meta.url)];
  for (const url of candidates) {
    const path = fileURLToPath(url);
    if (existsSync(`${path}001_requests_and_usage.sql`)) return path;
  }
  throw new Error(`cannot find the SQL migrations (looked in ${candidates.map((u) => fileURLToPath(u)).join(", ")})`);
}

/** The migration files of a directory, in order. */
export async function loadMigrations(directory: string = migrationsDirectory()): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const name of await readdir(directory)) {
    if (!name.endsWith(".sql")) continue;
    const match = FILE_NAME.exec(name);
    if (!match) throw new MigrationError(`migration file ${name} in ${directory}: the name must be <number>_<name>.sql`);
    const sql = (await readFile(join(directory, name), "utf8")).replace(/\r\n/g, "\n");
    migrations.push({ version: Number(match[1]), name, sql, checksum: createHash("sha256").update(sql).digest("hex") });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new MigrationError(`migrations ${migrations[i - 1]!.name} and ${migrations[i]!.name} have the same number`);
    }
  }
  return migrations;
}

const CREATE_SCHEMA_MIGRATIONS = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer     PRIMARY KEY,
  name       text        NOT NULL,
  checksum   text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

export interface MigrateOptions {
  /** Where the .sql files are (default: runtime/migrations). */
  directory?: string;
  /** Or the migrations themselves (tests). */
  migrations?: Migration[];
}

/** Applies the migrations the database does not have yet; the names of those it applied. */
export async function migrate(client: SqlClient, options: MigrateOptions = {}): Promise<{ applied: string[] }> {
  const migrations = options.migrations ?? (await loadMigrations(options.directory));
  const run = async (db: SqlClient): Promise<{ applied: string[] }> => {
    await db.exec(CREATE_SCHEMA_MIGRATIONS);
    const rows = await db.query<{ version: number; name: string; checksum: string }>("SELECT version, name, checksum FROM schema_migrations ORDER BY version");
    const known = new Map(migrations.map((m) => [m.version, m]));
    const unknown = rows.filter((r) => !known.has(Number(r.version)));
    if (unknown.length > 0) {
      const latest = migrations.at(-1)?.name ?? "none";
      throw new MigrationError(
        `the database schema is newer than this build: it has migration${unknown.length > 1 ? "s" : ""} ${unknown.map((r) => r.name).join(", ")}, ` +
          `which this build does not know (its latest is ${latest}). Run a release that has ${unknown.length > 1 ? "them" : "it"}, or restore a database of this release's schema.`,
      );
    }
    for (const row of rows) {
      const m = known.get(Number(row.version))!;
      if (m.checksum !== row.checksum) {
        throw new MigrationError(
          `migration ${m.name} has changed since it was applied (as ${row.name}); applied migrations must never change: add a new numbered file instead`,
        );
      }
    }
    const done = new Set(rows.map((r) => Number(r.version)));
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      try {
        await db.transaction(async (tx) => {
          await tx.exec(m.sql);
          await tx.query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", [m.version, m.name, m.checksum]);
        });
      } catch (err) {
        throw new MigrationError(`migration ${m.name} failed (nothing of it was applied): ${(err as Error).message}`, { cause: err });
      }
      applied.push(m.name);
    }
    return { applied };
  };
  // PostgreSQL: one replica at a time. PGlite supports pg_advisory_lock too, but
  // it is one session inside one process (a data directory cannot be opened
  // twice), so there is nobody to exclude: no withLock there.
  const locked = () => (client.withLock ? client.withLock(MIGRATION_LOCK_KEY, run) : run(client));
  // The whole run is idempotent (it looks again at what is applied), so it may be retried as a whole.
  return client.retrying ? client.retrying(locked, true) : locked();
}
