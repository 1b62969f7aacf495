/**
 * The UCI "Sentiment Labelled Sentences" data set (Kotzias et al., KDD 2015)
 * and the AFINN-165 lexicon, both read from the `sentiment` npm package (a
 * devDependency): nothing is copied into this repository.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export type Source = "amazon" | "yelp" | "imdb";

export interface Example {
  text: string;
  /** 1 = positive, 0 = negative. */
  label: 0 | 1;
  source: Source;
}

function readJson(specifier: string): unknown {
  return JSON.parse(readFileSync(require.resolve(specifier), "utf8"));
}

export function loadSource(source: Source): Example[] {
  const raw = readJson(`sentiment/test/fixtures/${source}.json`);
  if (!Array.isArray(raw)) throw new Error(`sentiment/test/fixtures/${source}.json: expected an array`);
  const out: Example[] = [];
  raw.forEach((r: unknown, i) => {
    const rec = r as { text?: unknown; class?: unknown };
    // Each file ends with one blank record {"text":"","class":null}: not a sentence.
    if (rec.text === "" && rec.class === null) return;
    if (typeof rec.text !== "string" || (rec.class !== 0 && rec.class !== 1)) {
      throw new Error(`sentiment/test/fixtures/${source}.json[${i}]: expected {text: string, class: 0|1}`);
    }
    out.push({ text: rec.text, label: rec.class, source });
  });
  return out;
}

/** Training data: amazon + yelp, in file order. */
export function loadTrain(): Example[] {
  return [...loadSource("amazon"), ...loadSource("yelp")];
}

/** Held-out test data: imdb. Never used for training or model selection. */
export function loadTest(): Example[] {
  return loadSource("imdb");
}

/** AFINN-165 word → score (−5 … +5), as shipped by the sentiment package. */
export function loadAfinn(): Map<string, number> {
  const raw = readJson("sentiment/languages/en/labels.json") as Record<string, number>;
  return new Map(Object.keys(raw).sort().map((k) => [k, raw[k]!]));
}

/** The sentiment package's negators: a lexicon word right after one of these has its score flipped. */
export function loadNegators(): string[] {
  return Object.keys(readJson("sentiment/languages/en/negators.json") as Record<string, number>).sort();
}

/** The sentiment package's own score (AFINN-165 with negation): the baseline. */
export function afinnScore(text: string): number {
  const Sentiment = require("sentiment") as new () => { analyze(t: string): { score: number } };
  return new Sentiment().analyze(text).score;
}
