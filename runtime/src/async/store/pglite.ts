/**
 * The embedded request store: PGlite, PostgreSQL compiled to WebAssembly and run
 * in-process, for `npm start` with asynchronous inference and no database
 * configured. Same SQL, same migrations and same store code as PostgreSQL
 * (sql-store.ts); only the SqlClient differs. In memory by default (gone when the
 * process exits), or kept in a data directory.
 *
 * PGlite is loaded only here, lazily: a server that never uses it never pays for
 * its WebAssembly (about 3 s to compile and initialise on first use).
 */
import type { PGlite, Transaction } from "@electric-sql/pglite";
import type { Row, SqlClient, SqlQuerier } from "./migrate.js";
import { SqlRequestStore, type SqlRequestStoreOptions } from "./sql-store.js";

export interface PgliteStoreOptions {
  /** A directory to keep the database in (created when missing); absent: in memory. */
  dataDir?: string;
  migrations?: SqlRequestStoreOptions["migrations"];
}

function querier(db: PGlite | Transaction): SqlQuerier {
  return {
    async query<R extends Row>(sql: string, params?: readonly unknown[]) {
      return (await db.query<R>(sql, params as unknown[] | undefined)).rows;
    },
    async exec(sql: string) {
      await db.exec(sql);
    },
  };
}

/**
 * PGlite is one session inside this process: its queries and transactions are
 * serialised by PGlite itself, there is no network to lose and no other
 * process to lock out, so there is neither withLock nor retrying.
 */
export function pgliteSqlClient(db: PGlite): SqlClient {
  return { ...querier(db), transaction: (fn) => db.transaction((tx) => fn(querier(tx))) };
}

export class PgliteStore extends SqlRequestStore {
  private constructor(db: PGlite, options: PgliteStoreOptions) {
    super("pglite", pgliteSqlClient(db), { migrations: options.migrations, close: () => db.close() });
  }

  static async create(options: PgliteStoreOptions = {}): Promise<PgliteStore> {
    const { PGlite } = await import("@electric-sql/pglite");
    const db = await PGlite.create(options.dataDir ? { dataDir: options.dataDir } : {});
    return new PgliteStore(db, options);
  }
}
