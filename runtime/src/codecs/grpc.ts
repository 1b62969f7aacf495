/**
 * The Open Inference Protocol's gRPC messages (as @grpc/proto-loader decodes them:
 * field names as in the .proto, 64-bit integers as decimal strings, bytes as
 * Buffers) to and from the data plane's types.
 *
 * Inputs come as raw_input_contents (bytes, the binary tensor layout) or typed
 * `contents`; outputs go back as raw_output_contents unless the request sets the
 * parameter `raw_output_contents` to false (Triton answers raw; typed suits
 * clients that read `contents`).
 */
import { invalidInput } from "../dataplane/errors.js";
import type { InferenceRequest, InferenceResponse, RequestedOutput } from "../dataplane/types.js";
import { DATATYPE_INFO, DatatypeSchema, preview, type Datatype, type NumericArray, type TensorData } from "../tensor/datatypes.js";
import { checkElementCount, type Parameters, type Tensor } from "../tensor/tensor.js";
import { decodeBinaryTensor, encodeBinaryData } from "./binary.js";

/** InferParameter with proto-loader's `oneofs: true`: the chosen field is named in parameter_choice. */
export interface GrpcParameter {
  parameter_choice?: "bool_param" | "int64_param" | "string_param" | "double_param" | "uint64_param";
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  double_param?: number;
  uint64_param?: string;
}
export type GrpcParameters = Record<string, GrpcParameter>;

export interface GrpcTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: string[];
  uint_contents?: number[];
  uint64_contents?: string[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export interface GrpcInputTensor {
  name?: string;
  datatype?: string;
  shape?: string[];
  parameters?: GrpcParameters;
  contents?: GrpcTensorContents;
}

export interface GrpcInferRequest {
  model_name?: string;
  model_version?: string;
  id?: string;
  parameters?: GrpcParameters;
  inputs?: GrpcInputTensor[];
  outputs?: { name?: string; parameters?: GrpcParameters }[];
  raw_input_contents?: Uint8Array[];
}

export interface GrpcOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, Record<string, boolean | number | string>>;
  contents?: Record<string, unknown[]>;
}

export interface GrpcInferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  parameters?: GrpcOutputTensor["parameters"];
  outputs: GrpcOutputTensor[];
  raw_output_contents?: Uint8Array[];
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/** The typed-contents field each datatype travels in; FP16 and BF16 have none (raw only). */
const CONTENTS_FIELD: Record<Datatype, keyof GrpcTensorContents | undefined> = {
  BOOL: "bool_contents",
  INT8: "int_contents",
  INT16: "int_contents",
  INT32: "int_contents",
  INT64: "int64_contents",
  UINT8: "uint_contents",
  UINT16: "uint_contents",
  UINT32: "uint_contents",
  UINT64: "uint64_contents",
  FP32: "fp32_contents",
  FP64: "fp64_contents",
  BYTES: "bytes_contents",
  FP16: undefined,
  BF16: undefined,
};

const INTEGER_TEXT = /^-?\d{1,20}$/;

/** An int64/uint64 parameter as a number when exact, else as its decimal text. */
function integerValue(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

export function fromGrpcParameters(parameters: GrpcParameters | undefined): Parameters | undefined {
  if (!parameters) return undefined;
  const entries = Object.entries(parameters);
  if (entries.length === 0) return undefined;
  const out: Parameters = {};
  for (const [key, p] of entries) {
    switch (p.parameter_choice) {
      case "bool_param": out[key] = p.bool_param === true; break;
      case "int64_param": out[key] = integerValue(p.int64_param ?? "0"); break;
      case "uint64_param": out[key] = integerValue(p.uint64_param ?? "0"); break;
      case "double_param": out[key] = p.double_param ?? 0; break;
      case "string_param": out[key] = p.string_param ?? ""; break;
      default: throw invalidInput(`parameter '${key}' has no value; set one of bool_param, int64_param, string_param, double_param, uint64_param`);
    }
  }
  return out;
}

export function toGrpcParameters(parameters: Parameters | undefined): GrpcOutputTensor["parameters"] | undefined {
  if (!parameters) return undefined;
  const out: NonNullable<GrpcOutputTensor["parameters"]> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (typeof value === "boolean") out[key] = { bool_param: value };
    else if (typeof value === "number" && Number.isSafeInteger(value)) out[key] = { int64_param: value };
    else if (typeof value === "number") out[key] = { double_param: value };
    else if (typeof value === "bigint") out[key] = { int64_param: value.toString() };
    else if (typeof value === "string") out[key] = { string_param: value };
    else if (value !== undefined) out[key] = { string_param: JSON.stringify(value) };
  }
  return out;
}

function decodeShape(name: string, shape: string[] | undefined): number[] {
  return (shape ?? []).map((d, i) => {
    const n = Number(d);
    if (!Number.isSafeInteger(n) || n < 0) throw invalidInput(`input '${name}': shape dimension ${i} is ${preview(d)}; dimensions are non-negative integers`);
    return n;
  });
}

/** The same message the JSON codec gives for the same mistake (codecs/json.ts). */
function badElement(name: string, datatype: Datatype, index: number, value: unknown, expected: string): never {
  throw invalidInput(`input '${name}': element ${index} (${preview(value)}) is not a valid ${datatype} value; expected ${expected}`);
}

/** Typed contents of one input into the tensor's TypedArray (or strings), range-checked. */
function decodeContents(name: string, datatype: Datatype, shape: number[], contents: GrpcTensorContents): TensorData {
  const field = CONTENTS_FIELD[datatype];
  if (!field) throw invalidInput(`input '${name}': ${datatype} has no typed contents in the protocol; send it in raw_input_contents`);
  for (const other of Object.keys(contents) as (keyof GrpcTensorContents)[]) {
    if (other !== field && (contents[other]?.length ?? 0) > 0) {
      throw invalidInput(`input '${name}' is ${datatype} but its contents are in ${other}; ${datatype} goes in ${field}`);
    }
  }
  const values = (contents[field] ?? []) as unknown[];
  checkElementCount(name, shape, values.length);
  const info = DATATYPE_INFO[datatype];
  switch (datatype) {
    case "BOOL":
      return Uint8Array.from(values as boolean[], (v) => (v ? 1 : 0));
    case "INT64":
    case "UINT64": {
      const out = datatype === "INT64" ? new BigInt64Array(values.length) : new BigUint64Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const text = values[i] as string;
        if (!INTEGER_TEXT.test(text)) badElement(name, datatype, i, text, datatype === "INT64" ? "an integer from -2^63 to 2^63-1" : "an integer from 0 to 2^64-1");
        out[i] = BigInt(text);
      }
      return out;
    }
    case "BYTES":
      return (values as Uint8Array[]).map((bytes, i) => {
        try {
          return utf8.decode(bytes);
        } catch {
          throw invalidInput(`input '${name}': BYTES element ${i} is not valid UTF-8 (ONNX Runtime string tensors hold text)`);
        }
      });
    case "FP32":
      return Float32Array.from(values as number[]);
    case "FP64":
      return Float64Array.from(values as number[]);
    default: {
      // INT8/16/32 arrive as int32 and UINT8/16/32 as uint32 on the wire: the narrower types need a range check.
      const numbers = values as number[];
      const out = new info.array!(numbers.length) as Exclude<NumericArray, BigInt64Array | BigUint64Array>;
      for (let i = 0; i < numbers.length; i++) {
        const v = numbers[i]!;
        if (v < info.min! || v > info.max!) badElement(name, datatype, i, v, `an integer from ${info.min} to ${info.max}`);
        out[i] = v;
      }
      return out;
    }
  }
}

/** A decoded ModelInferRequest into the data plane's request. */
export function fromGrpcInferRequest(message: GrpcInferRequest): InferenceRequest {
  const modelName = message.model_name ?? "";
  if (modelName === "") throw invalidInput("model_name is required");
  const inputs = message.inputs ?? [];
  const raw = message.raw_input_contents ?? [];
  // Triton's words (its stock grpc_explicit_int_content_client.py matches on them), checked before the count.
  const typed = (input: GrpcInferRequest["inputs"] extends (infer T)[] | undefined ? T : never) =>
    input.contents !== undefined && Object.values(input.contents).some((v) => (v as unknown[] | undefined)?.length);
  const mixed = raw.length > 0 ? inputs.find(typed) : undefined;
  if (mixed) {
    throw invalidInput(`contents field must not be specified when using raw_input_contents for '${mixed.name ?? ""}' for model '${modelName}'; use one or the other for all inputs`);
  }
  if (raw.length > 0 && raw.length !== inputs.length) {
    throw invalidInput(`raw_input_contents has ${raw.length} entries but the request has ${inputs.length} inputs; send one per input, in input order`);
  }
  const tensors = inputs.map((input, i): Tensor => {
    const name = input.name ?? "";
    if (name === "") throw invalidInput(`input ${i} has no name`);
    const parsed = DatatypeSchema.safeParse(input.datatype ?? "");
    if (!parsed.success) throw invalidInput(`input '${name}': ${parsed.error.issues[0]!.message}`);
    const datatype = parsed.data;
    const shape = decodeShape(name, input.shape);
    const parameters = fromGrpcParameters(input.parameters);
    let tensor: Tensor;
    if (raw.length > 0) {
      tensor = decodeBinaryTensor({ name, datatype, shape }, raw[i]!, `raw_input_contents[${i}]`);
    } else {
      tensor = { name, datatype, shape, data: decodeContents(name, datatype, shape, input.contents ?? {}) };
    }
    if (parameters) tensor.parameters = parameters;
    return tensor;
  });
  const request: InferenceRequest = { modelName, inputs: tensors };
  if (message.model_version) request.modelVersion = message.model_version;
  if (message.id) request.id = message.id;
  const parameters = fromGrpcParameters(message.parameters);
  if (parameters) request.parameters = parameters;
  if (message.outputs && message.outputs.length > 0) {
    request.outputs = message.outputs.map((o, i): RequestedOutput => {
      if (!o.name) throw invalidInput(`requested output ${i} has no name`);
      const p = fromGrpcParameters(o.parameters);
      return p ? { name: o.name, parameters: p } : { name: o.name };
    });
  }
  return request;
}

function typedContents(tensor: Tensor): Record<string, unknown[]> {
  const field = CONTENTS_FIELD[tensor.datatype]!;
  const { data } = tensor;
  if (Array.isArray(data)) return { [field]: data.map((s) => utf8Encoder.encode(s)) };
  if (tensor.datatype === "BOOL") return { [field]: Array.from(data as Uint8Array, (v) => v !== 0) };
  // Long.js (protobufjs' 64-bit type) takes decimal text exactly; BigInt it does not take.
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return { [field]: Array.from(data, String) };
  return { [field]: Array.from(data as Exclude<NumericArray, BigInt64Array | BigUint64Array>) };
}

/**
 * The data plane's response as a ModelInferResponse: raw_output_contents unless
 * the request asked for typed contents, which FP16/BF16 outputs cannot have (then
 * every output goes raw: the protocol does not mix the two in one response).
 */
export function toGrpcInferResponse(response: InferenceResponse, request: InferenceRequest): GrpcInferResponse {
  const typed = request.parameters?.raw_output_contents === false && response.outputs.every((t) => CONTENTS_FIELD[t.datatype] !== undefined);
  const message: GrpcInferResponse = { model_name: response.modelName, model_version: response.modelVersion, outputs: [] };
  if (response.id !== undefined) message.id = response.id;
  const parameters = toGrpcParameters(response.parameters);
  if (parameters) message.parameters = parameters;
  if (!typed) message.raw_output_contents = [];
  for (const t of response.outputs) {
    const out: GrpcOutputTensor = { name: t.name, datatype: t.datatype, shape: t.shape };
    const p = toGrpcParameters(t.parameters);
    if (p) out.parameters = p;
    if (typed) out.contents = typedContents(t);
    else message.raw_output_contents!.push(encodeBinaryData(t));
    message.outputs.push(out);
  }
  return message;
}
