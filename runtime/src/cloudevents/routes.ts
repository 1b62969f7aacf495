/**
 * CloudEvents over HTTP: POST / (a Trigger's subscriber URL is the service
 * root) and the infer endpoints, when the request is an event. Mounted before
 * the V2 and V1 routes; for a request that is not a CloudEvent (no ce-*
 * headers, no application/cloudevents Content-Type) the handlers on the infer
 * endpoints only call next(), so the REST path pays two header lookups.
 *
 * Failures are `{"error": "..."}` JSON with a status the Broker acts on: 400
 * (invalid event or request; not retried), 404 (unknown model), 415 (batch,
 * unsupported content type), 503 (model not ready; retried). See README.md.
 */
import { Hono, type Context } from "hono";
import type { Logger } from "pino";
import type { AdmittedModel, DataPlane } from "../dataplane/dataplane.js";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import { MODEL_NAME_PATTERN, VERSION_PATTERN } from "../repository/repository.js";
import { checkModelName } from "../dataplane/context.js";
import { modelParams } from "../rest/params.js";
import { admitInference, markInference, noteClassification, requestIdOf } from "../rest/request-context.js";
import { reserveDeclaredBody } from "../rest/body.js";
import { preview } from "../tensor/datatypes.js";
import { CE_BATCH, EXTENSIONS, REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "./constants.js";
import { prepareInference, type Endpoint } from "./data.js";
import { claimedMode, receiveCloudEvent, type ReceivedEvent } from "./receive.js";
import { failureReplyMessage, replyMessage, type ReplyOptions } from "./reply.js";
import type { AsyncInference } from "../async/service.js";
import { ASYNC_EXTENSIONS } from "../async/queue.js";
import { checkUserId } from "../async/service.js";
import { checkResultsToken } from "../async/results-token.js";

export interface CloudEventOptions extends Partial<ReplyOptions> {
  maxRequestBytes: number;
  logger?: Logger;
  /** Asynchronous inference: request events on POST / whose id is a queued request run as the worker. */
  worker?: AsyncInference;
  /**
   * RESULTS_TOKEN: with it, only request events that carry it (the platform's, from the Broker) run as
   * the worker, and the worker's replies carry it (and the attempt) to the results collector.
   */
  resultsToken?: string;
}

/** Which model an event on POST / is for, and what named it (for error messages). */
export interface ModelChoice {
  name: string;
  version?: string;
  /** "the event's 'model' extension", "the event's subject", or "the only model loaded". */
  from: string;
}

/**
 * The model selection rule for POST /: the `model` extension (with an optional
 * `modelversion`), else the event's `subject`, else the only model loaded.
 * With several models loaded and none named, the event is refused (400).
 */
export function chooseModel(event: ReceivedEvent["event"], loaded: readonly string[]): ModelChoice {
  const version = event[EXTENSIONS.modelVersion];
  let choice: ModelChoice;
  const named = event[EXTENSIONS.model];
  if (named !== undefined) {
    if (typeof named !== "string" || !MODEL_NAME_PATTERN.test(named)) throw invalidInput(`the event's '${EXTENSIONS.model}' extension is not a model name: ${preview(named)}`);
    choice = { name: named, from: `the event's '${EXTENSIONS.model}' extension` };
  } else if (event.subject !== undefined && event.subject !== "") {
    if (!MODEL_NAME_PATTERN.test(event.subject)) throw invalidInput(`the event's subject names the model, but ${preview(event.subject)} is not a model name; set the '${EXTENSIONS.model}' extension instead`);
    choice = { name: event.subject, from: "the event's subject" };
  } else if (loaded.length === 1) {
    choice = { name: loaded[0]!, from: "the only model loaded" };
  } else if (loaded.length === 0) {
    throw new InferenceError(404, "no model is loaded");
  } else {
    throw invalidInput(
      `${loaded.length} models are loaded (${loaded.slice(0, 10).join(", ")}${loaded.length > 10 ? ", ..." : ""}): name one with the event's '${EXTENSIONS.model}' extension or its subject, or send the event to /v2/models/{name}/infer`,
    );
  }
  if (version !== undefined) {
    const text = typeof version === "number" ? String(version) : version;
    if (typeof text !== "string" || !VERSION_PATTERN.test(text)) throw invalidInput(`the event's '${EXTENSIONS.modelVersion}' extension is not a model version: ${preview(version)}`);
    choice.version = String(Number(text));
  }
  return choice;
}

export function cloudEventRoutes(dataPlane: DataPlane, options: CloudEventOptions): Hono {
  const app = new Hono();
  const reply: ReplyOptions = { type: options.type ?? RESPONSE_EVENT_TYPE, source: options.source, merge: options.merge ?? false };
  if (reply.type === REQUEST_EVENT_TYPE) {
    options.logger?.warn({ ce_type: reply.type }, "CE_TYPE equals the request event type: replies would be delivered back as requests; POST / refuses them, so events there will fail");
  }

  /** The worker's replies: the token and the attempt, for the results collector. */
  const workerReply = (attempt: number): ReplyOptions => ({
    ...reply,
    extensions: { ...(options.resultsToken === undefined ? {} : { [EXTENSIONS.resultsToken]: options.resultsToken }), [EXTENSIONS.attempt]: attempt },
  });

  /** Refused on every endpoint: an event of the reply's own type is one of our replies coming back. */
  function checkType(type: string, endpoint: Endpoint): void {
    if (type === reply.type) {
      throw invalidInput(`event type '${type}' is this server's reply type (CE_TYPE): refusing it so that a Trigger without a type filter cannot loop replies back as requests`);
    }
    if (endpoint === "root" && type !== REQUEST_EVENT_TYPE) {
      throw invalidInput(`POST / takes events of type '${REQUEST_EVENT_TYPE}', not ${preview(type)}; to use another type, send the event to /v2/models/{name}/infer`);
    }
  }

  async function handle(c: Context, mode: "binary" | "structured" | "batch", endpoint: Endpoint, path?: { name: string; version?: string }) {
    if (mode === "batch") {
      throw new InferenceError(415, `batched CloudEvents (${CE_BATCH}) are not supported: send one event per request, in binary or structured mode`);
    }
    // A model addressed by path is admitted first, as on the REST path, before the body is read:
    // 404 for an unknown model, 503 (Retry-After) when not ready or busy; released in the finally.
    let admitted: AdmittedModel | undefined;
    if (path) admitted = admitInference(c, dataPlane, { model: path.name, version: path.version, protocol: "cloudevent" }, "resolved");
    try {
      return await handleAdmitted(c, mode, endpoint, path, admitted);
    } finally {
      admitted?.release();
    }
  }

  async function handleAdmitted(c: Context, mode: "binary" | "structured", endpoint: Endpoint, path: { name: string; version?: string } | undefined, admitted: AdmittedModel | undefined) {
    // The declared body in the budget before the SDK loads and the event's headers are read (503 first).
    if (admitted) reserveDeclaredBody(c);
    const received = await receiveCloudEvent(c, mode, options.maxRequestBytes);
    checkType(received.event.type, endpoint);
    let target = path;
    if (!target) {
      const choice = chooseModel(received.event, dataPlane.registry.names());
      try {
        const entry = dataPlane.registry.find(choice.name, choice.version);
        markInference(c, { model: choice.name, version: entry.version, protocol: "cloudevent" });
      } catch (err) {
        if (err instanceof InferenceError) throw new InferenceError(err.status, `${err.message} (named by ${choice.from})`, err.headers);
        throw err;
      }
      target = choice;
    }
    // With RESULTS_TOKEN, a request event is the platform's only when it carries the token: any other
    // (a client's) is an ordinary inference event, and its reply never carries the token.
    const platformEvent = options.resultsToken === undefined || checkResultsToken(options.resultsToken, received.event[EXTENSIONS.resultsToken]) === "ok";
    if (options.worker && platformEvent && endpoint === "root" && received.event.type === REQUEST_EVENT_TYPE) {
      // A queued request (runtime/src/async), delivered by the Broker: run it once, whatever the redeliveries.
      const outcome = await options.worker.work(received.event.id, received.data, { protocol: "cloudevent" });
      if (outcome.kind === "done") return c.json({ request_id: received.event.id, status: outcome.record.status, note: "already finished; nothing to do" }, 200);
      if (outcome.kind === "succeeded") {
        const message = replyMessage(received.mode, received.event, { modelName: target.name, modelVersion: outcome.modelVersion, outputs: [] }, outcome.response, workerReply(outcome.attempt));
        return c.body(message.body, 200, message.headers);
      }
      if (outcome.kind === "failed") {
        const message = failureReplyMessage(received.mode, received.event, target.name, outcome.error, workerReply(outcome.attempt));
        return c.body(message.body, 200, message.headers);
      }
    }
    const prepared = prepareInference(received.data, endpoint, dataPlane.registry, target.name, target.version);
    const eventUser = received.event[ASYNC_EXTENSIONS.userId];
    const userId = c.get("userId") ?? (eventUser === undefined ? undefined : checkUserId(eventUser, `the event's '${ASYNC_EXTENSIONS.userId}' extension`));
    const response = await dataPlane.infer(prepared.request, { requestId: requestIdOf(c), protocol: "cloudevent", userId }, admitted);
    noteClassification(c, response.outputs);
    const message = replyMessage(received.mode, received.event, response, prepared.encode(response), reply);
    return c.body(message.body, 200, message.headers);
  }

  app.post("/", (c) => {
    const mode = claimedMode(c);
    if (mode === undefined) {
      throw invalidInput(
        "POST / takes CloudEvents: binary mode (ce-specversion, ce-id, ce-source and ce-type headers, the inference request as the body) or structured mode (Content-Type application/cloudevents+json)",
      );
    }
    return handle(c, mode, "root");
  });

  const v2 = async (c: Context, next: () => Promise<void>) => {
    const mode = claimedMode(c);
    if (mode === undefined) return next();
    return handle(c, mode, "v2", modelParams(c));
  };
  app.post("/v2/models/:name/infer", v2);
  app.post("/v2/models/:name/versions/:version/infer", v2);

  // "name:predict" is one path segment (see rest/v1.ts); other verbs are left to the V1 routes.
  app.post("/v1/models/:target", async (c, next) => {
    const mode = claimedMode(c);
    const target = c.req.param("target");
    if (mode === undefined || !target.endsWith(":predict")) return next();
    return handle(c, mode, "v1", { name: checkModelName(target.slice(0, -":predict".length)) });
  });

  return app;
}
