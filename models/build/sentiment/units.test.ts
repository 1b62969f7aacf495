/** Unit tests of the training code: text pipeline, lexicon mapping, PRNG, metrics, optimiser, data. */
import { describe, expect, it } from "vitest";
import { afinnScore, loadAfinn, loadNegators, loadSource, loadTest, loadTrain } from "./data.js";
import { foldAssignment, metrics } from "./evaluate.js";
import { buildVocabulary, featurize, lexiconNgrams } from "./features.js";
import { csrFromRows, decision, fitLogReg, sigmoid } from "./logreg.js";
import { mulberry32, shuffled } from "./prng.js";
import { ngrams, normalize, tokenize } from "./text.js";

describe("text pipeline mirror", () => {
  it("lower-cases ASCII only, like StringNormalizer in the C locale", () => {
    expect(normalize("This IS Fine ÉCOLE Σ")).toBe("this is fine École Σ");
  });

  it("tokenizes like the graph's Tokenizer", () => {
    expect(tokenize("Don't 'quote' rock'n'roll, x-ray 3D!")).toEqual(["don't", "quote", "rock'n'roll", "x", "ray", "3d"]);
    expect(tokenize("naïve café 😀 ok")).toEqual(["na", "ve", "caf", "ok"]);
    expect(tokenize("")).toEqual([]);
    expect(tokenize("?! 😀")).toEqual([]);
  });

  it("lists unigrams then adjacent bigrams", () => {
    expect(ngrams(["not", "good", "at"])).toEqual(["not", "good", "at", "not good", "good at"]);
    expect(ngrams([])).toEqual([]);
  });
});

describe("AFINN lexicon as n-grams", () => {
  const { lexicon, dropped } = lexiconNgrams(loadAfinn());

  it("maps single words, hyphenated and two-word entries to the tokenizer's n-grams", () => {
    expect(lexicon.get("good")).toBe(3);
    expect(lexicon.get("cover up")).toBe(loadAfinn().get("cover-up"));
    expect(lexicon.get("can't stand")).toBe(loadAfinn().get("can't stand"));
  });

  it("leaves out entries the tokenizer would mangle or that are longer than a bigram", () => {
    expect(dropped).toEqual(["does not work", "naïve", "once-in-a-lifetime", "son-of-a-bitch"]);
    expect(lexicon.has("na ve")).toBe(false);
    expect(lexicon.size + dropped.length).toBe(loadAfinn().size);
  });

  it("puts lexicon entries into the vocabulary even when training never saw them", () => {
    const vocab = buildVocabulary(["a fine day"], lexicon, 1);
    expect(vocab.index.has("abhorrent")).toBe(true);
    expect(vocab.index.has("fine day")).toBe(true);
    expect(vocab.unigrams).toEqual([...vocab.unigrams].sort());
    expect(vocab.lexScore[vocab.index.get("abhorrent")!]).toBe(loadAfinn().get("abhorrent"));
    // binary features: a repeated word counts once; counts mode counts it
    const fine = vocab.index.get("fine")!;
    expect(featurize("fine, fine.", vocab)).toContainEqual([fine, 1]);
    expect(featurize("fine, fine.", vocab, false)).toContainEqual([fine, 2]);
  });

  it("applies minimum document frequency to training n-grams only", () => {
    const vocab = buildVocabulary(["red car", "red bike"], new Map([["zebra", 1]]), 2);
    expect([...vocab.index.keys()]).toEqual(["red", "zebra"]);
  });
});

describe("mulberry32", () => {
  it("is deterministic for a seed and differs between seeds", () => {
    const a = mulberry32(42), b = mulberry32(42), c = mulberry32(43);
    const xs = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(xs);
    expect(c()).not.toBe(xs[0]);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });

  it("shuffles into a permutation, the same one for the same seed", () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const s1 = shuffled(items, mulberry32(7));
    expect(shuffled(items, mulberry32(7))).toEqual(s1);
    expect([...s1].sort((x, y) => x - y)).toEqual(items);
    expect(s1).not.toEqual(items);
  });

  it("assigns balanced folds", () => {
    const folds = foldAssignment(2000, 5, 42);
    for (let f = 0; f < 5; f++) expect(folds.filter((x) => x === f).length).toBe(400);
  });
});

describe("metrics", () => {
  it("computes accuracy, per-class F1 and their mean", () => {
    // tp=2, fn=1, fp=1, tn=4
    const m = metrics([1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 0, 1, 0, 0, 0, 0]);
    expect(m.accuracy).toBe(6 / 8);
    expect(m.confusion).toEqual([[4, 1], [1, 2]]);
    const f1pos = (2 * 2) / (2 * 2 + 1 + 1);
    const f1neg = (2 * 4) / (2 * 4 + 1 + 1);
    expect(m.macroF1).toBeCloseTo((f1pos + f1neg) / 2, 12);
  });

  it("gives F1 0 to a class that is never predicted correctly", () => {
    expect(metrics([1, 0], [0, 0]).macroF1).toBeCloseTo((0 + 2 / 3) / 2, 12);
  });
});

describe("logistic regression (L-BFGS)", () => {
  it("reaches the optimum of the regularised objective (zero gradient)", () => {
    const rand = mulberry32(1);
    const rows: [number, number][][] = [];
    const y: number[] = [];
    for (let i = 0; i < 300; i++) {
      const x0 = rand() * 2 - 1, x1 = rand() * 2 - 1, x2 = rand() < 0.3 ? 1 : 0;
      rows.push([[0, x0], [1, x1], [2, x2]]);
      y.push(rand() < sigmoid(2 * x0 - 3 * x1 + 0.5) ? 1 : 0);
    }
    const X = csrFromRows(rows, 3);
    const labels = Uint8Array.from(y);
    const C = 0.7;
    const penalty = Float64Array.from([1, 1, 0]);
    const m = fitLogReg(X, labels, { C, penalty, tol: 1e-8 });
    expect(m.converged).toBe(true);
    // ∂f/∂w_j = C Σ (σ(z_i) − y_i) x_ij + p_j w_j, ∂f/∂b = C Σ (σ(z_i) − y_i)
    const grad = [0, 0, 0, 0];
    for (let i = 0; i < X.rows; i++) {
      const r = C * (sigmoid(decision(X, i, m.weights, m.bias)) - labels[i]!);
      for (const [j, v] of rows[i]!) grad[j]! += r * v;
      grad[3]! += r;
    }
    for (let j = 0; j < 3; j++) grad[j]! += penalty[j]! * m.weights[j]!;
    for (const g of grad) expect(Math.abs(g)).toBeLessThan(1e-6);
    expect(m.weights[0]).toBeGreaterThan(0);
    expect(m.weights[1]).toBeLessThan(0);
    // a tolerance below floating-point reach stalls the line search: reported as not converged
    expect(fitLogReg(X, labels, { C, penalty, tol: 1e-14 }).converged).toBe(false);
  });

  it("applies a fixed offset without learning it", () => {
    const X = csrFromRows([[[0, 1]], [[0, 1]], [[0, 0]], [[0, 0]]], 1);
    const y = Uint8Array.from([1, 0, 1, 0]);
    const plain = fitLogReg(X, y, { C: 1 });
    const shifted = fitLogReg(X, y, { C: 1, offset: Float64Array.from([2, 2, 2, 2]) });
    expect(shifted.bias).toBeCloseTo(plain.bias - 2, 5);
  });
});

describe("data", () => {
  it("loads 1,000 balanced sentences per source, skipping the blank trailing record", () => {
    for (const source of ["amazon", "yelp", "imdb"] as const) {
      const d = loadSource(source);
      expect(d.length).toBe(1000);
      expect(d.filter((e) => e.label === 1).length).toBe(500);
      expect(d.every((e) => e.text.length > 0 && e.source === source)).toBe(true);
    }
    expect(loadTrain().map((e) => e.source)).not.toContain("imdb");
    expect(loadTest().every((e) => e.source === "imdb")).toBe(true);
  });

  it("exposes the AFINN lexicon, the negators and the package's own score", () => {
    expect(loadAfinn().size).toBe(3382);
    expect(loadNegators()).toContain("not");
    expect(afinnScore("This movie was fantastic!")).toBeGreaterThan(0);
    expect(afinnScore("not good")).toBeLessThan(0);
  });
});
