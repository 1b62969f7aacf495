/**
 * The request bodies the codecs read, as zod schemas: the Open Inference Protocol v2
 * inference request and KServe V1's predict request. Below the transports (REST and
 * CloudEvents carry these bodies; rest/schemas.ts adds the rest of the REST API's
 * documents and generates the OpenAPI document from both).
 */
import { z } from "zod";
import { DatatypeSchema } from "../tensor/datatypes.js";

export const ParametersSchema = z.record(
  z.string(),
  z.union([z.string(), z.number(), z.boolean()], { error: "parameter values must be strings, numbers or booleans" }),
  { error: "must be an object of parameters" },
);

export const RequestInputSchema = z.object({
  name: z.string({ error: "must be a string" }).min(1, "must not be empty"),
  shape: z.array(z.number({ error: "must be a number" }).int("must be an integer").min(0, "must not be negative"), { error: "must be an array of dimensions" }),
  datatype: DatatypeSchema,
  parameters: ParametersSchema.optional(),
  /** Flat or nested row-major values; absent when the tensor travels as binary data (parameters.binary_data_size). */
  data: z.unknown().optional(),
});

export const RequestOutputSchema = z.object({
  name: z.string({ error: "must be a string" }).min(1, "must not be empty"),
  parameters: ParametersSchema.optional(),
});

export const InferenceRequestSchema = z.object(
  {
    id: z.string({ error: "must be a string" }).optional(),
    parameters: ParametersSchema.optional(),
    inputs: z.array(RequestInputSchema, { error: "must be an array of input tensors" }).min(1, "must hold at least one input tensor"),
    outputs: z.array(RequestOutputSchema, { error: "must be an array of requested outputs" }).optional(),
  },
  { error: "the request body must be a JSON object with an 'inputs' array" },
);

export type InferenceRequestBody = z.infer<typeof InferenceRequestSchema>;

export const V1PredictRequestSchema = z
  .object(
    {
      instances: z.unknown().optional(),
      inputs: z.unknown().optional(),
    },
    { error: "the body must be a JSON object with an 'instances' list" },
  )
  .refine((b) => b.instances !== undefined || b.inputs !== undefined, { message: "the body needs an 'instances' (or 'inputs') list" });
