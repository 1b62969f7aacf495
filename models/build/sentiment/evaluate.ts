/** Metrics and cross-validation. */
import type { Example } from "./data.js";
import type { Lexicon } from "./features.js";
import { HYPERPARAMETERS, logit, train, type Hyperparameters } from "./model.js";
import { mulberry32, shuffled } from "./prng.js";

/** Seed of the cross-validation fold assignment. */
export const CV_SEED = 42;
export const CV_FOLDS = 5;

export interface Metrics {
  n: number;
  accuracy: number;
  /** Mean of the F1 of the positive and of the negative class. */
  macroF1: number;
  /** [[true negatives, false positives], [false negatives, true positives]] */
  confusion: [[number, number], [number, number]];
}

export function metrics(labels: ArrayLike<number>, predictions: ArrayLike<number>): Metrics {
  if (labels.length !== predictions.length) throw new Error("labels and predictions differ in length");
  let tn = 0, fp = 0, fn = 0, tp = 0;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!, p = predictions[i]!;
    if (y === 1 && p === 1) tp++;
    else if (y === 1) fn++;
    else if (p === 1) fp++;
    else tn++;
  }
  const f1 = (t: number, f1: number, f2: number): number => (t === 0 ? 0 : (2 * t) / (2 * t + f1 + f2));
  const n = labels.length;
  return {
    n,
    accuracy: n === 0 ? 0 : (tp + tn) / n,
    macroF1: (f1(tp, fp, fn) + f1(tn, fn, fp)) / 2,
    confusion: [[tn, fp], [fn, tp]],
  };
}

/** Fold of each example: a seeded shuffle of the indices, then index i of the shuffle goes to fold i mod k. */
export function foldAssignment(n: number, k = CV_FOLDS, seed = CV_SEED): Int32Array {
  const order = shuffled(Array.from({ length: n }, (_, i) => i), mulberry32(seed));
  const fold = new Int32Array(n);
  order.forEach((idx, i) => (fold[idx] = i % k));
  return fold;
}

export interface CrossValidation {
  folds: Metrics[];
  meanAccuracy: number;
  stdAccuracy: number;
  meanMacroF1: number;
}

export function crossValidate(examples: readonly Example[], lexicon: Lexicon, hp: Hyperparameters = HYPERPARAMETERS, k = CV_FOLDS, seed = CV_SEED): CrossValidation {
  const fold = foldAssignment(examples.length, k, seed);
  const folds: Metrics[] = [];
  for (let f = 0; f < k; f++) {
    const trainSet = examples.filter((_, i) => fold[i] !== f);
    const testSet = examples.filter((_, i) => fold[i] === f);
    const m = train(trainSet, lexicon, hp);
    folds.push(metrics(testSet.map((e) => e.label), testSet.map((e) => (logit(m, e.text) > 0 ? 1 : 0))));
  }
  const accs = folds.map((m) => m.accuracy);
  const mean = accs.reduce((a, b) => a + b, 0) / k;
  const std = Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / (k - 1));
  return { folds, meanAccuracy: mean, stdAccuracy: std, meanMacroF1: folds.reduce((a, m) => a + m.macroF1, 0) / k };
}
