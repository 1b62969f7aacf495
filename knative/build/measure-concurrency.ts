/**
 * Measures latency and throughput of a running inference server against the
 * number of concurrent requests, to choose the Knative `containerConcurrency`.
 *
 *   npm run build
 *   PORT=18123 taskset -c 0 node bin/inference-server.js &      # the server on one CPU, as in a 1-CPU pod
 *   taskset -c 1 npx tsx knative/build/measure-concurrency.ts --url http://127.0.0.1:18123 --model sentiment
 *
 * Options: --levels 1,2,4,8,16,32,64  --duration 5 (seconds per run)  --rounds 3 (runs per
 * level, interleaved; the median is reported)  --batch 1 (elements per request on the
 * model's first dimension)  --json (machine-readable output).
 *
 * The request is built from the model's metadata (GET /v2/models/<model>), so it
 * works for any model the server serves. Prints a Markdown table and the knee:
 * the lowest concurrency that reaches 90% of the best throughput. Past it, extra
 * concurrency only queues inside the pod (onnxruntime-node runs inferences one at
 * a time on the event-loop thread), so p99 latency grows with no throughput gain.
 */
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import autocannonModule from "autocannon";

interface TensorMeta {
  name: string;
  datatype: string;
  shape: number[];
}

interface RunResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

export interface LevelSummary extends RunResult {
  concurrency: number;
}

type Autocannon = (opts: Record<string, unknown>) => Promise<{
  requests: { average: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}>;
const autocannon = autocannonModule as unknown as Autocannon;

const SAMPLE_TEXT = ["The service was quick and the staff were friendly.", "Terrible. It broke after two days."];

/** One request body for `batch` elements, shaped by the model's declared inputs. */
export function requestBody(inputs: TensorMeta[], batch: number): string {
  return JSON.stringify({
    inputs: inputs.map((input) => {
      const shape = input.shape.length === 0 ? [batch] : input.shape.map((d, i) => (d >= 0 ? d : i === 0 ? batch : 1));
      const count = shape.reduce((a, b) => a * b, 1);
      const data =
        input.datatype === "BYTES"
          ? Array.from({ length: count }, (_, i) => SAMPLE_TEXT[i % SAMPLE_TEXT.length]!)
          : input.datatype === "BOOL"
            ? Array.from({ length: count }, (_, i) => i % 2 === 0)
            : Array.from({ length: count }, (_, i) => (i % 7) + 1);
      return { name: input.name, datatype: input.datatype, shape, data };
    }),
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The lowest concurrency whose throughput is within `fraction` of the best one. */
export function knee(levels: LevelSummary[], fraction = 0.9): LevelSummary {
  const best = Math.max(...levels.map((l) => l.rps));
  const sorted = [...levels].sort((a, b) => a.concurrency - b.concurrency);
  return sorted.find((l) => l.rps >= fraction * best) ?? sorted[sorted.length - 1]!;
}

async function run(url: string, body: string, connections: number, duration: number): Promise<RunResult> {
  const r = await autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    connections,
    duration,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: "string", default: "http://127.0.0.1:18123" },
      model: { type: "string", default: "sentiment" },
      levels: { type: "string", default: "1,2,4,8,16,32,64" },
      duration: { type: "string", default: "5" },
      rounds: { type: "string", default: "3" },
      batch: { type: "string", default: "1" },
      json: { type: "boolean", default: false },
    },
  });
  const base = values.url.replace(/\/$/, "");
  const meta = (await (await fetch(`${base}/v2/models/${values.model}`)).json()) as { inputs?: TensorMeta[] };
  if (!meta.inputs) throw new Error(`no metadata for model ${values.model} at ${base}`);
  const body = requestBody(meta.inputs, Number(values.batch));
  const target = `${base}/v2/models/${values.model}/infer`;
  const levels = values.levels.split(",").map(Number);
  const duration = Number(values.duration);

  await run(target, body, 4, 2); // warm-up: JIT, ONNX Runtime arenas
  const runs = new Map<number, RunResult[]>(levels.map((c) => [c, []]));
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const c of levels) runs.get(c)!.push(await run(target, body, c, duration));
  }
  const summary: LevelSummary[] = levels.map((c) => {
    const r = runs.get(c)!;
    return {
      concurrency: c,
      rps: Math.round(median(r.map((x) => x.rps))),
      p50: median(r.map((x) => x.p50)),
      p99: median(r.map((x) => x.p99)),
      errors: r.reduce((a, x) => a + x.errors, 0),
      non2xx: r.reduce((a, x) => a + x.non2xx, 0),
    };
  });
  const k = knee(summary);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ model: values.model, batch: Number(values.batch), summary, knee: k.concurrency }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`model ${values.model}, batch ${values.batch}, ${values.rounds} x ${duration}s per level (medians)\n\n`);
  process.stdout.write("| concurrency | req/s | p50 ms | p99 ms | errors |\n|---:|---:|---:|---:|---:|\n");
  for (const s of summary) process.stdout.write(`| ${s.concurrency} | ${s.rps} | ${s.p50} | ${s.p99} | ${s.errors + s.non2xx} |\n`);
  process.stdout.write(`\nknee (lowest concurrency with >= 90% of the best throughput): ${k.concurrency}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`measure-concurrency: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
