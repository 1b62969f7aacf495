/**
 * Every model committed under models/, with the function that rebuilds it.
 * `npm run models:build` writes them; models/build/rebuild.test.ts checks the
 * committed bytes still match.
 */
import { buildSentimentModel } from "./sentiment/index.js";
import { TOKEN_PATTERN } from "./sentiment/text.js";
import { buildSimple } from "./simple.js";

export interface CatalogEntry {
  /** Path under models/. */
  path: string;
  build: () => Uint8Array | Promise<Uint8Array>;
}

/**
 * The sentiment model's settings: its tokenisation rule, declared for usage and
 * token quotas (runtime/src/async/tokens.ts), is the graph's own: the Tokenizer
 * node's tokenexp after the StringNormalizer's ASCII lower-casing (text.ts).
 */
export function sentimentSettings(): Uint8Array {
  const settings = { tokenizer: { pattern: TOKEN_PATTERN, lowercase: true } };
  return new TextEncoder().encode(`${JSON.stringify(settings, null, 2)}\n`);
}

export const CATALOG: CatalogEntry[] = [
  { path: "simple/1/model.onnx", build: buildSimple },
  { path: "sentiment/1/model.onnx", build: buildSentimentModel },
  { path: "sentiment/model-settings.json", build: sentimentSettings },
];
