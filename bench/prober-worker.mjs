/**
 * The liveness prober of `npm run bench`'s hostile section (bench/hostile.ts, prober()), on a
 * thread of its own so that the load this process generates (hundreds of megabytes written to
 * sockets) does not delay the probes' own event loop: GETs `path` every `everyMs` over one
 * keep-alive connection (the next probe starts when both the interval has passed and the
 * previous answer came) until told to stop, then posts every latency.
 *
 * workerData: {url, path, everyMs, timeoutMs}
 * Messages in: "stop"   Messages out: {latencies: number[], failed: number}
 */
import { Agent, request } from "node:http";
import { parentPort, workerData } from "node:worker_threads";

const { url, path, everyMs, timeoutMs } = workerData;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const latencies = [];
let failed = 0;
let running = true;
parentPort.on("message", (m) => {
  if (m === "stop") running = false;
});

const once = () =>
  new Promise((resolve) => {
    const started = performance.now();
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      latencies.push(performance.now() - started);
      if (!ok) failed++;
      resolve();
    };
    const req = request(`${url}${path}`, { agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => finish(res.statusCode === 200));
      res.on("error", () => finish(false));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => finish(false));
    req.end();
  });

let next = performance.now();
while (running) {
  await once();
  next += everyMs;
  const wait = next - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  else next = performance.now();
}
agent.destroy();
parentPort.postMessage({ latencies, failed });
