/**
 * `node bin/migrate.js` (bundled to dist/migrate.js): applies the SQL migrations
 * in runtime/migrations/ to the PostgreSQL database of DATABASE_URL (or of
 * libpq's PGHOST, PGUSER, … variables), prints what it applied and exits 0; 1
 * with the reason on failure. This is what the Kubernetes migration Job runs;
 * the server also migrates at start, under the same lock, so either order works.
 */
import { redactUrl } from "../../logging.js";
import { MigrationError } from "./migrate.js";
import { PostgresStore } from "./postgres.js";

const HELP = `Usage: migrate

Applies the SQL migrations this release ships (runtime/migrations/) to PostgreSQL.

Environment:
  DATABASE_URL        postgres://user:password@host:5432/database?sslmode=require
                      (or libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE)
  MIGRATE_RETRY_MS    how long to wait for an unreachable server (default 60000)

Exit status: 0 applied (or nothing to apply), 1 failed, 2 usage.
`;

type Output = { write(text: string): unknown };

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv, out: Output = process.stdout, err: Output = process.stderr): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    out.write(HELP);
    return 0;
  }
  if (argv.length > 0) {
    err.write(`migrate: unexpected argument ${argv[0]} (see migrate --help)\n`);
    return 2;
  }
  const url = env.DATABASE_URL || undefined;
  if (!url && !env.PGHOST) {
    err.write("migrate: DATABASE_URL is not set (nor PGHOST): which database should be migrated? (see migrate --help)\n");
    return 2;
  }
  const retryForMs = env.MIGRATE_RETRY_MS ? Number(env.MIGRATE_RETRY_MS) : 60_000;
  if (!Number.isFinite(retryForMs) || retryForMs < 0) {
    err.write(`migrate: MIGRATE_RETRY_MS must be a number of milliseconds, not ${JSON.stringify(env.MIGRATE_RETRY_MS)}\n`);
    return 2;
  }
  const target = url ? redactUrl(url) : `PGHOST=${env.PGHOST}`;
  const store = await PostgresStore.create({ connectionString: url, retryForMs, max: 2 });
  try {
    const { applied } = await store.migrate();
    out.write(
      applied.length
        ? `migrate: applied ${applied.length} migration(s) to ${target}:\n${applied.map((name) => `  ${name}\n`).join("")}`
        : `migrate: ${target} is up to date; nothing to apply\n`,
    );
    return 0;
  } catch (e) {
    const message = e instanceof MigrationError ? e.message : `cannot migrate ${target}: ${(e as Error).message ?? String(e)}`;
    err.write(`migrate: ${message}\n`);
    return 1;
  } finally {
    await store.close().catch(() => undefined);
  }
}

// Run when this file (or its bundle) is the program, not when a test imports it.
const entry = process.argv[1] ?? "";
if (/(?:^|[\\/])(?:migrate-cli\.ts|migrate\.js)$/.test(entry)) {
  main(process.argv.slice(2), process.env).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`migrate: ${String((e as Error)?.stack ?? e)}\n`);
      process.exit(1);
    },
  );
}
