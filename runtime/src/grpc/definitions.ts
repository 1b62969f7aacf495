/**
 * Loads the gRPC runtime (@grpc/grpc-js) and the service definitions from the
 * .proto files in runtime/proto/. Imported lazily: a server that speaks only
 * HTTP/1.1 never pays for grpc-js and protobufjs at start-up.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type * as GrpcJs from "@grpc/grpc-js";

export type Grpc = typeof GrpcJs;

export interface GrpcDefinitions {
  grpc: Grpc;
  /** inference.GRPCInferenceService */
  inference: GrpcJs.ServiceDefinition;
  /** grpc.health.v1.Health */
  health: GrpcJs.ServiceDefinition;
}

/** runtime/proto, from the sources (runtime/src/grpc) or from the bundle (dist/). */
export function protoDirectory(): string {
  const candidates = [new URL("../../proto/", import.meta.url), new URL("../runtime/proto/", import.meta.url)];
  for (const url of candidates) {
    const path = fileURLToPath(url);
    if (existsSync(`${path}grpc_predict_v2.proto`)) return path;
  }
  throw new Error(`cannot find the gRPC .proto files (looked in ${candidates.map((u) => fileURLToPath(u)).join(", ")})`);
}

/**
 * How messages decode: field names as in the .proto (what gRPC users read in the
 * spec), 64-bit integers as decimal text (exact beyond 2^53), bytes as Buffers,
 * the chosen oneof field named, absent fields left out.
 */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true } as const;

let loaded: Promise<GrpcDefinitions> | undefined;

export function loadGrpcDefinitions(): Promise<GrpcDefinitions> {
  loaded ??= (async () => {
    const [grpc, protoLoader] = await Promise.all([import("@grpc/grpc-js"), import("@grpc/proto-loader")]);
    const definition = protoLoader.loadSync(["grpc_predict_v2.proto", "grpc/health/v1/health.proto"], { ...LOADER_OPTIONS, includeDirs: [protoDirectory()] });
    const root = grpc.loadPackageDefinition(definition) as unknown as {
      inference: { GRPCInferenceService: GrpcJs.ServiceClientConstructor };
      grpc: { health: { v1: { Health: GrpcJs.ServiceClientConstructor } } };
    };
    return { grpc, inference: root.inference.GRPCInferenceService.service, health: root.grpc.health.v1.Health.service };
  })();
  return loaded;
}
