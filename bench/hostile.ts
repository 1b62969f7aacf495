/**
 * Tools for the `hostile` section of `npm run bench` (bench/run.ts): a memory cap like the
 * pod's for a spawned server, a liveness prober, many raw requests at once with every
 * outcome counted (status, or why there was no answer), and a peak-RSS sampler.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { join } from "node:path";
import { Worker } from "node:worker_threads";

// ---------------------------------------------------------------- a memory cap like the pod's

export interface MemoryCage {
  /** The command line that runs `command args` inside the cage, seeing the cage's limit as its own. */
  wrap(command: string, args: string[]): { command: string; args: string[] };
  /** The cgroup's peak usage in bytes (includes page cache), when the kernel reports it. */
  peakBytes(): number | undefined;
  /** Times the cgroup's limit was hit (v1 failcnt, v2 memory.events max) and OOM kills, when reported. */
  events(): { limitHits?: number; oomKills?: number };
  /** Removes the cgroup (once the process in it has exited). */
  remove(): void;
  readonly limitBytes: number;
}

let cages = 0;
const live = new Set<MemoryCage>();
process.on("exit", () => {
  for (const c of live) c.remove();
});

const readNumber = (path: string): number | undefined => {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
};

/**
 * A child memory cgroup of this process' own, limited to `limitBytes`, that the server runs in
 * as in a container: `unshare -m` and a bind mount put the child cgroup where the server reads
 * its limit (/sys/fs/cgroup/memory for cgroup v1, /sys/fs/cgroup for v2), the way a container
 * runtime mounts a pod's cgroup. Undefined when that is not possible here (not root, no
 * writable memory controller, no unshare): the server then runs without a cap.
 */
export function memoryCage(limitBytes: number): MemoryCage | { unavailable: string } {
  if (!existsSync("/usr/bin/unshare") && !existsSync("/bin/unshare")) return { unavailable: "no unshare(1)" };
  let lines: string[];
  try {
    lines = readFileSync("/proc/self/cgroup", "utf8").trim().split("\n");
  } catch {
    return { unavailable: "no /proc/self/cgroup" };
  }
  const v1 = lines.map((l) => l.split(":")).find((f) => f[1]?.split(",").includes("memory"));
  const name = `bench-${process.pid}-${++cages}`;
  let dir: string;
  let mountPoint: string;
  let kind: "v1" | "v2";
  if (v1 && existsSync("/sys/fs/cgroup/memory")) {
    kind = "v1";
    mountPoint = "/sys/fs/cgroup/memory";
    dir = join(mountPoint, v1[2]!, name);
  } else {
    const v2 = lines.find((l) => l.startsWith("0::"));
    if (!v2 || !existsSync("/sys/fs/cgroup/cgroup.controllers")) return { unavailable: "no memory cgroup" };
    kind = "v2";
    mountPoint = "/sys/fs/cgroup";
    dir = join(mountPoint, v2.slice(3), name);
  }
  try {
    mkdirSync(dir);
  } catch (err) {
    return { unavailable: `cannot create a cgroup (${(err as Error).message})` };
  }
  try {
    if (kind === "v1") writeFileSync(join(dir, "memory.limit_in_bytes"), String(limitBytes));
    else writeFileSync(join(dir, "memory.max"), String(limitBytes));
  } catch (err) {
    try {
      rmdirSync(dir);
    } catch {
      // leave it
    }
    return { unavailable: `cannot set the cgroup's memory limit (${(err as Error).message})` };
  }
  const cage: MemoryCage = {
    limitBytes,
    wrap: (command, args) => ({
      command: "unshare",
      args: [
        "-m", "--propagation", "private", "sh", "-c",
        'echo $$ > "$BENCH_CGROUP/cgroup.procs" && mount --bind "$BENCH_CGROUP" "$BENCH_CGROUP_MOUNT" && exec "$@"',
        "sh", command, ...args,
      ],
    }),
    peakBytes: () => (kind === "v1" ? readNumber(join(dir, "memory.max_usage_in_bytes")) : readNumber(join(dir, "memory.peak"))),
    events: () => {
      if (kind === "v1") {
        const oom = /oom_kill (\d+)/.exec(safeRead(join(dir, "memory.oom_control")))?.[1];
        return { limitHits: readNumber(join(dir, "memory.failcnt")), ...(oom !== undefined ? { oomKills: Number(oom) } : {}) };
      }
      const text = safeRead(join(dir, "memory.events"));
      return { limitHits: Number(/^max (\d+)/m.exec(text)?.[1] ?? NaN), oomKills: Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? NaN) };
    },
    remove: () => {
      live.delete(cage);
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
          // still busy for a moment after the process exits
          const until = Date.now() + 20;
          while (Date.now() < until);
        }
      }
    },
  };
  // The environment the wrapper needs; the caller merges it into the child's environment.
  (cage as MemoryCage & { env: Record<string, string> }).env = { BENCH_CGROUP: dir, BENCH_CGROUP_MOUNT: mountPoint };
  live.add(cage);
  return cage;
}

export const cageEnv = (cage: MemoryCage) => (cage as MemoryCage & { env: Record<string, string> }).env;

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------- peak RSS

/** Samples the process' VmRSS (all its threads: the worker-thread instances too) until stopped; max with VmHWM. */
export function rssSampler(pid: number, everyMs = 20): { stop(): { peakMb: number; hwmMb: number } } {
  let peakKb = 0;
  let hwmKb = 0;
  const sample = () => {
    try {
      const text = readFileSync(`/proc/${pid}/status`, "utf8");
      peakKb = Math.max(peakKb, Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? 0));
      hwmKb = Math.max(hwmKb, Number(/VmHWM:\s+(\d+)/.exec(text)?.[1] ?? 0));
    } catch {
      // exited
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      sample();
      clearInterval(timer);
      return { peakMb: Math.max(peakKb, hwmKb) / 1024, hwmMb: hwmKb / 1024 };
    },
  };
}

// ---------------------------------------------------------------- the liveness prober

export interface ProbeResult {
  count: number;
  p50: number;
  p99: number;
  max: number;
  /** Probes that got no 200 (an error, a timeout, another status). */
  failed: number;
}

/**
 * GETs `path` every `everyMs` over one keep-alive connection of its own (the next probe
 * starts when both the interval has passed and the previous answer came), until stopped;
 * on a worker thread (prober-worker.mjs), so this process' own load does not delay it.
 */
export function prober(url: string, path = "/v2/health/live", everyMs = 10, timeoutMs = 5_000): { stop(): Promise<ProbeResult> } {
  const worker = new Worker(new URL("./prober-worker.mjs", import.meta.url), { workerData: { url, path, everyMs, timeoutMs } });
  const result = new Promise<{ latencies: number[]; failed: number }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  return {
    async stop() {
      worker.postMessage("stop");
      const { latencies, failed } = await result;
      await worker.terminate();
      const sorted = Float64Array.from(latencies).sort();
      const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : NaN);
      return { count: sorted.length, p50: q(0.5), p99: q(0.99), max: sorted.length ? sorted[sorted.length - 1]! : NaN, failed };
    },
  };
}

// ---------------------------------------------------------------- many requests at once

export interface Outcomes {
  /** Answers by status code. */
  statuses: Record<number, number>;
  /** Requests without an answer, by why (ECONNRESET, EPIPE, socket hang up, timeout, …). */
  unanswered: Record<string, number>;
  /** Answers that came before the whole body was sent (refused early). */
  early: number;
  /** When each request without an answer failed, ms after it started. */
  failedMs: number[];
  /** Median and longest time to the answer (or to the failure), ms. */
  p50: number;
  max: number;
}

export const total = (counts: Record<string | number, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
export const describe = (counts: Record<string | number, number>) =>
  Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}×${n}`).join(", ") || "none";

/**
 * One POST with a shared body Buffer (written from the same memory for every request: no copies).
 * An answer counts once its status line arrived, whatever happens to the connection after.
 */
export function post(agent: Agent | false, url: string, body: Buffer, headers: Record<string, string>, timeoutMs: number): Promise<{ status?: number; error?: string; early: boolean; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    let sent = false;
    let done = false;
    const finish = (r: { status?: number; error?: string }) => {
      if (done) return;
      done = true;
      resolve({ ...r, early, ms: performance.now() - started });
    };
    let status: number | undefined;
    let early = false;
    const req = httpRequest(url, { method: "POST", agent, timeout: timeoutMs, headers: { "content-type": "application/json", ...headers, "content-length": String(body.byteLength) } }, (res) => {
      // Answered once the status line arrived, whatever happens to the connection after.
      status = res.statusCode!;
      early = !sent;
      res.resume();
      res.on("end", () => finish({ status }));
      res.on("close", () => finish({ status }));
      res.on("error", () => finish({ status }));
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "timeout" })));
    req.on("error", (err: NodeJS.ErrnoException) => finish(status !== undefined ? { status } : { error: err.code ?? err.message }));
    req.on("finish", () => (sent = true));
    req.end(body);
  });
}

/** `count` requests started at once; resolves when every one has an answer or failed. */
export async function burst(count: number, url: string, body: Buffer, headers: Record<string, string>, timeoutMs: number): Promise<Outcomes> {
  const agent = new Agent({ keepAlive: false, maxSockets: count });
  const results = await Promise.all(Array.from({ length: count }, () => post(agent, url, body, headers, timeoutMs)));
  agent.destroy();
  return tally(results);
}

/** `connections` clients sending back to back for `seconds`. */
export async function closedLoop(connections: number, seconds: number, url: string, body: Buffer, headers: Record<string, string>, timeoutMs: number): Promise<Outcomes & { requests: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const until = performance.now() + seconds * 1000;
  const results: Awaited<ReturnType<typeof post>>[] = [];
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) results.push(await post(agent, url, body, headers, timeoutMs));
    }),
  );
  agent.destroy();
  return { ...tally(results), requests: results.length };
}

function tally(results: Awaited<ReturnType<typeof post>>[]): Outcomes {
  const statuses: Record<number, number> = {};
  const unanswered: Record<string, number> = {};
  let early = 0;
  for (const r of results) {
    if (r.status !== undefined) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    else unanswered[r.error ?? "?"] = (unanswered[r.error ?? "?"] ?? 0) + 1;
    if (r.early) early++;
  }
  const ms = Float64Array.from(results.map((r) => r.ms)).sort();
  const failedMs = results.filter((r) => r.status === undefined).map((r) => r.ms);
  return { statuses, unanswered, early, failedMs, p50: ms.length ? ms[ms.length >> 1]! : NaN, max: ms.length ? ms[ms.length - 1]! : NaN };
}
