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
import { createLogger } from "./logging.js";
import { ModelRegistry } from "./registry/registry.js";
import { ModelRepository, RepositoryError, describeModelDir, type ModelDescriptor } from "./repository/repository.js";
import { createApp } from "./rest/app.js";

/** The protocol extensions this server implements, as GET /v2 reports them. */
export const EXTENSIONS: string[] = [];

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

async function findModels(config: Config, repository: ModelRepository, logger: Logger): Promise<ModelDescriptor[]> {
  if (config.modelName !== undefined && config.modelDir !== undefined) {
    const descriptor = await describeModelDir(config.modelName, config.modelDir, { anyOnnxFile: true }).catch((err: Error) => {
      throw new RepositoryError(`cannot read model directory ${config.modelDir}: ${err.message}`);
    });
    return descriptor ? [descriptor] : [];
  }
  const { models, skipped } = await repository.discover();
  if (skipped.length > 0) logger.debug({ skipped }, "directories without a model were passed over");
  return models;
}

export async function startServer(input: ConfigInput = {}, options: StartOptions = {}): Promise<RunningServer> {
  const config = ConfigSchema.parse(input);
  const logger = options.logger ?? createLogger(config.logLevel);
  const backend = new OnnxRuntimeBackend({ executionProviders: config.executionProviders });
  const registry = new ModelRegistry(backend, logger);
  const repository = new ModelRepository(config.modelRepository);
  const dataPlane = new DataPlane(registry, { name: packageJson.name, version: packageJson.version, extensions: EXTENSIONS }, { strictReadiness: config.strictReadiness });

  // Find the models before listening, so a missing repository fails the start instead of serving nothing.
  const descriptors = await findModels(config, repository, logger);

  const app = createApp(dataPlane, { maxRequestBytes: config.maxRequestBytes, logger });
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
  logger.info({ port, model_repository: config.modelRepository, models: descriptors.map((d) => d.name) }, "listening");

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
