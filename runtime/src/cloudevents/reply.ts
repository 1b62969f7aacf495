/**
 * The reply to an inference event: a new CloudEvent in the request's mode,
 * built and serialized by the SDK (HTTP.binary / HTTP.structured). Knative's
 * Broker takes a CloudEvent in a subscriber's 2xx reply and routes it like any
 * other event, so the reply's type must never be one the request's Trigger
 * matches (see README.md, "Avoiding loops").
 */
import type { CloudEvent } from "cloudevents";
import { randomUUID } from "node:crypto";
import type { InferenceResponse } from "../dataplane/types.js";
import { EXTENSIONS, JSON_MEDIA_TYPE, responseEventSource } from "./constants.js";
import { extensionsOf, type CloudEventMode } from "./receive.js";
import { httpMessage, sdk } from "./sdk.js";

export interface ReplyOptions {
  /** The reply's type (CE_TYPE). */
  type: string;
  /** The reply's source (CE_SOURCE); io.kserve.inference.<model> when unset. */
  source?: string;
  /** CE_MERGE: carry the request's extensions (and subject) over to the reply. */
  merge: boolean;
  /** The reply's own extensions besides the standard ones (the async worker's resultstoken and attempt). */
  extensions?: Record<string, string | number>;
}

/** Header-safe printable ASCII: anything else cannot be a ce-* header value without encoding. */
const PRINTABLE = /^[\x20-\x7e]*$/;

function carriable(value: unknown): value is string | number | boolean {
  if (typeof value === "string") return PRINTABLE.test(value);
  return typeof value === "boolean" || (typeof value === "number" && Number.isSafeInteger(value));
}

/** The reply's attributes, before data. Exported for the README's table and the tests. */
export function replyAttributes(request: CloudEvent<unknown>, response: InferenceResponse, options: ReplyOptions): Record<string, unknown> {
  const requestCorrelation = request[EXTENSIONS.correlationId];
  const own: Record<string, unknown> = {
    specversion: "1.0",
    id: randomUUID(),
    source: options.source ?? responseEventSource(response.modelName),
    type: options.type,
    time: new Date().toISOString(),
    datacontenttype: JSON_MEDIA_TYPE,
    [EXTENSIONS.causationId]: request.id,
    [EXTENSIONS.correlationId]: typeof requestCorrelation === "string" && requestCorrelation !== "" ? requestCorrelation : request.id,
    [EXTENSIONS.model]: response.modelName,
    [EXTENSIONS.modelVersion]: response.modelVersion,
    ...options.extensions,
  };
  if (!options.merge) return own;
  // KServe's CE_MERGE keeps the request's attributes but for id and time; the reply's own always win here.
  const merged: Record<string, unknown> = {};
  if (request.subject !== undefined && carriable(request.subject)) merged.subject = request.subject;
  for (const [name, value] of Object.entries(extensionsOf(request))) {
    // Never the request's resultstoken: only the worker's own replies carry the token (set above).
    if (!(name in own) && name !== EXTENSIONS.resultsToken && carriable(value)) merged[name] = value;
  }
  return { ...merged, ...own };
}

export interface ReplyMessage {
  headers: Record<string, string>;
  body: string;
}

/**
 * An event with these attributes and data, in the request's mode: binary carries the JSON text as is,
 * structured embeds it as text too, in place of a one-off placeholder: parsing it for the SDK to
 * serialize again would round 64-bit integers beyond 2^53.
 */
function eventMessage(mode: CloudEventMode, attributes: Record<string, unknown>, json: string): ReplyMessage {
  const { CloudEvent } = sdk(); // loaded by receiveCloudEvent()
  if (mode === "binary") return httpMessage(new CloudEvent<unknown>({ ...attributes, data: json }), mode);
  const placeholder = `data-${randomUUID()}`;
  const message = httpMessage(new CloudEvent<unknown>({ ...attributes, data: placeholder }), mode);
  const at = message.body.indexOf(`"${placeholder}"`);
  if (at < 0) throw new Error("the structured reply has no place for its data");
  return { headers: message.headers, body: message.body.slice(0, at) + json + message.body.slice(at + placeholder.length + 2) };
}

/**
 * The reply as an HTTP message. `json` is the reply's data as JSON text: in
 * binary mode it is the body as is; in structured mode it is parsed so the SDK
 * can embed it in the envelope.
 */
export function replyMessage(mode: CloudEventMode, request: CloudEvent<unknown>, response: InferenceResponse, json: string, options: ReplyOptions): ReplyMessage {
  return eventMessage(mode, replyAttributes(request, response, options), json);
}

/**
 * The reply for a queued request that failed for good (the request is wrong for
 * the model): a response event whose data is {"error": "..."}, which the results
 * collector records as the request's failure.
 */
export function failureReplyMessage(mode: CloudEventMode, request: CloudEvent<unknown>, model: string, error: string, options: ReplyOptions): ReplyMessage {
  const attributes = replyAttributes(request, { modelName: model, modelVersion: "", outputs: [] }, options);
  delete attributes[EXTENSIONS.modelVersion];
  return eventMessage(mode, attributes, JSON.stringify({ error }));
}
