/**
 * A real PostgreSQL for tests, from Debian's `postgresql` package (which .ci/run
 * installs): `initdb` into a fresh temporary directory, then `postgres` on a free
 * loopback port with trust authentication, its socket in the same directory.
 * `restart()` stops and starts the same server on the same port and data (the
 * outage tests), `stop()` removes everything.
 *
 * PostgreSQL refuses to run as root; as root (containers, CI) the binaries run
 * as the `postgres` system user that the Debian package creates, and the
 * temporary directory is handed to that user.
 *
 * No binaries is an error naming the package, never a silent skip.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import pg from "pg";

export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** Fast shutdown (SIGINT), then the same server again on the same port and data; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Fast shutdown, leaving it down (restart() brings it back). */
  halt(): Promise<void>;
  /** Starts it again after halt(). */
  resume(): Promise<void>;
  /** Stops it for good and removes its directory. */
  stop(): Promise<void>;
}

/** The directory holding initdb and postgres: $POSTGRES_BIN, PATH, or Debian's /usr/lib/postgresql/<version>/bin (newest). */
export function findPostgresBinaries(): string {
  const has = (dir: string) => existsSync(join(dir, "initdb")) && existsSync(join(dir, "postgres"));
  const candidates: string[] = [];
  if (process.env.POSTGRES_BIN) candidates.push(process.env.POSTGRES_BIN);
  candidates.push(...(process.env.PATH ?? "").split(delimiter).filter(Boolean));
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => join(debian, v, "bin")));
  }
  const found = candidates.find(has);
  if (!found) {
    throw new Error(
      "PostgreSQL is not installed: the tests need `initdb` and `postgres` (Debian/Ubuntu: `apt-get install --no-install-recommends postgresql`, " +
        "which .ci/run does; elsewhere put their directory on PATH or in POSTGRES_BIN). " +
        `Looked on PATH and in ${debian}/<version>/bin.`,
    );
  }
  return found;
}

/** uid and gid of a local user, from /etc/passwd. */
function lookupUser(name: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [user, , uid, gid] = line.split(":");
      if (user === name && uid && gid) return { uid: Number(uid), gid: Number(gid) };
    }
  } catch {
    // no /etc/passwd: not Linux; not root either, in practice
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function run(command: string, args: string[], identity: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...identity, env: { ...process.env, LC_ALL: "C", LANG: "C" } });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} failed (${signal ?? `exit ${code}`}):\n${output}`)),
    );
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function startPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBinaries();
  let identity: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    identity = lookupUser("postgres");
    if (!identity) {
      throw new Error("running as root, and PostgreSQL refuses root: the `postgres` system user is missing (Debian's postgresql package creates it)");
    }
  }
  const base = await mkdtemp(join(tmpdir(), "pg-test-"));
  const dataDir = join(base, "data");
  const socketDir = join(base, "socket");
  await mkdir(socketDir);
  if (identity) {
    await chown(base, identity.uid, identity.gid);
    await chown(socketDir, identity.uid, identity.gid);
  }
  try {
    await run(join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"], identity);
  } catch (err) {
    await rm(base, { recursive: true, force: true });
    throw err;
  }
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let child: ChildProcess | undefined;
  let log = "";

  const start = async () => {
    log = "";
    const proc = spawn(
      join(bin, "postgres"),
      // Durability off (throwaway data; a fast shutdown still checkpoints, so restart() keeps everything).
      ["-D", dataDir, "-p", String(port), "-h", "127.0.0.1", "-k", socketDir, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "shared_buffers=16MB", "-c", "max_connections=50"],
      { stdio: ["ignore", "pipe", "pipe"], ...identity, env: { ...process.env, LC_ALL: "C", LANG: "C" } },
    );
    child = proc;
    proc.stdout!.on("data", (d: Buffer) => (log += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    let exited: string | undefined;
    proc.once("exit", (code, signal) => (exited = signal ?? `exit ${code}`));
    proc.once("error", (err) => (exited = err.message));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) throw new Error(`postgres exited during start-up (${exited}):\n${log}`);
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query("SELECT 1");
        await client.end();
        return;
      } catch {
        await client.end().catch(() => undefined);
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 30 s:\n${log}`);
        await sleep(50);
      }
    }
  };

  const halt = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGINT"); // fast shutdown: clients are told (57P01), a checkpoint is written
    const timer = setTimeout(() => proc.kill("SIGQUIT"), 10_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    await start();
  } catch (err) {
    await halt();
    await rm(base, { recursive: true, force: true });
    throw err;
  }

  return {
    url,
    port,
    halt,
    resume: start,
    async restart() {
      await halt();
      await start();
    },
    async stop() {
      await halt();
      await rm(base, { recursive: true, force: true });
    },
  };
}
