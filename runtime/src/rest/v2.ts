/**
 * Open Inference Protocol v2 over REST: translates the wire format into the
 * data plane's request type and back. No inference logic lives here.
 */
import { Hono, type Context } from "hono";
import { decodeJsonTensor, encodeJsonData } from "../codecs/json.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import { invalidInput } from "../dataplane/errors.js";
import type { InferenceRequest, InferenceResponse } from "../dataplane/types.js";
import { formatZodError } from "../dataplane/zod-errors.js";
import { readJsonBody } from "./body.js";
import { modelParams } from "./params.js";
import { InferenceRequestSchema } from "./schemas.js";

export function toInferenceRequest(body: unknown, modelName: string, modelVersion?: string): InferenceRequest {
  const parsed = InferenceRequestSchema.safeParse(body);
  if (!parsed.success) throw invalidInput(`invalid inference request: ${formatZodError(parsed.error)}`);
  const { id, parameters, inputs, outputs } = parsed.data;
  const request: InferenceRequest = { modelName, modelVersion, inputs: inputs.map(decodeJsonTensor) };
  if (id !== undefined) request.id = id;
  if (parameters) request.parameters = parameters;
  if (outputs) request.outputs = outputs;
  return request;
}

/** The V2 JSON response, written as text so tensor data never round-trips through boxed arrays. */
export function encodeInferenceResponse(response: InferenceResponse): string {
  let json = `{"model_name":${JSON.stringify(response.modelName)},"model_version":${JSON.stringify(response.modelVersion)}`;
  if (response.id !== undefined) json += `,"id":${JSON.stringify(response.id)}`;
  if (response.parameters) json += `,"parameters":${JSON.stringify(response.parameters)}`;
  json += ',"outputs":[';
  response.outputs.forEach((t, i) => {
    json += `${i ? "," : ""}{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(",")}]`;
    if (t.parameters) json += `,"parameters":${JSON.stringify(t.parameters)}`;
    json += `,"data":${encodeJsonData(t)}}`;
  });
  return `${json}]}`;
}

export function v2Routes(dataPlane: DataPlane): Hono {
  const app = new Hono();

  app.get("/v2/health/live", (c) => c.json({ live: dataPlane.live() }, dataPlane.live() ? 200 : 503));
  app.get("/v2/health/ready", (c) => {
    if (dataPlane.ready()) return c.json({ ready: true });
    const waiting = dataPlane.modelStatuses().filter((s) => s.state !== "READY");
    const detail = waiting.map((s) => `${s.name}/${s.version} ${s.state}${s.reason ? `: ${s.reason}` : ""}`).join("; ");
    return c.json({ ready: false, error: `not ready: ${detail || "starting"}` }, 503);
  });
  app.get("/v2", (c) => c.json(dataPlane.metadata()));
  app.get("/v2/models", (c) => c.json({ models: dataPlane.registry.names(), states: dataPlane.modelStatuses() }));

  const ready = (c: Context) => {
    const { name, version } = modelParams(c);
    const status = dataPlane.modelReady(name, version);
    if (status.ready) return c.json({ name, version: status.version, ready: true });
    const error = `model '${name}' version ${status.version} is not ready: ${status.state}${status.reason ? ` (${status.reason})` : ""}`;
    return c.json({ name, version: status.version, ready: false, state: status.state, reason: status.reason, error }, 503);
  };
  app.get("/v2/models/:name/ready", ready);
  app.get("/v2/models/:name/versions/:version/ready", ready);

  const metadata = (c: Context) => {
    const { name, version } = modelParams(c);
    return c.json(dataPlane.modelMetadata(name, version));
  };
  app.get("/v2/models/:name", metadata);
  app.get("/v2/models/:name/versions/:version", metadata);

  const infer = async (c: Context) => {
    const { name, version } = modelParams(c);
    // Resolve the model before reading the body: an unknown model is a 404 whatever was sent.
    dataPlane.registry.find(name, version);
    const request = toInferenceRequest(await readJsonBody(c), name, version);
    const response = await dataPlane.infer(request);
    // A fresh headers object each time: Hono may keep and extend the one it is given.
    return c.body(encodeInferenceResponse(response), 200, { "content-type": "application/json" });
  };
  app.post("/v2/models/:name/infer", infer);
  app.post("/v2/models/:name/versions/:version/infer", infer);

  return app;
}
