/**
 * A small typed client for the Open Inference Protocol v2 REST API. Its request
 * and response types are inferred from the same zod schemas the server uses to
 * validate, so client and server cannot disagree about the wire format.
 *
 *   npx tsx examples/client.ts            # calls `simple` on $INFERENCE_URL (default http://localhost:8080)
 */
import type { z } from "zod";
import type { InferenceRequestSchema, InferenceResponseSchema, ModelMetadataSchema, ServerMetadataSchema } from "../runtime/src/rest/schemas.js";
import { fetchFrom, jsonBody, runMain } from "./explain.js";

export type InferenceRequest = z.input<typeof InferenceRequestSchema>;
export type InferenceResponse = z.output<typeof InferenceResponseSchema>;
export type ModelMetadata = z.output<typeof ModelMetadataSchema>;
export type ServerMetadata = z.output<typeof ServerMetadataSchema>;

export class InferenceClientError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class InferenceClient {
  constructor(readonly baseUrl = "http://localhost:8080") {}

  /** No server at baseUrl, or one that does not answer JSON, throws an Error saying so and what to do. */
  private async call<T>(path: string, init?: RequestInit): Promise<T> {
    const res = await fetchFrom(this.baseUrl, path, init);
    const body = await jsonBody<T & { error?: string }>(res, this.baseUrl);
    if (!res.ok) throw new InferenceClientError(res.status, body.error ?? `HTTP ${res.status}`);
    return body;
  }

  async ready(): Promise<boolean> {
    const res = await fetchFrom(this.baseUrl, "/v2/health/ready");
    return res.status === 200;
  }

  server(): Promise<ServerMetadata> {
    return this.call("/v2");
  }

  model(name: string, version?: string): Promise<ModelMetadata> {
    return this.call(`/v2/models/${encodeURIComponent(name)}${version ? `/versions/${version}` : ""}`);
  }

  infer(name: string, request: InferenceRequest, version?: string): Promise<InferenceResponse> {
    return this.call(`/v2/models/${encodeURIComponent(name)}${version ? `/versions/${version}` : ""}/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request),
    });
  }
}

async function main(): Promise<void> {
  const client = new InferenceClient(process.env.INFERENCE_URL ?? "http://localhost:8080");
  const meta = await client.model("simple");
  console.log(`simple: inputs ${meta.inputs.map((i) => `${i.name} ${i.datatype} [${i.shape}]`).join(", ")}`);
  const a = Array.from({ length: 16 }, (_, i) => i + 1);
  const b = Array.from({ length: 16 }, () => 1);
  const response = await client.infer("simple", {
    id: "typed-client",
    inputs: [
      { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: a },
      { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: b },
    ],
  });
  for (const output of response.outputs) console.log(`${output.name} = ${JSON.stringify(output.data)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) runMain("client.ts", main);
