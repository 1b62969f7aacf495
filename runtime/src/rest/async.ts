/**
 * The asynchronous API over REST (runtime/src/async/service.ts does the work):
 *
 *   POST /api/v1/inference            {"prompt" | "text", "model", "user_id"?, "version"?} → 202 queued
 *   GET  /api/v1/requests/{id}        queued | running | succeeded | failed, timestamps, result
 *   GET  /api/v1/users/{id}/usage     requests and tokens this window, quota, what is left
 *   POST /api/v1/results              the results collector (CloudEvents from the Broker)
 *
 * and `Prefer: respond-async` on the V2 infer endpoints (rest/v2.ts). The user is
 * the ingress' header (USER_HEADER) or, failing that, the body's user_id.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { checkResultsToken } from "../async/results-token.js";
import { stringifyExact } from "../codecs/json-exact.js";
import type { Metrics } from "../metrics.js";
import { checkUserId, requestStatusView, type AsyncInference } from "../async/service.js";
import { ASYNC_PATHS } from "../constants.js";
import { EXTENSIONS, REQUEST_EVENT_TYPE } from "../cloudevents/constants.js";
import { claimedMode, receiveCloudEvent } from "../cloudevents/receive.js";
import { InferenceError, invalidInput, modelNotFound } from "../dataplane/errors.js";
import type { InferenceRequest } from "../dataplane/types.js";
import { formatZodError } from "../dataplane/zod-errors.js";
import { preview } from "../tensor/datatypes.js";
import { parseJson, readBody } from "./body.js";
import { checkModelName, checkModelVersion } from "../dataplane/context.js";
import { markInference } from "./request-context.js";
import { AsyncSubmitRequestSchema } from "./schemas.js";

declare module "hono" {
  interface ContextVariableMap {
    /** The user the ingress authenticated (USER_HEADER), when the request carries one. */
    userId: string | undefined;
  }
}

/** Reads the ingress' user header into the context; a malformed one is a 400. */
export function userFromHeader(header: string): MiddlewareHandler {
  return async (c, next) => {
    const value = c.req.header(header);
    c.set("userId", value === undefined ? undefined : checkUserId(value, `the ${header} header`));
    await next();
  };
}

/** The answer to a queued request: 202 with the id and where to look. */
export function acceptedResponse(c: Context, id: string): Response {
  const location = `${ASYNC_PATHS.request}/${id}`;
  return c.json({ request_id: id, status: "queued", location }, 202, { location, "preference-applied": "respond-async" });
}

/** RFC 7240: the client prefers an asynchronous answer. */
export function prefersAsync(c: Context): boolean {
  const prefer = c.req.header("prefer");
  return prefer !== undefined && prefer.split(/[,;]/).some((p) => p.trim().toLowerCase() === "respond-async");
}

export interface AsyncRouteOptions {
  maxRequestBytes: number;
  userHeader: string;
  /** POST /api/v1/results (RESULTS_COLLECTOR). */
  collector: boolean;
  /** The reply type the worker's response events carry (CE_TYPE). */
  responseType: string;
  /** RESULTS_TOKEN: the collector takes results that carry it only; absent, it takes none (in-process mode records results itself). */
  resultsToken?: string;
  logger: Logger;
  metrics: Metrics;
}

function userOf(c: Context, bodyUser: unknown, header: string): string {
  const fromHeader = c.get("userId");
  if (fromHeader !== undefined) {
    if (bodyUser !== undefined && bodyUser !== fromHeader) throw new InferenceError(403, `user_id ${preview(bodyUser)} does not match the authenticated user (the ${header} header)`);
    return fromHeader;
  }
  if (bodyUser === undefined) throw invalidInput(`no user: the async API needs the ${header} header (set by the ingress) or "user_id" in the body`);
  return checkUserId(bodyUser, "user_id");
}

/** A user may read only their own requests and usage when the ingress says who they are. */
function checkOwner(c: Context, owner: string, what: string): void {
  const user = c.get("userId");
  if (user !== undefined && user !== owner) throw modelNotFound(`${what} not found`);
}

export function asyncRoutes(service: AsyncInference, options: AsyncRouteOptions): Hono {
  const app = new Hono();

  app.post(ASYNC_PATHS.submit, async (c) => {
    const body = await readBody(c, options.maxRequestBytes);
    const parsed = AsyncSubmitRequestSchema.safeParse(parseJson(body));
    if (!parsed.success) throw invalidInput(`invalid async inference request: ${formatZodError(parsed.error)}`);
    const { prompt, text, user_id: bodyUser, id } = parsed.data;
    const userId = userOf(c, bodyUser, options.userHeader);
    const name = checkModelName(parsed.data.model);
    const version = parsed.data.version === undefined ? undefined : checkModelVersion(String(parsed.data.version));
    const entry = service.registry.findReady(name, version);
    markInference(c, { model: name, version: entry.version, protocol: "v2" });
    const textInputs = entry.model.inputs.filter((i) => i.datatype === "BYTES");
    if (entry.model.inputs.length !== 1 || textInputs.length !== 1) {
      throw invalidInput(`model '${name}' does not take a single text (BYTES) input; send a V2 request to /v2/models/${name}/infer with the header Prefer: respond-async`);
    }
    const input = textInputs[0]!;
    // One text: [1] for a batch dimension of any size, [] for a scalar.
    const shape = input.shape.map(() => 1);
    const request: InferenceRequest = { modelName: name, modelVersion: version, inputs: [{ name: input.name, datatype: "BYTES", shape, data: [(prompt ?? text)!] }] };
    if (id !== undefined) request.id = id;
    const record = await service.submit(request, { userId, inputBytes: body.byteLength });
    return acceptedResponse(c, record.id);
  });

  app.get(`${ASYNC_PATHS.request}/:id`, async (c) => {
    const id = c.req.param("id");
    const record = /^[\w-]{1,128}$/.test(id) ? await service.get(id) : undefined;
    if (!record) throw modelNotFound(`request ${preview(id)} not found`);
    checkOwner(c, record.userId, `request ${preview(id)}`);
    // stringifyExact: a response's INT64/UINT64 values beyond 2^53 (BigInt, read exactly from the store) keep their digits.
    return c.body(stringifyExact(requestStatusView(record)), 200, { "content-type": "application/json" });
  });

  app.get(`${ASYNC_PATHS.users}/:id/usage`, async (c) => {
    const userId = checkUserId(c.req.param("id"), "the user id in the path");
    const user = c.get("userId");
    if (user !== undefined && user !== userId) throw new InferenceError(403, `the authenticated user may read only their own usage`);
    return c.json(await service.usage(userId));
  });

  if (options.collector) {
    app.post(ASYNC_PATHS.results, async (c) => {
      const mode = claimedMode(c);
      if (mode === undefined || mode === "batch") throw invalidInput(`${ASYNC_PATHS.results} takes one CloudEvent (binary or structured mode): a response event or a dead-lettered request event`);
      const { event, data } = await receiveCloudEvent(c, mode, options.maxRequestBytes);
      const refuse = (status: 401 | 403, reason: string, id: unknown, message: string, details: Record<string, unknown> = {}) => {
        options.metrics.asyncResultsRefused.inc({ reason });
        options.logger.warn({ reason, request_id: typeof id === "string" ? id.slice(0, 200) : undefined, event_type: preview(event.type), event_source: preview(event.source), ...details }, `results collector: refused a result (${reason})`);
        return c.json({ error: message }, status);
      };
      /** Only the platform's events carry RESULTS_TOKEN: anything else is refused before it can touch a request. */
      const authenticate = (id: unknown) => {
        const check = checkResultsToken(options.resultsToken, event[EXTENSIONS.resultsToken]);
        if (check === "ok") return undefined;
        if (options.resultsToken === undefined) {
          return refuse(401, check, id, `${ASYNC_PATHS.results} takes no results here: no RESULTS_TOKEN is configured (without a Broker, results never come over HTTP)`);
        }
        return refuse(401, check, id, check === "no_token" ? `a result needs the '${EXTENSIONS.resultsToken}' extension (RESULTS_TOKEN)` : `invalid '${EXTENSIONS.resultsToken}' extension`);
      };
      const answer = (id: string, result: Awaited<ReturnType<AsyncInference["collect"]>>) => {
        if (result.refused) {
          const { reason, status, attempts } = result.refused;
          const why = reason === "not_running" ? `is ${status}, not running` : `is on attempt ${attempts}, not this one`;
          return refuse(403, reason, id, `request ${preview(id)} ${why}: result refused`, { status, attempts });
        }
        if (result.known && !result.changed) options.metrics.asyncResultsRefused.inc({ reason: "finished" });
        return c.json({ request_id: id, recorded: result.changed, known: result.known }, 200);
      };
      if (event.type === options.responseType) {
        const id = event[EXTENSIONS.correlationId];
        if (typeof id !== "string" || id === "") throw invalidInput(`a response event needs the '${EXTENSIONS.correlationId}' extension: the id of the request it answers`);
        const refused = authenticate(id);
        if (refused) return refused;
        const attempt = attemptOf(event[EXTENSIONS.attempt]);
        const outcome = isErrorData(data) ? { error: data.error } : { response: data };
        // A reply answers a request the worker is running, under the attempt it says.
        return answer(id, await service.collect(id, outcome, { states: ["running"], attempt }));
      }
      if (event.type === REQUEST_EVENT_TYPE) {
        // Dead-lettered: the Broker gave up delivering it (Knative adds knativeerror* extensions).
        const refused = authenticate(event.id);
        if (refused) return refused;
        const code = event.knativeerrorcode;
        const reason = decodeErrorData(event.knativeerrordata);
        const error = `delivery failed${code !== undefined ? ` (HTTP ${String(code)})` : ""}${reason ? `: ${reason}` : ""}`;
        // Dead-lettered before the worker ever took it (the model was gone), or while it was running.
        return answer(event.id, await service.collect(event.id, { error }, { states: ["queued", "running"] }));
      }
      throw invalidInput(`${ASYNC_PATHS.results} takes '${options.responseType}' events and dead-lettered '${REQUEST_EVENT_TYPE}' events, not ${preview(event.type)}`);
    });
  }

  return app;
}

/** The reply's attempt extension (a number, or digits in binary mode): absent, not checked; malformed, a 400. */
function attemptOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === "number" ? value : typeof value === "string" && /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw invalidInput(`the '${EXTENSIONS.attempt}' extension must be a positive integer, not ${preview(value)}`);
  return n;
}

function isErrorData(data: unknown): data is { error: string } {
  return typeof data === "object" && data !== null && !Array.isArray(data) && typeof (data as { error?: unknown }).error === "string" && !("outputs" in data);
}

/** knativeerrordata is the failed response's body, base64-encoded (and cut to a size) by Knative. */
function decodeErrorData(value: unknown): string | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  const text = Buffer.from(value, "base64").toString("utf8");
  try {
    const json = JSON.parse(text) as { error?: unknown };
    if (typeof json.error === "string") return json.error.slice(0, 1000);
  } catch {
    // not JSON: the text itself
  }
  return text.slice(0, 1000);
}
