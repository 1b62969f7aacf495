/**
 * Triton's model configuration (model_config.proto's ModelConfig, in its JSON form) as a
 * load request's `config`, mapped onto this server's model settings (settings.ts).
 *
 * Triton's clients send Triton's configuration: what this server can honour is mapped, what
 * it cannot is refused with a 400 naming the key, never silently dropped. Keys that Triton
 * prints with their default value (its GET .../config answer always prints every primitive
 * field) are accepted at that default, so a configuration read back from Triton or from this
 * server (dataplane/model-config.ts, the inverse mapping) loads again.
 *
 * The JSON form is protobuf's: field names as in the .proto or in lowerCamelCase (protobuf's
 * JSON parser takes both, and tritonclient.grpc's get_model_config(as_json=True) writes the
 * latter), 64-bit integers as numbers or decimal strings, enums by name (any case) or number,
 * unknown fields refused (Triton parses with ignore_unknown_fields = false).
 */
import { z } from "zod";
import { formatZodError } from "../dataplane/zod-errors.js";
import type { Datatype } from "../tensor/datatypes.js";
import { ModelSettingsSchema, type ModelSettings } from "./settings.js";

/** What Triton calls an ONNX Runtime model. */
export const TRITON_ONNX_PLATFORM = "onnxruntime_onnx";
export const TRITON_ONNX_BACKEND = "onnxruntime";

/** model_config.proto's DataType, in number order (index = enum number). */
const TRITON_DATATYPES = [
  "TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16",
  "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16",
] as const;
type TritonDatatype = (typeof TRITON_DATATYPES)[number];

/** The protocol's datatype for Triton's (TYPE_STRING is BYTES), and back. */
export function fromTritonDatatype(t: TritonDatatype): Datatype | undefined {
  if (t === "TYPE_INVALID") return undefined;
  return t === "TYPE_STRING" ? "BYTES" : (t.slice(5) as Datatype);
}
export function toTritonDatatype(d: Datatype): string {
  return d === "BYTES" ? "TYPE_STRING" : `TYPE_${d}`;
}

/** ModelInstanceGroup.Kind, in number order. */
const KINDS = ["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"] as const;

/** Triton's optimization.graph.level for the ONNX Runtime backend (onnxruntime_backend src/onnxruntime.cc): anything else is "all". */
export const GRAPH_LEVELS: Record<number, "basic" | "extended" | "disabled"> = { [-1]: "basic", 1: "extended", 2: "disabled" };

/**
 * Parameters Triton's ONNX Runtime backend reads. The session ones are mapped onto `onnxruntime`
 * settings (and written back by the inverse mapping); the GPU and memory ones are refused.
 */
export const ORT_PARAMETERS = {
  intra_op_thread_count: "intra_op_num_threads",
  inter_op_thread_count: "inter_op_num_threads",
  execution_mode: "execution_mode",
  enable_mem_arena: "enable_cpu_mem_arena",
  enable_mem_pattern: "enable_mem_pattern",
} as const;
const REFUSED_PARAMETERS = ["cudnn_conv_algo_search", "gpu_mem_limit", "arena_extend_strategy", "do_copy_in_default_stream"];
const REFUSED_PARAMETER_PREFIXES = ["session.", "memory."];

/** An enum by name (any case, as Triton parses) or by number. */
function protoEnum<const T extends readonly [string, ...string[]]>(values: T) {
  return z.preprocess((v) => (typeof v === "string" ? v.toUpperCase() : typeof v === "number" ? (values[v] ?? v) : v), z.enum(values));
}

/** int64/uint64: protobuf's JSON writes them as decimal strings, Triton's as numbers. */
const Int64 = z.preprocess((v) => (typeof v === "string" && /^-?[0-9]{1,18}$/.test(v) ? Number(v) : v), z.number().int());

/** A field accepted only at its default value: set otherwise, it would change what the model does here. */
function onlyDefault<T extends z.ZodType>(schema: T, isDefault: (v: z.output<T>) => boolean, why: string) {
  return schema.refine(isDefault, { message: `not supported by this server: ${why}` }).optional();
}
const emptyArray = (why: string) => onlyDefault(z.array(z.unknown()), (a) => a.length === 0, why);
const emptyMap = (why: string) => onlyDefault(z.record(z.string(), z.unknown()), (m) => Object.keys(m).length === 0, why);
const isFalse = (why: string) => onlyDefault(z.boolean(), (b) => b === false, why);
const isZero = (why: string) => onlyDefault(Int64, (n) => n === 0, why);
const refused = (why: string) => z.unknown().refine(() => false, { message: `not supported by this server: ${why}` }).optional();

const NOT_ONNX = "this server runs ONNX models on ONNX Runtime only";

const ModelInputSchema = z.strictObject({
  name: z.string().min(1),
  data_type: protoEnum(TRITON_DATATYPES).optional(),
  format: onlyDefault(protoEnum(["FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"]), (f) => f === "FORMAT_NONE", "input formats (the graph declares its layout)"),
  dims: z.array(Int64.pipe(z.number().min(-1))).optional(),
  reshape: refused("reshape"),
  is_shape_tensor: isFalse("shape tensors"),
  allow_ragged_batch: isFalse("ragged batching"),
  optional: isFalse("optional inputs (every graph input is required)"),
  is_non_linear_format_io: isFalse("non-linear I/O formats"),
});

const ModelOutputSchema = z.strictObject({
  name: z.string().min(1),
  data_type: protoEnum(TRITON_DATATYPES).optional(),
  dims: z.array(Int64.pipe(z.number().min(-1))).optional(),
  reshape: refused("reshape"),
  label_filename: onlyDefault(z.string(), (s) => s === "", "label files (give `labels` in model-settings.json)"),
  is_shape_tensor: isFalse("shape tensors"),
  is_non_linear_format_io: isFalse("non-linear I/O formats"),
});

const QueuePolicySchema = z.strictObject({
  timeout_action: onlyDefault(protoEnum(["REJECT", "DELAY"]), (a) => a === "REJECT", "queue timeouts"),
  default_timeout_microseconds: isZero("queue timeouts"),
  allow_timeout_override: isFalse("queue timeouts"),
  max_queue_size: z.number().int().min(0).optional(),
});

/** The one schema of Triton's ModelConfig as this server reads it (after normalizeProtoJson). */
export const TritonModelConfigSchema = z.strictObject({
  name: z.string().optional(),
  platform: onlyDefault(z.string(), (p) => p === "" || p === TRITON_ONNX_PLATFORM, `${NOT_ONNX} (platform "${TRITON_ONNX_PLATFORM}")`),
  backend: onlyDefault(z.string(), (b) => b === "" || b === TRITON_ONNX_BACKEND, `${NOT_ONNX} (backend "${TRITON_ONNX_BACKEND}")`),
  runtime: onlyDefault(z.string(), (r) => r === "", "backend runtimes"),
  version_policy: z
    .union([
      z.strictObject({ latest: z.strictObject({ num_versions: z.number().int().min(1) }) }),
      z.strictObject({ all: z.strictObject({}) }),
      z.strictObject({ specific: z.strictObject({ versions: z.array(Int64.pipe(z.number().min(0))).min(1) }) }),
    ])
    .optional(),
  max_batch_size: z.number().int().min(0).optional(),
  input: z.array(ModelInputSchema).optional(),
  output: z.array(ModelOutputSchema).optional(),
  batch_input: emptyArray("batch inputs"),
  batch_output: emptyArray("batch outputs"),
  optimization: z
    .strictObject({
      graph: z.strictObject({ level: z.number().int().optional() }).optional(),
      priority: onlyDefault(protoEnum(["PRIORITY_DEFAULT", "PRIORITY_MAX", "PRIORITY_MIN"]), (p) => p === "PRIORITY_DEFAULT", "model priorities"),
      cuda: refused("CUDA graphs and stream options"),
      execution_accelerators: onlyDefault(
        z.strictObject({ gpu_execution_accelerator: z.array(z.unknown()).optional(), cpu_execution_accelerator: z.array(z.unknown()).optional() }),
        (a) => !a.gpu_execution_accelerator?.length && !a.cpu_execution_accelerator?.length,
        "execution accelerators (TensorRT, OpenVINO)",
      ),
      // Pinned host memory and the gather buffer are GPU copy details with no effect on answers: accepted.
      input_pinned_memory: z.strictObject({ enable: z.boolean().optional() }).optional(),
      output_pinned_memory: z.strictObject({ enable: z.boolean().optional() }).optional(),
      gather_kernel_buffer_threshold: z.number().int().min(0).optional(),
      eager_batching: isFalse("eager batching"),
    })
    .optional(),
  dynamic_batching: z
    .strictObject({
      preferred_batch_size: z.array(z.number().int().min(1)).optional(),
      max_queue_delay_microseconds: Int64.pipe(z.number().min(0)).optional(),
      // Each request is answered on its own (a stream in request order), so the order is always preserved.
      preserve_ordering: z.boolean().optional(),
      priority_levels: isZero("request priorities"),
      default_priority_level: isZero("request priorities"),
      default_queue_policy: QueuePolicySchema.optional(),
      priority_queue_policy: emptyMap("request priorities"),
    })
    .optional(),
  sequence_batching: refused("sequence batching (stateful models)"),
  ensemble_scheduling: refused("ensembles"),
  instance_group: z
    .array(
      z.strictObject({
        name: z.string().optional(),
        kind: protoEnum(KINDS).optional(),
        count: z.number().int().min(0).optional(),
        rate_limiter: refused("rate limiting"),
        gpus: z.array(z.number().int().min(0)).optional(),
        secondary_devices: emptyArray("secondary devices"),
        profile: emptyArray("TensorRT profiles"),
        passive: isFalse("passive instances"),
        host_policy: onlyDefault(z.string(), (h) => h === "", "host policies"),
      }),
    )
    .optional(),
  default_model_filename: z.string().optional(),
  cc_model_filenames: emptyMap("per-compute-capability model files"),
  metric_tags: emptyMap("metric tags"),
  parameters: z.record(z.string(), z.strictObject({ string_value: z.string() })).optional(),
  model_warmup: emptyArray('warm-up samples (this server warms up with zeros: `warmup` in model-settings.json)'),
  model_operations: onlyDefault(z.strictObject({ op_library_filename: z.array(z.string()).optional() }), (o) => !o.op_library_filename?.length, "custom operator libraries"),
  model_transaction_policy: onlyDefault(z.strictObject({ decoupled: z.boolean().optional() }), (p) => !p.decoupled, "decoupled models"),
  model_repository_agents: onlyDefault(z.strictObject({ agents: z.array(z.unknown()).optional() }), (a) => !a.agents?.length, "repository agents"),
  response_cache: onlyDefault(z.strictObject({ enable: z.boolean().optional() }), (c) => !c.enable, "the response cache"),
  model_metrics: onlyDefault(z.strictObject({ metric_control: z.array(z.unknown()).optional() }), (m) => !m.metric_control?.length, "custom model metrics"),
});
export type TritonModelConfig = z.output<typeof TritonModelConfigSchema>;

/** Keys only Triton's ModelConfig has, and keys only model-settings.json has: how a load's `config` is told apart. */
const TRITON_ONLY = new Set(Object.keys(TritonModelConfigSchema.shape).filter((k) => !["version_policy", "max_batch_size", "dynamic_batching", "instance_group", "default_model_filename", "parameters"].includes(k)));
const SETTINGS_ONLY = Object.keys(ModelSettingsSchema.shape).filter((k) => !(k in TritonModelConfigSchema.shape));

/** Map fields: their keys are the user's, not field names, and are left as they are. */
const MAP_FIELDS = new Set(["parameters", "cc_model_filenames", "metric_tags", "priority_queue_policy"]);

/** lowerCamelCase field names (protobuf's JSON names) to the .proto's names, recursively, map keys excepted. */
export function normalizeProtoJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalizeProtoJson);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      const key = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      return [key, MAP_FIELDS.has(key) ? v : normalizeProtoJson(v)];
    }),
  );
}

export class TritonConfigError extends Error {}

/**
 * Whether a load request's `config` is Triton's ModelConfig rather than model-settings JSON:
 * it is unless it has a key only model-settings.json has (or free-form parameter values, the
 * settings' form of `parameters`). Throws when it mixes keys of both.
 */
export function isTritonConfig(json: unknown): boolean {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return false;
  const keys = Object.keys(json);
  const settingsKeys = keys.filter((k) => SETTINGS_ONLY.includes(k));
  const params = (json as { parameters?: unknown }).parameters;
  if (params && typeof params === "object" && Object.values(params).some((v) => v === null || typeof v !== "object")) settingsKeys.push("parameters (free-form values)");
  const tritonKeys = keys.map((k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)).filter((k) => TRITON_ONLY.has(k));
  if (settingsKeys.length > 0 && tritonKeys.length > 0) {
    throw new TritonConfigError(`mixes model-settings.json keys (${settingsKeys.join(", ")}) with Triton model configuration keys (${tritonKeys.join(", ")}); use one form`);
  }
  return settingsKeys.length === 0;
}

function parseBool(key: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (["true", "1", "on", "yes"].includes(v)) return true;
  if (["false", "0", "off", "no"].includes(v)) return false;
  throw new TritonConfigError(`parameters.${key}: expected true or false, got '${value}'`);
}

function parseCount(key: string, value: string): number {
  if (!/^[0-9]{1,9}$/.test(value.trim())) throw new TritonConfigError(`parameters.${key}: expected a non-negative integer, got '${value}'`);
  return Number(value.trim());
}

/** Settings keys that name a Triton key differently, for error messages. */
const SETTINGS_TO_TRITON: [string, string][] = [
  ["onnxruntime.intra_op_num_threads", "parameters.intra_op_thread_count"],
  ["onnxruntime.inter_op_num_threads", "parameters.inter_op_thread_count"],
  ["inputs[", "input["],
  ["outputs[", "output["],
];

/**
 * Triton's configuration as model settings for model `name`. `base`: the settings on disk, whose
 * keys Triton's configuration cannot express (labels, tokenizer, warmup, allow_spinning) carry over.
 */
export function tritonConfigToSettings(json: unknown, name: string, base?: ModelSettings): ModelSettings {
  const parsed = TritonModelConfigSchema.safeParse(normalizeProtoJson(json));
  if (!parsed.success) throw new TritonConfigError(formatZodError(parsed.error));
  const c = parsed.data;
  if (c.name && c.name !== name) throw new TritonConfigError(`name: '${c.name}' does not match the model being loaded, '${name}'`);

  const maxBatch = c.max_batch_size ?? 0;
  const tensor = (t: { name: string; data_type?: TritonDatatype; dims?: number[] }) => ({
    name: t.name,
    ...(t.data_type && t.data_type !== "TYPE_INVALID" && { datatype: fromTritonDatatype(t.data_type) }),
    // Triton's dims leave the batch dimension out when max_batch_size > 0; the settings' shapes hold it.
    ...(t.dims && { shape: maxBatch > 0 ? [-1, ...t.dims] : t.dims }),
  });

  const onnxruntime: Record<string, unknown> = {};
  if (base?.onnxruntime.allow_spinning !== undefined) onnxruntime.allow_spinning = base.onnxruntime.allow_spinning;
  const level = c.optimization?.graph?.level;
  if (level !== undefined) onnxruntime.graph_optimization_level = GRAPH_LEVELS[level] ?? "all";
  const parameters: Record<string, string> = {};
  for (const [key, { string_value }] of Object.entries(c.parameters ?? {})) {
    if (REFUSED_PARAMETERS.includes(key) || REFUSED_PARAMETER_PREFIXES.some((p) => key.startsWith(p))) {
      throw new TritonConfigError(`parameters.${key}: not supported by this server (an ONNX Runtime GPU or memory option it does not implement)`);
    }
    if (key === "intra_op_thread_count" || key === "inter_op_thread_count") onnxruntime[ORT_PARAMETERS[key]] = parseCount(key, string_value);
    else if (key === "enable_mem_arena" || key === "enable_mem_pattern") onnxruntime[ORT_PARAMETERS[key]] = parseBool(key, string_value);
    else if (key === "execution_mode") {
      if (string_value.trim() !== "0" && string_value.trim() !== "1") throw new TritonConfigError(`parameters.execution_mode: expected 0 (sequential) or 1 (parallel), got '${string_value}'`);
      onnxruntime.execution_mode = string_value.trim() === "0" ? "sequential" : "parallel";
    } else parameters[key] = string_value;
  }

  const settings: Record<string, unknown> = {
    ...(base?.labels && { labels: base.labels }),
    ...(base?.tokenizer && { tokenizer: base.tokenizer }),
    ...(base && { warmup: base.warmup }),
    max_batch_size: maxBatch,
    onnxruntime,
  };
  if (c.default_model_filename) settings.default_model_filename = c.default_model_filename;
  if (c.version_policy) {
    const vp = c.version_policy;
    settings.version_policy = "specific" in vp ? { specific: { versions: vp.specific.versions.map(String) } } : vp;
  }
  if (c.input?.length) settings.inputs = c.input.map(tensor);
  if (c.output?.length) settings.outputs = c.output.map(tensor);
  if (Object.keys(parameters).length > 0) settings.parameters = parameters;
  if (c.dynamic_batching) {
    const d = c.dynamic_batching;
    settings.dynamic_batching = {
      max_queue_delay_microseconds: d.max_queue_delay_microseconds ?? 0,
      ...(d.preferred_batch_size && { preferred_batch_size: d.preferred_batch_size }),
      ...(d.default_queue_policy?.max_queue_size !== undefined && { max_queue_size: d.default_queue_policy.max_queue_size }),
    };
  }
  if (c.instance_group?.length) {
    const kinds = [...new Set(c.instance_group.map((g) => g.kind ?? "KIND_AUTO"))];
    if (kinds.includes("KIND_MODEL")) throw new TritonConfigError("instance_group.kind: KIND_MODEL is not supported by this server (instances run on CPU or GPU)");
    if (kinds.length > 1) throw new TritonConfigError(`instance_group: groups of different kinds (${kinds.join(", ")}); a model runs on one execution provider here`);
    c.instance_group.forEach((g, i) => {
      const gpus = g.gpus ?? [];
      if (g.kind !== "KIND_GPU" && gpus.length > 0) throw new TritonConfigError(`instance_group[${i}].gpus: only a KIND_GPU group names GPUs`);
      if (gpus.some((d) => d !== 0)) throw new TritonConfigError(`instance_group[${i}].gpus: only GPU 0 is supported by this server, got [${gpus.join(", ")}]`);
    });
    // Proto3 leaves an unset count at 0; Triton then runs one instance.
    settings.instance_group = c.instance_group.map((g) => ({ count: Math.max(1, g.count ?? 1), ...(g.kind && { kind: g.kind }), ...(g.name && { name: g.name }) }));
    if (kinds[0] === "KIND_CPU") settings.execution_providers = ["cpu"];
    if (kinds[0] === "KIND_GPU") settings.execution_providers = ["cuda"];
  }

  const result = ModelSettingsSchema.safeParse(settings);
  if (!result.success) {
    let message = formatZodError(result.error);
    for (const [key, tritonKey] of SETTINGS_TO_TRITON) message = message.replaceAll(key, tritonKey);
    throw new TritonConfigError(message);
  }
  return result.data;
}
