/**
 * Training: binary uni+bigram features plus the AFINN score column, L2 logistic
 * regression (the lexicon column is not penalised: it is a prior every n-gram
 * inherits, and the n-gram weights learn corrections to it).
 */
import type { Example } from "./data.js";
import { buildVocabulary, featurize, type Lexicon, type Vocabulary } from "./features.js";
import { csrFromRows, fitLogReg, sigmoid, type Csr } from "./logreg.js";

export interface Hyperparameters {
  /** Inverse L2 strength for the n-gram weights (scikit-learn's C). */
  C: number;
  /** Minimum number of training sentences an n-gram must occur in to get a feature. */
  minDf: number;
  /** Whether the AFINN score column is used. */
  lexicon: boolean;
  /** Binary presence features (TfIdfVectorizer mode "IDF") rather than counts (mode "TF"). */
  binary: boolean;
}

/** Chosen by 5-fold cross-validation on amazon + yelp (select.ts); imdb played no part. */
export const HYPERPARAMETERS: Hyperparameters = { C: 100, minDf: 1, lexicon: true, binary: true };

export interface TrainedModel {
  vocab: Vocabulary;
  binary: boolean;
  /** Learned n-gram weights (one per vocabulary entry). */
  ngramWeights: Float64Array;
  /** Learned weight of the AFINN score column. */
  lexiconWeight: number;
  bias: number;
  /** Effective weight of each vocabulary n-gram: ngramWeights[j] + lexiconWeight · afinn[j]. */
  weights: Float64Array;
  iterations: number;
  converged: boolean;
}

function designMatrix(rows: [number, number][][], vocab: Vocabulary, withLexicon: boolean): Csr {
  const V = vocab.index.size;
  return csrFromRows(
    rows.map((feats) => {
      if (!withLexicon) return feats;
      let s = 0;
      for (const [j, v] of feats) s += v * vocab.lexScore[j]!;
      return [...feats, [V, s] as [number, number]];
    }),
    withLexicon ? V + 1 : V,
  );
}

export function train(examples: readonly Example[], lexicon: Lexicon, hp: Hyperparameters = HYPERPARAMETERS): TrainedModel {
  const vocab = buildVocabulary(examples.map((e) => e.text), hp.lexicon ? lexicon : new Map(), hp.minDf);
  const V = vocab.index.size;
  const X = designMatrix(examples.map((e) => featurize(e.text, vocab, hp.binary)), vocab, hp.lexicon);
  const y = Uint8Array.from(examples, (e) => e.label);
  const penalty = new Float64Array(X.cols).fill(1);
  if (hp.lexicon) penalty[V] = 0;
  const fit = fitLogReg(X, y, { C: hp.C, penalty, maxIter: 2000, tol: 1e-7 });
  const ngramWeights = fit.weights.slice(0, V);
  const lexiconWeight = hp.lexicon ? fit.weights[V]! : 0;
  const weights = new Float64Array(V);
  for (let j = 0; j < V; j++) weights[j] = ngramWeights[j]! + lexiconWeight * vocab.lexScore[j]!;
  return { vocab, binary: hp.binary, ngramWeights, lexiconWeight, bias: fit.bias, weights, iterations: fit.iterations, converged: fit.converged };
}

/** Decision value (log-odds of "positive") in double precision. */
export function logit(m: TrainedModel, text: string): number {
  let z = m.bias;
  for (const [j, v] of featurize(text, m.vocab, m.binary)) z += v * m.weights[j]!;
  return z;
}

/** P(positive) in double precision: what the graph computes, before float32 rounding. */
export function probability(m: TrainedModel, text: string): number {
  return sigmoid(logit(m, text));
}
