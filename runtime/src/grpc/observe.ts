/**
 * What every gRPC call passes through, as rest/observe.ts does for HTTP: the
 * request id (x-request-id metadata, honoured or generated, sent back in the
 * initial metadata), a per-call logger with trace ids, the access log line,
 * Prometheus metrics, the request timeout, and the in-flight count the drain
 * waits on. Errors become statuses here and nowhere else.
 */
import type * as GrpcJs from "@grpc/grpc-js";
import type { Logger } from "pino";
import { InferenceError } from "../dataplane/errors.js";
import { parseTraceparent } from "../logging.js";
import type { Metrics } from "../metrics.js";
import { acceptRequestId, type InferenceTarget } from "../dataplane/context.js";
import type { Grpc } from "./definitions.js";
import { GRPC_CODE, grpcCodeFor } from "./status.js";

export interface CallObserverOptions {
  grpc: Grpc;
  logger: Logger;
  metrics: Metrics;
  requestTimeoutMs: number;
  inflight: { count: number; onIdle?: () => void };
}

export interface CallContext {
  requestId: string;
  logger: Logger;
  metadata: GrpcJs.Metadata;
  /** Records the model an inference call addressed, for metrics and the access log (never for unknown models). */
  markInference(target: Omit<InferenceTarget, "protocol">): void;
  /** The top class of a classifier's answer, for the access log. */
  classification?: { label: string; confidence?: number };
}

/** The outcome of a call as both wires see it. */
interface Outcome {
  code: number;
  /** The HTTP status the same answer has over REST (metrics label, log line). */
  httpStatus: number;
  message?: string;
  headers?: Record<string, string>;
}

export function firstValue(metadata: GrpcJs.Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === "string" ? value : undefined;
}

export class CallObserver {
  constructor(private readonly options: CallObserverOptions) {}

  /** The call's request id (x-request-id honoured or generated), sent back in the initial metadata. */
  acceptRequestId(call: { metadata: GrpcJs.Metadata; sendMetadata(metadata: GrpcJs.Metadata): void }): string {
    const requestId = acceptRequestId(firstValue(call.metadata, "x-request-id"));
    const initial = new this.options.grpc.Metadata();
    initial.set("x-request-id", requestId);
    call.sendMetadata(initial);
    return requestId;
  }

  /**
   * Opens a call (or one message of a stream, which passes the stream's `requestId`): its context,
   * and `finish` to call exactly once with the outcome.
   */
  begin(path: string, call: { metadata: GrpcJs.Metadata; sendMetadata(metadata: GrpcJs.Metadata): void }, inputBytes?: number, requestId = this.acceptRequestId(call)) {
    const { logger, metrics, inflight } = this.options;
    const started = performance.now();
    const trace = parseTraceparent(firstValue(call.metadata, "traceparent"));
    const callLogger = logger.isLevelEnabled("info") ? logger.child(trace ? { request_id: requestId, ...trace } : { request_id: requestId }) : logger;

    let target: InferenceTarget | undefined;
    const context: CallContext = {
      requestId,
      logger: callLogger,
      metadata: call.metadata,
      markInference: (t) => {
        if (target) metrics.inFlight.dec({ model: target.model, protocol: "grpc" });
        target = { ...t, protocol: "grpc" };
        metrics.inFlight.inc({ model: t.model, protocol: "grpc" });
      },
    };
    inflight.count++;

    let finished = false;
    const finish = (error: unknown): Outcome => {
      const outcome = this.outcomeOf(error, context);
      if (finished) return outcome;
      finished = true;
      if (--inflight.count === 0) inflight.onIdle?.();
      const seconds = (performance.now() - started) / 1000;
      if (target) {
        metrics.recordRequest({ model: target.model, version: target.version ?? "", protocol: "grpc" }, outcome.httpStatus, seconds, inputBytes);
        metrics.inFlight.dec({ model: target.model, protocol: "grpc" });
      } else if (path.endsWith("Infer")) {
        metrics.recordRequest({ model: "", version: "", protocol: "grpc" }, outcome.httpStatus, seconds, inputBytes);
      }
      const line: Record<string, unknown> = { method: "POST", path, status: outcome.httpStatus, grpc_code: outcome.code, latency_ms: Math.round(seconds * 1e5) / 100 };
      if (target) Object.assign(line, { model: target.model, version: target.version, protocol: "grpc" });
      if (context.classification) Object.assign(line, context.classification);
      if (outcome.httpStatus >= 500) callLogger.warn(line, "request");
      else callLogger.info(line, "request");
      return outcome;
    };
    return { context, finish };
  }

  private outcomeOf(error: unknown, context: CallContext): Outcome {
    if (error === undefined) return { code: GRPC_CODE.OK, httpStatus: 200 };
    if (error instanceof InferenceError) return { code: grpcCodeFor(error.status), httpStatus: error.status, message: error.message, headers: error.headers };
    // A genuine fault: the details (and stack) go to the log, never to the client.
    context.logger.error({ err: error, request_id: context.requestId }, "request failed");
    return { code: GRPC_CODE.INTERNAL, httpStatus: 500, message: "internal server error" };
  }

  /** The status object grpc-js sends for an outcome: code, the REST message, headers as trailing metadata. */
  status(outcome: Outcome): Partial<GrpcJs.StatusObject> {
    const metadata = new this.options.grpc.Metadata();
    for (const [k, v] of Object.entries(outcome.headers ?? {})) metadata.set(k, v);
    return { code: outcome.code, details: outcome.message ?? "", metadata };
  }

  /**
   * A unary handler: the work races the request timeout (the model run cannot be
   * interrupted; its late answer is dropped, as over REST).
   */
  unary<Req, Res>(path: string, handler: (request: Req, context: CallContext) => Promise<Res> | Res, sizeOf?: (request: Req) => number | undefined): GrpcJs.handleUnaryCall<Req, Res> {
    const timeoutMs = this.options.requestTimeoutMs;
    const late = () => new InferenceError(504, `the request did not finish within ${timeoutMs} ms`);
    return (call, callback) => {
      const started = performance.now();
      const { context, finish } = this.begin(path, call, sizeOf?.(call.request));
      let timer: NodeJS.Timeout | undefined = setTimeout(() => {
        timer = undefined;
        const outcome = finish(late());
        callback(this.status(outcome));
      }, timeoutMs);
      const settle = (error: unknown, response?: Res) => {
        if (timer === undefined) return;
        clearTimeout(timer);
        timer = undefined;
        // A model run holds the event loop: one that overruns the deadline settles before the timer
        // can fire. Its answer is late all the same, and dropped.
        if (performance.now() - started >= timeoutMs) error = late();
        const outcome = finish(error);
        if (error === undefined) callback(null, response);
        else callback(this.status(outcome));
      };
      Promise.resolve()
        .then(() => handler(call.request, context))
        .then((response) => settle(undefined, response), (err: unknown) => settle(err ?? new Error("handler failed")));
    };
  }
}
