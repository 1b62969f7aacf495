/** The OpenAPI document is generated from the schemas that validate requests and covers every route. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, startTestServer, type RunningServer } from "../testing/server.js";
import { createApp } from "./app.js";
import { openApiDocument } from "./openapi.js";
import { InferenceRequestSchema } from "./schemas.js";

let repo: string;
let server: RunningServer;

beforeAll(async () => {
  repo = await writeRepository(healthyLayout());
  server = await startTestServer(repo);
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

type Doc = { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> }; responses: Record<string, unknown> }>> };

describe("OpenAPI", () => {
  it("serves an OpenAPI 3 document whose infer request schema is the validating zod schema", async () => {
    const { status, body } = await getJson(`${server.url}/openapi.json`);
    expect(status).toBe(200);
    const doc = body as Doc;
    expect(doc.openapi).toMatch(/^3\./);
    const infer = doc.paths["/v2/models/{name}/infer"]!.post!;
    expect(infer.requestBody!.content["application/json"]!.schema).toEqual(
      z.toJSONSchema(InferenceRequestSchema, { target: "openapi-3.0", io: "input", unrepresentable: "any" }),
    );
    expect(Object.keys(infer.responses)).toEqual(["200", "400", "404", "413", "415", "503"]);
  });

  it("documents every route the application serves", async () => {
    const doc = (await getJson(`${server.url}/openapi.json`)).body as Doc;
    const { dataPlane, logger, metrics } = server;
    const app = createApp(dataPlane, {} as never, {
      maxRequestBytes: 1, logger, metrics, requestTimeoutMs: 1, draining: () => false, inflight: { count: 0 }, repositoryApi: { enabled: true },
    });
    const served = app.routes
      .filter((r) => r.method !== "ALL" && !["/openapi.json", "/docs"].includes(r.path))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}").replace("{target}", "{name}:predict")}`);
    const documented = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m} ${path}`));
    expect([...new Set(served)].sort()).toEqual(documented.sort());
  });

  it("documents the asynchronous API's routes when it is on, and only then", () => {
    const { dataPlane, logger, metrics } = server;
    const app = createApp(dataPlane, {} as never, {
      maxRequestBytes: 1, logger, metrics, requestTimeoutMs: 1, draining: () => false, inflight: { count: 0 }, repositoryApi: { enabled: true },
      async: { service: {} as never, userHeader: "x-user-id", collector: true },
    });
    const served = app.routes
      .filter((r) => r.method !== "ALL" && !["/openapi.json", "/docs"].includes(r.path))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}").replace("{target}", "{name}:predict")}`);
    const doc = openApiDocument(dataPlane.metadata(), { async: true }) as Doc;
    const documented = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m} ${path}`));
    expect([...new Set(served)].sort()).toEqual(documented.sort());
    expect(Object.keys((openApiDocument(dataPlane.metadata()) as Doc).paths).some((p) => p.startsWith("/api/v1"))).toBe(false);
  });

  it("renders a self-contained docs page from the same document", async () => {
    const res = await fetch(`${server.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain("POST /v2/models/{name}/infer");
    expect(html).toContain("POST /v1/models/{name}:predict");
    expect(html).not.toMatch(/<script|https?:\/\/(?!localhost)/);
  });
});
