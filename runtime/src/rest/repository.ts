/** The model repository extension over REST: index, load, unload. */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import type { ModelRepositoryHandlers } from "../dataplane/model-repository.js";
import { formatZodError } from "../dataplane/zod-errors.js";
import { readJsonBody } from "./body.js";
import { modelParams } from "./params.js";
import { RepositoryIndexRequestSchema, RepositoryLoadRequestSchema } from "./schemas.js";
import { decodeBase64, FILE_PARAMETER_PREFIX } from "../repository/upload.js";

export interface RepositoryApiOptions {
  maxRequestBytes: number;
  /** When false, load and unload answer 403; the index stays readable. */
  enabled: boolean;
  /** When set, every repository call needs `Authorization: Bearer <token>`. */
  token?: string;
}

function requireToken(token: string): MiddlewareHandler {
  const expected = Buffer.from(token);
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const given = Buffer.from(header.startsWith("Bearer ") ? header.slice(7) : "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      c.header("www-authenticate", 'Bearer realm="model-repository"');
      return c.json({ error: "the model repository API needs a valid bearer token" }, 401);
    }
    await next();
  };
}

/** Triton's `file:<path>` load parameters, base64-decoded; any other parameter Triton does not know is refused, as Triton does. */
function loadFiles(parameters: Record<string, unknown> | undefined): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const [key, value] of Object.entries(parameters ?? {})) {
    if (key === "config" || key === "unload_dependents") continue;
    if (!key.startsWith(FILE_PARAMETER_PREFIX)) throw invalidInput(`unrecognized load parameter '${key}'; expected config or file:<path>`);
    if (typeof value !== "string") throw invalidInput(`parameter '${key}': must be the file's content as a base64 string`);
    files.set(key, decodeBase64(key, value));
  }
  return files;
}

function parse<T extends z.ZodType>(schema: T, body: unknown, what: string): z.output<T> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw invalidInput(`invalid ${what}: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

export function repositoryRoutes(handlers: ModelRepositoryHandlers, options: RepositoryApiOptions): Hono {
  const app = new Hono();
  if (options.token) app.use("/v2/repository/*", requireToken(options.token));

  app.post("/v2/repository/index", async (c) => {
    const body = parse(RepositoryIndexRequestSchema, await readJsonBody(c, options.maxRequestBytes, {}), "repository index request");
    return c.json(await handlers.index(body.ready === true));
  });

  const guard = (c: Context) => {
    if (!options.enabled) throw new InferenceError(403, "model load and unload are disabled on this server (REPOSITORY_API=disabled)");
    return modelParams(c).name;
  };

  app.post("/v2/repository/models/:name/load", async (c) => {
    const name = guard(c);
    const body = parse(RepositoryLoadRequestSchema, await readJsonBody(c, options.maxRequestBytes, {}), "load request");
    await handlers.load(name, { config: body.parameters?.config, files: loadFiles(body.parameters) });
    return c.json({ name, load: true });
  });

  app.post("/v2/repository/models/:name/unload", async (c) => {
    const name = guard(c);
    parse(RepositoryLoadRequestSchema, await readJsonBody(c, options.maxRequestBytes, {}), "unload request");
    await handlers.unload(name);
    return c.json({ name, unload: true });
  });

  return app;
}
