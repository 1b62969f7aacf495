/**
 * The Open Inference Protocol's tensor datatypes and everything the rest of the
 * runtime needs to know about each: element size on the wire, the TypedArray
 * that holds it in memory, and how JSON represents it.
 */
import { z } from "zod";

export const DATATYPES = [
  "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
  "FP16", "FP32", "FP64", "BF16", "BYTES",
] as const;

export const DatatypeSchema = z.enum(DATATYPES, {
  error: (issue) => `invalid datatype ${preview(issue.input)}; expected one of ${DATATYPES.join(", ")}`,
});
export type Datatype = z.infer<typeof DatatypeSchema>;

export type NumericArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | BigUint64Array | BigInt64Array | Float32Array | Float64Array;

/** BYTES tensors hold strings (what ONNX Runtime's string tensors take); all others a TypedArray. */
export type TensorData = NumericArray | string[];

type ArrayCtor = { new (n: number): NumericArray; new (buf: ArrayBufferLike, offset: number, length: number): NumericArray; BYTES_PER_ELEMENT: number };

export interface DatatypeInfo {
  /** Bytes per element in the binary encoding; 0 for BYTES (length-prefixed). */
  readonly byteSize: number;
  /** How a JSON element of this type is read and written. */
  readonly json: "bool" | "int" | "bigint" | "float" | "bytes" | "binary-only";
  readonly array?: ArrayCtor;
  /** Inclusive range for the integer types read from JSON numbers. */
  readonly min?: number;
  readonly max?: number;
}

export const DATATYPE_INFO: Readonly<Record<Datatype, DatatypeInfo>> = {
  BOOL: { byteSize: 1, json: "bool", array: Uint8Array },
  UINT8: { byteSize: 1, json: "int", array: Uint8Array, min: 0, max: 0xff },
  UINT16: { byteSize: 2, json: "int", array: Uint16Array, min: 0, max: 0xffff },
  UINT32: { byteSize: 4, json: "int", array: Uint32Array, min: 0, max: 0xffffffff },
  UINT64: { byteSize: 8, json: "bigint", array: BigUint64Array as unknown as ArrayCtor, min: 0 },
  INT8: { byteSize: 1, json: "int", array: Int8Array, min: -0x80, max: 0x7f },
  INT16: { byteSize: 2, json: "int", array: Int16Array, min: -0x8000, max: 0x7fff },
  INT32: { byteSize: 4, json: "int", array: Int32Array, min: -0x80000000, max: 0x7fffffff },
  INT64: { byteSize: 8, json: "bigint", array: BigInt64Array as unknown as ArrayCtor },
  // Half-precision values have no JSON form in the protocol: raw bits travel as binary data.
  FP16: { byteSize: 2, json: "binary-only", array: Uint16Array },
  BF16: { byteSize: 2, json: "binary-only", array: Uint16Array },
  FP32: { byteSize: 4, json: "float", array: Float32Array },
  FP64: { byteSize: 8, json: "float", array: Float64Array },
  BYTES: { byteSize: 0, json: "bytes" },
};

/** At most `max` characters of `text`, marked when cut. */
export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** A short, safe rendering of user input for error messages (never the whole thing). */
export function preview(value: unknown, max = 40): string {
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return truncate(text, max);
}
