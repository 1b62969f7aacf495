/**
 * The ONNX Runtime operator behaviour the sentiment graph is built on, checked
 * on tiny graphs with onnxruntime-node itself. If an upgrade changes any of it,
 * this file says which assumption broke.
 */
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { model, node, tensor, valueInfo } from "../onnx.js";
import { OPSETS } from "./graph.js";
import { PAD, TOKEN_PATTERN } from "./text.js";

const NORMALIZER = { case_change_action: "LOWER", is_case_sensitive: 0, locale: "C" };
const TOKENIZER = { mark: 0, pad_value: PAD, tokenexp: TOKEN_PATTERN, mincharnum: 1 };

async function session(nodes: ReturnType<typeof node>[], outputs: ReturnType<typeof valueInfo>[], initializers: ReturnType<typeof tensor>[] = []) {
  const bytes = model({ name: "probe", nodes, inputs: [valueInfo("text", "STRING", ["batch"])], outputs, initializers }, { opsets: OPSETS });
  return ort.InferenceSession.create(bytes);
}

async function run(s: ort.InferenceSession, texts: string[]): Promise<Record<string, { dims: readonly number[]; data: unknown[] }>> {
  const out = await s.run({ text: new ort.Tensor("string", texts, [texts.length]) });
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { dims: v.dims, data: Array.from(v.data as ArrayLike<unknown>) }]));
}

describe("StringNormalizer LOWER, locale C", () => {
  it("lower-cases ASCII letters and keeps the batch shape", async () => {
    const s = await session([node("StringNormalizer", ["text"], ["out"], NORMALIZER)], [valueInfo("out", "STRING", ["batch"])]);
    const r = await run(s, ["This Movie was FANTASTIC!", "", "don't STOP 42"]);
    expect(r.out).toEqual({ dims: [3], data: ["this movie was fantastic!", "", "don't stop 42"] });
  });

  it("rejects an empty batch (a limit the model card documents)", async () => {
    const s = await session([node("StringNormalizer", ["text"], ["out"], NORMALIZER)], [valueInfo("out", "STRING", ["batch"])]);
    await expect(run(s, [])).rejects.toThrow(/greater than 0/);
  });
});

describe("com.microsoft Tokenizer with tokenexp", () => {
  const tokenizer = () =>
    session(
      [node("StringNormalizer", ["text"], ["low"], NORMALIZER), node("Tokenizer", ["low"], ["tokens"], TOKENIZER, "com.microsoft")],
      [valueInfo("tokens", "STRING", ["batch", "T"])],
    );

  it("emits the leftmost-longest matches, keeping inner apostrophes", async () => {
    const r = await run(await tokenizer(), ["Don't 'quote' rock'n'roll, x-ray 3D!"]);
    expect(r.tokens).toEqual({ dims: [1, 6], data: ["don't", "quote", "rock'n'roll", "x", "ray", "3d"] });
  });

  it("pads a batch to its longest row with the pad value", async () => {
    const r = await run(await tokenizer(), ["good movie", "", "bad"]);
    expect(r.tokens).toEqual({ dims: [3, 2], data: ["good", "movie", PAD, PAD, "bad", PAD] });
  });

  it("gives [N, 0] when no row has a token (empty strings, emoji, punctuation)", async () => {
    const r = await run(await tokenizer(), ["", "😀👍🏽", "?!"]);
    expect(r.tokens).toEqual({ dims: [3, 0], data: [] });
  });

  it("drops non-ASCII letters and emoji, splitting words at them", async () => {
    const r = await run(await tokenizer(), ["naïve café 😀 ok"]);
    expect(r.tokens!.data).toEqual(["na", "ve", "caf", "ok"]);
  });

  it("handles a 100 KB string", async () => {
    const r = await run(await tokenizer(), ["word ".repeat(20_000), "x".repeat(100_000)]);
    expect(r.tokens!.dims).toEqual([2, 20_000]);
    expect(r.tokens!.data[20_000]).toBe("x".repeat(100_000));
    expect(r.tokens!.data[20_001]).toBe(PAD);
  });
});

describe("TfIdfVectorizer over the tokens", () => {
  // pool: unigrams [bad, good, not], bigrams [not good] → features 0..3
  const vectorizer = (mode: string) =>
    session(
      [
        node("StringNormalizer", ["text"], ["low"], NORMALIZER),
        node("Tokenizer", ["low"], ["tokens"], TOKENIZER, "com.microsoft"),
        node("TfIdfVectorizer", ["tokens"], ["features"], {
          mode,
          min_gram_length: 1,
          max_gram_length: 2,
          max_skip_count: 0,
          ngram_counts: [0, 3],
          ngram_indexes: [0, 1, 2, 3],
          pool_strings: ["bad", "good", "not", "not", "good"],
        }),
      ],
      [valueInfo("features", "FLOAT", ["batch", 4])],
    );

  it("IDF mode without weights gives binary presence of uni- and bigrams", async () => {
    const r = await run(await vectorizer("IDF"), ["Not good, not GOOD at all", "good good good", "bad"]);
    expect(r.features).toEqual({ dims: [3, 4], data: [0, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0] });
  });

  it("TF mode counts occurrences", async () => {
    const r = await run(await vectorizer("TF"), ["Not good, not GOOD at all", "good good good", "bad"]);
    expect(r.features).toEqual({ dims: [3, 4], data: [0, 2, 2, 2, 0, 3, 0, 0, 1, 0, 0, 0] });
  });

  it("bigrams do not span rows or padding", async () => {
    const r = await run(await vectorizer("TF"), ["not", "good"]);
    expect(r.features!.data).toEqual([0, 0, 1, 0, 0, 1, 0, 0]);
  });

  it("returns zero rows when the tokenizer output is [N, 0]", async () => {
    const r = await run(await vectorizer("IDF"), ["", "😀"]);
    expect(r.features).toEqual({ dims: [2, 4], data: [0, 0, 0, 0, 0, 0, 0, 0] });
  });
});

describe("ArgMax + Gather over a constant STRING tensor", () => {
  it("maps class indices to names", async () => {
    const s = await ort.InferenceSession.create(
      model(
        {
          name: "labels",
          nodes: [node("ArgMax", ["x"], ["i"], { axis: -1, keepdims: 0 }), node("Gather", ["names", "i"], ["label"], { axis: 0 })],
          inputs: [valueInfo("x", "FLOAT", ["batch", 2])],
          outputs: [valueInfo("label", "STRING", ["batch"])],
          initializers: [tensor("names", "STRING", [2], ["negative", "positive"])],
        },
        { opsets: OPSETS },
      ),
    );
    const out = await s.run({ x: new ort.Tensor("float32", Float32Array.from([0.2, 0.8, 3, -3, 0.5, 0.5]), [3, 2]) });
    expect(out.label!.dims).toEqual([3]);
    expect(Array.from(out.label!.data as string[])).toEqual(["positive", "negative", "negative"]);
  });
});
