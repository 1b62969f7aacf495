/**
 * An event's data to the data plane's request, and the response back to the
 * reply's data. Three forms of data are accepted:
 *
 * - an Open Inference Protocol v2 request ({"inputs": [...]}), answered with
 *   the V2 response (its `id` echoed);
 * - a KServe V1 body ({"instances": [...]}, or {"inputs": [...]} on the V1
 *   endpoint), answered with {"predictions": [...]};
 * - {"text": "..."} or {"text": ["...", ...]} for a model with one BYTES
 *   input, answered like V1: {"predictions": [...]}, one per text.
 *
 * Decoding goes through the same codecs as the REST transports, so an invalid
 * request gets the same 400 message either way. Binary tensor data has no
 * place in an event: binary_data_size on an input is refused, and binary_data
 * output flags are ignored (every output is JSON).
 */
import { encodeV1Response, v1ToInferenceRequest } from "../codecs/v1.js";
import { encodeInferenceResponse, toInferenceRequest } from "../codecs/v2.js";
import { invalidInput } from "../dataplane/errors.js";
import type { InferenceRequest, InferenceResponse } from "../dataplane/types.js";
import { formatZodError } from "../dataplane/zod-errors.js";
import type { ModelRegistry } from "../registry/registry.js";
import { V1PredictRequestSchema } from "../codecs/schemas.js";
import { preview } from "../tensor/datatypes.js";

/** Where the event arrived: POST /, the V2 infer endpoint, or the V1 predict endpoint. */
export type Endpoint = "root" | "v2" | "v1";
export type DataFormat = "v2" | "v1" | "text";

export interface PreparedInference {
  format: DataFormat;
  request: InferenceRequest;
  /** The reply's data, as JSON text. */
  encode(response: InferenceResponse): string;
}

/**
 * Which form the data is in. `text` wins when the data has neither `inputs`
 * nor `instances`; otherwise the endpoint decides, and on POST / `instances`
 * means V1 and anything else is read as V2.
 */
export function dataFormat(data: Record<string, unknown>, endpoint: Endpoint): DataFormat {
  if (data.text !== undefined && data.inputs === undefined && data.instances === undefined) return "text";
  if (endpoint !== "root") return endpoint;
  return data.instances !== undefined ? "v1" : "v2";
}

function refuseBinaryInputs(data: Record<string, unknown>): void {
  if (!Array.isArray(data.inputs)) return;
  for (const input of data.inputs as unknown[]) {
    const parameters = (input as { parameters?: Record<string, unknown> } | null)?.parameters;
    if (parameters && typeof parameters === "object" && parameters.binary_data_size !== undefined) {
      const name = (input as { name?: unknown }).name;
      throw invalidInput(`input ${preview(name)} has binary_data_size, but binary tensor data is not valid event data: send its values in 'data'`);
    }
  }
}

function textRequest(data: Record<string, unknown>, registry: ModelRegistry, name: string, version: string | undefined): { request: InferenceRequest; texts: string[] } {
  const { text } = data;
  const texts = typeof text === "string" ? [text] : text;
  if (!Array.isArray(texts) || texts.length === 0 || texts.some((t) => typeof t !== "string")) {
    throw invalidInput(`'text' must be a string or a non-empty list of strings, got ${preview(text)}`);
  }
  const { model } = registry.findReady(name, version);
  const only = model.inputs.length === 1 ? model.inputs[0]! : undefined;
  if (!only || only.datatype !== "BYTES" || only.shape.length < 1 || only.shape.length > 2) {
    const inputs = model.inputs.map((i) => `${i.name} ${i.datatype} [${i.shape.join(",")}]`).join(", ");
    throw invalidInput(
      `a {"text": ...} event needs a model with one BYTES input of shape [-1] or [-1,1]; model '${name}' has ${inputs}: send an inference request ({"inputs": [...]}) instead`,
    );
  }
  const shape = only.shape.length === 1 ? [texts.length] : [texts.length, 1];
  const request: InferenceRequest = { modelName: name, modelVersion: version, inputs: [{ name: only.name, datatype: "BYTES", shape, data: texts as string[] }] };
  return { request, texts: texts as string[] };
}

/** Decodes the data for the named model; throws the same 400s as the REST transports. */
export function prepareInference(
  data: Record<string, unknown>,
  endpoint: Endpoint,
  registry: ModelRegistry,
  name: string,
  version: string | undefined,
): PreparedInference {
  const format = dataFormat(data, endpoint);
  switch (format) {
    case "v2": {
      refuseBinaryInputs(data);
      const request = toInferenceRequest(data, name, version);
      return { format, request, encode: (response) => encodeInferenceResponse(response).json };
    }
    case "v1": {
      const parsed = V1PredictRequestSchema.safeParse(data);
      if (!parsed.success) throw invalidInput(`invalid V1 request: ${formatZodError(parsed.error)}`);
      const entry = registry.findReady(name, version);
      const request = v1ToInferenceRequest(parsed.data, entry.model, name);
      if (version !== undefined) request.modelVersion = version;
      const instances = (parsed.data.instances ?? parsed.data.inputs) as unknown[];
      return { format, request, encode: (response) => encodeV1Response(response, instances) };
    }
    case "text": {
      const { request, texts } = textRequest(data, registry, name, version);
      return { format, request, encode: (response) => encodeV1Response(response, texts) };
    }
  }
}
