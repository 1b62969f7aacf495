/**
 * Scores sentences with the `sentiment` model over the Open Inference Protocol
 * v2 REST API, with nothing but fetch. Start the server first (`npm start`).
 *
 *   npx tsx examples/sentiment.ts                              # built-in examples
 *   npx tsx examples/sentiment.ts "Loved it." "Never again."   # your own sentences
 *   INFERENCE_URL=http://host:8080 npx tsx examples/sentiment.ts
 */
import { pathToFileURL } from "node:url";
import { fetchFrom, jsonBody, runMain } from "./explain.js";

/** The request: one BYTES tensor `text` of shape [N], sent as JSON strings. */
interface InferRequest {
  id?: string;
  inputs: Array<{ name: "text"; datatype: "BYTES"; shape: [number]; data: string[] }>;
}

/** The parts of the V2 response this client reads. */
interface OutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}
interface InferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  outputs: OutputTensor[];
}

export type Label = "negative" | "positive";

export interface Sentiment {
  text: string;
  label: Label;
  /** P(positive), from the `probabilities` output. */
  positive: number;
  /** The probability of the returned label. */
  confidence: number;
}

export class SentimentError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export const DEFAULT_URL = "http://localhost:8080";

function output(response: InferResponse, name: string): OutputTensor {
  const o = response.outputs.find((t) => t.name === name);
  if (!o) throw new Error(`the response has no '${name}' output`);
  return o;
}

/** Classifies `texts` (one request, any number of sentences) on the server at `baseUrl`. */
export async function classify(texts: string[], baseUrl: string = process.env.INFERENCE_URL ?? DEFAULT_URL): Promise<Sentiment[]> {
  const request: InferRequest = { inputs: [{ name: "text", datatype: "BYTES", shape: [texts.length], data: texts }] };
  // No server at baseUrl: an Error saying so and how to start one (explain.ts).
  const res = await fetchFrom(baseUrl, "/v2/models/sentiment/infer", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(request),
  });
  const body = await jsonBody<InferResponse | { error: string }>(res, baseUrl);
  if (!res.ok || "error" in body) throw new SentimentError(res.status, "error" in body ? body.error : `HTTP ${res.status}`);
  const probabilities = output(body, "probabilities").data as number[]; // [N, 2], row-major
  const labels = output(body, "label").data as Label[];
  return texts.map((text, i) => {
    const positive = probabilities[2 * i + 1]!;
    const label = labels[i]!;
    return { text, label, positive, confidence: label === "positive" ? positive : 1 - positive };
  });
}

async function main(): Promise<void> {
  const texts = process.argv.length > 2 ? process.argv.slice(2) : [
    "This movie was fantastic!",
    "The battery died after two days.",
    "Great food and friendly staff.",
  ];
  for (const s of await classify(texts)) console.log(`${s.label.padEnd(8)} ${s.confidence.toFixed(3)}  ${s.text}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) runMain("sentiment.ts", main);
