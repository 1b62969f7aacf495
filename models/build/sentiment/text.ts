/**
 * The text pipeline the ONNX graph runs, mirrored in TypeScript so that the
 * training features are exactly the features the served model computes.
 *
 *   StringNormalizer(case_change_action=LOWER, locale="C")
 *     → lower-cases ASCII A–Z only. In the "C" locale ONNX Runtime leaves every
 *       non-ASCII character as it is ("ÉCOLE" → "École"), which is why this is
 *       not String.prototype.toLowerCase(). The token pattern below only ever
 *       matches ASCII, so non-ASCII case mapping cannot change a feature anyway.
 *   com.microsoft Tokenizer(tokenexp=TOKEN_PATTERN, mincharnum=1, mark=0)
 *     → every leftmost-longest match of TOKEN_PATTERN (RE2), left to right.
 *       Rows of a batch are right-padded with PAD to the longest row; PAD can
 *       never be a token, so it never forms an n-gram in the vocabulary.
 *   TfIdfVectorizer(min_gram_length=1, max_gram_length=2, max_skip_count=0)
 *     → counts of the vocabulary's unigrams and (adjacent) bigrams.
 */

/** RE2 / ECMAScript pattern for one token: ASCII letters and digits, with inner apostrophes ("don't", "rock'n'roll"). */
export const TOKEN_PATTERN = "[a-z0-9]+(?:'[a-z0-9]+)*";
/** Tokenizer pad value: contains no character of TOKEN_PATTERN, so it is never a token. */
export const PAD = "#";
/** Separator between the words of a bigram in vocabulary keys (a space can never be inside a token). */
export const BIGRAM_SEP = " ";

const tokenRe = new RegExp(TOKEN_PATTERN, "g");

/** StringNormalizer LOWER with locale "C": ASCII A–Z → a–z, everything else unchanged. */
export function normalize(text: string): string {
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/** The com.microsoft Tokenizer with tokenexp = TOKEN_PATTERN, applied to normalised text. */
export function tokenize(text: string): string[] {
  return normalize(text).match(tokenRe) ?? [];
}

/** Unigrams followed by adjacent bigrams ("a b"), in text order: what TfIdfVectorizer(1..2, skip 0) looks up. */
export function ngrams(tokens: readonly string[]): string[] {
  const out = tokens.slice();
  for (let i = 0; i + 1 < tokens.length; i++) out.push(tokens[i]! + BIGRAM_SEP + tokens[i + 1]!);
  return out;
}
