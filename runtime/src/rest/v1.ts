/** KServe's V1 protocol over REST: list, readiness, and `:predict` on the same data plane. */
import { Hono } from "hono";
import { encodeV1Response, v1ToInferenceRequest } from "../codecs/v1.js";
import { parseJsonExact } from "../codecs/json-exact.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import { formatZodError } from "../dataplane/zod-errors.js";
import { readBody } from "./body.js";
import { checkModelName } from "../dataplane/context.js";
import { admitInference, noteClassification, requestIdOf } from "./request-context.js";
import { V1PredictRequestSchema } from "./schemas.js";

export function v1Routes(dataPlane: DataPlane, options: { maxRequestBytes: number }): Hono {
  const app = new Hono();

  // KServe's model server answers liveness at the root (InferenceRESTClient(protocol="v1").is_server_live
  // reads `status`); POST / is the CloudEvents receiver (runtime/src/cloudevents/routes.ts).
  app.get("/", (c) => c.json({ status: "alive" }));

  // Every model the server knows, ready or not, as KServe lists its registry.
  app.get("/v1/models", (c) => c.json({ models: dataPlane.registry.names() }));

  // KServe: 200 {"name","ready":true}; 503 when not ready (its client reads that as false);
  // 404 for an unknown model (modelReady throws). The 503 is an error body that keeps the V1 fields.
  app.get("/v1/models/:name", (c) => {
    const name = checkModelName(c.req.param("name"));
    const { ready, version, state, reason } = dataPlane.modelReady(name);
    if (ready) return c.json({ name, ready });
    const error = `model '${name}' version ${version} is not ready: ${state}${reason ? ` (${reason})` : ""}`;
    return c.json({ error, name, ready }, 503);
  });

  // Hono cannot split "name:predict" into two parameters, so the verb is parsed here.
  app.post("/v1/models/:target", async (c) => {
    const target = c.req.param("target");
    const colon = target.lastIndexOf(":");
    const verb = colon > 0 ? target.slice(colon + 1) : "";
    const name = checkModelName(colon > 0 ? target.slice(0, colon) : target);
    if (verb === "explain") throw new InferenceError(501, `model '${name}' has no explainer; only :predict is served`);
    if (verb !== "predict") throw invalidInput(`unknown V1 verb in "${target.slice(0, 80)}"; use /v1/models/${name}:predict`);
    // Admission before the body is read (404, 503 with Retry-After); in flight from here until released.
    const admitted = admitInference(c, dataPlane, { model: name, protocol: "v1" }, "resolved");
    try {
      // Exact for 64-bit integers: JSON.parse would round those beyond 2^53.
      const parsed = V1PredictRequestSchema.safeParse(parseJsonExact(await readBody(c, options.maxRequestBytes)));
      if (!parsed.success) throw invalidInput(`invalid V1 request: ${formatZodError(parsed.error)}`);
      const request = v1ToInferenceRequest(parsed.data, admitted.entry.model, name);
      const response = await dataPlane.infer(request, { requestId: requestIdOf(c), protocol: "v1", userId: c.get("userId") }, admitted);
      noteClassification(c, response.outputs);
      const json = encodeV1Response(response, (parsed.data.instances ?? parsed.data.inputs) as unknown[]);
      return c.body(json, 200, { "content-type": "application/json" });
    } finally {
      admitted.release();
    }
  });

  return app;
}
