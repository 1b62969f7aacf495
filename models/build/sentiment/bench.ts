/**
 * Latency of the served graph in process (onnxruntime-node, CPU, default
 * session options), measured on the committed model.
 *
 *   npx tsx models/build/sentiment/bench.ts [runs]
 *
 * One run = session.run() on one sentence ("This movie was fantastic!"),
 * including the string tensor's creation; reports the median and tail of
 * `runs` timed runs after 200 warm-up runs. Also times the 1,000 imdb
 * sentences as one batch (median of 20).
 */
import { readFileSync, statSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { loadTest } from "./data.js";

const modelPath = join(import.meta.dirname, "..", "..", "sentiment", "1", "model.onnx");
const runs = Number(process.argv[2] ?? 5000);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function time(session: ort.InferenceSession, texts: string[], n: number, warmup: number): Promise<number[]> {
  const feeds = () => ({ text: new ort.Tensor("string", texts, [texts.length]) });
  for (let i = 0; i < warmup; i++) await session.run(feeds());
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds());
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out.sort((a, b) => a - b);
}

const session = await ort.InferenceSession.create(readFileSync(modelPath));
const one = await time(session, ["This movie was fantastic!"], runs, 200);
const batch = await time(session, loadTest().map((e) => e.text), 20, 2);
console.log(`model: models/sentiment/1/model.onnx (${statSync(modelPath).size} bytes)`);
console.log(`machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores, Node ${process.version}, onnxruntime-node ${ort.env.versions.common}`);
console.log(`one sentence, ${runs} runs: median ${quantile(one, 0.5).toFixed(0)} µs, p90 ${quantile(one, 0.9).toFixed(0)} µs, p99 ${quantile(one, 0.99).toFixed(0)} µs`);
console.log(`1,000 imdb sentences in one batch: median ${(quantile(batch, 0.5) / 1000).toFixed(1)} ms (${(quantile(batch, 0.5) / 1000).toFixed(1)} µs per sentence)`);
