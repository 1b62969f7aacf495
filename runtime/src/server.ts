/**
 * Wires the runtime together: repository → registry → data plane → HTTP app,
 * and the listening socket. main.ts is the CLI around it; tests call it directly.
 */
import { createAdaptorServer } from "@hono/node-server";
import type { AddressInfo, Server as NetServer } from "node:net";
import type { Server } from "node:http";
import type { Logger } from "pino";
import packageJson from "../../package.json" with { type: "json" };
import type { ModelBackend } from "./backends/backend.js";
import { OnnxRuntimeBackend } from "./backends/onnxruntime.js";
import { ConfigSchema, type Config, type ConfigInput } from "./config.js";
import { DataPlane } from "./dataplane/dataplane.js";
import { ModelRepositoryHandlers } from "./dataplane/model-repository.js";
import { createLogger, redactUrl } from "./logging.js";
import { Metrics } from "./metrics.js";
import { ModelRegistry } from "./registry/registry.js";
import { ModelRepository, SingleModelDirectory, type ModelSource } from "./repository/repository.js";
import { createApp } from "./rest/app.js";
import { clientErrorHandler } from "./rest/client-errors.js";
import { InferenceLogger } from "./cloudevents/logger.js";
import type { GrpcTransport } from "./grpc/transport.js";
import type { AsyncSetup } from "./async/setup.js";

/** The protocol extensions this server implements, as GET /v2 reports them. */
export function extensions(config: Config): string[] {
  const list = ["binary_tensor_data", "classification", "model_configuration", "statistics"];
  if (config.repositoryApi === "enabled") list.push("model_repository");
  return list.sort();
}

export interface RunningServer {
  url: string;
  port: number;
  config: Config;
  dataPlane: DataPlane;
  logger: Logger;
  metrics: Metrics;
  /** Settles when the initial model loads have finished (each READY or UNAVAILABLE). */
  modelsLoaded: Promise<void>;
  /** ASYNC_INFERENCE: settles when the request store is usable (the embedded one starts in the background); rejects if it cannot start. */
  asyncStoreReady?: Promise<void>;
  /**
   * Graceful shutdown, as on SIGTERM: readiness turns 503 at once; connections are
   * still accepted for drainDelayMs (while Knative takes the pod out of rotation);
   * then the listener closes, in-flight requests finish (at most drainTimeoutMs),
   * and the models unload. Resolves true when everything finished in time.
   */
  drain(): Promise<boolean>;
  /** Stops at once: for tests and after drain. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Resolve only once every model has loaded (default true); false lets callers watch readiness change. */
  waitForModels?: boolean;
  logger?: Logger;
  /** The model backend; the ONNX Runtime one by default (tests wrap it, e.g. to hold a run at a gate). */
  backend?: ModelBackend;
  /** Tests: the embedded request store (ASYNC_INFERENCE without DATABASE_URL) starts opening only once this settles. */
  asyncStoreGate?: Promise<unknown>;
}

export async function startServer(input: ConfigInput = {}, options: StartOptions = {}): Promise<RunningServer> {
  const config = ConfigSchema.parse(input);
  const logger = options.logger ?? createLogger(config.logLevel, config.logFormat);
  const redacted = {
    ...config,
    repositoryApiToken: config.repositoryApiToken && "[REDACTED]",
    resultsToken: config.resultsToken && "[REDACTED]",
    loggerUrl: config.loggerUrl && redactUrl(config.loggerUrl),
    loggerSink: config.loggerSink && redactUrl(config.loggerSink),
    asyncSink: config.asyncSink && redactUrl(config.asyncSink),
    databaseUrl: config.databaseUrl && redactUrl(config.databaseUrl),
    redisUrl: config.redisUrl && redactUrl(config.redisUrl),
  };
  logger.info({ config: redacted }, "starting");
  const metrics = new Metrics();
  const backend = options.backend ?? new OnnxRuntimeBackend({
    executionProviders: config.executionProviders,
    onInstanceExit: ({ model, version, instance }) => metrics.instanceRestarts.inc({ model, version, instance: String(instance) }),
  });
  const registry = new ModelRegistry(backend, logger, {
    warmup: config.warmup,
    observe: (model, version) => ({
      executed: (rows, computeMs) => {
        metrics.inferenceDuration.observe({ model, version }, computeMs / 1000);
        metrics.batchSize.observe({ model, version }, rows);
      },
      queued: (queueMs) => metrics.queueDuration.observe({ model, version }, queueMs / 1000),
    }),
  });
  const source: ModelSource =
    config.modelName !== undefined && config.modelDir !== undefined
      ? new SingleModelDirectory(config.modelName, config.modelDir)
      : new ModelRepository(config.modelRepository);
  const dataPlane = new DataPlane(registry, { name: packageJson.name, version: packageJson.version, extensions: extensions(config) }, { strictReadiness: config.strictReadiness, maxInflightPerModel: config.maxInflightPerModel });

  // Find the models before listening, so a missing repository fails the start instead of serving nothing.
  const { models: descriptors, skipped } = await source.discover();
  if (skipped.length > 0) logger.debug({ skipped }, "directories without a model were passed over");

  // ASYNC_INFERENCE (runtime/src/async): store, quota counters and queue, loaded only then.
  let asyncSetup: AsyncSetup | undefined;
  if (config.asyncInference) {
    const { startAsyncInference } = await import("./async/setup.js");
    // Returns at once with the embedded PGlite store, which starts in the background (asyncStoreReady).
    asyncSetup = await startAsyncInference(config, { dataPlane, logger, metrics }, { storeGate: options.asyncStoreGate });
  }

  let draining = false;
  const inflight: { count: number; onIdle?: () => void } = { count: 0 };
  const repository = new ModelRepositoryHandlers(source, registry);
  const app = createApp(dataPlane, repository, {
    maxRequestBytes: config.maxRequestBytes,
    maxBufferedRequestBytes: config.maxBufferedRequestBytes,
    logger,
    metrics,
    requestTimeoutMs: config.requestTimeoutMs,
    draining: () => draining,
    inflight,
    repositoryApi: { enabled: config.repositoryApi === "enabled", token: config.repositoryApiToken },
    cloudEvents: { type: config.ceType, source: config.ceSource, merge: config.ceMerge },
    async: asyncSetup && { service: asyncSetup.service, userHeader: config.userHeader, collector: config.resultsCollector ?? true, resultsToken: config.resultsToken },
  });
  // CloudEvents inference logger (runtime/src/cloudevents/logger.ts), on when LOGGER_URL or K_SINK is set;
  // flushed on drain and close, before the models unload.
  const inferenceLogger = InferenceLogger.fromConfig(config, { logger, metrics });
  if (inferenceLogger) dataPlane.addListener(inferenceLogger.listener);
  const server = createAdaptorServer({
    fetch: app.fetch,
    serverOptions: {
      // Slow clients (slowloris) lose their connection instead of holding it: the whole request,
      // headers included, must arrive within the request timeout.
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(config.requestTimeoutMs, 30_000),
      connectionsCheckingInterval: Math.min(1_000, config.requestTimeoutMs),
      keepAliveTimeout: 65_000,
    },
  }) as Server;
  // Node's own answers (408 when a body did not arrive within requestTimeout, 400 for unparsable requests): logged and counted.
  server.on("clientError", clientErrorHandler({ logger, metrics, requestTimeoutMs: config.requestTimeoutMs }));
  // A client that half-closes after sending its request (a FIN after the body: nc, some load tools)
  // still gets its answer: by default Node aborts the requests in progress on that FIN, which now
  // happens while a body is still being read or a model is running on its instance.
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  // PROTOCOL=grpc: the same port also answers gRPC over h2c (runtime/src/grpc), loaded only then.
  let grpc: GrpcTransport | undefined;
  let listener: Server | NetServer = server;
  if (config.protocol === "grpc") {
    const { createGrpcTransport, protocolListener } = await import("./grpc/transport.js");
    grpc = await createGrpcTransport(dataPlane, repository, {
      logger,
      metrics,
      requestTimeoutMs: config.requestTimeoutMs,
      inflight,
      maxRequestBytes: config.maxRequestBytes,
      repositoryApi: { enabled: config.repositoryApi === "enabled", token: config.repositoryApiToken },
      userHeader: asyncSetup ? config.userHeader : undefined,
    });
    listener = protocolListener(server, grpc, Math.min(config.requestTimeoutMs, 30_000));
  }
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(config.port, config.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const { port } = listener.address() as AddressInfo;
  const host = config.host && config.host !== "0.0.0.0" && config.host !== "::" ? config.host : "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  logger.info({ port, protocol: config.protocol, model_repository: source.location, models: descriptors.map((d) => d.name) }, "listening");

  const started = performance.now();
  const modelsLoaded = Promise.all(descriptors.map((d) => registry.load(d))).then(() => {
    dataPlane.startupComplete();
    logger.info({ ms: Math.round(performance.now() - started), ready: dataPlane.ready() }, "models loaded");
    // Requests a stopped process left queued or running are taken over once there are models to run them.
    asyncSetup?.recover();
  });
  if (options.waitForModels !== false) await modelsLoaded;

  /** Stops taking connections; resolves once every connection has closed. `graceMs` bounds gRPC calls still running. */
  const closeListener = (graceMs = 0) =>
    new Promise<void>((resolve) => {
      if (listener === server) {
        server.close(() => resolve());
      } else {
        listener.close(() => resolve());
        grpc?.drain(graceMs);
      }
      server.closeIdleConnections();
    });
  const closeAllConnections = () => {
    server.closeAllConnections();
    grpc?.destroy();
  };
  const unloadModels = async () => {
    await modelsLoaded.catch(() => undefined);
    await Promise.all(registry.names().map((n) => registry.unload(n).catch(() => undefined)));
  };
  const idle = () => (inflight.count === 0 ? Promise.resolve() : new Promise<void>((resolve) => (inflight.onIdle = resolve)));

  return {
    url,
    port,
    config,
    dataPlane,
    logger,
    metrics,
    modelsLoaded,
    asyncStoreReady: asyncSetup?.storeReady,
    async drain() {
      const started = performance.now();
      draining = true;
      dataPlane.beginDrain();
      logger.info({ in_flight: inflight.count, drain_delay_ms: config.drainDelayMs, drain_timeout_ms: config.drainTimeoutMs }, "draining");
      await new Promise((r) => setTimeout(r, config.drainDelayMs));
      const deadline = Math.max(0, config.drainTimeoutMs - (performance.now() - started));
      const listenerClosed = closeListener(deadline);
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        Promise.all([idle(), listenerClosed]).then(() => true),
        new Promise<false>((r) => (timer = setTimeout(() => r(false), deadline))),
      ]);
      clearTimeout(timer);
      if (!finished) {
        logger.warn({ in_flight: inflight.count }, "drain timeout: closing remaining connections");
        closeAllConnections();
      }
      // In-process async deliveries, then the inference logger, get what is left of the drain budget.
      await asyncSetup?.close(Math.max(0, config.drainTimeoutMs - (performance.now() - started)));
      await inferenceLogger?.close(Math.max(0, config.drainTimeoutMs - (performance.now() - started)));
      await unloadModels();
      logger.info({ ms: Math.round(performance.now() - started), clean: finished }, "drained");
      return finished;
    },
    async close() {
      draining = true;
      const closed = closeListener();
      grpc?.destroy();
      await closed;
      await asyncSetup?.close(1_000);
      await inferenceLogger?.close(1_000);
      await unloadModels();
    },
  };
}
