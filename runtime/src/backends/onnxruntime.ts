/**
 * The ONNX Runtime backend (onnxruntime-node). One InferenceSession per model
 * version; concurrent runs share it, which ONNX Runtime supports.
 */
import * as ort from "onnxruntime-node";
import { invalidInput, unsupported } from "../dataplane/errors.js";
import { truncate, type Datatype } from "../tensor/datatypes.js";
import { availableCpus } from "./cpu.js";
import { formatShape, type Tensor } from "../tensor/tensor.js";
import type { ModelSettings, TensorOverride } from "../repository/settings.js";
import type { LoadedModel, ModelBackend, ModelLoadSpec, TensorMetadata } from "./backend.js";

export const ONNX_PLATFORM = "onnx_onnxv1";

const ORT_TO_DATATYPE: Partial<Record<string, Datatype>> = {
  bool: "BOOL", uint8: "UINT8", uint16: "UINT16", uint32: "UINT32", uint64: "UINT64",
  int8: "INT8", int16: "INT16", int32: "INT32", int64: "INT64",
  float16: "FP16", float32: "FP32", float64: "FP64", string: "BYTES",
};

const DATATYPE_TO_ORT: Partial<Record<Datatype, ort.Tensor.Type>> = Object.fromEntries(
  Object.entries(ORT_TO_DATATYPE).map(([k, v]) => [v, k]),
);

export class ModelLoadError extends Error {}

/** ONNX Runtime's string tensors are C strings: text after a NUL would be dropped without a word. */
function rejectNul(name: string, data: readonly string[]): void {
  for (let i = 0; i < data.length; i++) {
    if (data[i]!.includes("\0")) throw invalidInput(`input '${name}': BYTES element ${i} contains a NUL character, which ONNX Runtime string tensors cannot hold`);
  }
}

function toMetadata(kind: "input" | "output", meta: ort.InferenceSession.ValueMetadata): TensorMetadata | undefined {
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

function signature(kind: "input" | "output", metas: readonly ort.InferenceSession.ValueMetadata[], overrides: TensorOverride[] | undefined): TensorMetadata[] {
  const byName = new Map((overrides ?? []).map((o) => [o.name, o]));
  for (const name of byName.keys()) {
    if (!metas.some((m) => m.name === name)) throw new ModelLoadError(`settings name ${kind} '${name}', which the model does not have`);
  }
  const out: TensorMetadata[] = [];
  for (const m of metas) {
    const meta = toMetadata(kind, m);
    // Non-tensor outputs (sequences, maps such as sklearn's ZipMap) are left out rather than failing the model.
    if (meta) out.push(applyOverride(kind, meta, byName.get(m.name)));
    else if (kind === "input") throw new ModelLoadError(`input '${m.name}' is not a tensor`);
  }
  return out;
}

class OnnxRuntimeModel implements LoadedModel {
  readonly platform = ONNX_PLATFORM;
  constructor(
    private readonly name: string,
    private readonly session: ort.InferenceSession,
    readonly inputs: TensorMetadata[],
    readonly outputs: TensorMetadata[],
    readonly executionProviders: string[],
  ) {}

  async infer(inputs: readonly Tensor[], outputNames: readonly string[]): Promise<Tensor[]> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) {
      const type = DATATYPE_TO_ORT[t.datatype];
      if (!type) throw unsupported(`datatype ${t.datatype} cannot be fed to ONNX Runtime`);
      if (type === "string") rejectNul(t.name, t.data as string[]);
      feeds[t.name] = new ort.Tensor(type, t.data as ort.Tensor.DataType, t.shape);
    }
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await this.session.run(feeds, outputNames as string[]);
    } catch (err) {
      // The request passed every check against the signature, so a failing run means the
      // graph refused these values (an empty batch, an index out of range): the client's to fix.
      throw invalidInput(`model '${this.name}' could not run on this input: ${truncate(String((err as Error).message ?? err).replace(/\s+/g, " "), 300)}`);
    }
    return outputNames.map((name) => {
      const value = results[name]!;
      return {
        name,
        datatype: ORT_TO_DATATYPE[value.type]!,
        shape: value.dims.slice(),
        data: value.data as Tensor["data"],
      };
    });
  }

  async unload(): Promise<void> {
    await this.session.release();
  }
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
    // onnxruntime-node runs each session.run on the event loop thread, one at a time,
    // so one run may use every CPU of the pod, but no more than the pod's CPU limit.
    intraOpNumThreads: o.intra_op_num_threads ?? availableCpus(),
    interOpNumThreads: o.inter_op_num_threads ?? 1,
    enableCpuMemArena: o.enable_cpu_mem_arena ?? true,
    enableMemPattern: o.enable_mem_pattern ?? true,
    // Session config entries (ORT's onnxruntime_session_options_config_keys.h); the node binding
    // joins nested keys with dots and takes string values.
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
}

export class OnnxRuntimeBackend implements ModelBackend {
  readonly platform = ONNX_PLATFORM;

  constructor(private readonly defaults: { executionProviders: string[] }) {}

  async load(spec: ModelLoadSpec): Promise<LoadedModel> {
    const options = sessionOptions(spec.settings.onnxruntime);
    const requested = spec.settings.execution_providers ?? this.defaults.executionProviders;
    let providers = [...requested];
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(spec.file, { ...options, executionProviders: providers });
    } catch (err) {
      if (providers.length === 1 && providers[0] === "cpu") throw err;
      // CUDA missing on this node (or in this build): serve on CPU rather than not at all, and say so.
      spec.logger.warn(
        { model: spec.name, version: spec.version, requested, error: (err as Error).message },
        "execution providers unavailable; falling back to cpu",
      );
      providers = ["cpu"];
      session = await ort.InferenceSession.create(spec.file, { ...options, executionProviders: providers });
    }
    try {
      const inputs = signature("input", session.inputMetadata, spec.settings.inputs);
      const outputs = signature("output", session.outputMetadata, spec.settings.outputs);
      if (outputs.length === 0) throw new ModelLoadError("the model has no tensor outputs");
      return new OnnxRuntimeModel(spec.name, session, inputs, outputs, providers);
    } catch (err) {
      await session.release();
      throw err;
    }
  }
}
