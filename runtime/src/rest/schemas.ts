/**
 * Wire schemas of the Open Inference Protocol v2 REST API. Requests are
 * validated with these at the edge; the OpenAPI document is generated from them.
 */
import { z } from "zod";
import { DatatypeSchema } from "../tensor/datatypes.js";

export {
  InferenceRequestSchema, ParametersSchema, RequestInputSchema, RequestOutputSchema, V1PredictRequestSchema, type InferenceRequestBody,
} from "../codecs/schemas.js";
import { ParametersSchema } from "../codecs/schemas.js";

export const ResponseOutputSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  datatype: DatatypeSchema,
  parameters: ParametersSchema.optional(),
  data: z.array(z.unknown()).optional(),
});

export const InferenceResponseSchema = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: ParametersSchema.optional(),
  outputs: z.array(ResponseOutputSchema),
});

export const ErrorResponseSchema = z.object({ error: z.string() });

export const TensorMetadataSchema = z.object({
  name: z.string(),
  datatype: DatatypeSchema,
  shape: z.array(z.number().int()),
});

export const ModelMetadataSchema = z.object({
  name: z.string(),
  versions: z.array(z.string()).optional(),
  platform: z.string(),
  inputs: z.array(TensorMetadataSchema),
  outputs: z.array(TensorMetadataSchema),
  parameters: z.record(z.string(), z.unknown()).optional(),
});

export const ServerMetadataSchema = z.object({
  name: z.string(),
  version: z.string(),
  extensions: z.array(z.string()),
});

export const RepositoryIndexRequestSchema = z.object(
  { ready: z.boolean({ error: "must be true or false" }).optional() },
  { error: "the body must be a JSON object" },
);

export const RepositoryIndexResponseSchema = z.array(
  z.object({
    name: z.string(),
    version: z.string().optional(),
    state: z.enum(["READY", "UNAVAILABLE", "LOADING", "UNLOADING"]),
    reason: z.string().optional(),
  }),
);

export const RepositoryLoadRequestSchema = z.object(
  {
    parameters: z
      .object({
        /** model-settings.json content to use for this load instead of the file on disk. */
        config: z.string({ error: "must be a string of model-settings JSON or a Triton model configuration (JSON)" }).optional(),
        unload_dependents: z.boolean().optional(),
      })
      // Triton's `file:<path>` parameters (base64 strings): kept for the route to check, with any other key.
      .catchall(z.unknown())
      .optional(),
  },
  { error: "the body must be a JSON object" },
);

const DurationSchema = z.object({ count: z.number().int(), ns: z.number().int() });

export const ModelStatisticsResponseSchema = z.object({
  model_stats: z.array(
    z.object({
      name: z.string(),
      version: z.string(),
      last_inference: z.number().int(),
      inference_count: z.number().int(),
      execution_count: z.number().int(),
      inference_stats: z.object({
        success: DurationSchema, fail: DurationSchema, queue: DurationSchema,
        compute_input: DurationSchema, compute_infer: DurationSchema, compute_output: DurationSchema,
      }),
      batch_stats: z.array(z.unknown()),
    }),
  ),
});

export const V1PredictResponseSchema = z.object({ predictions: z.array(z.unknown()) });
export const V1ModelReadySchema = z.object({ name: z.string(), ready: z.boolean() });
export const V1ModelListSchema = z.object({ models: z.array(z.string()) });

/** POST /api/v1/inference (asynchronous inference on a text model). */
export const AsyncSubmitRequestSchema = z
  .object({
    prompt: z.string().optional(),
    text: z.string().optional(),
    model: z.string({ error: "model is required" }),
    version: z.union([z.string(), z.number()]).optional(),
    /** Used when the ingress sets no user header. */
    user_id: z.string().optional(),
    id: z.string().max(256).optional(),
  })
  .strict()
  .refine((b) => (b.prompt === undefined) !== (b.text === undefined), { message: 'give exactly one of "prompt" or "text"' });

export const AsyncAcceptedSchema = z.object({ request_id: z.string(), status: z.literal("queued"), location: z.string() });

export const AsyncRequestStatusSchema = z.object({
  request_id: z.string(),
  status: z.enum(["queued", "running", "succeeded", "failed"]),
  user_id: z.string(),
  model: z.string(),
  model_version: z.string().nullable(),
  tokens: z.number(),
  input_bytes: z.number(),
  attempts: z.number(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  response: InferenceResponseSchema.optional(),
  error: z.string().optional(),
});

const nullableCount = z.number().nullable();
export const UsageResponseSchema = z.object({
  user_id: z.string(),
  window: z.object({ start: z.string(), end: z.string(), seconds: z.number() }),
  requests: z.number(),
  tokens: z.number(),
  quota: z.object({ requests: nullableCount, tokens: nullableCount }),
  remaining: z.object({ requests: nullableCount, tokens: nullableCount }),
});
