/**
 * Rewrites the generated figures block of models/sentiment/README.md.
 *
 *   npx tsx models/build/sentiment/update-card.ts
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bagOfWordsImdb, renderFigures, replaceFigures } from "./card.js";
import { buildSentiment } from "./index.js";

const cardPath = join(import.meta.dirname, "..", "..", "sentiment", "README.md");
const { report } = buildSentiment();
const block = renderFigures(report, bagOfWordsImdb());
writeFileSync(cardPath, replaceFigures(readFileSync(cardPath, "utf8"), block));
console.log(block);
