/**
 * Opens the request store for asynchronous inference: PostgreSQL when a
 * connection string is configured (DATABASE_URL, from a Secret), else the
 * embedded PGlite store; then applies the SQL migrations (runtime/migrations/).
 */
import { redactUrl } from "../../logging.js";
import type { RequestStore } from "../types.js";
import type { StoreLogger } from "./postgres.js";

export type { StoreLogger } from "./postgres.js";
export { migrationsDirectory, MigrationError } from "./migrate.js";

export interface OpenRequestStoreOptions {
  /** postgres://…; absent: the embedded PGlite store. */
  databaseUrl?: string;
  /** PGlite's data directory; absent: in memory. Ignored with databaseUrl. */
  pgliteDir?: string;
  logger: StoreLogger;
  /** PostgreSQL: how long operations are retried while the server is unreachable (default 10 s). */
  retryForMs?: number;
  /** PostgreSQL: pool size (default 10). */
  poolSize?: number;
}

export async function openRequestStore(options: OpenRequestStoreOptions): Promise<RequestStore> {
  const { logger } = options;
  let store: RequestStore;
  if (options.databaseUrl) {
    const { PostgresStore } = await import("./postgres.js");
    store = await PostgresStore.create({ connectionString: options.databaseUrl, logger, retryForMs: options.retryForMs, max: options.poolSize });
    logger.info({ store: "postgres", database: redactUrl(options.databaseUrl) }, "request store: PostgreSQL");
  } else {
    const { PgliteStore } = await import("./pglite.js");
    store = await PgliteStore.create({ dataDir: options.pgliteDir });
    logger.warn(
      { store: "pglite", dataDir: options.pgliteDir ?? null },
      options.pgliteDir
        ? `no DATABASE_URL: using the embedded PGlite store; data is kept in ${options.pgliteDir} (one process only: set DATABASE_URL for PostgreSQL in production)`
        : "no DATABASE_URL: using the embedded PGlite store; data is kept in memory and lost when the process exits (set DATABASE_URL for PostgreSQL)",
    );
  }
  try {
    const { applied } = await store.migrate();
    logger.info({ store: store.kind, applied }, applied.length ? `applied ${applied.length} migration(s): ${applied.join(", ")}` : "database schema up to date");
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
