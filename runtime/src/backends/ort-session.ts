/**
 * What the main thread knows of ONNX Runtime: its element types as V2 datatypes, a
 * session's signature with the settings' overrides applied, and the session options
 * from a model's settings. The sessions themselves live on worker threads
 * (instances.ts, instance-worker.mjs).
 */
import type * as ort from "onnxruntime-node";
import { invalidInput } from "../dataplane/errors.js";
import type { Datatype } from "../tensor/datatypes.js";
import { availableCpus } from "./cpu.js";
import { formatShape } from "../tensor/tensor.js";
import type { ModelSettings, TensorOverride } from "../repository/settings.js";
import type { TensorMetadata } from "./backend.js";

export const ONNX_PLATFORM = "onnx_onnxv1";

export const ORT_TO_DATATYPE: Partial<Record<string, Datatype>> = {
  bool: "BOOL", uint8: "UINT8", uint16: "UINT16", uint32: "UINT32", uint64: "UINT64",
  int8: "INT8", int16: "INT16", int32: "INT32", int64: "INT64",
  float16: "FP16", float32: "FP32", float64: "FP64", string: "BYTES",
};

export const DATATYPE_TO_ORT: Partial<Record<Datatype, ort.Tensor.Type>> = Object.fromEntries(
  Object.entries(ORT_TO_DATATYPE).map(([k, v]) => [v, k]),
);

export class ModelLoadError extends Error {}

/** A session input's or output's metadata as a worker reports it (ONNX Runtime's ValueMetadata, plain). */
export interface OrtValueMetadata {
  name: string;
  isTensor: boolean;
  type: string;
  shape: readonly (number | string)[];
}

/** ONNX Runtime's string tensors are C strings: text after a NUL would be dropped without a word. */
export function rejectNul(name: string, data: readonly string[]): void {
  for (let i = 0; i < data.length; i++) {
    if (data[i]!.includes("\0")) throw invalidInput(`input '${name}': BYTES element ${i} contains a NUL character, which ONNX Runtime string tensors cannot hold`);
  }
}

function toMetadata(kind: "input" | "output", meta: OrtValueMetadata): TensorMetadata | undefined {
  if (!meta.isTensor) return undefined;
  const datatype = ORT_TO_DATATYPE[meta.type];
  if (!datatype) throw new ModelLoadError(`${kind} '${meta.name}' has element type ${meta.type}, which this runtime does not serve`);
  return { name: meta.name, datatype, shape: meta.shape.map((d) => (typeof d === "number" && d >= 0 ? d : -1)) };
}

/** Applies a settings override, refusing anything the graph itself would reject. */
function applyOverride(kind: "input" | "output", meta: TensorMetadata, override: TensorOverride | undefined): TensorMetadata {
  if (!override) return meta;
  if (override.datatype && override.datatype !== meta.datatype) {
    throw new ModelLoadError(`${kind} '${meta.name}': settings declare ${override.datatype} but the model has ${meta.datatype}`);
  }
  if (override.shape) {
    const compatible =
      meta.shape.length === 0 && override.shape.length > 0 // graph without shape information
        ? true
        : override.shape.length === meta.shape.length && override.shape.every((d, i) => meta.shape[i] === -1 || d === meta.shape[i]);
    if (!compatible) {
      throw new ModelLoadError(`${kind} '${meta.name}': settings shape ${formatShape(override.shape)} is incompatible with the model's ${formatShape(meta.shape)}`);
    }
    return { ...meta, shape: override.shape };
  }
  return meta;
}

/**
 * The signature: tensors only. Non-tensor outputs are not in it; the pool reports them (InstancePool:
 * `unservedOutputs`, a warning, the model metadata). ZipMap outputs never get here as such: the worker
 * serves them as probability tensors (instance-worker.mjs).
 */
export function signature(kind: "input" | "output", metas: readonly OrtValueMetadata[], overrides: TensorOverride[] | undefined): TensorMetadata[] {
  const byName = new Map((overrides ?? []).map((o) => [o.name, o]));
  for (const name of byName.keys()) {
    const meta = metas.find((m) => m.name === name);
    if (!meta) throw new ModelLoadError(`settings name ${kind} '${name}', which the model does not have`);
    if (!meta.isTensor) throw new ModelLoadError(`settings name ${kind} '${name}', which is not a tensor and cannot be served`);
  }
  const out: TensorMetadata[] = [];
  for (const m of metas) {
    const meta = toMetadata(kind, m);
    if (meta) out.push(applyOverride(kind, meta, byName.get(m.name)));
    else if (kind === "input") throw new ModelLoadError(`input '${m.name}' is not a tensor`);
  }
  return out;
}

/**
 * Whether ONNX Runtime's pool threads busy-wait for the next parallel section (ORT's own
 * default is yes). Off here. Measured with bench/run.ts on 2 cores: on a quiet machine spinning
 * is worth about 20% on a multi-threaded model at low concurrency (the benchmark MLP, 1 and 8
 * connections), nothing on tiny models or at 64 connections with dynamic batching; when anything
 * else wants the CPU (a neighbour, a co-located client) a spinning thread competes with the
 * event loop and the two-thread runs collapse (about 2× slower in those runs). Between runs it
 * also burns CPU the pod is billed and throttled for, and that CPU-based autoscaling reads as
 * load. `onnxruntime.allow_spinning: true` turns it on per model.
 */
const DEFAULT_ALLOW_SPINNING = false;

const GRAPH_OPTIMIZATION: Record<string, ort.InferenceSession.SessionOptions["graphOptimizationLevel"]> = {
  disabled: "disabled", basic: "basic", extended: "extended", all: "all",
};

/**
 * Session options from a model's `onnxruntime` settings, with this runtime's defaults
 * (exported so the benchmark's in-process baseline runs exactly what the server runs).
 */
export function sessionOptions(o: ModelSettings["onnxruntime"]): ort.InferenceSession.SessionOptions {
  const spin = (o.allow_spinning ?? DEFAULT_ALLOW_SPINNING) ? "1" : "0";
  return {
    graphOptimizationLevel: GRAPH_OPTIMIZATION[o.graph_optimization_level ?? "all"],
    executionMode: o.execution_mode ?? "sequential",
    // One instance alone may use every CPU of the pod, but no more than the pod's CPU limit;
    // the backend shares them out between a model's instances (instances.ts).
    intraOpNumThreads: o.intra_op_num_threads ?? availableCpus(),
    interOpNumThreads: o.inter_op_num_threads ?? 1,
    enableCpuMemArena: o.enable_cpu_mem_arena ?? true,
    enableMemPattern: o.enable_mem_pattern ?? true,
    // Session config entries (ORT's onnxruntime_session_options_config_keys.h); the node binding
    // joins nested keys with dots and takes string values.
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
}

