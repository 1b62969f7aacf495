/**
 * The Open Inference Protocol over gRPC with @grpc/grpc-js, the way Triton's and
 * KServe's gRPC clients call it: raw tensor bytes in, raw tensor bytes out.
 *
 *   PROTOCOL=grpc npm start        # the server answers gRPC (h2c) and REST on :8080
 *   npx tsx examples/grpc.ts       # GRPC_TARGET=host:port to call another server
 *
 * The service definition is runtime/proto/grpc_predict_v2.proto; grpcurl works too:
 *   grpcurl -plaintext -import-path runtime/proto -proto grpc_predict_v2.proto \
 *     -d '{"name":"simple"}' localhost:8080 inference.GRPCInferenceService/ModelMetadata
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { join } from "node:path";
import { ExampleError, noServer, runMain } from "./explain.js";

const target = process.env.GRPC_TARGET ?? "localhost:8080";
const definition = protoLoader.loadSync(["grpc_predict_v2.proto", "grpc/health/v1/health.proto"], {
  includeDirs: [join(import.meta.dirname, "../runtime/proto")],
  keepCase: true, // field names as in the .proto: model_name, raw_input_contents
  longs: String, // int64 as decimal text (shapes, INT64 contents)
  enums: String, // SERVING rather than 1
  defaults: false,
  oneofs: true,
});
const root = grpc.loadPackageDefinition(definition) as any;
const credentials = grpc.credentials.createInsecure();
const inference = new root.inference.GRPCInferenceService(target, credentials);
const health = new root.grpc.health.v1.Health(target, credentials);

/** A unary call as a promise. */
function call<T>(client: any, rpc: string, request: object, options: grpc.CallOptions = {}): Promise<T> {
  return new Promise((resolve, reject) => client[rpc](request, options, (err: grpc.ServiceError | null, response: T) => (err ? reject(err) : resolve(response))));
}

/** The first call, the health check; when it cannot connect, says why (no server, or one without gRPC) and what to do. */
async function checkHealth(): Promise<string> {
  try {
    const { status } = await call<{ status: string }>(health, "Check", { service: "inference.GRPCInferenceService" }, { deadline: Date.now() + 10_000 });
    return status;
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (e.code !== grpc.status.UNAVAILABLE && e.code !== grpc.status.DEADLINE_EXCEEDED) throw err;
    // HTTP/1.1 answers there but HTTP/2 does not: this server started without gRPC (it is off by default).
    const rest = await fetch(`http://${target}/v2/health/live`).then((r) => r.status, () => undefined);
    if (rest !== undefined) {
      throw new ExampleError(`the server at ${target} answers REST (GET /v2/health/live: HTTP ${rest}) but not gRPC: start it with gRPC on, \`PROTOCOL=grpc npm start\` (or --protocol grpc)`);
    }
    throw noServer(target, /\b(E[A-Z]{3,})\b/.exec(e.details)?.[1] ?? e.details, "PROTOCOL=grpc npm start", "GRPC_TARGET (host:port)");
  }
}

async function main(): Promise<void> {
  console.log(`health: ${await checkHealth()}`);

  const metadata = await call<{ inputs: { name: string; datatype: string; shape: string[] }[] }>(inference, "ModelMetadata", { name: "simple" });
  console.log(`simple inputs: ${metadata.inputs.map((i) => `${i.name} ${i.datatype} [${i.shape.join(",")}]`).join(", ")}`);

  // `simple`: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, INT32 [1,16], sent as raw little-endian bytes.
  const a = Int32Array.from({ length: 16 }, (_, i) => i);
  const b = new Int32Array(16).fill(1);
  const response = await call<{ outputs: { name: string; shape: string[] }[]; raw_output_contents: Buffer[] }>(inference, "ModelInfer", {
    model_name: "simple",
    id: "grpc-example-1",
    inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [1, 16] },
      { name: "INPUT1", datatype: "INT32", shape: [1, 16] },
    ],
    raw_input_contents: [Buffer.from(a.buffer), Buffer.from(b.buffer)],
  });
  response.outputs.forEach((output, i) => {
    const bytes = response.raw_output_contents[i]!;
    const values = new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    console.log(`${output.name} [${output.shape.join(",")}]: ${values.join(" ")}`);
  });

  // `sentiment` with typed contents: text in bytes_contents; typed outputs asked for with raw_output_contents=false.
  const scored = await call<{ outputs: { name: string; contents: { bytes_contents?: Buffer[]; fp32_contents?: number[] } }[] }>(inference, "ModelInfer", {
    model_name: "sentiment",
    parameters: { raw_output_contents: { bool_param: false } },
    inputs: [{ name: "text", datatype: "BYTES", shape: [2], contents: { bytes_contents: [Buffer.from("Loved every minute of it."), Buffer.from("Awful service, never again.")] } }],
  });
  const labels = scored.outputs.find((o) => o.name === "label")!.contents.bytes_contents!.map((l) => l.toString());
  console.log(`sentiment labels: ${labels.join(", ")}`);

  // Errors carry gRPC status codes and the same messages as REST.
  try {
    await call(inference, "ModelInfer", { model_name: "no-such-model" });
  } catch (err) {
    const e = err as grpc.ServiceError;
    console.log(`error: ${grpc.status[e.code]}: ${e.details}`);
  }
}

runMain("grpc.ts", () => main().finally(() => {
  inference.close();
  health.close();
}));
