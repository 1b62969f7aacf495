/**
 * The committed model is what the code builds, the model card shows what the
 * build reports, and the committed model, run by onnxruntime-node, classifies
 * the held-out imdb sentences as the report says. This is the one test file
 * that runs the full build (training, 5-fold CV, imdb evaluation: a few seconds).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { bagOfWordsImdb, currentFigures, renderFigures } from "./card.js";
import { loadTest } from "./data.js";
import { metrics } from "./evaluate.js";
import { LABELS } from "./graph.js";
import { buildSentiment, buildSentimentModel, type SentimentBuild } from "./index.js";
import { probability } from "./model.js";

const modelsDir = join(import.meta.dirname, "..", "..");
const modelPath = join(modelsDir, "sentiment", "1", "model.onnx");
const cardPath = join(modelsDir, "sentiment", "README.md");
const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

let build: SentimentBuild;
let committed: Uint8Array;
let session: ort.InferenceSession;

beforeAll(async () => {
  build = buildSentiment();
  committed = readFileSync(modelPath);
  session = await ort.InferenceSession.create(committed);
}, 120_000);

async function classify(texts: string[]): Promise<{ positive: number[]; labels: string[]; dims: (readonly number[])[] }> {
  const out = await session.run({ text: new ort.Tensor("string", texts, [texts.length]) });
  const probs = out.probabilities!.data as Float32Array;
  const positive = texts.map((_, i) => {
    const pNeg = probs[2 * i]!, pPos = probs[2 * i + 1]!;
    expect(Number.isFinite(pPos) && pPos >= 0 && pPos <= 1).toBe(true);
    expect(pNeg + pPos).toBeCloseTo(1, 6);
    return pPos;
  });
  return { positive, labels: Array.from(out.label!.data as string[]), dims: [out.probabilities!.dims, out.label!.dims] };
}

describe("rebuild", () => {
  it("models/sentiment/1/model.onnx is byte for byte what buildSentiment() produces", () => {
    expect(sha256(build.model)).toBe(sha256(committed));
  });

  it("a second build in the same process is identical (no hidden state, clock or randomness)", () => {
    expect(sha256(buildSentimentModel())).toBe(sha256(build.model));
  });

  it("the optimiser converged", () => {
    expect(build.report.optimizer.converged).toBe(true);
  });
});

describe("model card", () => {
  it("shows the figures the build reports today", () => {
    const card = readFileSync(cardPath, "utf8");
    expect(currentFigures(card)).toBe(renderFigures(build.report, bagOfWordsImdb()));
  });

  it("reports imdb accuracy ≥ 0.80, above the AFINN baseline on the same sentences", () => {
    const ev = build.report.evaluation!;
    expect(ev.imdb.n).toBe(1000);
    expect(ev.afinnBaselineImdb.n).toBe(1000);
    expect(ev.imdb.accuracy).toBeGreaterThanOrEqual(0.8);
    expect(ev.imdb.accuracy).toBeGreaterThan(ev.afinnBaselineImdb.accuracy);
    expect(ev.imdb.macroF1).toBeGreaterThan(ev.afinnBaselineImdb.macroF1);
    expect(ev.cv.folds.length).toBe(5);
    expect(ev.cv.folds.reduce((n, f) => n + f.n, 0)).toBe(2000);
  });
});

describe("the committed model in onnxruntime-node", () => {
  it("has the documented interface", () => {
    expect(session.inputNames).toEqual(["text"]);
    expect(session.outputNames).toEqual(["probabilities", "label"]);
  });

  it("classifies the held-out imdb sentences as the report says (≥ 0.80), matching the TypeScript mirror", async () => {
    const test = loadTest();
    const { positive, labels, dims } = await classify(test.map((e) => e.text));
    expect(dims).toEqual([[1000, 2], [1000]]);
    const predicted = labels.map((l) => (l === "positive" ? 1 : 0));
    const m = metrics(test.map((e) => e.label), predicted);
    console.log(`imdb through onnxruntime-node: accuracy ${m.accuracy.toFixed(3)}, macro-F1 ${m.macroF1.toFixed(3)}`);
    expect(m).toEqual(build.report.evaluation!.imdb);
    expect(m.accuracy).toBeGreaterThanOrEqual(0.8);
    test.forEach((e, i) => {
      expect(Math.abs(positive[i]! - probability(build.trained, e.text))).toBeLessThan(1e-5);
      if (positive[i] !== 0.5) expect(labels[i]).toBe(positive[i]! > 0.5 ? "positive" : "negative");
    });
  });

  it("calls 'This movie was fantastic!' positive", async () => {
    const { positive, labels } = await classify(["This movie was fantastic!"]);
    expect(labels).toEqual(["positive"]);
    expect(positive[0]).toBeGreaterThan(0.9);
  });

  it("answers empty, 100 KB, non-ASCII and emoji input", async () => {
    const texts = [
      "",
      "great ".repeat(17_000), // 102 KB
      "x".repeat(100_000),
      "C'était génial, j'ai adoré ce film — 素晴らしい",
      "😀👍🏽🎉",
      "I 😀 love it 👍🏽",
      "\ud800 lone surrogate, terrible",
    ];
    const { positive, labels, dims } = await classify(texts);
    expect(dims).toEqual([[texts.length, 2], [texts.length]]);
    for (const l of labels) expect(LABELS).toContain(l);
    const noEvidence = probability(build.trained, "");
    expect(positive[0]).toBeCloseTo(noEvidence, 6); // no token: the bias alone
    expect(positive[2]).toBeCloseTo(noEvidence, 6); // one 100 KB token, not in the vocabulary
    expect(positive[4]).toBeCloseTo(noEvidence, 6); // emoji are not tokens
    expect(labels[1]).toBe("positive");
    expect(labels[5]).toBe("positive");
    expect(labels[6]).toBe("negative");
  });

  it("scores each sentence of a batch as if it were alone", async () => {
    const texts = loadTest().slice(0, 40).map((e) => e.text);
    texts.splice(7, 0, "", "😀");
    const batch = await classify(texts);
    for (let i = 0; i < texts.length; i++) {
      const single = await classify([texts[i]!]);
      expect(single.labels[0]).toBe(batch.labels[i]);
      expect(single.positive[0]).toBeCloseTo(batch.positive[i]!, 6);
    }
  });
});
