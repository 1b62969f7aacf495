/**
 * Per-request facts shared by the middleware and the transports: the request id
 * (honoured from x-request-id or generated, echoed in the response), and which
 * model and protocol a request addressed, for metrics and the access log.
 */
import type { Context, MiddlewareHandler } from "hono";
import { randomUUID } from "node:crypto";

export type Protocol = "v2" | "v1" | "cloudevent";

export interface InferenceTarget {
  model: string;
  version?: string;
  protocol: Protocol;
}

declare module "hono" {
  interface ContextVariableMap {
    requestId: string;
    inferenceTarget: InferenceTarget;
    /** Set by transports that learn a request id from the body (the V2 `id`) after the header. */
    bodyRequestId: string;
  }
}

const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export const requestIdOf = (c: Context): string => c.get("requestId");

/** Records which model and protocol this request is for; unknown models are never recorded. */
export function markInference(c: Context, target: InferenceTarget): void {
  c.set("inferenceTarget", target);
}

export function requestId(): MiddlewareHandler {
  return async (c, next) => {
    const given = c.req.header("x-request-id");
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set("requestId", id);
    c.header("x-request-id", id);
    await next();
  };
}
