/**
 * Joining request tensors along the batch (first) dimension and splitting the
 * batch's outputs back. Numeric tensors are copied once into one TypedArray on
 * the way in; outputs are handed back as views (subarray), never copied.
 */
import { DATATYPE_INFO, type NumericArray } from "../tensor/datatypes.js";
import type { Tensor } from "../tensor/tensor.js";

/** Rows of a request: the shared first dimension of its inputs, or undefined when it has none (it cannot join a batch). */
export function batchRows(inputs: readonly Tensor[]): number | undefined {
  let rows: number | undefined;
  for (const t of inputs) {
    if (t.shape.length === 0) return undefined;
    const n = t.shape[0]!;
    if (rows === undefined) rows = n;
    else if (n !== rows) return undefined;
  }
  return rows !== undefined && rows > 0 ? rows : undefined;
}

/**
 * What must match for requests to share a batch: per input (in the model's
 * order), its datatype and every dimension after the first.
 */
export function batchKey(inputs: readonly Tensor[]): string {
  let key = "";
  for (const t of inputs) {
    key += `${t.name}\u0000${t.datatype}`;
    for (let i = 1; i < t.shape.length; i++) key += `,${t.shape[i]}`;
    key += "\u0001";
  }
  return key;
}

/** The tensors of several requests (same name, datatype and non-batch dimensions) as one, rows in order. */
export function concatRows(parts: readonly Tensor[]): Tensor {
  const first = parts[0]!;
  let rows = 0;
  for (const p of parts) rows += p.shape[0]!;
  const shape = [rows, ...first.shape.slice(1)];
  if (Array.isArray(first.data)) {
    const out: string[] = [];
    for (const p of parts) {
      const strings = p.data as string[];
      for (let i = 0; i < strings.length; i++) out.push(strings[i]!);
    }
    return { name: first.name, datatype: first.datatype, shape, data: out };
  }
  const Ctor = DATATYPE_INFO[first.datatype].array!;
  let length = 0;
  for (const p of parts) length += p.data.length;
  const out = new Ctor(length);
  let offset = 0;
  for (const p of parts) {
    // Same element type as `out` (validated against the model), so set() copies without conversion.
    (out as Uint8Array).set(p.data as Uint8Array, offset);
    offset += p.data.length;
  }
  return { name: first.name, datatype: first.datatype, shape, data: out };
}

/** Rows [start, start + rows) of a batch output; a view of the batch's data for numeric tensors. */
export function sliceRows(tensor: Tensor, totalRows: number, start: number, rows: number): Tensor {
  const shape = [rows, ...tensor.shape.slice(1)];
  const { data } = tensor;
  const perRow = data.length / totalRows;
  const from = start * perRow;
  const to = from + rows * perRow;
  const sliced = Array.isArray(data) ? data.slice(from, to) : (data as NumericArray).subarray(from, to);
  const out: Tensor = { name: tensor.name, datatype: tensor.datatype, shape, data: sliced };
  if (tensor.parameters) out.parameters = tensor.parameters;
  return out;
}

/** Whether a batch output can be split back into per-request rows. */
export function splittable(tensor: Tensor, totalRows: number): boolean {
  return tensor.shape.length > 0 && tensor.shape[0] === totalRows && tensor.data.length % totalRows === 0;
}
