/**
 * The V2 inference request and response on the wire (JSON, optionally followed
 * by binary tensor data) to and from the data plane's types. Shared by every
 * transport that carries V2 bodies: REST and CloudEvents.
 */
import type { LoadedModel } from "../backends/backend.js";
import { invalidInput } from "../dataplane/errors.js";
import type { InferenceRequest, InferenceResponse } from "../dataplane/types.js";
import { formatZodError } from "../dataplane/zod-errors.js";
import { InferenceRequestSchema } from "./schemas.js";
import type { Tensor } from "../tensor/tensor.js";
import { decodeBinaryTensor, encodeBinaryData, rawInputShape } from "./binary.js";
import { decodeJsonTensor, encodeJsonData } from "./json.js";
import { decodedToInferenceRequest, type DecodedV2Request } from "./v2-decoder.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * An already parsed V2 JSON request (a CloudEvent's data, a queued request read back)
 * into the data plane's request, through the same checks as the streaming decoder's
 * output. `binary` is the section after the JSON header, when the client used the
 * binary extension.
 */
export function toInferenceRequest(body: unknown, modelName: string, modelVersion: string | undefined, binary?: Uint8Array): InferenceRequest {
  const parsed = InferenceRequestSchema.safeParse(withExactParameters(body));
  if (!parsed.success) throw invalidInput(`invalid inference request: ${formatZodError(parsed.error)}`);
  const { id, parameters, inputs, outputs } = parsed.data;
  const decoded: DecodedV2Request = {
    inputs: inputs.map((input) => ({
      name: input.name,
      datatype: input.datatype,
      shape: input.shape,
      ...(input.parameters && { parameters: input.parameters }),
      // Tensors with binary_data_size take their data from the binary section (decodedToInferenceRequest).
      ...((input.parameters?.binary_data_size === undefined || input.data !== undefined) && { tensor: decodeJsonTensor(input) }),
    })),
  };
  if (id !== undefined) decoded.id = id;
  if (parameters) decoded.parameters = parameters;
  if (outputs) decoded.outputs = outputs;
  return decodedToInferenceRequest(decoded, modelName, modelVersion, binary);
}

/** A parameters object whose BigInt values (parseJsonExact's integers beyond 2^53) are decimal text, as gRPC's int64 parameters arrive. */
function exactParameters(parameters: unknown): unknown {
  if (typeof parameters !== "object" || parameters === null || Array.isArray(parameters)) return parameters;
  let copy: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(parameters)) {
    if (typeof value === "bigint") (copy ??= { ...parameters })[key] = value.toString();
  }
  return copy ?? parameters;
}

/** The request with exactParameters applied to its own, its inputs' and its outputs' parameters (copies; the body is left as is). */
function withExactParameters(body: unknown): unknown {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return body;
  const request = body as { parameters?: unknown; inputs?: unknown; outputs?: unknown };
  const tensors = (list: unknown) =>
    Array.isArray(list)
      ? list.map((t: unknown) => (typeof t === "object" && t !== null && "parameters" in t ? { ...t, parameters: exactParameters((t as { parameters: unknown }).parameters) } : t))
      : list;
  return { ...request, parameters: exactParameters(request.parameters), inputs: tensors(request.inputs), outputs: tensors(request.outputs) };
}

/** Raw binary mode (Inference-Header-Content-Length: 0): the body is the single input's bytes. */
export function toRawInferenceRequest(model: LoadedModel, bytes: Uint8Array, modelName: string, modelVersion?: string): InferenceRequest {
  if (model.inputs.length !== 1) {
    throw invalidInput(`raw binary requests need a model with one input; '${modelName}' has ${model.inputs.length}: ${model.inputs.map((i) => i.name).join(", ")}`);
  }
  const meta = model.inputs[0]!;
  const shape = rawInputShape(meta.name, meta.datatype, meta.shape, bytes.byteLength);
  if (meta.datatype === "BYTES") {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw invalidInput(`raw binary input '${meta.name}' is not valid UTF-8`);
    }
    return { modelName, modelVersion, inputs: [{ name: meta.name, datatype: "BYTES", shape, data: [text] }] };
  }
  const tensor = decodeBinaryTensor({ name: meta.name, datatype: meta.datatype, shape }, bytes);
  return { modelName, modelVersion, inputs: [tensor] };
}

/**
 * Which outputs go back as binary, as Triton decides it (src/http_server.cc): an output the
 * request lists is binary only when its own `binary_data` is true; the request's
 * `binary_data_output` sets the kind of the outputs it does not list (all of them when it
 * lists none). A raw binary request (`raw`: Inference-Header-Content-Length 0) lists none and
 * gets every output binary.
 */
export function binaryOutputNames(request: InferenceRequest, response: InferenceResponse, raw = false): Set<string> {
  const unlisted = raw || request.parameters?.binary_data_output === true;
  const listed = new Map(request.outputs?.map((o) => [o.name, o.parameters?.binary_data === true]));
  const names = new Set<string>();
  for (const t of response.outputs) {
    if (listed.get(t.name) ?? unlisted) names.add(t.name);
  }
  return names;
}

export interface EncodedResponse {
  /** The JSON document (the whole body when `binary` is empty). */
  json: string;
  /** Binary sections in output order, to follow the JSON. */
  binary: Uint8Array[];
}

/** The V2 response, written as text so tensor data never round-trips through boxed arrays. */
export function encodeInferenceResponse(response: InferenceResponse, binaryOutputs: ReadonlySet<string> = new Set()): EncodedResponse {
  const binary: Uint8Array[] = [];
  let json = `{"model_name":${JSON.stringify(response.modelName)},"model_version":${JSON.stringify(response.modelVersion)}`;
  if (response.id !== undefined) json += `,"id":${JSON.stringify(response.id)}`;
  if (response.parameters) json += `,"parameters":${JSON.stringify(response.parameters)}`;
  json += ',"outputs":[';
  response.outputs.forEach((t, i) => {
    json += `${i ? "," : ""}{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(",")}]`;
    if (binaryOutputs.has(t.name)) {
      const bytes = encodeBinaryData(t);
      binary.push(bytes);
      json += `,"parameters":${JSON.stringify({ ...t.parameters, binary_data_size: bytes.byteLength })}}`;
    } else {
      if (t.parameters) json += `,"parameters":${JSON.stringify(t.parameters)}`;
      json += `,"data":${encodeJsonData(t)}}`;
    }
  });
  return { json: `${json}]}`, binary };
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * A request back into V2 JSON text: the inference logger's request events
 * ("log": the data as the JSON codec writes it), and requests queued to run later
 * ("queue": read back by this server's JSON codec, so 64-bit integers beyond 2^53
 * are written as the decimal strings it reads exactly, and FP16/BF16, which have
 * no JSON form in the protocol, are refused).
 */
export function encodeInferenceRequest(request: InferenceRequest, purpose: "log" | "queue" = "log"): string {
  let json = "{";
  if (request.id !== undefined) json += `"id":${JSON.stringify(request.id)},`;
  if (request.parameters) json += `"parameters":${JSON.stringify(request.parameters)},`;
  json += '"inputs":[';
  request.inputs.forEach((t, i) => {
    let data: string;
    if (purpose === "queue" && (t.datatype === "FP16" || t.datatype === "BF16")) {
      throw invalidInput(`input '${t.name}': ${t.datatype} tensors have no JSON form, so they cannot be queued; send this request synchronously`);
    } else if (purpose === "queue" && (t.data instanceof BigInt64Array || t.data instanceof BigUint64Array)) {
      data = `[${Array.from(t.data, (v: bigint) => (v > SAFE || v < -SAFE ? `"${v}"` : String(v))).join(",")}]`;
    } else {
      data = encodeJsonData(t);
    }
    json += `${i ? "," : ""}{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(",")}]`;
    if (t.parameters) json += `,"parameters":${JSON.stringify(t.parameters)}`;
    json += `,"data":${data}}`;
  });
  json += "]";
  if (request.outputs) json += `,"outputs":${JSON.stringify(request.outputs)}`;
  return `${json}}`;
}
