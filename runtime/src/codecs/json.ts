/**
 * The JSON tensor codec: V2 JSON `data` (flat or nested, row-major) into typed
 * tensors, and typed tensors back into JSON text. Decoding goes straight into a
 * TypedArray; encoding writes the array text directly instead of building
 * arrays of boxed numbers for JSON.stringify.
 */
import { DATATYPE_INFO, preview, type Datatype, type TensorData } from "../tensor/datatypes.js";
import { bf16ToNumber, fp16ToNumber } from "../tensor/half.js";
import { checkElementCount, formatShape, type Parameters, type Tensor } from "../tensor/tensor.js";
import { invalidInput } from "../dataplane/errors.js";

export interface JsonTensorInput {
  name: string;
  datatype: Datatype;
  shape: number[];
  data?: unknown;
  parameters?: Parameters;
}

/**
 * Row-major flattening without recursion, so deeply nested hostile input cannot blow the stack.
 * Nesting follows the streaming decoder's rules (json-tensor-builder.ts), with its messages:
 * flat, or nested like the shape (dimensions of 1 aside); ragged arrays, values mixed with
 * arrays at one depth, and nesting that does not fit the shape are refused.
 */
function flatten(name: string, data: unknown[], shape: readonly number[]): unknown[] {
  let nested = false;
  for (let i = 0; i < data.length; i++) {
    if (Array.isArray(data[i])) {
      nested = true;
      break;
    }
  }
  if (!nested) return data;
  const label = `input '${name}'`;
  const out: unknown[] = [];
  // Child counts of the open arrays; sizes fixed by the first array closed at each depth.
  const counts: number[] = [0, 0];
  const sizes: number[] = [0, -1];
  let level = 1;
  let deepest = 1;
  let leafDepth = -1;
  const want = squeeze(shape);
  let matched = 0;
  const mixed = () => invalidInput(`${label}: the data mixes values and arrays at the same depth; send it flat or nested like the shape`);
  const ragged = (depth: number, size: number) =>
    invalidInput(`${label}: the data is ragged: an array at depth ${depth} has ${size} elements where an earlier one has ${sizes[depth]}`);
  const child = () => {
    const n = ++counts[level]!;
    if (sizes[level] !== -1 && n > sizes[level]!) throw ragged(level, n);
  };
  const stack: Array<{ array: unknown[]; index: number }> = [{ array: data, index: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.index >= top.array.length) {
      stack.pop();
      const size = counts[level]!;
      if (sizes[level] === -1) {
        sizes[level] = size;
        // Rows below the outermost level must be the shape's own rows, as soon as one is whole. The
        // levels below were checked when they closed first, so only this one's size is new.
        if (level > 1 && leafDepth !== -1 && size !== 1) {
          matched++;
          if (matched > want.length || want[want.length - matched] !== size) throw misfit(label, shape, `[…,${sizes.slice(level, deepest + 1).join(",")}]`);
        }
      } else if (size !== sizes[level]) throw ragged(level, size);
      level--;
      continue;
    }
    const value = top.array[top.index++];
    child();
    if (Array.isArray(value)) {
      if (leafDepth !== -1 && level >= leafDepth) throw mixed();
      level++;
      counts[level] = 0;
      if (level > deepest) {
        deepest = level;
        sizes[level] = -1;
      }
      stack.push({ array: value, index: 0 });
    } else {
      if (leafDepth === -1) {
        if (deepest > level) throw mixed();
        leafDepth = level;
      } else if (leafDepth !== level) throw mixed();
      out.push(value);
    }
  }
  checkElementCount(name, shape, out.length);
  if (out.length > 0) {
    const nesting = sizes.slice(1, deepest + 1);
    const have = squeeze(nesting);
    if (have.length !== want.length || have.some((d, i) => d !== want[i])) throw misfit(label, shape, formatShape(nesting));
  }
  return out;
}

function squeeze(dims: readonly number[]): number[] {
  return dims.filter((d) => d !== 1);
}

function misfit(label: string, shape: readonly number[], nested: string): Error {
  return invalidInput(`${label}: data nested as ${nested} does not fit shape ${formatShape(shape)}; send it flat or nested like the shape`);
}

function badElement(name: string, datatype: Datatype, index: number, value: unknown, expected: string): never {
  throw invalidInput(`input '${name}': element ${index} (${preview(value)}) is not a valid ${datatype} value; expected ${expected}`);
}

const INTEGER_TEXT = /^-?\d{1,20}$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function toBigInt(name: string, datatype: Datatype, index: number, value: unknown): bigint {
  let big: bigint | undefined;
  if (typeof value === "number" && Number.isInteger(value)) big = BigInt(value);
  // An integer JSON.parse would have rounded, kept exact by parseJsonExact (json-exact.ts).
  else if (typeof value === "bigint") big = value;
  // Integers beyond 2^53 lose precision as JSON numbers; a decimal string keeps them exact.
  else if (typeof value === "string" && INTEGER_TEXT.test(value)) big = BigInt(value);
  const unsigned = datatype === "UINT64";
  if (big === undefined || big > (unsigned ? UINT64_MAX : INT64_MAX) || big < (unsigned ? 0n : INT64_MIN)) {
    badElement(name, datatype, index, value, unsigned ? "an integer from 0 to 2^64-1" : "an integer from -2^63 to 2^63-1");
  }
  return big;
}

/** Decodes one JSON input tensor. Throws a 400 InferenceError naming the tensor on any mismatch. */
export function decodeJsonTensor(input: JsonTensorInput): Tensor {
  const { name, datatype, shape } = input;
  const info = DATATYPE_INFO[datatype];
  if (info.json === "binary-only") {
    throw invalidInput(
      `input '${name}': ${datatype} tensors cannot be sent as JSON numbers; send them as binary data (the binary_tensor_data extension)`,
    );
  }
  if (input.data === undefined) throw invalidInput(`input '${name}' has no 'data'`);
  const flat = Array.isArray(input.data) ? flatten(name, input.data, shape) : [input.data];
  checkElementCount(name, shape, flat.length);
  const n = flat.length;
  let data: TensorData;
  switch (info.json) {
    case "bytes": {
      for (let i = 0; i < n; i++) {
        if (typeof flat[i] !== "string") badElement(name, datatype, i, flat[i], "a string");
      }
      data = flat as string[];
      break;
    }
    case "bool": {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (v === true || v === 1) out[i] = 1;
        else if (v !== false && v !== 0) badElement(name, datatype, i, v, "true or false");
      }
      data = out;
      break;
    }
    case "int": {
      const out = new info.array!(n) as Int32Array;
      const min = info.min!;
      const max = info.max!;
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
          badElement(name, datatype, i, v, `an integer from ${min} to ${max}`);
        }
        out[i] = v;
      }
      data = out;
      break;
    }
    case "bigint": {
      const out = new info.array!(n) as BigInt64Array;
      for (let i = 0; i < n; i++) out[i] = toBigInt(name, datatype, i, flat[i]);
      data = out;
      break;
    }
    case "float": {
      const out = new info.array!(n) as Float32Array;
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v === "number") out[i] = v;
        // parseJsonExact's integers beyond 2^53: a float input takes their nearest value, as JSON.parse would give it.
        else if (typeof v === "bigint") out[i] = Number(v);
        else badElement(name, datatype, i, v, "a number");
      }
      data = out;
      break;
    }
  }
  return input.parameters ? { name, datatype, shape, data, parameters: input.parameters } : { name, datatype, shape, data };
}

function allFinite(values: Float32Array | Float64Array): boolean {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) return false;
  }
  return true;
}

/** JSON text for a tensor's data, flat and row-major. NaN and ±Infinity have no JSON form and are written as null. */
export function encodeJsonData(tensor: Tensor): string {
  const { data, datatype } = tensor;
  if (Array.isArray(data)) return JSON.stringify(data);
  switch (datatype) {
    case "BOOL": {
      let text = "[";
      for (let i = 0; i < data.length; i++) text += (i ? "," : "") + (data[i] ? "true" : "false");
      return `${text}]`;
    }
    case "FP32":
    case "FP64": {
      const floats = data as Float32Array | Float64Array;
      if (allFinite(floats)) return `[${floats.join(",")}]`;
      return JSON.stringify(Array.from(floats));
    }
    case "FP16":
    case "BF16": {
      const decode = datatype === "FP16" ? fp16ToNumber : bf16ToNumber;
      return JSON.stringify(Array.from(data as Uint16Array, decode));
    }
    default:
      // Integer types, 64-bit included: join() writes BigInts exactly, without the 2^53 limit of JSON.stringify.
      return `[${(data as Int32Array).join(",")}]`;
  }
}
