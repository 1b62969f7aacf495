/**
 * The classification extension (Triton's): a requested output with
 * `parameters.classification = N` (HTTP JSON; gRPC carries the same key as an
 * int64_param, which tritonclient's `class_count` sets) is answered as a BYTES
 * tensor of its top N classes per batch row, best first, each
 * "score:index" or "score:index:label". Done here, below the transports, so
 * REST v2 (JSON or binary output), gRPC and CloudEvents answer it alike.
 *
 * Behaviour follows triton-inference-server/server src/classification.cc and the
 * response writers in src/http_server.cc and src/grpc/infer_handler.h:
 * - the batch dimension splits rows only when the model batches (max_batch_size > 0):
 *   shape [batch, min(N, classes)]; otherwise the whole tensor is one row: [min(N, classes)];
 * - the integer types, FP32 and FP64 are classifiable; BOOL, FP16, BF16 and BYTES are not;
 * - scores print as C's std::to_string does: "%f" for floats (six decimals), plain integers;
 * - a row of more than 1,000,000 elements is refused;
 * - a label is appended when the model has one for that index (and it is not empty).
 */
import type { TensorMetadata } from "../backends/backend.js";
import type { Datatype } from "../tensor/datatypes.js";
import { elementCount, type Tensor } from "../tensor/tensor.js";
import { invalidInput } from "./errors.js";
import type { InferenceRequest } from "./types.js";

/** The output parameter that asks for classification, on HTTP and gRPC alike. */
export const CLASSIFICATION_PARAMETER = "classification";

/** Triton's bound on the elements of one row (classification.cc), against pathological sorts. */
export const MAX_CLASSIFICATION_ELEMENTS = 1_000_000;

const CLASSIFIABLE: ReadonlySet<Datatype> = new Set<Datatype>(["UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP32", "FP64"]);
const FLOAT: ReadonlySet<Datatype> = new Set<Datatype>(["FP32", "FP64"]);

/**
 * The class count asked for, or a 400. A positive integer; an integer beyond 2^53 arrives as
 * its decimal text (parseJsonExact, gRPC int64) and means "every class". Triton's HTTP
 * server takes 0 as "no classification" and its gRPC server refuses it; both are refused here,
 * as are strings, booleans and fractions, so a client never gets raw scores it did not expect.
 */
function classCount(output: string, value: unknown): number {
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return value;
  if (typeof value === "string" && /^\d+$/.test(value) && !Number.isSafeInteger(Number(value))) return Number.MAX_SAFE_INTEGER;
  throw invalidInput(`output '${output}': parameters.${CLASSIFICATION_PARAMETER} must be a positive integer (the number of top classes to return), got ${JSON.stringify(value)}`);
}

/**
 * The outputs the request asks to classify (name → N), checked against the model's outputs
 * before anything runs: a bad count or an output that is not numeric is a 400.
 * Undefined when no output asks for classification (the common case costs one loop).
 */
export function requestedClassifications(modelName: string, outputs: readonly TensorMetadata[], request: InferenceRequest): Map<string, number> | undefined {
  let counts: Map<string, number> | undefined;
  for (const requested of request.outputs ?? []) {
    const value = requested.parameters?.[CLASSIFICATION_PARAMETER];
    if (value === undefined) continue;
    const count = classCount(requested.name, value);
    const datatype = outputs.find((o) => o.name === requested.name)?.datatype;
    if (datatype !== undefined && !CLASSIFIABLE.has(datatype)) throw notClassifiable(modelName, requested.name, datatype);
    (counts ??= new Map()).set(requested.name, count);
  }
  return counts;
}

function notClassifiable(modelName: string, output: string, datatype: Datatype) {
  return invalidInput(`output '${output}' of model '${modelName}' is ${datatype}: classification needs a numeric output (UINT8–UINT64, INT8–INT64, FP32 or FP64)`);
}

export interface ClassifyOptions {
  modelName: string;
  /** The model batches (max_batch_size > 0): the first dimension is the batch, one top-N list per row. */
  batched: boolean;
  /** Class names by index (the model settings' `labels`, else the graph's own). */
  labels?: readonly string[];
}

/** The response outputs with each classified one replaced by its top-N BYTES tensor; the others unchanged. */
export function classifyOutputs(outputs: readonly Tensor[], counts: ReadonlyMap<string, number>, options: ClassifyOptions): Tensor[] {
  return outputs.map((t) => {
    const count = counts.get(t.name);
    return count === undefined ? t : classify(t, count, options);
  });
}

function classify(tensor: Tensor, count: number, { modelName, batched, labels }: ClassifyOptions): Tensor {
  if (!CLASSIFIABLE.has(tensor.datatype) || Array.isArray(tensor.data)) throw notClassifiable(modelName, tensor.name, tensor.datatype);
  const split = batched && tensor.shape.length > 0;
  const rows = split ? tensor.shape[0]! : 1;
  const classes = split ? elementCount(tensor.shape.slice(1)) : elementCount(tensor.shape);
  if (classes > MAX_CLASSIFICATION_ELEMENTS) {
    throw invalidInput(`output '${tensor.name}': ${classes} classes per row is more than classification takes (${MAX_CLASSIFICATION_ELEMENTS})`);
  }
  const top = Math.min(count, classes);
  const data = tensor.data as ArrayLike<number | bigint>;
  const format = FLOAT.has(tensor.datatype) ? (v: number | bigint) => printfFixed(v as number) : String;
  const entries: string[] = [];
  for (let r = 0; r < rows; r++) {
    const offset = r * classes;
    for (const index of topIndices(data, offset, classes, top)) {
      const label = labels?.[index];
      entries.push(`${format(data[offset + index]!)}:${index}${label ? `:${label}` : ""}`);
    }
  }
  return { name: tensor.name, datatype: "BYTES", shape: split ? [rows, top] : [top], data: entries };
}

/**
 * The indices of the `top` largest of data[offset, offset + length), largest first. Equal scores
 * keep index order (Triton's std::sort gives that for the usual small class counts); NaN sorts last.
 */
function topIndices(data: ArrayLike<number | bigint>, offset: number, length: number, top: number): number[] {
  const order = Array.from({ length }, (_, i) => i);
  order.sort((i, j) => {
    const a = data[offset + i]!;
    const b = data[offset + j]!;
    if (a > b) return -1;
    if (b > a) return 1;
    const aNaN = a !== a;
    if (aNaN !== (b !== b)) return aNaN ? 1 : -1;
    return i - j;
  });
  order.length = top;
  return order;
}

const signBits = new Float64Array(1);
const signBytes = new Uint8Array(signBits.buffer);

/**
 * A float as C's printf("%f") writes it (std::to_string): six decimals, round half to even on an
 * exact tie (glibc; JavaScript's toFixed rounds a tie up), every integer digit of a huge value
 * (toFixed turns to exponents from 1e21), and "nan", "inf" with their signs.
 */
export function printfFixed(x: number): string {
  signBits[0] = x;
  const sign = signBytes[7]! & 0x80 ? "-" : "";
  if (Number.isNaN(x)) return `${sign}nan`;
  const magnitude = Math.abs(x);
  if (magnitude === Infinity) return `${sign}inf`;
  if (magnitude >= 1e21) return `${sign}${BigInt(magnitude)}.000000`;
  let text = magnitude.toFixed(6);
  if (magnitude.toFixed(7).endsWith("5")) {
    // A double that is not an exact tie lies more than 1e-29 from one (ties are >= 5e-7, so its
    // ulp is >= 2^-73), so 100 exact digits (toFixed is exact) tell a tie for certain.
    const exact = magnitude.toFixed(100);
    const point = exact.indexOf(".");
    if (exact[point + 7] === "5" && /^0*$/.test(exact.slice(point + 8))) {
      const truncated = exact.slice(0, point + 7);
      if (Number(truncated.at(-1)) % 2 === 0) text = truncated;
    }
  }
  return sign + text;
}
