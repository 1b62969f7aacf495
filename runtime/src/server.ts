/**
 * Wires the runtime together: repository → registry → data plane → HTTP app,
 * and the listening socket. main.ts is the CLI around it; tests call it directly.
 */
import { createAdaptorServer } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import type { Logger } from "pino";
import packageJson from "../../package.json" with { type: "json" };
import { OnnxRuntimeBackend } from "./backends/onnxruntime.js";
import { ConfigSchema, type Config, type ConfigInput } from "./config.js";
import { DataPlane } from "./dataplane/dataplane.js";
import { ModelRepositoryHandlers } from "./dataplane/model-repository.js";
import { createLogger } from "./logging.js";
import { ModelRegistry } from "./registry/registry.js";
import { ModelRepository, SingleModelDirectory, type ModelSource } from "./repository/repository.js";
import { createApp } from "./rest/app.js";

/** The protocol extensions this server implements, as GET /v2 reports them. */
export function extensions(config: Config): string[] {
  const list = ["binary_tensor_data", "statistics"];
  if (config.repositoryApi === "enabled") list.push("model_repository");
  return list.sort();
}

export interface RunningServer {
  url: string;
  port: number;
  config: Config;
  dataPlane: DataPlane;
  logger: Logger;
  /** Settles when the initial model loads have finished (each READY or UNAVAILABLE). */
  modelsLoaded: Promise<void>;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Resolve only once every model has loaded (default true); false lets callers watch readiness change. */
  waitForModels?: boolean;
  logger?: Logger;
}

export async function startServer(input: ConfigInput = {}, options: StartOptions = {}): Promise<RunningServer> {
  const config = ConfigSchema.parse(input);
  const logger = options.logger ?? createLogger(config.logLevel);
  const backend = new OnnxRuntimeBackend({ executionProviders: config.executionProviders });
  const registry = new ModelRegistry(backend, logger);
  const source: ModelSource =
    config.modelName !== undefined && config.modelDir !== undefined
      ? new SingleModelDirectory(config.modelName, config.modelDir)
      : new ModelRepository(config.modelRepository);
  const dataPlane = new DataPlane(registry, { name: packageJson.name, version: packageJson.version, extensions: extensions(config) }, { strictReadiness: config.strictReadiness, maxInflightPerModel: config.maxInflightPerModel });

  // Find the models before listening, so a missing repository fails the start instead of serving nothing.
  const { models: descriptors, skipped } = await source.discover();
  if (skipped.length > 0) logger.debug({ skipped }, "directories without a model were passed over");

  const app = createApp(dataPlane, new ModelRepositoryHandlers(source, registry), {
    maxRequestBytes: config.maxRequestBytes,
    logger,
    repositoryApi: { enabled: config.repositoryApi === "enabled", token: config.repositoryApiToken },
  });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host && config.host !== "0.0.0.0" && config.host !== "::" ? config.host : "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  logger.info({ port, model_repository: source.location, models: descriptors.map((d) => d.name) }, "listening");

  const started = performance.now();
  const modelsLoaded = Promise.all(descriptors.map((d) => registry.load(d))).then(() => {
    dataPlane.startupComplete();
    logger.info({ ms: Math.round(performance.now() - started), ready: dataPlane.ready() }, "models loaded");
  });
  if (options.waitForModels !== false) await modelsLoaded;

  return {
    url,
    port,
    config,
    dataPlane,
    logger,
    modelsLoaded,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await modelsLoaded.catch(() => undefined);
      await Promise.all(registry.names().map((n) => registry.unload(n)));
    },
  };
}
