/**
 * Per-request facts shared by the middleware and the transports: the request id
 * (honoured from x-request-id or generated, echoed in the response), and which
 * model and protocol a request addressed, for metrics and the access log.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import type { Tensor } from "../tensor/tensor.js";
import type { AdmittedModel, DataPlane } from "../dataplane/dataplane.js";
import { acceptRequestId, classificationOf, type Classification, type InferenceTarget } from "../dataplane/context.js";

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


/**
 * Admission of an inference whose model its URL names, before any byte of the body is read
 * (DataPlane.admit): an unknown model or version is a 404 and leaves the request unmarked (a URL
 * must never create a series); from there the request is counted under its model, a refusal (503)
 * included. `label`: the version the metrics and access line report, as the client named it or as
 * the registry resolved it.
 */
export function admitInference(c: Context, dataPlane: DataPlane, target: InferenceTarget, label: "requested" | "resolved"): AdmittedModel {
  const entry = dataPlane.registry.find(target.model, target.version);
  markInference(c, label === "resolved" ? { ...target, version: entry.version } : target);
  return dataPlane.admitVersion(entry);
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
