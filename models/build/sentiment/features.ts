/**
 * Vocabulary and features: exactly what the graph's TfIdfVectorizer computes.
 *
 * The vectorizer runs in "IDF" mode without weights, i.e. feature j is 1 if
 * n-gram j occurs in the sentence and 0 otherwise (binary bag of uni- and
 * bigrams); "TF" mode (counts) is the alternative that model selection
 * considered. Its pool is the union of
 *   - every uni- and bigram of the training sentences (document frequency ≥ minDf), and
 *   - every AFINN-165 entry that the tokenizer turns into one or two tokens,
 * so that lexicon words never seen in training still carry their lexicon score.
 *
 * Training adds one more column, the AFINN score of the sentence, Σⱼ xⱼ·afinnⱼ
 * (a linear function of the features), and the final linear layer folds
 * it back into the n-gram weights: wⱼ + a·afinnⱼ. The served graph therefore
 * stays one TfIdfVectorizer followed by one MatMul.
 */
import { BIGRAM_SEP, ngrams, tokenize } from "./text.js";

/** AFINN entries as vocabulary keys ("word" or "word word") → score. */
export type Lexicon = Map<string, number>;

/**
 * Maps each AFINN entry to the n-gram the tokenizer produces for it: "good" → "good",
 * "cover-up" → "cover up", "can't stand" → "can't stand". Entries the tokenizer would
 * mangle ("naïve" → "na ve") or that have more than two tokens are left out.
 */
export function lexiconNgrams(afinn: ReadonlyMap<string, number>): { lexicon: Lexicon; dropped: string[] } {
  const lexicon: Lexicon = new Map();
  const dropped: string[] = [];
  for (const entry of [...afinn.keys()].sort()) {
    const tokens = tokenize(entry);
    const key = tokens.join(BIGRAM_SEP);
    const faithful = tokens.join("") === entry.toLowerCase().replace(/[ -]/g, "");
    if (tokens.length < 1 || tokens.length > 2 || !faithful || lexicon.has(key)) {
      dropped.push(entry);
      continue;
    }
    lexicon.set(key, afinn.get(entry)!);
  }
  return { lexicon, dropped };
}

export interface Vocabulary {
  /** Sorted unigrams: features 0 … unigrams.length − 1. */
  unigrams: string[];
  /** Sorted bigrams ("a b"): the features after the unigrams. */
  bigrams: string[];
  /** n-gram → feature index. */
  index: Map<string, number>;
  /** AFINN score of each feature (0 for n-grams outside the lexicon). */
  lexScore: Float64Array;
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function buildVocabulary(texts: readonly string[], lexicon: Lexicon, minDf: number): Vocabulary {
  const df = new Map<string, number>();
  for (const t of texts) for (const g of new Set(ngrams(tokenize(t)))) df.set(g, (df.get(g) ?? 0) + 1);
  const keys = new Set<string>(lexicon.keys());
  for (const [g, n] of df) if (n >= minDf) keys.add(g);
  const isBigram = (g: string): boolean => g.includes(BIGRAM_SEP);
  const unigrams = [...keys].filter((g) => !isBigram(g)).sort(byCodeUnit);
  const bigrams = [...keys].filter(isBigram).sort(byCodeUnit);
  const index = new Map<string, number>();
  [...unigrams, ...bigrams].forEach((g, i) => index.set(g, i));
  const lexScore = new Float64Array(index.size);
  for (const [g, s] of lexicon) lexScore[index.get(g)!] = s;
  return { unigrams, bigrams, index, lexScore };
}

/**
 * The non-zero features of `text` as sorted [index, value] pairs: value 1 for
 * every vocabulary n-gram present (binary, the graph's "IDF" mode without
 * weights), or its number of occurrences (binary = false, the "TF" mode).
 */
export function featurize(text: string, vocab: Vocabulary, binary = true): [number, number][] {
  const counts = new Map<number, number>();
  for (const g of ngrams(tokenize(text))) {
    const j = vocab.index.get(g);
    if (j !== undefined) counts.set(j, binary ? 1 : (counts.get(j) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => a[0] - b[0]);
}

/** The dense feature row the graph's TfIdfVectorizer outputs for `text`. */
export function featureRow(text: string, vocab: Vocabulary, binary = true): Float32Array {
  const row = new Float32Array(vocab.index.size);
  for (const [j, v] of featurize(text, vocab, binary)) row[j] = v;
  return row;
}
