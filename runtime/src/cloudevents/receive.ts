/**
 * Receiving a CloudEvent over HTTP: which mode a request is in (a header check
 * cheap enough to run before every infer route), and the event itself, parsed
 * by the cloudevents SDK (HTTP.toEvent) and validated against the CloudEvents
 * 1.0 schema. Every way an event can be wrong becomes a 400 naming what is
 * wrong (a missing attribute by name), or a 415 for batches and content types
 * that cannot carry an inference request.
 */
import type { CloudEvent, Headers, ValidationError } from "cloudevents";
import type { Context } from "hono";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import { readBody } from "../rest/body.js";
import { parseJsonExact } from "../codecs/json-exact.js";
import { preview, truncate } from "../tensor/datatypes.js";
import { CE_BATCH, CE_JSON, JSON_MEDIA_TYPE } from "./constants.js";
import { loadSdk, sdk } from "./sdk.js";

export type CloudEventMode = "binary" | "structured";

/** The four attributes CloudEvents 1.0 requires, in the order they are reported. */
const REQUIRED = ["specversion", "id", "source", "type"] as const;
const CLOUDEVENTS_PREFIX = /^\s*application\/cloudevents/i;
const INFERENCE_HEADER_CONTENT_LENGTH = "inference-header-content-length";

/**
 * The mode a request claims from its headers alone, or undefined for an
 * ordinary REST request. Structured (and batched) mode is a Content-Type of
 * application/cloudevents*; binary mode is any of the required ce-* headers
 * (one is enough: a request with some but not all of them is an invalid event,
 * answered 400 naming the missing ones, not a plain REST request).
 */
export function claimedMode(c: Context): CloudEventMode | "batch" | undefined {
  const contentType = c.req.header("content-type");
  if (contentType !== undefined && CLOUDEVENTS_PREFIX.test(contentType)) {
    return mediaType(contentType) === CE_BATCH ? "batch" : "structured";
  }
  if (
    c.req.header("ce-specversion") !== undefined ||
    c.req.header("ce-id") !== undefined ||
    c.req.header("ce-type") !== undefined ||
    c.req.header("ce-source") !== undefined
  ) {
    return "binary";
  }
  return undefined;
}

/** "Application/JSON; charset=utf-8" -> "application/json". */
export function mediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const semicolon = contentType.indexOf(";");
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

const isJsonMediaType = (type: string | undefined) => type === JSON_MEDIA_TYPE || (type !== undefined && type.endsWith("+json"));

function missingAttributes(value: (name: (typeof REQUIRED)[number]) => unknown, mode: CloudEventMode): void {
  const missing = REQUIRED.filter((name) => {
    const v = value(name);
    return v === undefined || v === null || v === "";
  });
  if (missing.length === 0) return;
  const names = missing.map((m) => `'${m}'`).join(", ");
  const where = mode === "binary" ? ` (binary mode: header${missing.length > 1 ? "s" : ""} ${missing.map((m) => `ce-${m}`).join(", ")})` : "";
  throw invalidInput(`CloudEvent is missing required attribute${missing.length > 1 ? "s" : ""} ${names}${where}`);
}

function checkSpecVersion(version: unknown): void {
  if (version !== "1.0") throw invalidInput(`unsupported CloudEvents specversion ${preview(version)}; this server accepts 1.0`);
}

/** The SDK's schema errors as one readable line: "attribute 'source' must NOT have fewer than 1 characters". */
function describeValidation(err: ValidationError): string {
  const details = (err.errors ?? []).map((e) => {
    if (typeof e === "string") return e;
    const { instancePath, message, params } = e as { instancePath?: string; message?: string; params?: { missingProperty?: string } };
    if (params?.missingProperty) return `missing required attribute '${params.missingProperty}'`;
    const attribute = instancePath?.replace(/^\//, "");
    return attribute ? `attribute '${attribute}' ${message ?? "is invalid"}` : (message ?? "invalid");
  });
  const first = err.message.split("\n")[0] ?? "invalid";
  return truncate(details.length > 0 ? details.join("; ") : first, 300);
}

function sdkFailure(err: unknown, what: string): never {
  if (err instanceof InferenceError) throw err;
  if (err instanceof sdk().ValidationError) throw invalidInput(`invalid CloudEvent: ${describeValidation(err)}`);
  if (err instanceof SyntaxError) throw invalidInput(`malformed JSON in ${what}: ${truncate(err.message, 160)}`);
  throw err;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeText(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw invalidInput("the event data is not valid UTF-8");
  }
}

export interface ReceivedEvent {
  event: CloudEvent<unknown>;
  mode: CloudEventMode;
  /** The event's data as a JSON object: what the inference request is read from. */
  data: Record<string, unknown>;
}

/**
 * Reads and validates the CloudEvent a request carries. `mode` is what
 * claimedMode() said (batch is refused before this). The data must be a JSON
 * object; binary data of any kind (octet-stream, data_base64, the binary
 * tensor extension) is refused with a 400 that says so.
 */
export async function receiveCloudEvent(c: Context, mode: CloudEventMode, maxBytes: number): Promise<ReceivedEvent> {
  if (c.req.header(INFERENCE_HEADER_CONTENT_LENGTH) !== undefined) {
    throw invalidInput("binary tensor data (Inference-Header-Content-Length) is not valid event data: send the inference request as JSON");
  }
  await loadSdk();
  const event = mode === "binary" ? await binaryEvent(c, maxBytes) : await structuredEvent(c, maxBytes);
  try {
    event.validate();
  } catch (err) {
    sdkFailure(err, "the event");
  }
  return { event, mode, data: eventData(event) };
}

async function binaryEvent(c: Context, maxBytes: number): Promise<CloudEvent<unknown>> {
  const headers: Headers = {};
  for (const [name, value] of c.req.raw.headers) {
    if (name.startsWith("ce-")) headers[name] = value;
  }
  missingAttributes((name) => headers[`ce-${name}`], "binary");
  checkSpecVersion(headers["ce-specversion"]);
  const contentType = c.req.header("content-type");
  const type = mediaType(contentType);
  if (type === "application/octet-stream") {
    throw invalidInput("binary event data (Content-Type application/octet-stream) is not valid event data: send the inference request as JSON (Content-Type application/json)");
  }
  // The SDK parses the data only for an exact "application/json"; other spellings of it are normalized.
  if (type === JSON_MEDIA_TYPE) headers["content-type"] = JSON_MEDIA_TYPE;
  else if (contentType !== undefined) headers["content-type"] = contentType;
  // JSON may start with whitespace; the SDK's parser takes text not starting with {, [ or " for a bare string.
  const bytes = await readBody(c, maxBytes);
  const text = decodeText(bytes).trimStart();
  // A JSON object is parsed here, exact for 64-bit integers (the SDK's JSON.parse rounds them beyond 2^53).
  const body: unknown = type === JSON_MEDIA_TYPE && text.startsWith("{") ? parseJsonExact(bytes, "the event data") : text;
  try {
    return sdk().HTTP.toEvent({ headers, body: body as string }) as CloudEvent<unknown>;
  } catch (err) {
    sdkFailure(err, "the event data");
  }
}

async function structuredEvent(c: Context, maxBytes: number): Promise<CloudEvent<unknown>> {
  const type = mediaType(c.req.header("content-type"));
  if (type !== CE_JSON) {
    throw new InferenceError(415, `structured-mode CloudEvents must be ${CE_JSON}, not ${preview(type)}`);
  }
  const envelope = parseJsonExact(await readBody(c, maxBytes), "the structured CloudEvent");
  if (typeof envelope !== "object" || envelope === null || Array.isArray(envelope)) {
    throw invalidInput(`a structured CloudEvent must be a JSON object, got ${preview(envelope)}`);
  }
  const attributes = envelope as Record<string, unknown>;
  missingAttributes((name) => attributes[name], "structured");
  checkSpecVersion(attributes.specversion);
  if (attributes.data_base64 !== undefined) {
    throw invalidInput("binary event data (data_base64) is not valid event data: put the inference request in 'data' as JSON");
  }
  try {
    return sdk().HTTP.toEvent({ headers: { "content-type": CE_JSON }, body: attributes }) as CloudEvent<unknown>;
  } catch (err) {
    sdkFailure(err, "the structured CloudEvent");
  }
}

/** The data as a JSON object; JSON text (a client that encoded it twice, an unusual content type) is parsed. */
function eventData(event: CloudEvent<unknown>): Record<string, unknown> {
  const type = mediaType(event.datacontenttype);
  if (type !== undefined && !isJsonMediaType(type) && type !== "text/plain" && type !== "application/x-www-form-urlencoded") {
    throw new InferenceError(415, `event data of type ${preview(event.datacontenttype)} cannot carry an inference request: send JSON (datacontenttype application/json)`);
  }
  let data: unknown = event.data;
  if (data === undefined || data === null || data === "") {
    throw invalidInput("the event has no data: send an inference request ({\"inputs\": [...]}, {\"instances\": [...]} or {\"text\": ...}) as its data");
  }
  if (typeof data === "string") data = parseJsonExact(Buffer.from(data, "utf8"), "the event data");
  if (typeof data !== "object" || data === null || Array.isArray(data) || ArrayBuffer.isView(data)) {
    throw invalidInput(`the event data must be a JSON object (an inference request), got ${preview(data)}`);
  }
  return data as Record<string, unknown>;
}

/** Extension attributes of an event: everything that is not a CloudEvents 1.0 context attribute or data. */
const CORE_ATTRIBUTES = new Set([
  "specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data", "data_base64",
  // CloudEvents 0.3 names the SDK keeps on every event object.
  "datacontentencoding", "schemaurl",
]);

export function extensionsOf(event: CloudEvent<unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (!CORE_ATTRIBUTES.has(key) && value !== undefined) out[key] = value;
  }
  return out;
}
