/**
 * The served graph: raw text in, probabilities and label out.
 *
 *   text STRING [N]
 *     → StringNormalizer (LOWER, locale "C")                       normalized [N]
 *     → com.microsoft Tokenizer (tokenexp, pad "#", mincharnum 1)  tokens [N, T]
 *     → TfIdfVectorizer (1–2-grams, mode IDF = binary presence)    features [N, K]
 *     → MatMul W [K, 2] → Add b [2] → Softmax                       probabilities FLOAT [N, 2]
 *     → ArgMax → Gather over ["negative", "positive"]              label STRING [N]
 *
 * The two logits are −z/2 and +z/2 for the learned log-odds z, so
 * softmax = [σ(−z), σ(z)] = [P(negative), P(positive)].
 */
import { model, node, tensor, valueInfo } from "../onnx.js";
import type { Vocabulary } from "./features.js";
import type { TrainedModel } from "./model.js";
import { BIGRAM_SEP, PAD, TOKEN_PATTERN } from "./text.js";

export const LABELS = ["negative", "positive"] as const;
export const OPSETS = { "": 17, "com.microsoft": 1 };

/** text → normalized → tokens → features: the part of the graph that text.ts and features.ts mirror. */
export function featureNodes(vocab: Vocabulary, binary: boolean): ReturnType<typeof node>[] {
  const { unigrams, bigrams } = vocab;
  const K = unigrams.length + bigrams.length;
  const pool = [...unigrams, ...bigrams.flatMap((g) => g.split(BIGRAM_SEP))];
  if (pool.length !== unigrams.length + 2 * bigrams.length) throw new Error("a bigram does not have exactly two tokens");
  return [
    node("StringNormalizer", ["text"], ["normalized"], { case_change_action: "LOWER", is_case_sensitive: 0, locale: "C" }),
    node("Tokenizer", ["normalized"], ["tokens"], { mark: 0, pad_value: PAD, tokenexp: TOKEN_PATTERN, mincharnum: 1 }, "com.microsoft"),
    node("TfIdfVectorizer", ["tokens"], ["features"], {
      mode: binary ? "IDF" : "TF",
      min_gram_length: 1,
      max_gram_length: 2,
      max_skip_count: 0,
      ngram_counts: [0, unigrams.length],
      ngram_indexes: Array.from({ length: K }, (_, i) => i),
      pool_strings: pool,
    }),
  ];
}

/** The served model. */
export function buildGraph(m: TrainedModel): Uint8Array {
  const K = m.vocab.index.size;
  const W = new Float32Array(K * 2);
  for (let j = 0; j < K; j++) {
    W[2 * j] = -m.weights[j]! / 2;
    W[2 * j + 1] = m.weights[j]! / 2;
  }
  return model(
    {
      name: "sentiment",
      nodes: [
        ...featureNodes(m.vocab, m.binary),
        node("MatMul", ["features", "W"], ["scores"]),
        node("Add", ["scores", "B"], ["logits"]),
        node("Softmax", ["logits"], ["probabilities"], { axis: -1 }),
        node("ArgMax", ["logits"], ["label_index"], { axis: -1, keepdims: 0 }),
        node("Gather", ["class_names", "label_index"], ["label"], { axis: 0 }),
      ],
      inputs: [valueInfo("text", "STRING", ["batch"])],
      outputs: [valueInfo("probabilities", "FLOAT", ["batch", 2]), valueInfo("label", "STRING", ["batch"])],
      initializers: [
        tensor("W", "FLOAT", [K, 2], W),
        tensor("B", "FLOAT", [2], [-m.bias / 2, m.bias / 2]),
        tensor("class_names", "STRING", [2], [...LABELS]),
      ],
    },
    {
      opsets: OPSETS,
      docString:
        "Sentiment of English sentences (negative/positive): binary uni+bigram features and the AFINN-165 lexicon, " +
        "logistic regression trained on the UCI Sentiment Labelled Sentences (amazon + yelp). See models/sentiment/README.md.",
      metadata: { labels: LABELS.join(",") },
    },
  );
}

/** Test helper: the feature front end alone, exposing its intermediate tensors as outputs. */
export function buildFeatureGraph(vocab: Vocabulary, binary: boolean): Uint8Array {
  return model(
    {
      name: "sentiment_features",
      nodes: featureNodes(vocab, binary),
      inputs: [valueInfo("text", "STRING", ["batch"])],
      outputs: [
        valueInfo("normalized", "STRING", ["batch"]),
        valueInfo("tokens", "STRING", ["batch", "tokens"]),
        valueInfo("features", "FLOAT", ["batch", vocab.index.size]),
      ],
    },
    { opsets: OPSETS },
  );
}
