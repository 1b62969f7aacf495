/**
 * `sentiment`: trains the text classifier deterministically and returns the
 * ONNX graph (models/sentiment/1/model.onnx) and a report of its evaluation.
 *
 *   buildSentiment()                      → model bytes + CV, imdb and AFINN figures
 *   buildSentiment({ evaluate: false })   → model bytes only (one training run)
 */
import { afinnScore, loadAfinn, loadTest, loadTrain } from "./data.js";
import { crossValidate, CV_FOLDS, CV_SEED, metrics, type CrossValidation, type Metrics } from "./evaluate.js";
import { lexiconNgrams } from "./features.js";
import { buildGraph } from "./graph.js";
import { HYPERPARAMETERS, logit, train, type Hyperparameters, type TrainedModel } from "./model.js";

export interface SentimentReport {
  hyperparameters: Hyperparameters;
  trainSize: number;
  testSize: number;
  /** Vocabulary entries (uni- and bigrams) in the TfIdfVectorizer pool. */
  features: { unigrams: number; bigrams: number; total: number; lexiconEntries: number; lexiconDropped: string[] };
  lexiconWeight: number;
  bias: number;
  optimizer: { iterations: number; converged: boolean };
  modelBytes: number;
  /** Present when evaluated: 5-fold CV on amazon + yelp, the held-out imdb figures, and the AFINN baseline on imdb. */
  evaluation?: {
    cv: CrossValidation & { folds_k: number; seed: number };
    imdb: Metrics;
    afinnBaselineImdb: Metrics;
  };
}

export interface SentimentBuild {
  model: Uint8Array;
  report: SentimentReport;
  trained: TrainedModel;
}

export function buildSentiment(options: { evaluate?: boolean } = {}): SentimentBuild {
  const evaluate = options.evaluate ?? true;
  const trainSet = loadTrain();
  const testSet = loadTest();
  const { lexicon, dropped } = lexiconNgrams(loadAfinn());
  const trained = train(trainSet, lexicon, HYPERPARAMETERS);
  const model = buildGraph(trained);

  const report: SentimentReport = {
    hyperparameters: HYPERPARAMETERS,
    trainSize: trainSet.length,
    testSize: testSet.length,
    features: {
      unigrams: trained.vocab.unigrams.length,
      bigrams: trained.vocab.bigrams.length,
      total: trained.vocab.index.size,
      lexiconEntries: lexicon.size,
      lexiconDropped: dropped,
    },
    lexiconWeight: trained.lexiconWeight,
    bias: trained.bias,
    optimizer: { iterations: trained.iterations, converged: trained.converged },
    modelBytes: model.length,
  };
  if (evaluate) {
    const labels = testSet.map((e) => e.label);
    report.evaluation = {
      cv: { ...crossValidate(trainSet, lexicon, HYPERPARAMETERS), folds_k: CV_FOLDS, seed: CV_SEED },
      imdb: metrics(labels, testSet.map((e) => (logit(trained, e.text) > 0 ? 1 : 0))),
      afinnBaselineImdb: metrics(labels, testSet.map((e) => (afinnScore(e.text) > 0 ? 1 : 0))),
    };
  }
  return { model, report, trained };
}

/** The model bytes alone (one training run, no evaluation): what `npm run models:build` writes. */
export function buildSentimentModel(): Uint8Array {
  return buildSentiment({ evaluate: false }).model;
}
