/** Token counts: the model's declared rule for text, element counts for tensors. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tokenize } from "../../../models/build/sentiment/text.js";
import { ModelSettingsSchema } from "../repository/settings.js";
import { countTextTokens, countTokens, DEFAULT_TOKEN_RULE, tokenRuleOf } from "./tokens.js";

const root = join(import.meta.dirname, "../../..");
const sentiment = ModelSettingsSchema.parse(JSON.parse(readFileSync(join(root, "models/sentiment/model-settings.json"), "utf8")));

describe("token counts", () => {
  it("the sentiment model's declared rule counts exactly the tokens its graph's Tokenizer produces", () => {
    // text.ts's tokenize() is the TypeScript mirror of StringNormalizer → Tokenizer, checked against the graph
    // in models/build/sentiment/featurizer.test.ts.
    const rule = tokenRuleOf(sentiment);
    for (const text of ["I LOVED it, didn't you?", "rock'n'roll 4ever!!", "naïve café", "", "   ", "A-B-C 1,000.5", "😀 great 😀"]) {
      expect(countTextTokens(text, rule), text).toBe(tokenize(text).length);
    }
  });

  it("without a declared rule, text counts runs of non-whitespace", () => {
    expect(countTextTokens("  two words\nand\tthree ", DEFAULT_TOKEN_RULE)).toBe(4);
    expect(tokenRuleOf(ModelSettingsSchema.parse({}))).toBe(DEFAULT_TOKEN_RULE);
  });

  it("tensor inputs count their elements; a request sums its inputs", () => {
    const request = {
      modelName: "m",
      inputs: [
        { name: "a", datatype: "INT32" as const, shape: [2, 16], data: new Int32Array(32) },
        { name: "t", datatype: "BYTES" as const, shape: [2], data: ["one two", "three"] },
      ],
    };
    expect(countTokens(request, DEFAULT_TOKEN_RULE)).toBe(32 + 3);
  });

  it("a pattern that matches the empty string is refused; one that matches empty positions still terminates", () => {
    expect(ModelSettingsSchema.safeParse({ tokenizer: { pattern: "a*" } }).success).toBe(false);
    expect(ModelSettingsSchema.safeParse({ tokenizer: { pattern: "(" } }).success).toBe(false);
    const rule = tokenRuleOf(ModelSettingsSchema.parse({ tokenizer: { pattern: "(?=b)|c" } }));
    expect(countTextTokens("abcabc", rule)).toBe(2);
  });
});
