/**
 * The TypeScript featuriser that training uses and the ONNX graph's front end
 * (StringNormalizer → Tokenizer → TfIdfVectorizer) must compute the same thing.
 * Checked on all 3,000 sentences of the data set and on awkward inputs, with the
 * vocabulary of the shipped model.
 */
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { loadTest, loadTrain } from "./data.js";
import { featurize, type Vocabulary } from "./features.js";
import { buildFeatureGraph } from "./graph.js";
import { buildSentiment } from "./index.js";
import { normalize, PAD, tokenize } from "./text.js";

const EDGE = [
  "",
  "   ",
  "😀👍🏽🎉",
  "I 😀 love it 👍🏽, it's GREAT!!!",
  "ÉCOLE Straße İstanbul \u212A ΣΊΣΥΦΟΣ naïve café",
  "don’t like it (typographic apostrophe)",
  "Don't; won't... can't-stand 'quoted' rock'n'roll x-ray",
  "tabs\tand\nnew\r\nlines",
  "12345 0 9th 1st",
  "x".repeat(100_000),
  "not good ".repeat(12_500),
];

let vocab: Vocabulary;
let binary: boolean;
beforeAll(() => {
  ({ vocab, binary } = buildSentiment({ evaluate: false }).trained);
});

interface Rows {
  normalized: string[];
  tokens: string[][];
  features: [number, number][][];
}

async function graphRows(texts: string[], countMode: boolean): Promise<Rows> {
  const session = await ort.InferenceSession.create(buildFeatureGraph(vocab, !countMode));
  const K = vocab.index.size;
  const rows: Rows = { normalized: [], tokens: [], features: [] };
  for (let start = 0; start < texts.length; start += 100) {
    const batch = texts.slice(start, start + 100);
    const out = await session.run({ text: new ort.Tensor("string", batch, [batch.length]) });
    rows.normalized.push(...(out.normalized!.data as string[]));
    const [n, T] = out.tokens!.dims as [number, number];
    expect(n).toBe(batch.length);
    const tok = out.tokens!.data as string[];
    const feats = out.features!.data as Float32Array;
    expect(out.features!.dims).toEqual([batch.length, K]);
    for (let i = 0; i < n; i++) {
      const row = tok.slice(i * T, (i + 1) * T);
      while (row.length > 0 && row[row.length - 1] === PAD) row.pop();
      rows.tokens.push(row);
      const nz: [number, number][] = [];
      for (let j = 0; j < K; j++) if (feats[i * K + j] !== 0) nz.push([j, feats[i * K + j]!]);
      rows.features.push(nz);
    }
  }
  return rows;
}

describe("TypeScript featuriser = ONNX graph front end", () => {
  it("uses the shipped model's feature mode (binary presence)", () => {
    expect(binary).toBe(true);
  });

  it("on every sentence of amazon, yelp and imdb: same normalisation, tokens and features", async () => {
    const texts = [...loadTrain(), ...loadTest()].map((e) => e.text);
    const rows = await graphRows(texts, false);
    expect(rows.tokens.length).toBe(3000);
    const mismatches: string[] = [];
    texts.forEach((t, i) => {
      if (rows.normalized[i] !== normalize(t)) mismatches.push(`normalized: ${t}`);
      if (JSON.stringify(rows.tokens[i]) !== JSON.stringify(tokenize(t))) mismatches.push(`tokens: ${t}`);
      if (JSON.stringify(rows.features[i]) !== JSON.stringify(featurize(t, vocab, true))) mismatches.push(`features: ${t}`);
    });
    expect(mismatches).toEqual([]);
    // the comparison is not vacuous: nearly every sentence has features
    expect(rows.features.filter((f) => f.length > 0).length).toBeGreaterThan(2990);
  });

  it("on empty, huge, non-ASCII and emoji input: same tokens and features", async () => {
    const rows = await graphRows(EDGE, false);
    EDGE.forEach((t, i) => {
      expect(rows.tokens[i], t.slice(0, 60)).toEqual(tokenize(t));
      expect(rows.features[i], t.slice(0, 60)).toEqual(featurize(t, vocab, true));
    });
    expect(rows.features[0]).toEqual([]);
    expect(rows.features[EDGE.length - 1]!.length).toBeGreaterThan(0);
  });

  it("in count mode too (the alternative model selection considered)", async () => {
    const texts = [...loadTrain().slice(0, 300).map((e) => e.text), ...EDGE];
    const rows = await graphRows(texts, true);
    texts.forEach((t, i) => expect(rows.features[i], t.slice(0, 60)).toEqual(featurize(t, vocab, false)));
    const notGood = vocab.index.get("not good")!;
    expect(rows.features[texts.length - 1]).toContainEqual([notGood, 12_500]);
  });
});
