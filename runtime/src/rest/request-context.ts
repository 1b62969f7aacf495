/**
 * Per-request facts shared by the middleware and the transports: the request id
 * (honoured from x-request-id or generated, echoed in the response), and which
 * model and protocol a request addressed, for metrics and the access log.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import type { Tensor } from "../tensor/tensor.js";
import { acceptRequestId, classificationOf, type Classification, type InferenceTarget } from "../dataplane/context.js";

export type { Classification, InferenceTarget, Protocol } from "../dataplane/context.js";
export { acceptRequestId, classificationOf } from "../dataplane/context.js";

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

export const requestIdOf = (c: Context): string => c.get("requestId");

/** Records which model and protocol this request is for; unknown models are never recorded. */
export function markInference(c: Context, target: InferenceTarget): void {
  c.set("inferenceTarget", target);
  c.get("onInferenceTarget")?.(target);
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
