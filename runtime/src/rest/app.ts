/**
 * The HTTP application: transports mounted on one data plane, with the error
 * mapping every route shares. Handlers throw InferenceError; only this file
 * decides how an error looks on the wire.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
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
import { v1Routes } from "./v1.js";
import { v2Routes } from "./v2.js";

export interface AppOptions {
  maxRequestBytes: number;
  logger: Logger;
  repositoryApi: Omit<RepositoryApiOptions, "maxRequestBytes">;
}

export function createApp(dataPlane: DataPlane, repository: ModelRepositoryHandlers, options: AppOptions): Hono {
  const app = new Hono();

  app.use(
    "*",
    bodyLimit({
      maxSize: options.maxRequestBytes,
      onError: (c) => c.json({ error: `request body exceeds the limit of ${options.maxRequestBytes} bytes` }, 413),
    }),
  );
  app.use("*", requestId());
  app.use("*", compressResponses());

  app.route("/", v2Routes(dataPlane, options));
  app.route("/", v1Routes(dataPlane, options));
  app.route("/", repositoryRoutes(repository, { ...options.repositoryApi, maxRequestBytes: options.maxRequestBytes }));

  let document: Record<string, unknown> | undefined;
  const openapi = () => (document ??= openApiDocument(dataPlane.metadata()));
  app.get(PATHS.openapi, (c) => c.json(openapi()));
  app.get("/docs", (c) => c.html(docsPage(openapi())));

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${truncate(new URL(c.req.url).pathname, 200)}` }, 404));

  app.onError((err, c) => {
    if (err instanceof InferenceError) {
      for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return c.json({ error: err.message }, err.status);
    }
    // A genuine fault: the details (and stack) go to the log, never to the client.
    options.logger.error({ err, method: c.req.method, path: new URL(c.req.url).pathname }, "request failed");
    return c.json({ error: "internal server error" }, 500);
  });

  return app;
}
