/**
 * The HTTP application: transports mounted on one data plane, with the error
 * mapping every route shares. Handlers throw InferenceError; only this file
 * decides how an error looks on the wire.
 */
import { Hono, type Context } from "hono";
import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import { PATHS } from "../constants.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import { InferenceError } from "../dataplane/errors.js";
import type { ModelRepositoryHandlers } from "../dataplane/model-repository.js";
import { truncate } from "../tensor/datatypes.js";
import { compressResponses } from "./compression.js";
import { docsPage, openApiDocument } from "./openapi.js";
import { repositoryRoutes, type RepositoryApiOptions } from "./repository.js";
import { requestId } from "./request-context.js";
import { observe, type ObserveOptions } from "./observe.js";
import type { Metrics } from "../metrics.js";
import { cloudEventRoutes, type CloudEventOptions } from "../cloudevents/routes.js";
import { v1Routes } from "./v1.js";
import { v2Routes } from "./v2.js";
import { RESPONSE_EVENT_TYPE } from "../cloudevents/constants.js";
import type { AsyncInference } from "../async/service.js";
import { asyncRoutes, userFromHeader } from "./async.js";
import { ByteBudget } from "../admission/budget.js";
import { defaultBufferedRequestBytes } from "../admission/limits.js";
import { declaredLength } from "./body.js";

export interface AppOptions extends Omit<ObserveOptions, "logger"> {
  maxRequestBytes: number;
  /** Request body bytes held in memory at once (MAX_BUFFERED_REQUEST_BYTES); derived from the memory limit when absent. */
  maxBufferedRequestBytes?: number;
  logger: Logger;
  repositoryApi: Omit<RepositoryApiOptions, "maxRequestBytes">;
  /** CloudEvent replies (CE_TYPE, CE_SOURCE, CE_MERGE); KServe's defaults when absent. */
  cloudEvents?: Pick<CloudEventOptions, "type" | "source" | "merge">;
  /** Asynchronous inference (ASYNC_INFERENCE): the async API, Prefer: respond-async, the worker, the collector. */
  async?: { service: AsyncInference; userHeader: string; collector: boolean; resultsToken?: string };
}

/** Above this declared length, an early error answer closes the connection rather than read the body. */
export const DISCARD_MAX_BYTES = 64 * 1024;

/**
 * Before an error answer to a request whose body was not read (unknown model, model
 * busy, body too large): a small body is read and dropped, so the keep-alive connection
 * stays in step and a client reusing it finds the server listening. A large or chunked
 * body is not read at all: the answer says `Connection: close`, and Node closes the
 * connection once it is sent (the adapter drops what arrives meanwhile, briefly).
 */
async function discardBody(c: Context): Promise<void> {
  if (c.req.method === "GET" || c.req.method === "HEAD") return;
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming) return;
  if (incoming.readableEnded || incoming.destroyed || incoming.socket?.destroyed) return;
  const length = declaredLength(c);
  if (length === undefined && c.req.header("transfer-encoding") === undefined) return; // no body
  if (length === undefined || length > DISCARD_MAX_BYTES) {
    c.header("connection", "close");
    return;
  }
  incoming.resume();
  // Bounded: a client that never finishes its body loses the connection instead.
  await Promise.race([once(incoming, "end").catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())]);
  if (!incoming.readableEnded) c.header("connection", "close");
}

/** Model state gauges are read from the registry at scrape time, so they can never drift from it. */
function refreshModelGauges(dataPlane: DataPlane, metrics: Metrics): void {
  metrics.modelReady.reset();
  metrics.modelLoadDuration.reset();
  metrics.modelInstances.reset();
  for (const v of dataPlane.registry.all()) {
    metrics.modelReady.set({ model: v.name, version: v.version }, v.state === "READY" ? 1 : 0);
    if (v.loadMs !== undefined) metrics.modelLoadDuration.set({ model: v.name, version: v.version }, v.loadMs / 1000);
    if (!v.model || v.state !== "READY") continue;
    const total = v.model.instanceCount ?? 1;
    const live = v.model.liveInstances?.() ?? total;
    metrics.modelInstances.set({ model: v.name, version: v.version, state: "live" }, live);
    metrics.modelInstances.set({ model: v.name, version: v.version, state: "restarting" }, total - live);
  }
}

export function createApp(dataPlane: DataPlane, repository: ModelRepositoryHandlers, options: AppOptions): Hono {
  const app = new Hono();

  // The budget of request bytes held at once, all requests together (runtime/src/admission/budget.ts).
  const { bytes: budgetBytes, source: budgetSource } = options.maxBufferedRequestBytes !== undefined
    ? { bytes: options.maxBufferedRequestBytes, source: "MAX_BUFFERED_REQUEST_BYTES" }
    : defaultBufferedRequestBytes();
  const budget = new ByteBudget(budgetBytes, {
    changed: (used) => options.metrics.requestBytesBuffered.set(used),
    refused: () => options.metrics.admissionRefusals.inc({ reason: "memory_budget" }),
  });
  options.metrics.requestBytesBudget.set(budgetBytes);
  options.logger.info({ max_buffered_request_bytes: budgetBytes, source: budgetSource }, "request body budget");
  dataPlane.onRefusal((reason) => options.metrics.admissionRefusals.inc({ reason }));

  app.use("*", requestId());
  app.use("*", observe(options));
  // A declared Content-Length over the limit is refused before reading; readBody() enforces the
  // limit on the bytes themselves (chunked bodies). Hono's bodyLimit reads c.req.raw.body, which
  // makes @hono/node-server build a full web Request (undici, a ReadableStream, an AbortSignal)
  // for every request: half the server's time on small inferences.
  app.use("*", async (c, next) => {
    const length = c.req.header("content-length");
    if (length !== undefined && Number(length) > options.maxRequestBytes) {
      throw new InferenceError(413, `request body exceeds the limit of ${options.maxRequestBytes} bytes`);
    }
    await next();
  });
  // This request's share of the budget: routes reserve a declared length before reading (after
  // admission), readBody() reserves what arrives beyond it; all of it is given back here, when the
  // handler has finished, whatever the outcome (an error, a late run after a 504, a client gone).
  app.use("*", async (c, next) => {
    const reservation = budget.reservation();
    c.set("bodyReservation", reservation);
    try {
      await next();
    } finally {
      reservation.release();
    }
  });
  app.use("*", compressResponses());
  // Quotas and usage are per user: the ingress' header names the user on every inference path.
  if (options.async) app.use("*", userFromHeader(options.async.userHeader));

  app.get(PATHS.metrics, async (c) => {
    refreshModelGauges(dataPlane, options.metrics);
    return c.body(await options.metrics.registry.metrics(), 200, { "content-type": options.metrics.registry.contentType });
  });

  // CloudEvents (runtime/src/cloudevents): POST /, and the infer endpoints when the request is an event
  // (ce-* headers or an application/cloudevents Content-Type); before v2/v1, which get every other request.
  app.route("/", cloudEventRoutes(dataPlane, { maxRequestBytes: options.maxRequestBytes, logger: options.logger, ...options.cloudEvents, worker: options.async?.service, resultsToken: options.async?.resultsToken }));
  app.route("/", v2Routes(dataPlane, { maxRequestBytes: options.maxRequestBytes, async: options.async }));
  if (options.async) {
    app.route("/", asyncRoutes(options.async.service, {
      maxRequestBytes: options.maxRequestBytes,
      userHeader: options.async.userHeader,
      collector: options.async.collector,
      responseType: options.cloudEvents?.type ?? RESPONSE_EVENT_TYPE,
      resultsToken: options.async.resultsToken,
      logger: options.logger,
      metrics: options.metrics,
    }));
  }
  app.route("/", v1Routes(dataPlane, options));
  app.route("/", repositoryRoutes(repository, { ...options.repositoryApi, maxRequestBytes: options.maxRequestBytes }));

  let document: Record<string, unknown> | undefined;
  const openapi = () => (document ??= openApiDocument(dataPlane.metadata(), { async: options.async !== undefined }));
  app.get(PATHS.openapi, (c) => c.json(openapi()));
  app.get("/docs", (c) => c.html(docsPage(openapi())));

  app.notFound(async (c) => {
    await discardBody(c);
    return c.json({ error: `no route for ${c.req.method} ${truncate(new URL(c.req.url).pathname, 200)}` }, 404);
  });

  app.onError(async (err, c) => {
    await discardBody(c);
    if (err instanceof InferenceError) {
      if (err.status === 413) options.metrics.admissionRefusals.inc({ reason: "too_large" });
      for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return c.json({ error: err.message, ...err.details }, err.status);
    }
    // A genuine fault: the details (and stack) go to the log, never to the client.
    (c.get("logger") ?? options.logger).error({ err, request_id: c.get("requestId"), method: c.req.method, path: c.req.path }, "request failed");
    return c.json({ error: "internal server error" }, 500);
  });

  return app;
}
