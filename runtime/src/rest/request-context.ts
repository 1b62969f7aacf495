/**
 * Per-request facts shared by the middleware and the transports: the request id
 * (honoured from x-request-id or generated, echoed in the response), and which
 * model and protocol a request addressed, for metrics and the access log.
 */
import type { Context, MiddlewareHandler } from "hono";
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Tensor } from "../tensor/tensor.js";

export type Protocol = "v2" | "v1" | "cloudevent" | "grpc";

export interface InferenceTarget {
  model: string;
  version?: string;
  protocol: Protocol;
}

/** The top class of a classifier's answer, for the access log. */
export interface Classification {
  label: string;
  confidence?: number;
}

declare module "hono" {
  interface ContextVariableMap {
    requestId: string;
    inferenceTarget: InferenceTarget;
    /** Called by markInference, so the observing middleware learns the target as soon as it is known. */
    onInferenceTarget: (target: InferenceTarget) => void;
    classification: Classification;
    logger: Logger;
  }
}

const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export const requestIdOf = (c: Context): string => c.get("requestId");

/** The client's request id when it is a sensible one (x-request-id header or gRPC metadata), else a new one. */
export function acceptRequestId(given: string | undefined): string {
  return given && REQUEST_ID.test(given) ? given : randomUUID();
}

/** Records which model and protocol this request is for; unknown models are never recorded. */
export function markInference(c: Context, target: InferenceTarget): void {
  c.set("inferenceTarget", target);
  c.get("onInferenceTarget")?.(target);
}

/**
 * The first row's label and confidence when a response looks like a classifier's:
 * a BYTES output (the label) beside a float output of class scores.
 */
export function classificationOf(outputs: readonly Tensor[]): Classification | undefined {
  const label = outputs.find((t) => t.datatype === "BYTES" && t.data.length > 0);
  if (!label) return undefined;
  const scores = outputs.find((t) => (t.datatype === "FP32" || t.datatype === "FP64") && t.shape.length === 2);
  if (!scores) return { label: String(label.data[0]) };
  const k = scores.shape[1]!;
  const row = (scores.data as Float32Array).subarray(0, k);
  return { label: String(label.data[0]), confidence: Math.round(Math.max(...row) * 1e4) / 1e4 };
}

/** Notes the classifier's answer for the access log (see classificationOf). */
export function noteClassification(c: Context, outputs: readonly Tensor[]): void {
  const classification = classificationOf(outputs);
  if (classification) c.set("classification", classification);
}

export function requestId(): MiddlewareHandler {
  return async (c, next) => {
    const given = c.req.header("x-request-id");
    const id = acceptRequestId(given);
    c.set("requestId", id);
    c.header("x-request-id", id);
    await next();
  };
}
