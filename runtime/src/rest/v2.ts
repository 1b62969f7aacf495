/**
 * Open Inference Protocol v2 over REST: translates the wire format into the
 * data plane's request type and back. No inference logic lives here.
 */
import { Hono, type Context } from "hono";
import { splitBinaryBody } from "../codecs/binary.js";
import { binaryOutputNames, encodeInferenceResponse, toInferenceRequest, toRawInferenceRequest } from "../codecs/v2.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import type { InferenceRequest } from "../dataplane/types.js";
import { parseJson, readBody } from "./body.js";
import { modelParams } from "./params.js";
import { markInference, noteClassification, requestIdOf } from "./request-context.js";
import type { AsyncInference } from "../async/service.js";
import { checkUserId } from "../async/service.js";
import { acceptedResponse, prefersAsync } from "./async.js";
import { InferenceError, invalidInput } from "../dataplane/errors.js";

export const INFERENCE_HEADER_CONTENT_LENGTH = "inference-header-content-length";

export interface V2RouteOptions {
  maxRequestBytes: number;
  /** Asynchronous inference (Prefer: respond-async), when enabled. */
  async?: { service: AsyncInference; userHeader: string };
}

export function v2Routes(dataPlane: DataPlane, options: V2RouteOptions): Hono {
  const app = new Hono();

  app.get("/v2/health/live", (c) => c.json({ live: dataPlane.live() }, dataPlane.live() ? 200 : 503));
  app.get("/v2/health/ready", (c) => {
    if (dataPlane.ready()) return c.json({ ready: true });
    const waiting = dataPlane.modelStatuses().filter((s) => s.state !== "READY");
    const detail = waiting.map((s) => `${s.name}/${s.version} ${s.state}${s.reason ? `: ${s.reason}` : ""}`).join("; ");
    const reason = dataPlane.isDraining() ? dataPlane.notReadyReason() : detail || dataPlane.notReadyReason();
    return c.json({ ready: false, error: `not ready: ${reason}` }, 503);
  });
  app.get("/v2", (c) => c.json(dataPlane.metadata()));
  app.get("/v2/models", (c) => c.json({ models: dataPlane.registry.names(), states: dataPlane.modelStatuses() }));

  // Statistics before metadata: `/v2/models/stats` is not a model called "stats".
  app.get("/v2/models/stats", (c) => c.json(dataPlane.statistics()));
  const stats = (c: Context) => {
    const { name, version } = modelParams(c);
    return c.json(dataPlane.statistics(name, version));
  };
  app.get("/v2/models/:name/stats", stats);
  app.get("/v2/models/:name/versions/:version/stats", stats);

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
    markInference(c, { model: name, version, protocol: "v2" });
    const body = await readBody(c, options.maxRequestBytes);
    const headerLength = c.req.header(INFERENCE_HEADER_CONTENT_LENGTH);
    let request: InferenceRequest;
    if (headerLength === undefined) {
      request = toInferenceRequest(parseJson(body), name, version);
    } else {
      const { header, binary } = splitBinaryBody(body, headerLength);
      request = header.byteLength === 0
        ? toRawInferenceRequest(dataPlane.registry.findReady(name, version).model, binary, name, version)
        : toInferenceRequest(parseJson(header, "the JSON header"), name, version, binary);
    }
    if (options.async && prefersAsync(c)) {
      // The user: the ingress' header, else the request's user_id parameter.
      const header = c.get("userId");
      const fromBody = request.parameters?.user_id;
      if (header !== undefined && fromBody !== undefined && fromBody !== header) {
        throw new InferenceError(403, `parameter user_id does not match the authenticated user (the ${options.async.userHeader} header)`);
      }
      const given = header ?? fromBody;
      if (given === undefined) throw invalidInput(`no user: an asynchronous request needs the ${options.async.userHeader} header (set by the ingress) or the parameter user_id`);
      const record = await options.async.service.submit(request, { userId: checkUserId(given, "user_id"), inputBytes: body.byteLength });
      return acceptedResponse(c, record.id);
    }
    const response = await dataPlane.infer(request, { requestId: requestIdOf(c), protocol: "v2", userId: c.get("userId") });
    noteClassification(c, response.outputs);
    const { json, binary } = encodeInferenceResponse(response, binaryOutputNames(request, response));
    // Fresh header objects each time: Hono may keep and extend the one it is given.
    if (binary.length === 0) return c.body(json, 200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(json)) });
    const header = Buffer.from(json, "utf8");
    return c.body(Buffer.concat([header, ...binary]), 200, {
      "content-type": "application/octet-stream",
      "inference-header-content-length": String(header.byteLength),
    });
  };
  app.post("/v2/models/:name/infer", infer);
  app.post("/v2/models/:name/versions/:version/infer", infer);

  return app;
}
