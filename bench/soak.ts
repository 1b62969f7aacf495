/**
 * `npm run soak`: minutes of mixed valid and invalid load at high concurrency
 * against the built server, reporting requests, errors by status, p50/p99 over
 * time and resident memory at start and end. Goal: no 5xx, memory growth < 5%.
 *
 *   npm run soak                       # 3 minutes, 64 connections
 *   SOAK_SECONDS=600 SOAK_CONNECTIONS=128 npm run soak
 */
import autocannon from "autocannon";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const seconds = Number(process.env.SOAK_SECONDS ?? 180);
const connections = Number(process.env.SOAK_CONNECTIONS ?? 64);
const windowSeconds = Math.min(30, Math.max(5, Math.floor(seconds / 6)));

const simple = JSON.stringify({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: Array.from({ length: 16 }, (_, i) => i) })) });
const sentiment = JSON.stringify({ inputs: [{ name: "text", datatype: "BYTES", shape: [2], data: ["This movie was fantastic!", "Never again."] }] });
const requests = [
  { method: "POST", path: "/v2/models/simple/infer", body: simple },
  { method: "POST", path: "/v2/models/sentiment/infer", body: sentiment },
  { method: "POST", path: "/v1/models/sentiment:predict", body: JSON.stringify({ instances: ["Great food."] }) },
  { method: "POST", path: "/v2/models/simple/infer", body: "{\"inputs\": [" },
  { method: "POST", path: "/v2/models/simple/infer", body: JSON.stringify({ inputs: [{ name: "INPUT0", shape: [1, 16], datatype: "FP32", data: [1] }] }) },
  { method: "POST", path: "/v2/models/nosuchmodel/infer", body: simple },
  { method: "POST", path: "/v2/models/simple/infer", body: JSON.stringify({ inputs: [{ name: "INPUT0", shape: [2 ** 31, 2 ** 31], datatype: "INT32", data: [] }] }) },
  { method: "GET", path: "/v2/health/ready" },
] as const;

/** Resident set after a forced full GC in the server (see gc-on-signal.mjs). */
async function retainedKb(pid: number): Promise<number> {
  process.kill(pid, "SIGUSR2");
  await new Promise((r) => setTimeout(r, 1000));
  return rssKb(pid);
}

function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

async function main(): Promise<void> {
  const port = 18000 + Math.floor(Math.random() * 1000);
  const server = spawn(process.execPath, ["--expose-gc", "--import", join(root, "bench", "gc-on-signal.mjs"), join(root, "bin", "inference-server.js")], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn", MODEL_REPOSITORY: join(root, "models") },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/v2/health/ready`)).status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // Warm up, then take the starting memory.
  await autocannon({ url, connections: 8, duration: 3, requests: [...requests] });
  const rssStart = await retainedKb(server.pid!);
  console.log(`soak: ${seconds}s at ${connections} connections, ${requests.length} request kinds (3 valid inferences, 4 invalid, readiness), windows of ${windowSeconds}s`);
  console.log("window  requests  req/s   p50 ms  p99 ms  2xx     4xx     5xx  errors  rss MB");
  const totals: Record<string, number> = { "2xx": 0, "4xx": 0, "5xx": 0, errors: 0, requests: 0 };
  for (let w = 0; w * windowSeconds < seconds; w++) {
    const r = await autocannon({ url, connections, duration: Math.min(windowSeconds, seconds - w * windowSeconds), requests: [...requests] });
    totals["2xx"] += r["2xx"];
    totals["4xx"] += r["4xx"];
    totals["5xx"] += r["5xx"];
    totals.errors += r.errors + r.timeouts;
    totals.requests += r.requests.total;
    console.log(
      `${String(w + 1).padStart(6)}  ${String(r.requests.total).padStart(8)}  ${String(Math.round(r.requests.average)).padStart(6)}  ${r.latency.p50.toFixed(1).padStart(6)}  ${r.latency.p99.toFixed(1).padStart(6)}  ${String(r["2xx"]).padStart(6)}  ${String(r["4xx"]).padStart(6)}  ${String(r["5xx"]).padStart(3)}  ${String(r.errors + r.timeouts).padStart(6)}  ${(rssKb(server.pid!) / 1024).toFixed(1).padStart(6)}`,
    );
  }
  const rssEnd = await retainedKb(server.pid!);
  const growth = ((rssEnd - rssStart) / rssStart) * 100;
  console.log(`total: ${totals.requests} requests, 2xx ${totals["2xx"]}, 4xx ${totals["4xx"]}, 5xx ${totals["5xx"]}, connection errors ${totals.errors}`);
  console.log(`resident memory after a full GC: ${(rssStart / 1024).toFixed(1)} MB after warm-up → ${(rssEnd / 1024).toFixed(1)} MB at the end (${growth >= 0 ? "+" : ""}${growth.toFixed(1)}%); the rss column is without forced GC`);
  const ok = totals["5xx"] === 0 && totals.errors === 0 && growth < 5;
  console.log(ok ? "PASS: no 5xx, no connection errors, memory growth under 5%" : "FAIL: see above");
  server.kill("SIGTERM");
  process.exitCode = ok ? 0 : 1;
}

await main();
