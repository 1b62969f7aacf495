/**
 * Every model committed under models/, with the function that rebuilds it.
 * `npm run models:build` writes them; models/build/rebuild.test.ts checks the
 * committed bytes still match.
 */
import { buildSentimentModel } from "./sentiment/index.js";
import { buildSimple } from "./simple.js";

export interface CatalogEntry {
  /** Path under models/. */
  path: string;
  build: () => Uint8Array | Promise<Uint8Array>;
}

export const CATALOG: CatalogEntry[] = [
  { path: "simple/1/model.onnx", build: buildSimple },
  { path: "sentiment/1/model.onnx", build: buildSentimentModel },
];
