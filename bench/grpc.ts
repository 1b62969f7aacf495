/**
 * gRPC load for `npm run bench`: a closed loop of unary ModelInfer calls over one
 * HTTP/2 channel (as Triton's and KServe's clients use one), with the request
 * serialized once up front and responses counted, not decoded: the same footing
 * as autocannon's prebuilt bodies on the REST side.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { LOADER_OPTIONS, protoDirectory } from "../runtime/src/grpc/definitions.js";

const MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer";
const identity = (b: Buffer) => b;

let serializer: ((message: object) => Buffer) | undefined;

/** A ModelInferRequest (proto field names) as bytes on the wire. */
export function encodeInferRequest(message: object): Buffer {
  if (!serializer) {
    const definition = protoLoader.loadSync("grpc_predict_v2.proto", { ...LOADER_OPTIONS, includeDirs: [protoDirectory()] });
    const service = definition["inference.GRPCInferenceService"] as Record<string, protoLoader.MethodDefinition<object, object>>;
    serializer = service.ModelInfer!.requestSerialize as (message: object) => Buffer;
  }
  return serializer(message);
}

export interface GrpcLoadResult {
  rps: number;
  p50: number;
  p99: number;
  failures: number;
}

function client(target: string): grpc.Client {
  return new grpc.Client(target, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": -1, "grpc.max_send_message_length": -1 });
}

function call(c: grpc.Client, request: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    c.makeUnaryRequest(MODEL_INFER, identity, identity, request, (err) => (err ? reject(err) : resolve()));
  });
}

/** `concurrency` calls in flight on one channel for `seconds`; latencies in ms. */
export async function grpcLoad(target: string, request: Buffer, concurrency: number, seconds: number): Promise<GrpcLoadResult> {
  const c = client(target);
  await call(c, request);
  const latencies: number[] = [];
  let failures = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        await call(c, request);
        latencies.push(performance.now() - t);
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  c.close();
  const sorted = Float64Array.from(latencies).sort();
  const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : NaN);
  return { rps: latencies.length / elapsed, p50: q(0.5), p99: q(0.99), failures };
}

/** Median milliseconds of `count` sequential calls (after one warm-up). */
export async function grpcRoundTrips(target: string, request: Buffer, count: number): Promise<number> {
  const c = client(target);
  const times: number[] = [];
  for (let i = 0; i < count + 1; i++) {
    const t = performance.now();
    await call(c, request);
    times.push(performance.now() - t);
  }
  c.close();
  const s = times.slice(1).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
