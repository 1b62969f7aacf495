/**
 * Model selection: a grid over the hyperparameters, scored by 5-fold
 * cross-validation on amazon + yelp only. imdb is not loaded here.
 *
 *   npx tsx models/build/sentiment/select.ts
 *
 * Rule: highest mean CV accuracy; ties go to the higher mean macro-F1, then to
 * the smaller C (stronger regularisation). The winner must equal
 * HYPERPARAMETERS in model.ts (the script exits 1 otherwise). The two
 * cross-domain columns (train on one source, test on the other) are printed
 * for information only; they play no part in the choice. Takes ~1–2 minutes.
 */
import { loadAfinn, loadTrain, type Example } from "./data.js";
import { crossValidate, metrics } from "./evaluate.js";
import { lexiconNgrams } from "./features.js";
import { HYPERPARAMETERS, logit, train, type Hyperparameters } from "./model.js";

export const GRID: Hyperparameters[] = [];
for (const lexicon of [false, true]) {
  for (const binary of [true, false]) {
    for (const minDf of [1, 2]) {
      for (const C of [0.1, 0.3, 1, 3, 10, 30, 100]) GRID.push({ C, minDf, lexicon, binary });
    }
  }
}

const trainSet = loadTrain();
const { lexicon } = lexiconNgrams(loadAfinn());
const amazon = trainSet.filter((e) => e.source === "amazon");
const yelp = trainSet.filter((e) => e.source === "yelp");

function crossDomain(from: Example[], to: Example[], hp: Hyperparameters): number {
  const m = train(from, lexicon, hp);
  return metrics(to.map((e) => e.label), to.map((e) => (logit(m, e.text) > 0 ? 1 : 0))).accuracy;
}

const rows = GRID.map((hp) => {
  const cv = crossValidate(trainSet, lexicon, hp);
  return { hp, cv, a2y: crossDomain(amazon, yelp, hp), y2a: crossDomain(yelp, amazon, hp) };
});

const f = (x: number): string => x.toFixed(4);
console.log("| lexicon | features | min df | C | CV accuracy (± sd) | CV macro-F1 | amazon→yelp | yelp→amazon |");
console.log("|---|---|---|---|---|---|---|---|");
for (const { hp, cv, a2y, y2a } of rows) {
  console.log(`| ${hp.lexicon ? "AFINN" : "—"} | ${hp.binary ? "binary" : "counts"} | ${hp.minDf} | ${hp.C} | ${f(cv.meanAccuracy)} ± ${f(cv.stdAccuracy)} | ${f(cv.meanMacroF1)} | ${f(a2y)} | ${f(y2a)} |`);
}
const best = rows.slice().sort((a, b) => b.cv.meanAccuracy - a.cv.meanAccuracy || b.cv.meanMacroF1 - a.cv.meanMacroF1 || a.hp.C - b.hp.C)[0]!;
const same = JSON.stringify(best.hp) === JSON.stringify(HYPERPARAMETERS);
console.log(`\nselected: ${JSON.stringify(best.hp)} (CV accuracy ${f(best.cv.meanAccuracy)}); HYPERPARAMETERS ${same ? "match" : "DIFFER: " + JSON.stringify(HYPERPARAMETERS)}`);
if (!same) process.exitCode = 1;
