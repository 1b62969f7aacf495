/**
 * Tokens of an inference request, for usage records and token quotas.
 *
 *   - Text (BYTES) inputs: the number of tokens by the model's own rule, declared
 *     in its model-settings.json as `tokenizer: {pattern, lowercase}` (the
 *     sentiment model declares the pattern its ONNX Tokenizer node uses, after
 *     its StringNormalizer's ASCII lower-casing). A model without a declared rule
 *     counts runs of non-whitespace characters ("words").
 *   - Every other input: its element count (a [2, 16] INT32 tensor is 32 tokens).
 *
 * The sum over all inputs is the request's token count.
 */
import type { InferenceRequest } from "../dataplane/types.js";
import type { ModelSettings } from "../repository/settings.js";
import { elementCount } from "../tensor/tensor.js";

export interface TokenRule {
  pattern: RegExp;
  lowercase: boolean;
}

export const DEFAULT_TOKEN_RULE: TokenRule = { pattern: /\S+/gu, lowercase: false };

const rules = new WeakMap<ModelSettings, TokenRule>();

export function tokenRuleOf(settings: ModelSettings): TokenRule {
  if (!settings.tokenizer) return DEFAULT_TOKEN_RULE;
  let rule = rules.get(settings);
  if (!rule) {
    rule = { pattern: new RegExp(settings.tokenizer.pattern, "gu"), lowercase: settings.tokenizer.lowercase };
    rules.set(settings, rule);
  }
  return rule;
}

export function countTextTokens(text: string, rule: TokenRule): number {
  const normalized = rule.lowercase ? text.replace(/[A-Z]+/g, (s) => s.toLowerCase()) : text;
  rule.pattern.lastIndex = 0;
  let n = 0;
  for (let match = rule.pattern.exec(normalized); match !== null; match = rule.pattern.exec(normalized)) {
    // A pattern that can match nothing (a lookahead) must still move on.
    if (match[0].length === 0) rule.pattern.lastIndex++;
    else n++;
  }
  return n;
}

export function countTokens(request: InferenceRequest, rule: TokenRule): number {
  let tokens = 0;
  for (const input of request.inputs) {
    if (input.datatype === "BYTES") {
      for (const text of input.data as string[]) tokens += countTextTokens(text, rule);
    } else {
      tokens += elementCount(input.shape);
    }
  }
  return tokens;
}
