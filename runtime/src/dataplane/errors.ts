/**
 * The errors the data plane raises, each with the HTTP status KServe uses for it.
 * Transports map `status` onto their own wire (HTTP status, CloudEvent reply, gRPC code).
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 413 | 415 | 429 | 500 | 501 | 503 | 504;

export class InferenceError extends Error {
  constructor(
    readonly status: ErrorStatus,
    message: string,
    /** Extra response headers (e.g. Retry-After on 503). */
    readonly headers: Record<string, string> = {},
    /**
     * Structured details the REST body carries beside the message
     * (`{"error": message, ...details}`), e.g. the quota a 429 exceeded.
     */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "InferenceError";
  }
}

export const invalidInput = (message: string) => new InferenceError(400, message);
export const modelNotFound = (message: string) => new InferenceError(404, message);
export const modelNotReady = (message: string) => new InferenceError(503, message);
export const unsupported = (message: string) => new InferenceError(501, message);
