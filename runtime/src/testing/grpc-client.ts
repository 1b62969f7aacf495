/**
 * A real grpc-js client for the inference and health services, loaded from the
 * same .proto files the server serves, with promise-returning unary calls.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { LOADER_OPTIONS, protoDirectory } from "../grpc/definitions.js";

export interface GrpcCallResult<T> {
  response: T;
  /** Initial metadata (x-request-id). */
  metadata: grpc.Metadata;
}

/** The generated inference.GRPCInferenceService client: every RPC by name, the streaming one typed. */
export interface InferenceStub extends grpc.Client {
  ModelStreamInfer(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<object, any>;
  [rpc: string]: any;
}

/** The generated grpc.health.v1.Health client. */
export interface HealthStub extends grpc.Client {
  Watch(request: { service?: string }, metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<{ status: string }>;
  [rpc: string]: any;
}

export interface GrpcTestClient {
  inference: InferenceStub;
  health: HealthStub;
  /** A unary call on the inference service; rejects with the grpc-js ServiceError. */
  call<T = any>(rpc: string, request: object, options?: { metadata?: Record<string, string>; deadlineMs?: number }): Promise<GrpcCallResult<T>>;
  check(service?: string): Promise<string>;
  /** One ModelStreamInfer call: writes every message, half-closes, and collects the answers and the final status. */
  stream<T = any>(messages: object[], options?: { metadata?: Record<string, string> }): Promise<GrpcStreamResult<T>>;
  close(): void;
}

export interface GrpcStreamResult<T> {
  responses: T[];
  status: grpc.StatusObject;
  metadata: grpc.Metadata;
}

/** The grpc-js ServiceError a call rejected with; fails when it succeeded. */
export async function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("the call succeeded; an error was expected");
}

let definitions: grpc.GrpcObject | undefined;

function load(): grpc.GrpcObject {
  definitions ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(["grpc_predict_v2.proto", "grpc/health/v1/health.proto"], { ...LOADER_OPTIONS, includeDirs: [protoDirectory()] }),
  );
  return definitions;
}

/** `target` is host:port (no scheme); `options` are grpc-js channel options. */
export function grpcClient(target: string, options: grpc.ChannelOptions = {}): GrpcTestClient {
  const root = load() as any;
  const credentials = grpc.credentials.createInsecure();
  const inference = new root.inference.GRPCInferenceService(target, credentials, options);
  const health = new root.grpc.health.v1.Health(target, credentials, options);
  const call = <T>(rpc: string, request: object, opts: { metadata?: Record<string, string>; deadlineMs?: number } = {}) =>
    new Promise<GrpcCallResult<T>>((resolve, reject) => {
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(opts.metadata ?? {})) metadata.set(k, v);
      let initial = new grpc.Metadata();
      const callOptions = opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs };
      const c = inference[rpc](request, metadata, callOptions, (err: grpc.ServiceError | null, response: T) => {
        if (err) reject(err);
        else resolve({ response, metadata: initial });
      });
      c.on("metadata", (m: grpc.Metadata) => (initial = m));
    });
  const stream = <T>(messages: object[], opts: { metadata?: Record<string, string> } = {}) =>
    new Promise<GrpcStreamResult<T>>((resolve, reject) => {
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(opts.metadata ?? {})) metadata.set(k, v);
      const responses: T[] = [];
      let initial = new grpc.Metadata();
      const c = inference.ModelStreamInfer(metadata) as grpc.ClientDuplexStream<object, T>;
      c.on("metadata", (m: grpc.Metadata) => (initial = m));
      c.on("data", (r: T) => responses.push(r));
      c.on("error", reject);
      c.on("status", (status: grpc.StatusObject) => {
        if (status.code === grpc.status.OK) resolve({ responses, status, metadata: initial });
      });
      for (const m of messages) c.write(m);
      c.end();
    });
  return {
    inference,
    health,
    call,
    stream,
    check: (service = "") =>
      new Promise<string>((resolve, reject) => {
        health.Check({ service }, (err: grpc.ServiceError | null, response: { status: string }) => (err ? reject(err) : resolve(response.status)));
      }),
    close() {
      inference.close();
      health.close();
    },
  };
}

/** host:port of a test server's URL. */
export function grpcTarget(url: string): string {
  return new URL(url).host;
}
