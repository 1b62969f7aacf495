/**
 * KServe's V1 protocol (TensorFlow Serving's row format) to and from typed
 * tensors. `instances` is a list of rows; a single-input model takes each row as
 * its input, a multi-input model takes each row as {inputName: value}. The
 * answer is `predictions`: one entry per row, the output value for single-output
 * models, {outputName: value} otherwise.
 */
import type { LoadedModel, TensorMetadata } from "../backends/backend.js";
import { invalidInput } from "../dataplane/errors.js";
import type { InferenceRequest, InferenceResponse } from "../dataplane/types.js";
import { DATATYPE_INFO, preview } from "../tensor/datatypes.js";
import { bf16ToNumber, fp16ToNumber } from "../tensor/half.js";
import type { Tensor } from "../tensor/tensor.js";
import { decodeJsonTensor } from "./json.js";
import { stringifyExact } from "./json-exact.js";

/** The nested-array shape of a JSON value: [] for a scalar. */
function shapeOf(value: unknown): number[] {
  const shape: number[] = [];
  let v = value;
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0];
  }
  return shape;
}

function rowsToTensor(meta: TensorMetadata, rows: unknown[], where: string): Tensor {
  if (DATATYPE_INFO[meta.datatype].json === "binary-only") {
    throw invalidInput(`input '${meta.name}' is ${meta.datatype}, which has no JSON form; use the V2 protocol with binary data`);
  }
  const rowShape = shapeOf(rows[0]);
  for (let i = 1; i < rows.length; i++) {
    const s = shapeOf(rows[i]);
    if (s.length !== rowShape.length || s.some((d, k) => d !== rowShape[k])) {
      throw invalidInput(`${where}: instance ${i} has shape [${s}] but instance 0 has [${rowShape}]; every instance must have the same shape`);
    }
  }
  // A model whose input has no batch dimension (rank equal to one row's rank) takes a single instance as is.
  const unbatched = rows.length === 1 && meta.shape.length === rowShape.length;
  const shape = unbatched ? rowShape : [rows.length, ...rowShape];
  return decodeJsonTensor({ name: meta.name, datatype: meta.datatype, shape, data: unbatched ? rows[0] : rows });
}

export function v1ToInferenceRequest(body: { instances?: unknown; inputs?: unknown }, model: LoadedModel, modelName: string): InferenceRequest {
  const field = body.instances !== undefined ? "instances" : "inputs";
  const instances = body.instances ?? body.inputs;
  if (!Array.isArray(instances)) throw invalidInput(`'${field}' must be a list of instances, got ${preview(instances)}`);
  if (instances.length === 0) throw invalidInput(`'${field}' is empty`);

  if (model.inputs.length === 1) {
    return { modelName, inputs: [rowsToTensor(model.inputs[0]!, instances, field)] };
  }
  const inputs = model.inputs.map((meta) => {
    const rows = instances.map((row, i) => {
      if (typeof row !== "object" || row === null || Array.isArray(row)) {
        throw invalidInput(`model '${modelName}' has ${model.inputs.length} inputs, so each instance must be an object keyed by input name; instance ${i} is ${preview(row)}`);
      }
      const value = (row as Record<string, unknown>)[meta.name];
      if (value === undefined) throw invalidInput(`instance ${i} has no value for input '${meta.name}'`);
      return value;
    });
    return rowsToTensor(meta, rows, `input '${meta.name}'`);
  });
  return { modelName, inputs };
}

/** Tensor elements as plain JSON values (64-bit integers as BigInt, written exactly by encodeV1Response). */
function elements(t: Tensor): unknown[] {
  const { data, datatype } = t;
  if (Array.isArray(data)) return data;
  if (datatype === "BOOL") return Array.from(data as Uint8Array, (v) => v !== 0);
  if (datatype === "FP16") return Array.from(data as Uint16Array, fp16ToNumber);
  if (datatype === "BF16") return Array.from(data as Uint16Array, bf16ToNumber);
  if (datatype === "INT64" || datatype === "UINT64") return Array.from(data as BigInt64Array);
  return Array.from(data as Float32Array, (v) => (Number.isFinite(v) ? v : null));
}

/** Folds flat row-major values into nested arrays of `shape`. */
function nest(values: unknown[], shape: number[], offset = 0): unknown {
  if (shape.length === 0) return values[offset];
  const [dim, ...rest] = shape;
  const stride = rest.reduce((n, d) => n * d, 1);
  return Array.from({ length: dim! }, (_, i) => nest(values, rest, offset + i * stride));
}

/** `instances` is the request's list, already checked by v1ToInferenceRequest: one prediction per instance. */
export function inferenceResponseToV1(response: InferenceResponse, instances: readonly unknown[]): { predictions: unknown[] } {
  const rows = instances.length;
  const perOutput = response.outputs.map((t) => {
    const values = elements(t);
    // Outputs with a batch dimension split into rows; anything else is repeated for each row.
    if (t.shape[0] === rows && t.shape.length > 0) return Array.from({ length: rows }, (_, i) => nest(values, t.shape.slice(1), i * (values.length / rows)));
    const whole = nest(values, t.shape);
    return Array.from({ length: rows }, () => whole);
  });
  if (response.outputs.length === 1) return { predictions: perOutput[0]! };
  return {
    predictions: Array.from({ length: rows }, (_, i) => Object.fromEntries(response.outputs.map((t, k) => [t.name, perOutput[k]![i]]))),
  };
}

/**
 * The V1 answer as JSON text. 64-bit integer outputs are written with their exact digits
 * (JSON.stringify would refuse BigInt, and a double would round beyond 2^53).
 */
export function encodeV1Response(response: InferenceResponse, instances: readonly unknown[]): string {
  const body = inferenceResponseToV1(response, instances);
  const exact = response.outputs.some((t) => t.datatype === "INT64" || t.datatype === "UINT64");
  return exact ? stringifyExact(body) : JSON.stringify(body);
}
