/**
 * The per-model settings file, `model-settings.json`, beside the model's version
 * directories. Everything in it is optional; the ONNX graph itself is the source
 * of truth for inputs and outputs.
 */
import { z } from "zod";
import { DatatypeSchema } from "../tensor/datatypes.js";
import { MAX_INSTANCE_COUNT, refineThreadBounds } from "./thread-bounds.js";

export const MODEL_SETTINGS_FILE = "model-settings.json";

const TensorOverrideSchema = z
  .object({
    name: z.string().min(1),
    datatype: DatatypeSchema.optional(),
    shape: z.array(z.number().int().min(-1)).optional(),
  })
  .strict();

export const VersionPolicySchema = z.union([
  z.object({ latest: z.object({ num_versions: z.number().int().min(1) }).strict() }).strict(),
  z.object({ all: z.object({}).strict() }).strict(),
  z.object({ specific: z.object({ versions: z.array(z.coerce.string()).min(1) }).strict() }).strict(),
]);

export const ExecutionProviderSchema = z.enum(["cpu", "cuda"]);

export const OnnxRuntimeOptionsSchema = z
  .object({
    intra_op_num_threads: z.number().int().min(0).optional(),
    inter_op_num_threads: z.number().int().min(0).optional(),
    graph_optimization_level: z.enum(["disabled", "basic", "extended", "all"]).optional(),
    execution_mode: z.enum(["sequential", "parallel"]).optional(),
    enable_cpu_mem_arena: z.boolean().optional(),
    enable_mem_pattern: z.boolean().optional(),
    /** ORT's session.intra_op/inter_op.allow_spinning: pool threads busy-wait between parallel sections. */
    allow_spinning: z.boolean().optional(),
  })
  .strict();

/**
 * Triton's `dynamic_batching`: requests are queued per model version and run
 * together, concatenated along the batch (first) dimension. Needs max_batch_size > 0.
 * `preferred_batch_size` is Triton's spelling; `preferred_batch_sizes` is accepted too.
 */
export const DynamicBatchingSchema = z
  .object({
    /** How long a request may wait for others to join its batch (Triton's default: 0, no waiting). */
    max_queue_delay_microseconds: z.number().int().min(0).max(60_000_000).default(0),
    /** Batch sizes (in rows) to prefer: a batch of one of these sizes runs at once. */
    preferred_batch_size: z.array(z.number().int().min(1)).optional(),
    preferred_batch_sizes: z.array(z.number().int().min(1)).optional(),
    /**
     * Requests allowed to wait; one more is answered 503 with Retry-After. 0 (the default) sets no
     * limit of its own: the server's per-model in-flight limit (MAX_INFLIGHT_PER_MODEL) still applies.
     */
    max_queue_size: z.number().int().min(0).optional(),
    /** Triton's form of the same limit. */
    default_queue_policy: z.object({ max_queue_size: z.number().int().min(0).default(0) }).strict().optional(),
  })
  .strict()
  .refine((d) => !(d.preferred_batch_size && d.preferred_batch_sizes), {
    message: "give preferred_batch_size (Triton's spelling) or preferred_batch_sizes, not both",
    path: ["preferred_batch_sizes"],
  })
  .refine((d) => d.max_queue_size === undefined || d.default_queue_policy === undefined, {
    message: "give max_queue_size or default_queue_policy.max_queue_size, not both",
    path: ["max_queue_size"],
  })
  .transform(({ max_queue_delay_microseconds, preferred_batch_size, preferred_batch_sizes, max_queue_size, default_queue_policy }) => ({
    max_queue_delay_microseconds,
    preferred_batch_size: [...new Set(preferred_batch_size ?? preferred_batch_sizes ?? [])].sort((a, b) => a - b),
    max_queue_size: max_queue_size ?? default_queue_policy?.max_queue_size ?? 0,
  }));

export type DynamicBatching = z.output<typeof DynamicBatchingSchema>;

/** Bounds the threads one model may start: each instance is a worker thread with its own ONNX Runtime session (thread-bounds.ts). */
export { MAX_INSTANCE_COUNT };

/**
 * Triton's `instance_group`: how many copies of the model run side by side. Only the
 * count is used; `kind` is accepted as Triton writes it (the execution provider comes
 * from `execution_providers`), and Triton's GPU placement keys are refused, not ignored.
 */
const InstanceGroupSchema = z
  .object({
    count: z.number().int().min(1).max(MAX_INSTANCE_COUNT).default(1),
    kind: z.enum(["KIND_AUTO", "KIND_CPU", "KIND_GPU"]).optional(),
    name: z.string().optional(),
  })
  .strict();

export const ModelSettingsSchema = z
  .object({
    /** Triton's default_model_filename: the file inside each version directory. */
    default_model_filename: z.string().regex(/^[^/\\]+$/, "must be a file name, not a path").default("model.onnx"),
    version_policy: VersionPolicySchema.default({ latest: { num_versions: 1 } }),
    /** Triton's meaning: > 0 makes the first dimension of every input and output the batch dimension, capped here. */
    max_batch_size: z.number().int().min(0).default(0),
    /** Narrow what the graph declares (e.g. fix a symbolic dimension); must stay compatible with it. */
    inputs: z.array(TensorOverrideSchema).optional(),
    outputs: z.array(TensorOverrideSchema).optional(),
    /** Class names, index-aligned with the model's class dimension. */
    labels: z.array(z.string()).optional(),
    execution_providers: z.array(ExecutionProviderSchema).min(1).optional(),
    onnxruntime: OnnxRuntimeOptionsSchema.default({}),
    /** Free-form values reported in model metadata. */
    parameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    /**
     * Model instances: worker threads, each with its own ONNX Runtime session, that run this model's
     * versions side by side (runtime/src/backends/instances.ts). Default: chosen from the pod's CPUs
     * (defaultInstanceCount). `instance_group` is Triton's form: the counts of its groups add up.
     */
    instance_count: z.number().int().min(1).max(MAX_INSTANCE_COUNT).optional(),
    instance_group: z.array(InstanceGroupSchema).min(1).optional(),
    /** Opt-in dynamic batching (Triton's name and meaning); `{}` takes every default. */
    dynamic_batching: DynamicBatchingSchema.optional(),
    /** One inference with zero / empty-string inputs before the model reports READY (unless the server's MODEL_WARMUP is off). */
    warmup: z.boolean().default(true),
    /**
     * How the model splits text into tokens, for usage and quotas (runtime/src/async/tokens.ts):
     * every match of `pattern` (an ECMAScript regular expression) in the text, after
     * lower-casing ASCII A–Z when `lowercase` is set. Declare the model's own rule here.
     */
    tokenizer: z
      .object({
        pattern: z.string().min(1).refine((p) => {
          try {
            new RegExp(p, "gu");
            return !new RegExp(p, "u").test("");
          } catch {
            return false;
          }
        }, "must be a valid regular expression that does not match the empty string"),
        lowercase: z.boolean().default(false),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.instance_count !== undefined && s.instance_group !== undefined) {
      ctx.addIssue({ code: "custom", path: ["instance_group"], message: "give instance_count or instance_group (Triton's form), not both" });
    }
    const groups = Array.isArray(s.instance_group) ? s.instance_group.reduce((n, g) => n + (typeof g?.count === "number" ? g.count : 1), 0) : 0;
    if (groups > MAX_INSTANCE_COUNT) {
      ctx.addIssue({ code: "custom", path: ["instance_group"], message: `the groups add up to ${groups} instances; at most ${MAX_INSTANCE_COUNT}` });
    }
    // Thread counts by the pod's CPUs, on disk and in load requests alike.
    refineThreadBounds(s, ctx);
    const batching = s.dynamic_batching;
    if (!batching) return;
    if (s.max_batch_size === 0) {
      ctx.addIssue({ code: "custom", path: ["dynamic_batching"], message: "dynamic batching needs max_batch_size > 0 (the first dimension must be the batch dimension)" });
      return;
    }
    // Zod runs this even when the block itself failed its checks (and was not transformed).
    const sizes: unknown = batching.preferred_batch_size;
    const tooBig = Array.isArray(sizes) ? sizes.filter((n): n is number => typeof n === "number" && n > s.max_batch_size) : [];
    if (tooBig.length > 0) {
      ctx.addIssue({ code: "custom", path: ["dynamic_batching", "preferred_batch_size"], message: `${tooBig.join(", ")} exceed${tooBig.length === 1 ? "s" : ""} max_batch_size ${s.max_batch_size}` });
    }
  });

export type ModelSettings = z.infer<typeof ModelSettingsSchema>;

/** The instances a model's settings ask for, or undefined to let the server choose. */
export function requestedInstanceCount(settings: ModelSettings): number | undefined {
  return settings.instance_count ?? settings.instance_group?.reduce((n, g) => n + g.count, 0);
}
export type TensorOverride = z.infer<typeof TensorOverrideSchema>;

export const DEFAULT_MODEL_SETTINGS: ModelSettings = ModelSettingsSchema.parse({});
