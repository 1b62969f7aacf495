/**
 * What every request passes through before a transport: the per-request logger
 * (request id, trace ids), the access log line, Prometheus metrics, the request
 * timeout, and `Connection: close` while draining.
 */
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { parseTraceparent } from "../logging.js";
import type { Metrics } from "../metrics.js";
import type { InferenceTarget, Protocol } from "../dataplane/context.js";

export interface ObserveOptions {
  logger: Logger;
  metrics: Metrics;
  requestTimeoutMs: number;
  draining: () => boolean;
  /** Requests in progress, for the drain on SIGTERM. */
  inflight: { count: number; onIdle?: () => void };
}

/** The protocol an inference route speaks, judged from the path alone (for requests that fail before the model is known). */
function inferenceProtocol(method: string, path: string): Protocol | undefined {
  if (method !== "POST") return undefined;
  if (path.startsWith("/v2/models/") && path.endsWith("/infer")) return "v2";
  if (path.startsWith("/v1/models/") && path.includes(":")) return "v1";
  if (path === "/") return "cloudevent";
  return undefined;
}

export function observe(options: ObserveOptions): MiddlewareHandler {
  const { logger, metrics, inflight } = options;
  return async (c, next) => {
    const started = performance.now();
    const path = c.req.path;
    const trace = parseTraceparent(c.req.header("traceparent"));
    // A child logger per request only when its lines can be written (the access line is info).
    const requestLogger = logger.isLevelEnabled("info")
      ? logger.child(trace ? { request_id: c.get("requestId"), ...trace } : { request_id: c.get("requestId") })
      : logger;
    c.set("logger", requestLogger);

    let target: InferenceTarget | undefined;
    let answered = false;
    c.set("onInferenceTarget", (t) => {
      // Named by a handler the timeout already answered for (a body that arrived late): nothing would take it off the gauge.
      if (answered) return;
      target = t;
      metrics.inFlight.inc({ model: t.model, protocol: t.protocol });
    });

    inflight.count++;
    let timer: NodeJS.Timeout | undefined;
    try {
      const work = next();
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), options.requestTimeoutMs);
      });
      // ONNX Runtime runs on the event loop, so a run can overrun the timer without it ever firing: late is late.
      const outcome = await Promise.race([work, timeout]);
      if (outcome === "timeout" || performance.now() - started > options.requestTimeoutMs) {
        // The model run cannot be interrupted: it finishes, releases its model, and its answer is dropped.
        work.catch(() => undefined);
        // A Response of its own: c.json() would share Hono's prepared headers with the late handler's answer.
        c.res = undefined;
        c.res = new Response(JSON.stringify({ error: `the request did not finish within ${options.requestTimeoutMs} ms` }), {
          status: 504,
          headers: { "content-type": "application/json", "x-request-id": c.get("requestId") },
        });
      }
    } finally {
      answered = true;
      clearTimeout(timer);
      if (--inflight.count === 0) inflight.onIdle?.();
    }

    if (options.draining()) c.header("connection", "close");
    const status = c.res.status;
    const seconds = (performance.now() - started) / 1000;
    const protocol = target?.protocol ?? inferenceProtocol(c.req.method, path);
    if (protocol) {
      // Unknown models are counted without their name: a URL must not create a series.
      const model = target?.model ?? "";
      const version = target?.version ?? "";
      const length = c.req.header("content-length");
      metrics.recordRequest({ model, version, protocol }, status, seconds, length === undefined ? undefined : Number(length));
      if (target) metrics.inFlight.dec({ model: target.model, protocol: target.protocol });
    }
    const line: Record<string, unknown> = { method: c.req.method, path: path.length > 200 ? `${path.slice(0, 200)}…` : path, status, latency_ms: Math.round(seconds * 1e5) / 100 };
    if (target) Object.assign(line, { model: target.model, version: target.version, protocol: target.protocol });
    const classification = c.get("classification");
    if (classification) Object.assign(line, { label: classification.label, confidence: classification.confidence });
    if (status >= 500) requestLogger.warn(line, "request");
    else requestLogger.info(line, "request");
  };
}
