/**
 * The sentiment model served by the real server over the Open Inference
 * Protocol v2 REST API: the held-out imdb accuracy measured through HTTP, the
 * edge cases, and the examples in examples/.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../../../runtime/src/server.js";
import { loadTest } from "./data.js";
import { metrics } from "./evaluate.js";
import { LABELS } from "./graph.js";

const root = join(import.meta.dirname, "..", "..", "..");
const run = promisify(execFile);

let server: { url: string; close(): Promise<void> };
let inProcess: ort.InferenceSession;

beforeAll(async () => {
  server = await startServer({ port: 0, host: "127.0.0.1", modelRepository: join(root, "models"), logLevel: "silent" });
  inProcess = await ort.InferenceSession.create(readFileSync(join(root, "models", "sentiment", "1", "model.onnx")));
}, 60_000);
afterAll(async () => {
  await server?.close();
});

interface Tensor {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

async function infer(data: unknown[], shape: number[] = [data.length]): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}/v2/models/sentiment/infer`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ inputs: [{ name: "text", datatype: "BYTES", shape, data }] }),
  });
  return { status: res.status, body: await res.json() };
}

/** POSTs `texts`, checks the response's shape, returns P(positive) and labels. */
async function classify(texts: string[]): Promise<{ positive: number[]; labels: string[] }> {
  const { status, body } = await infer(texts);
  expect(status, JSON.stringify(body)).toBe(200);
  const outputs = body.outputs as Tensor[];
  const probabilities = outputs.find((o) => o.name === "probabilities")!;
  const label = outputs.find((o) => o.name === "label")!;
  expect(probabilities.datatype).toBe("FP32");
  expect(probabilities.shape).toEqual([texts.length, 2]);
  expect(label.datatype).toBe("BYTES");
  expect(label.shape).toEqual([texts.length]);
  const p = probabilities.data as number[];
  const positive = texts.map((_, i) => {
    expect(p[2 * i]! + p[2 * i + 1]!).toBeCloseTo(1, 6);
    return p[2 * i + 1]!;
  });
  const labels = label.data as string[];
  for (const l of labels) expect(LABELS).toContain(l);
  return { positive, labels };
}

describe("POST /v2/models/sentiment/infer", () => {
  it("describes the model: text BYTES [-1] in, probabilities FP32 [-1,2] and label BYTES [-1] out", async () => {
    const res = await fetch(`${server.url}/v2/models/sentiment`);
    expect(res.status).toBe(200);
    const meta = (await res.json()) as { inputs: unknown[]; outputs: unknown[] };
    expect(meta.inputs).toEqual([{ name: "text", datatype: "BYTES", shape: [-1] }]);
    expect(meta.outputs).toEqual([
      { name: "probabilities", datatype: "FP32", shape: [-1, 2] },
      { name: "label", datatype: "BYTES", shape: [-1] },
    ]);
  });

  it("answers the issue's request with a positive label and its probability", async () => {
    const { positive, labels } = await classify(["This movie was fantastic!"]);
    expect(labels).toEqual(["positive"]);
    expect(positive[0]).toBeGreaterThan(0.9);
  });

  it("classifies the held-out imdb sentences through HTTP with accuracy ≥ 0.80, exactly as in process", async () => {
    const test = loadTest();
    const labels: string[] = [];
    const positive: number[] = [];
    for (let start = 0; start < test.length; start += 100) {
      const r = await classify(test.slice(start, start + 100).map((e) => e.text));
      labels.push(...r.labels);
      positive.push(...r.positive);
    }
    const m = metrics(test.map((e) => e.label), labels.map((l) => (l === "positive" ? 1 : 0)));
    console.log(`imdb through HTTP: accuracy ${m.accuracy.toFixed(3)}, macro-F1 ${m.macroF1.toFixed(3)} (n = ${m.n})`);
    expect(m.n).toBe(1000);
    expect(m.accuracy).toBeGreaterThanOrEqual(0.8);

    const out = await inProcess.run({ text: new ort.Tensor("string", test.map((e) => e.text), [test.length]) });
    expect(labels).toEqual(Array.from(out.label!.data as string[]));
    const p = out.probabilities!.data as Float32Array;
    positive.forEach((x, i) => expect(x).toBe(p[2 * i + 1]));
  });

  it("scores a batch of N sentences in one request, in order", async () => {
    const texts = ["Great food and friendly staff.", "The battery died after two days.", "I loved every minute of it.", "Worst service ever, avoid.", "This movie was fantastic!"];
    const { labels } = await classify(texts);
    expect(labels).toEqual(["positive", "negative", "positive", "negative", "positive"]);
    const reversed = await classify([...texts].reverse());
    expect(reversed.labels).toEqual([...labels].reverse());
  });

  it("answers an empty string", async () => {
    const { labels } = await classify([""]);
    expect(labels).toHaveLength(1);
  });

  it("answers a 100 KB string", async () => {
    const { labels } = await classify(["This was a wonderful, wonderful evening. ".repeat(2500)]);
    expect(labels).toEqual(["positive"]);
    const oneToken = await classify(["x".repeat(100_000)]);
    expect(oneToken.labels).toHaveLength(1);
  });

  it("answers non-ASCII text and emoji", async () => {
    const texts = ["C'était génial, j'ai adoré ce film", "素晴らしい映画でした", "😀👍🏽🎉", "I 😀 love it 👍🏽", "Ünïcödé everywhere but awful"];
    const { labels } = await classify(texts);
    expect(labels[3]).toBe("positive");
    expect(labels[4]).toBe("negative");
  });

  it("rejects a non-string element of the BYTES tensor with 400", async () => {
    for (const bad of [1, null, true, { text: "good" }]) {
      const { status, body } = await infer(["fine", bad]);
      expect(status, JSON.stringify(bad)).toBe(400);
      expect(body.error).toMatch(/element 1/);
    }
  });
});

describe("examples", () => {
  const env = () => ({ ...process.env, INFERENCE_URL: server.url });

  it("examples/sentiment.sh runs as documented", async () => {
    const { stdout } = await run("bash", [join(root, "examples", "sentiment.sh")], { env: env() });
    expect(stdout).toContain('"name":"sentiment"');
    expect(stdout).toContain('"data":["positive"]');
    expect(stdout).toContain('"data":["negative","positive","negative"]');
    const own = await run("bash", [join(root, "examples", "sentiment.sh"), "Loved it.", "Never again, awful."], { env: env() });
    expect(own.stdout).toContain('"data":["positive","negative"]');
  });

  it("examples/sentiment.ts runs as documented", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", join(root, "examples", "sentiment.ts"), "This movie was fantastic!", "Awful."], { env: env() });
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^positive [01]\.\d{3} {2}This movie was fantastic!$/);
    expect(lines[1]).toMatch(/^negative [01]\.\d{3} {2}Awful\.$/);
  });
});
