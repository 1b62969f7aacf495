/** KServe's V1 protocol over REST: list, readiness, and `:predict` on the same data plane. */
import { Hono } from "hono";
import { inferenceResponseToV1, v1ToInferenceRequest } from "../codecs/v1.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import { formatZodError } from "../dataplane/zod-errors.js";
import { readJsonBody } from "./body.js";
import { checkModelName } from "../dataplane/context.js";
import { admitInference, noteClassification, requestIdOf } from "./request-context.js";
import { V1PredictRequestSchema } from "./schemas.js";

export function v1Routes(dataPlane: DataPlane, options: { maxRequestBytes: number }): Hono {
  const app = new Hono();

  app.get("/v1/models", (c) => c.json({ models: dataPlane.registry.names() }));

  app.get("/v1/models/:name", (c) => {
    const name = checkModelName(c.req.param("name"));
    const { ready } = dataPlane.modelReady(name);
    return c.json({ name, ready }, ready ? 200 : 503);
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
      const parsed = V1PredictRequestSchema.safeParse(await readJsonBody(c, options.maxRequestBytes));
      if (!parsed.success) throw invalidInput(`invalid V1 request: ${formatZodError(parsed.error)}`);
      const request = v1ToInferenceRequest(parsed.data, admitted.entry.model, name);
      const response = await dataPlane.infer(request, { requestId: requestIdOf(c), protocol: "v1", userId: c.get("userId") }, admitted);
      noteClassification(c, response.outputs);
      return c.json(inferenceResponseToV1(response, (parsed.data.instances ?? parsed.data.inputs) as unknown[]));
    } finally {
      admitted.release();
    }
  });

  return app;
}
