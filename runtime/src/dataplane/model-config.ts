/**
 * The model configuration extension: Triton's ModelConfig for a loaded model version, as
 * GET /v2/models/{name}[/versions/{v}]/config and gRPC ModelConfig answer it. Transport-neutral:
 * REST sends this object as JSON, gRPC as the ModelConfig message (same field names).
 *
 * Written as Triton writes it (triton-inference-server/core, src/model_config_utils.cc,
 * ModelConfigToJson): the .proto's field names, every primitive field printed even at its
 * default, enums by name, and 64-bit integers as numbers (Triton fixes protobuf's strings).
 * Inputs and outputs come from the loaded graph's signature (settings overrides applied); with
 * max_batch_size > 0 their dims leave out the batch dimension, as Triton's do.
 *
 * It is the inverse of repository/triton-config.ts where both apply: this answer, sent back as
 * a load request's `config`, loads the same model with the same settings.
 */
import type { LoadedModel, TensorMetadata } from "../backends/backend.js";
import type { ModelSettings } from "../repository/settings.js";
import { GRAPH_LEVELS, ORT_PARAMETERS, TRITON_ONNX_BACKEND, TRITON_ONNX_PLATFORM, toTritonDatatype } from "../repository/triton-config.js";

export type TritonModelConfigJson = Record<string, unknown>;

const LEVEL_OF = Object.fromEntries(Object.entries(GRAPH_LEVELS).map(([level, name]) => [name, Number(level)])) as Record<string, number>;

function dims(t: TensorMetadata, maxBatchSize: number): number[] {
  return maxBatchSize > 0 ? t.shape.slice(1) : [...t.shape];
}

/** Triton's `parameters`: the settings' free-form ones as strings, and the ONNX Runtime options Triton's backend reads from there. */
function parameters(settings: ModelSettings): Record<string, { string_value: string }> {
  const out: Record<string, { string_value: string }> = {};
  for (const [k, v] of Object.entries(settings.parameters ?? {})) out[k] = { string_value: String(v) };
  const ort = settings.onnxruntime as Record<string, unknown>;
  for (const [param, key] of Object.entries(ORT_PARAMETERS)) {
    const v = ort[key];
    if (v === undefined) continue;
    out[param] = { string_value: key === "execution_mode" ? (v === "parallel" ? "1" : "0") : String(v) };
  }
  return out;
}

export function tritonModelConfig(name: string, model: Pick<LoadedModel, "inputs" | "outputs" | "executionProviders" | "instanceCount">, settings: ModelSettings): TritonModelConfigJson {
  const maxBatch = settings.max_batch_size;
  const gpu = model.executionProviders[0] === "cuda";
  const vp = settings.version_policy;
  const level = settings.onnxruntime.graph_optimization_level;
  const config: TritonModelConfigJson = {
    name,
    platform: TRITON_ONNX_PLATFORM,
    backend: TRITON_ONNX_BACKEND,
    runtime: "",
    version_policy: "specific" in vp ? { specific: { versions: vp.specific.versions.map(Number) } } : vp,
    max_batch_size: maxBatch,
    input: model.inputs.map((t) => ({
      name: t.name, data_type: toTritonDatatype(t.datatype), format: "FORMAT_NONE", dims: dims(t, maxBatch),
      is_shape_tensor: false, allow_ragged_batch: false, optional: false, is_non_linear_format_io: false,
    })),
    output: model.outputs.map((t) => ({
      name: t.name, data_type: toTritonDatatype(t.datatype), dims: dims(t, maxBatch),
      label_filename: "", is_shape_tensor: false, is_non_linear_format_io: false,
    })),
    batch_input: [],
    batch_output: [],
    optimization: {
      ...(level !== undefined && level !== "all" && { graph: { level: LEVEL_OF[level] } }),
      priority: "PRIORITY_DEFAULT",
      input_pinned_memory: { enable: true },
      output_pinned_memory: { enable: true },
      gather_kernel_buffer_threshold: 0,
      eager_batching: false,
    },
  };
  const batching = settings.dynamic_batching;
  if (batching) {
    config.dynamic_batching = {
      preferred_batch_size: batching.preferred_batch_size,
      max_queue_delay_microseconds: batching.max_queue_delay_microseconds,
      preserve_ordering: false,
      priority_levels: 0,
      default_priority_level: 0,
      default_queue_policy: { timeout_action: "REJECT", default_timeout_microseconds: 0, allow_timeout_override: false, max_queue_size: batching.max_queue_size },
      priority_queue_policy: {},
    };
  }
  Object.assign(config, {
    // One group with the instances actually running; the kind follows the execution provider in use.
    instance_group: [{
      name: `${name}_0`, kind: gpu ? "KIND_GPU" : "KIND_CPU", count: model.instanceCount ?? 1,
      gpus: gpu ? [0] : [], secondary_devices: [], profile: [], passive: false, host_policy: "",
    }],
    default_model_filename: settings.default_model_filename,
    cc_model_filenames: {},
    metric_tags: {},
    parameters: parameters(settings),
    model_warmup: [],
  });
  return config;
}
