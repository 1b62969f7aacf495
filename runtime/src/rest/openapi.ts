/**
 * The OpenAPI 3 document of the REST API, generated from the zod schemas that
 * validate requests, and a self-contained docs page rendered from it (no assets
 * from the internet: clusters are often air-gapped).
 */
import { z } from "zod";
import * as S from "./schemas.js";

type Method = "get" | "post";

interface Operation {
  summary: string;
  tag: string;
  request?: z.ZodType;
  response?: z.ZodType;
  /** Status codes besides 200 this operation answers with an error body. */
  errors: number[];
  /** A non-JSON 200 body, e.g. Prometheus text. */
  text?: string;
  description?: string;
}

const PATHS: Record<string, Partial<Record<Method, Operation>>> = {
  "/": {
    get: { tag: "v1", summary: "KServe V1: server liveness, `{\"status\": \"alive\"}`", response: z.object({ status: z.literal("alive") }), errors: [] },
    post: {
      tag: "cloudevents",
      summary: "Inference from a CloudEvent (Knative Eventing Trigger), binary or structured mode; the reply is a CloudEvent",
      description: "The model comes from the event's `model` extension, else its `subject`, else the only model loaded. Data: a V2 request, a V1 `instances` body, or `{\"text\": ...}`. The infer endpoints take events too.",
      errors: [400, 404, 413, 415, 503],
    },
  },
  "/v2/health/live": { get: { tag: "health", summary: "Server liveness", response: z.object({ live: z.boolean() }), errors: [] } },
  "/v2/health/ready": { get: { tag: "health", summary: "Server readiness: 200 once every model is ready", response: z.object({ ready: z.boolean() }), errors: [503] } },
  "/v2": { get: { tag: "metadata", summary: "Server metadata and implemented extensions", response: S.ServerMetadataSchema, errors: [] } },
  "/v2/models": { get: { tag: "metadata", summary: "Models and their states", response: z.object({ models: z.array(z.string()), states: z.array(z.unknown()) }), errors: [] } },
  "/v2/models/{name}": { get: { tag: "metadata", summary: "Model metadata", response: S.ModelMetadataSchema, errors: [400, 404, 503] } },
  "/v2/models/{name}/versions/{version}": { get: { tag: "metadata", summary: "Model version metadata", response: S.ModelMetadataSchema, errors: [400, 404, 503] } },
  "/v2/models/{name}/config": { get: { tag: "metadata", summary: "Model configuration (Triton's ModelConfig JSON)", response: z.record(z.string(), z.unknown()), errors: [400, 404, 503] } },
  "/v2/models/{name}/versions/{version}/config": { get: { tag: "metadata", summary: "Model version configuration (Triton's ModelConfig JSON)", response: z.record(z.string(), z.unknown()), errors: [400, 404, 503] } },
  "/v2/models/{name}/ready": { get: { tag: "health", summary: "Model readiness", response: z.object({ name: z.string(), version: z.string(), ready: z.boolean() }), errors: [404, 503] } },
  "/v2/models/{name}/versions/{version}/ready": { get: { tag: "health", summary: "Model version readiness", response: z.object({ name: z.string(), version: z.string(), ready: z.boolean() }), errors: [404, 503] } },
  "/v2/models/{name}/infer": {
    post: {
      tag: "inference",
      summary: "Inference",
      description: "JSON, or (binary_tensor_data extension) a JSON header of Inference-Header-Content-Length bytes followed by raw tensor data. Content-Encoding gzip/deflate/br accepted.",
      request: S.InferenceRequestSchema,
      response: S.InferenceResponseSchema,
      errors: [400, 404, 413, 415, 503],
    },
  },
  "/v2/models/{name}/versions/{version}/infer": {
    post: { tag: "inference", summary: "Inference on a model version", request: S.InferenceRequestSchema, response: S.InferenceResponseSchema, errors: [400, 404, 413, 415, 503] },
  },
  "/v2/models/stats": { get: { tag: "statistics", summary: "Statistics of every model", response: S.ModelStatisticsResponseSchema, errors: [] } },
  "/v2/models/{name}/stats": { get: { tag: "statistics", summary: "Statistics of a model", response: S.ModelStatisticsResponseSchema, errors: [400, 404] } },
  "/v2/models/{name}/versions/{version}/stats": { get: { tag: "statistics", summary: "Statistics of a model version", response: S.ModelStatisticsResponseSchema, errors: [400, 404] } },
  "/v2/repository/index": { post: { tag: "repository", summary: "Models in the repository with their states", request: S.RepositoryIndexRequestSchema, response: S.RepositoryIndexResponseSchema, errors: [400, 401] } },
  "/v2/repository/models/{name}/load": { post: { tag: "repository", summary: "Load or reload a model", request: S.RepositoryLoadRequestSchema, response: z.object({ name: z.string(), load: z.boolean() }), errors: [400, 401, 403, 404] } },
  "/v2/repository/models/{name}/unload": { post: { tag: "repository", summary: "Unload a model after its in-flight requests", request: S.RepositoryLoadRequestSchema, response: z.object({ name: z.string(), unload: z.boolean() }), errors: [400, 401, 403, 404] } },
  "/metrics": { get: { tag: "operations", summary: "Prometheus metrics", text: "text/plain; version=0.0.4", errors: [] } },
  "/v1/models": { get: { tag: "v1", summary: "KServe V1: model list", response: S.V1ModelListSchema, errors: [] } },
  "/v1/models/{name}": { get: { tag: "v1", summary: "KServe V1: model readiness", response: S.V1ModelReadySchema, errors: [400, 404, 503] } },
  "/v1/models/{name}:predict": { post: { tag: "v1", summary: "KServe V1: predict", request: S.V1PredictRequestSchema, response: S.V1PredictResponseSchema, errors: [400, 404, 413, 503] } },
};

/** Served with ASYNC_INFERENCE on (rest/async.ts); `Prefer: respond-async` on the infer endpoints too. */
const ASYNC_PATHS: Record<string, Partial<Record<Method, Operation>>> = {
  "/api/v1/inference": {
    post: {
      tag: "async",
      summary: "Queue an inference on a text model; 202 with the request id and its Location",
      description: "The user is the ingress' header (USER_HEADER, default x-user-id), else `user_id`. `POST /v2/models/{name}/infer` with `Prefer: respond-async` queues a V2 request the same way. Over quota: 429 with Retry-After and the limit.",
      request: S.AsyncSubmitRequestSchema,
      response: S.AsyncAcceptedSchema,
      errors: [400, 403, 404, 413, 429, 503],
    },
  },
  "/api/v1/requests/{id}": { get: { tag: "async", summary: "A queued request: queued | running | succeeded | failed, timestamps, the V2 response or the error", response: S.AsyncRequestStatusSchema, errors: [404] } },
  "/api/v1/users/{id}/usage": { get: { tag: "async", summary: "A user's requests and tokens in the current quota window, the quota and what is left", response: S.UsageResponseSchema, errors: [400, 403] } },
  "/api/v1/results": {
    post: {
      tag: "async",
      summary: "Results collector: the worker's response CloudEvents and dead-lettered request events (Knative Trigger subscriber); only with the resultstoken extension (RESULTS_TOKEN): 401 without or with a wrong one, 403 for a request that is not running (or under another attempt)",
      response: z.object({ request_id: z.string(), recorded: z.boolean(), known: z.boolean() }),
      errors: [400, 401, 403, 413, 415, 503],
    },
  },
};

const STATUS_TEXT: Record<number, string> = {
  400: "Invalid request", 401: "Missing or wrong bearer token", 403: "Disabled by configuration", 404: "Unknown model, version or route",
  413: "Body too large", 415: "Unsupported encoding", 429: "Over quota (Retry-After)", 503: "Model or server not ready",
};

const jsonSchema = (schema: z.ZodType, io: "input" | "output") =>
  z.toJSONSchema(schema, { target: "openapi-3.0", io, unrepresentable: "any" }) as Record<string, unknown>;

export function openApiDocument(server: { name: string; version: string }, options: { async?: boolean } = {}): Record<string, unknown> {
  const errorSchema = jsonSchema(S.ErrorResponseSchema, "output");
  const paths: Record<string, unknown> = {};
  for (const [path, methods] of Object.entries(options.async ? { ...PATHS, ...ASYNC_PATHS } : PATHS)) {
    const item: Record<string, unknown> = {};
    const parameters = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({ name, in: "path", required: true, schema: { type: "string" } }));
    for (const [method, op] of Object.entries(methods) as [Method, Operation][]) {
      const responses: Record<string, unknown> = {};
      if (op.response) responses["200"] = { description: "OK", content: { "application/json": { schema: jsonSchema(op.response, "output") } } };
      if (op.text) responses["200"] = { description: "OK", content: { [op.text]: { schema: { type: "string" } } } };
      for (const code of op.errors) responses[String(code)] = { description: STATUS_TEXT[code], content: { "application/json": { schema: errorSchema } } };
      item[method] = {
        tags: [op.tag],
        summary: op.summary,
        ...(op.description ? { description: op.description } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(op.request ? { requestBody: { required: method === "post" && op.tag !== "repository", content: { "application/json": { schema: jsonSchema(op.request, "input") } } } } : {}),
        responses,
      };
    }
    paths[path] = item;
  }
  return {
    openapi: "3.0.3",
    info: { title: `${server.name} REST API`, version: server.version, description: "Open Inference Protocol v2 with the binary tensor data, model repository and statistics extensions, and KServe V1." },
    paths,
  };
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** A readable page listing every operation with its schemas, from the same document. */
export function docsPage(document: Record<string, unknown>): string {
  const info = document.info as { title: string; version: string; description: string };
  const rows: string[] = [];
  for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, { summary: string; description?: string; requestBody?: unknown; responses: Record<string, unknown> }>>)) {
    for (const [method, op] of Object.entries(item)) {
      const request = op.requestBody ? `<details><summary>request body</summary><pre>${escapeHtml(JSON.stringify((op.requestBody as { content: Record<string, { schema: unknown }> }).content["application/json"]!.schema, null, 2))}</pre></details>` : "";
      const ok = (op.responses["200"] as { content?: Record<string, { schema: unknown }> } | undefined)?.content?.["application/json"]?.schema;
      rows.push(`<section><h3><code>${method.toUpperCase()} ${escapeHtml(path)}</code></h3><p>${escapeHtml(op.summary)}${op.description ? ` — ${escapeHtml(op.description)}` : ""}</p>${request}${ok ? `<details><summary>200 response</summary><pre>${escapeHtml(JSON.stringify(ok, null, 2))}</pre></details>` : ""}<p>Errors: ${Object.keys(op.responses).filter((k) => k !== "200").join(", ") || "none"} (<code>{"error": "..."}</code>)</p></section>`);
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(info.title)}</title><style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:.5rem;overflow:auto}section{border-top:1px solid #ddd}</style></head><body><h1>${escapeHtml(info.title)} <small>${escapeHtml(info.version)}</small></h1><p>${escapeHtml(info.description)}</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a></p>${rows.join("")}</body></html>`;
}
