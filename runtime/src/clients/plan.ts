/**
 * What the client tests send (the Python scripts read it as their plan) and what each answer
 * must then be, computed here from the inputs: the tests never compare against a recorded
 * server answer.
 */
import { CLASSIFIER_LABELS } from "../testing/fixtures.js";

const range = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/** INT32 inputs of `simple` (and, as text, of `simple_string`): negatives, zero, unequal pairs. */
export const A = range(16, (i) => i * 7 - 40);
export const B = range(16, (i) => ((i * 13) % 11) - 5);
/** INT8 inputs of `simple_int8`, chosen so sums and differences stay in range. */
export const I8A = range(16, (i) => i * 8 - 60);
export const I8B = range(16, (i) => 30 - i * 3);
/** Beyond 2^53 (not representable as a double), and the ends of the ranges. */
export const INT64 = ["9007199254740993", "-9223372036854775808", "9223372036854775807", "-9007199254740995", "42"];
export const UINT64 = ["18446744073709551615", "9007199254740993", "0", "12345678901234567890"];
/** `classifier` rows (4 classes), dyadic so FP32 holds them exactly, without ties. */
export const SCORES = [
  [0.125, 0.5, 0.0625, 0.3125],
  [0.375, 0.03125, 0.4375, 0.15625],
];
export const CLASS_COUNT = 2;

export const sum = (x: number[], y: number[]) => x.map((v, i) => v + y[i]!);
export const diff = (x: number[], y: number[]) => x.map((v, i) => v - y[i]!);
/** INT8 arithmetic as the model's (wrapping). */
export const int8 = (values: number[]) => Array.from(Int8Array.from(values));

/** A Triton model configuration (JSON) for `simple`, for the repository load with files. */
export function simpleConfig(name: string): string {
  const io = (prefix: string) => [0, 1].map((i) => ({ name: `${prefix}${i}`, data_type: "TYPE_INT32", dims: [16] }));
  return JSON.stringify({ name, backend: "onnxruntime", max_batch_size: 8, input: io("INPUT"), output: io("OUTPUT") });
}

export interface ClientPlan {
  url: string;
  a: number[];
  b: number[];
  i8a: number[];
  i8b: number[];
  sa: string[];
  sb: string[];
  int64: string[];
  uint64: string[];
  scores: number[][];
  class_count: number;
  model_file: string;
  config: string;
  load_name: string;
}

export function clientPlan(url: string, modelFile: string, loadName: string): ClientPlan {
  return {
    url,
    a: A,
    b: B,
    i8a: I8A,
    i8b: I8B,
    sa: A.map(String),
    sb: B.map(String),
    int64: INT64,
    uint64: UINT64,
    scores: SCORES,
    class_count: CLASS_COUNT,
    model_file: modelFile,
    config: simpleConfig(loadName),
    load_name: loadName,
  };
}

/** The top CLASS_COUNT classes of each SCORES row, best first: [score, index, label]. */
export function topClasses(rows = SCORES, count = CLASS_COUNT): [number, number, string][][] {
  return rows.map((row) =>
    row
      .map((score, index) => [score, index, CLASSIFIER_LABELS[index]!] as [number, number, string])
      .sort((x, y) => y[0] - x[0])
      .slice(0, count),
  );
}

/** Parses the classification extension's "score:index[:label]" strings. */
export function parseClasses(rows: string[][]): [number, number, string | undefined][][] {
  return rows.map((row) =>
    row.map((entry) => {
      const [score, index, ...label] = entry.split(":");
      return [Number(score), Number(index), label.length ? label.join(":") : undefined];
    }),
  );
}
