/**
 * The binary tensor data extension (Triton's `binary_tensor_data`): tensors as
 * raw little-endian, row-major bytes after the JSON header. Decoding views the
 * request buffer in place whenever the element alignment allows it.
 */
import { invalidInput } from "../dataplane/errors.js";
import { DATATYPE_INFO, type NumericArray, type TensorData } from "../tensor/datatypes.js";
import { checkedElementCount, formatShape, type Tensor } from "../tensor/tensor.js";
import type { JsonTensorInput } from "./json.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/** BYTES elements: each a 4-byte little-endian length, then that many bytes of UTF-8. */
function decodeBytesElements(name: string, shape: readonly number[], bytes: Uint8Array, count: number, sizeLabel: string): string[] {
  // Refused before anything is allocated for them: a shape of 2^32 elements cannot even be an array.
  if (count > bytes.byteLength / 4) {
    throw invalidInput(
      `input '${name}': ${sizeLabel} is ${bytes.byteLength} bytes, too few for the ${count} BYTES elements of shape ${formatShape(shape)} (each takes at least 4, its length prefix)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = new Array(count);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > bytes.byteLength) throw invalidInput(`input '${name}': binary data ends inside the length prefix of BYTES element ${i} of ${count}`);
    const length = view.getUint32(offset, true);
    offset += 4;
    if (offset + length > bytes.byteLength) {
      throw invalidInput(`input '${name}': BYTES element ${i} declares ${length} bytes but only ${bytes.byteLength - offset} remain`);
    }
    try {
      out[i] = utf8.decode(bytes.subarray(offset, offset + length));
    } catch {
      throw invalidInput(`input '${name}': BYTES element ${i} is not valid UTF-8 (ONNX Runtime string tensors hold text)`);
    }
    offset += length;
  }
  if (offset !== bytes.byteLength) {
    throw invalidInput(`input '${name}': ${sizeLabel} is ${bytes.byteLength} but its ${count} BYTES elements take ${offset}`);
  }
  return out;
}

/** A TypedArray over `bytes` without copying when aligned; a copy otherwise. */
function viewNumeric(bytes: Uint8Array, ctor: NonNullable<(typeof DATATYPE_INFO)[keyof typeof DATATYPE_INFO]["array"]>, count: number): NumericArray {
  const size = ctor.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % size === 0) return new ctor(bytes.buffer, bytes.byteOffset, count);
  const copy = new Uint8Array(bytes);
  return new ctor(copy.buffer, 0, count);
}

/**
 * Decodes one input tensor from its slice of the binary section. `sizeLabel` names
 * where the byte count came from in error messages (gRPC's raw_input_contents).
 */
export function decodeBinaryTensor(input: JsonTensorInput, bytes: Uint8Array, sizeLabel = "binary_data_size"): Tensor {
  const { name, datatype, shape } = input;
  const count = checkedElementCount(`input '${name}'`, shape);
  const info = DATATYPE_INFO[datatype];
  let data: TensorData;
  if (datatype === "BYTES") {
    data = decodeBytesElements(name, shape, bytes, count, sizeLabel);
  } else {
    const expected = count * info.byteSize;
    if (bytes.byteLength !== expected) {
      throw invalidInput(
        `input '${name}': ${sizeLabel} is ${bytes.byteLength} bytes but shape ${formatShape(shape)} of ${datatype} needs ${expected} (${count} × ${info.byteSize})`,
      );
    }
    data = viewNumeric(bytes, info.array!, count);
  }
  const tensor: Tensor = { name, datatype, shape, data };
  if (input.parameters) {
    const { binary_data_size: _size, ...rest } = input.parameters;
    if (Object.keys(rest).length > 0) tensor.parameters = rest;
  }
  return tensor;
}

/** The raw bytes of an output tensor: a view for numeric types, built for BYTES. */
export function encodeBinaryData(tensor: Tensor): Uint8Array {
  const { data } = tensor;
  if (!Array.isArray(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const encoded = data.map((s) => utf8Encoder.encode(s));
  const out = new Uint8Array(encoded.reduce((n, e) => n + 4 + e.byteLength, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const e of encoded) {
    view.setUint32(offset, e.byteLength, true);
    out.set(e, offset + 4);
    offset += 4 + e.byteLength;
  }
  return out;
}

/** Splits a request body at Inference-Header-Content-Length into JSON header bytes and the binary section. */
export function splitBinaryBody(body: Uint8Array, headerValue: string): { header: Uint8Array; binary: Uint8Array } {
  if (!/^\d{1,15}$/.test(headerValue.trim())) throw invalidInput(`Inference-Header-Content-Length must be a non-negative integer, got "${headerValue.slice(0, 20)}"`);
  const length = Number(headerValue);
  if (length > body.byteLength) {
    throw invalidInput(`Inference-Header-Content-Length is ${length} but the body has only ${body.byteLength} bytes`);
  }
  return { header: body.subarray(0, length), binary: body.subarray(length) };
}

/** Raw binary mode: the whole body is the single input's bytes; its shape comes from the model. */
export function rawInputShape(name: string, datatype: keyof typeof DATATYPE_INFO, modelShape: readonly number[], byteLength: number): number[] {
  if (datatype === "BYTES") return modelShape.length === 0 ? [] : modelShape.map(() => 1);
  const size = DATATYPE_INFO[datatype].byteSize;
  const fixed = modelShape.reduce((n, d) => (d === -1 ? n : n * d), 1);
  const dynamic = modelShape.filter((d) => d === -1).length;
  if (dynamic > 1) throw invalidInput(`raw binary input: model input '${name}' has ${dynamic} dynamic dimensions; send a JSON header to give its shape`);
  const elements = byteLength / size;
  if (!Number.isInteger(elements) || (dynamic === 0 ? elements !== fixed : fixed === 0 || elements % fixed !== 0)) {
    throw invalidInput(`raw binary input: ${byteLength} bytes do not fit input '${name}' of shape ${formatShape(modelShape)} and datatype ${datatype}`);
  }
  return modelShape.map((d) => (d === -1 ? elements / fixed : d));
}
