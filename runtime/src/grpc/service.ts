/**
 * inference.GRPCInferenceService over the shared data plane: each RPC translates
 * its message into the data plane's call and back, as rest/v2.ts does for REST.
 * No inference logic lives here.
 */
import type * as GrpcJs from "@grpc/grpc-js";
import { timingSafeEqual } from "node:crypto";
import { fromGrpcInferRequest, toGrpcInferResponse, type GrpcInferRequest, type GrpcInferResponse } from "../codecs/grpc.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import type { ModelRepositoryHandlers } from "../dataplane/model-repository.js";
import type { Duration } from "../registry/statistics.js";
import { checkModelName, checkModelVersion, classificationOf } from "../dataplane/context.js";
import { GRPC_SERVICE } from "../constants.js";
import { checkUserId } from "../async/service.js";
import type { CallContext, CallObserver } from "./observe.js";
import { firstValue } from "./observe.js";
import { FILE_PARAMETER_PREFIX } from "../repository/upload.js";
import { tritonModelConfig } from "../dataplane/model-config.js";

export interface InferenceServiceOptions {
  repositoryApi: { enabled: boolean; token?: string };
  /** Request message sizes in bytes, recorded when each message is decoded (see server.ts). */
  messageSizes: WeakMap<object, number>;
  /** The metadata key naming the user, for quotas and usage (USER_HEADER; asynchronous inference on). */
  userHeader?: string;
}

interface NameVersion {
  name?: string;
  version?: string;
}

interface RepositoryRequest {
  repository_name?: string;
  model_name?: string;
  parameters?: Record<string, { parameter_choice?: string; string_param?: string; bytes_param?: Buffer }>;
}

const path = (rpc: string) => `/${GRPC_SERVICE}/${rpc}`;

function modelOf(request: NameVersion): { name: string; version?: string } {
  const name = checkModelName(request.name ?? "");
  return { name, version: request.version ? checkModelVersion(request.version) : undefined };
}

/** Triton's clients put the model name in field 2, KServe's in field 1 (see the .proto). */
function repositoryModelName(request: RepositoryRequest): string {
  return checkModelName(request.model_name || request.repository_name || "");
}

/** Triton's load parameters over gRPC: `config` a string_param, each `file:<path>` a bytes_param; anything else is refused, as Triton does. */
function loadRequestOf(parameters: RepositoryRequest["parameters"]): { config?: string; files: Map<string, Uint8Array> } {
  let config: string | undefined;
  const files = new Map<string, Uint8Array>();
  for (const [key, value] of Object.entries(parameters ?? {})) {
    if (key === "config") {
      if (value.parameter_choice !== "string_param") throw invalidInput("parameters.config must be a string_param holding a Triton model configuration or model-settings JSON");
      config = value.string_param;
    } else if (key.startsWith(FILE_PARAMETER_PREFIX)) {
      if (value.parameter_choice !== "bytes_param") throw invalidInput(`parameter '${key}': must be a bytes_param holding the file's content`);
      files.set(key, value.bytes_param ?? Buffer.alloc(0));
    } else if (key !== "unload_dependents") {
      throw invalidInput(`unrecognized load parameter '${key}'; expected config or file:<path>`);
    }
  }
  return { config, files };
}

const duration = (d: Duration) => ({ count: d.count, ns: Math.round(d.ns) });

/** The handlers, keyed by RPC name as grpc-js' addService expects. */
export function inferenceService(dataPlane: DataPlane, repository: ModelRepositoryHandlers, observer: CallObserver, options: InferenceServiceOptions): GrpcJs.UntypedServiceImplementation {
  const expectedToken = options.repositoryApi.token ? Buffer.from(options.repositoryApi.token) : undefined;
  const guardRepository = (context: CallContext, write: boolean) => {
    if (expectedToken) {
      const header = firstValue(context.metadata, "authorization") ?? "";
      const given = Buffer.from(header.startsWith("Bearer ") ? header.slice(7) : "");
      if (given.length !== expectedToken.length || !timingSafeEqual(given, expectedToken)) {
        throw new InferenceError(401, "the model repository API needs a valid bearer token");
      }
    }
    if (write && !options.repositoryApi.enabled) throw new InferenceError(403, "model load and unload are disabled on this server (REPOSITORY_API=disabled)");
  };

  /** One inference, shared by ModelInfer and each message of ModelStreamInfer. */
  const infer = async (message: GrpcInferRequest, context: CallContext): Promise<GrpcInferResponse> => {
    const name = checkModelName(message.model_name ?? "");
    const version = message.model_version ? checkModelVersion(message.model_version) : undefined;
    // Resolve the model first: an unknown model is NOT_FOUND whatever the tensors hold.
    dataPlane.registry.find(name, version);
    context.markInference({ model: name, version });
    const request = fromGrpcInferRequest({ ...message, model_name: name, model_version: version });
    const user = options.userHeader === undefined ? undefined : firstValue(context.metadata, options.userHeader);
    const userId = user === undefined ? undefined : checkUserId(user, `the ${options.userHeader} metadata`);
    const response = await dataPlane.infer(request, { requestId: context.requestId, protocol: "grpc", userId });
    const classification = classificationOf(response.outputs);
    if (classification) context.classification = classification;
    return toGrpcInferResponse(response, request);
  };

  const sizeOf = (message: object) => options.messageSizes.get(message);

  return {
    ServerLive: observer.unary(path("ServerLive"), () => ({ live: dataPlane.live() })),
    ServerReady: observer.unary(path("ServerReady"), () => ({ ready: dataPlane.ready() })),
    ModelReady: observer.unary(path("ModelReady"), (request: NameVersion) => {
      const { name, version } = modelOf(request);
      return { ready: dataPlane.modelReady(name, version).ready };
    }),
    ServerMetadata: observer.unary(path("ServerMetadata"), () => dataPlane.metadata()),
    ModelMetadata: observer.unary(path("ModelMetadata"), (request: NameVersion) => {
      const { name, version } = modelOf(request);
      const { name: _n, versions, platform, inputs, outputs } = dataPlane.modelMetadata(name, version);
      return { name, versions, platform, inputs, outputs };
    }),
    // The model configuration extension (Triton's ModelConfig; dataplane/model-config.ts).
    ModelConfig: observer.unary(path("ModelConfig"), (request: NameVersion) => {
      const { name, version } = modelOf(request);
      const entry = dataPlane.registry.findReady(name, version);
      return { config: tritonModelConfig(name, entry.model, entry.settings) };
    }),
    ModelInfer: observer.unary(path("ModelInfer"), infer, sizeOf),
    ModelStreamInfer: streamInfer(observer, infer, sizeOf),
    ModelStatistics: observer.unary(path("ModelStatistics"), (request: NameVersion) => {
      const name = request.name ? checkModelName(request.name) : undefined;
      const version = name !== undefined && request.version ? checkModelVersion(request.version) : undefined;
      const { model_stats } = dataPlane.statistics(name, version);
      return {
        model_stats: model_stats.map((s) => ({
          name: s.name,
          version: s.version,
          last_inference: s.last_inference,
          inference_count: s.inference_count,
          execution_count: s.execution_count,
          inference_stats: Object.fromEntries(Object.entries(s.inference_stats).map(([k, d]) => [k, duration(d)])),
          batch_stats: [],
        })),
      };
    }),
    RepositoryIndex: observer.unary(path("RepositoryIndex"), async (request: { ready?: boolean }, context) => {
      guardRepository(context, false);
      const entries = await repository.index(request.ready === true);
      return { models: entries.map((e) => ({ name: e.name, version: e.version ?? "", state: e.state, reason: e.reason ?? "" })) };
    }),
    RepositoryModelLoad: observer.unary(path("RepositoryModelLoad"), async (request: RepositoryRequest, context) => {
      guardRepository(context, true);
      const name = repositoryModelName(request);
      await repository.load(name, loadRequestOf(request.parameters));
      return { model_name: name, isLoaded: true };
    }),
    RepositoryModelUnload: observer.unary(path("RepositoryModelUnload"), async (request: RepositoryRequest, context) => {
      guardRepository(context, true);
      const name = repositoryModelName(request);
      await repository.unload(name);
      return { model_name: name, isUnloaded: true };
    }),
  };
}

/**
 * Triton's ModelStreamInfer: each request message is one inference with its own
 * request id, metrics and log line; answers go back in request order, a failed
 * one as error_message without ending the stream.
 */
function streamInfer(
  observer: CallObserver,
  infer: (message: GrpcInferRequest, context: CallContext) => Promise<GrpcInferResponse>,
  sizeOf: (message: object) => number | undefined,
): GrpcJs.handleBidiStreamingCall<GrpcInferRequest, unknown> {
  const rpc = path("ModelStreamInfer");
  return (call) => {
    // One request id for the stream, as for any call: every message's log line carries the id the client got back.
    const requestId = observer.acceptRequestId(call);
    let tail: Promise<void> = Promise.resolve();
    let open = true;
    call.on("data", (message: GrpcInferRequest) => {
      const { context, finish } = observer.begin(rpc, call, sizeOf(message), requestId);
      const work = infer(message, context).then(
        (response) => {
          finish(undefined);
          return { infer_response: response };
        },
        (err: unknown) => {
          const outcome = finish(err);
          return { error_message: outcome.message ?? "internal server error", infer_response: { id: message.id ?? "", model_name: message.model_name ?? "", model_version: message.model_version ?? "" } };
        },
      );
      tail = tail.then(async () => {
        const answer = await work;
        if (open) call.write(answer);
      });
    });
    call.on("end", () => {
      void tail.then(() => {
        if (open) call.end();
      });
    });
    call.on("cancelled", () => {
      open = false;
    });
    call.on("error", () => {
      open = false;
    });
  };
}
