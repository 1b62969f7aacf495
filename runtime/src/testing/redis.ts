/**
 * A real Redis for tests: Debian's redis-server run in the foreground as a
 * child process on 127.0.0.1 and a free port, without persistence unless asked,
 * optionally with a password. It can be stopped and restarted on the same port
 * (with the same data directory), to test clients through an outage.
 *
 * CI installs the binary (.ci/run: Debian's redis-server package); when it is
 * missing this throws, naming the package, rather than skipping.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

export interface RedisServerOptions {
  /** requirepass: clients must authenticate (the URL carries it). */
  password?: string;
  /** Append-only file in the data directory, kept across restart() (default: no persistence). */
  appendOnly?: boolean;
  /** More redis-server arguments, e.g. ["--maxmemory", "10mb"]. */
  args?: string[];
  /** How long to wait for "Ready to accept connections" (default 10 s). */
  startTimeoutMs?: number;
}

export interface RedisServer {
  /** redis://[:password@]127.0.0.1:port/0 */
  readonly url: string;
  readonly port: number;
  readonly running: boolean;
  /** Stops the server (SIGTERM, SIGKILL after 5 s); idempotent. */
  stop(): Promise<void>;
  /** Stops it if running and starts it again on the same port and data directory. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that accepts connections but answers nothing. */
  pause(): void;
  resume(): void;
  /** Stops it and removes its data directory. */
  close(): Promise<void>;
}

/** redis-server: $REDIS_SERVER, /usr/bin/redis-server, or on PATH. */
export function findRedisServer(): string {
  const candidates = [
    process.env.REDIS_SERVER,
    "/usr/bin/redis-server",
    ...(process.env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, "redis-server")),
  ].filter((p): p is string => Boolean(p));
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // next
    }
  }
  throw new Error(
    "redis-server not found (looked at $REDIS_SERVER, /usr/bin/redis-server and PATH): install Debian's `redis-server` package " +
      "(apt-get install -y --no-install-recommends redis-server; .ci/run does it when missing)",
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;
function killChildrenOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of children) child.kill("SIGKILL");
  });
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = findRedisServer();
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "redis-test-"));
  const args = [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--daemonize", "no",
    "--dir", dir,
    "--save", "",
    "--appendonly", options.appendOnly ? "yes" : "no",
    "--logfile", "",
    ...(options.password !== undefined ? ["--requirepass", options.password] : []),
    ...(options.args ?? []),
  ];
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  let child: ChildProcess | undefined;
  killChildrenOnExit();

  const start = async (): Promise<void> => {
    const proc = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    children.add(proc);
    proc.once("exit", () => children.delete(proc));
    child = proc;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`redis-server not ready after ${startTimeoutMs} ms:\n${output}`)), startTimeoutMs);
      const onData = (chunk: Buffer) => {
        output += chunk.toString("utf8");
        if (/Ready to accept connections/.test(output)) finish();
      };
      const onExit = (code: number | null, signal: string | null) =>
        fail(new Error(`redis-server exited (${signal ?? code}) before it was ready:\n${output}`));
      const onError = (err: Error) => fail(err);
      function cleanup() {
        clearTimeout(timer);
        proc.stdout?.off("data", onData);
        proc.stderr?.off("data", onData);
        proc.off("exit", onExit);
        proc.off("error", onError);
        // Keep draining the pipes so the server never blocks on a full one.
        proc.stdout?.resume();
        proc.stderr?.resume();
      }
      function finish() {
        cleanup();
        resolve();
      }
      function fail(err: Error) {
        cleanup();
        proc.kill("SIGKILL");
        reject(err);
      }
      proc.stdout?.on("data", onData);
      proc.stderr?.on("data", onData);
      proc.once("exit", onExit);
      proc.once("error", onError);
    });
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      proc.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      proc.kill("SIGCONT"); // a paused server cannot handle SIGTERM
      proc.kill("SIGTERM");
    });
  };

  await start();
  const auth = options.password !== undefined ? `:${encodeURIComponent(options.password)}@` : "";
  return {
    url: `redis://${auth}127.0.0.1:${port}/0`,
    port,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    stop,
    async restart() {
      await stop();
      await start();
    },
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    },
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
