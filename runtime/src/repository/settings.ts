/**
 * The per-model settings file, `model-settings.json`, beside the model's version
 * directories. Everything in it is optional; the ONNX graph itself is the source
 * of truth for inputs and outputs.
 */
import { z } from "zod";
import { DatatypeSchema } from "../tensor/datatypes.js";

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
  })
  .strict();

export type ModelSettings = z.infer<typeof ModelSettingsSchema>;
export type TensorOverride = z.infer<typeof TensorOverrideSchema>;

export const DEFAULT_MODEL_SETTINGS: ModelSettings = ModelSettingsSchema.parse({});
