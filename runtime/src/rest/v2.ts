/**
 * Open Inference Protocol v2 over REST: translates the wire format into the
 * data plane's request type and back. No inference logic lives here.
 */
import { Hono, type Context } from "hono";
import { splitBinaryBody } from "../codecs/binary.js";
import { binaryOutputNames, encodeInferenceResponse, toRawInferenceRequest } from "../codecs/v2.js";
import { decodedToInferenceRequest, decodeV2Request, V2RequestDecoder, type V2DecoderOptions } from "../codecs/v2-decoder.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import type { InferenceRequest } from "../dataplane/types.js";
import type { LoadedModel } from "../backends/backend.js";
import { tritonModelConfig } from "../dataplane/model-config.js";
import { largestRequestFor } from "../admission/limits.js";
import { declaredLength, readBody, streamBody } from "./body.js";
import { modelParams } from "./params.js";
import { admitInference, markInference, noteClassification, requestIdOf } from "./request-context.js";
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

  // The model configuration extension: Triton's ModelConfig of the loaded version (dataplane/model-config.ts).
  const modelConfig = (c: Context) => {
    const { name, version } = modelParams(c);
    const entry = dataPlane.registry.findReady(name, version);
    return c.json(tritonModelConfig(name, entry.model, entry.settings));
  };
  app.get("/v2/models/:name/config", modelConfig);
  app.get("/v2/models/:name/versions/:version/config", modelConfig);

  /**
   * Reads and decodes the body: the one step between admission and the run. JSON, or a
   * binary body (Inference-Header-Content-Length) whose JSON header may be empty (raw mode).
   * JSON goes through the streaming tensor decoder (codecs/v2-decoder.ts) chunk by chunk as it
   * arrives: a hostile body is refused at its first element that cannot belong to its declared
   * datatype and shape, and a large valid one never holds the event loop for long. The model's
   * signature is checked afterwards by the data plane, as for every transport, so a mismatch
   * is counted (statistics, inference logger) the same way whatever carried it.
   */
  const readInferenceRequest = async (c: Context, name: string, version: string | undefined, model: () => LoadedModel) => {
    const decoderOptions: V2DecoderOptions = { byteLength: declaredLength(c) };
    const headerLength = c.req.header(INFERENCE_HEADER_CONTENT_LENGTH);
    if (headerLength === undefined) {
      const decoder = new V2RequestDecoder(decoderOptions);
      let bytes = 0;
      const streamed = await streamBody(c, options.maxRequestBytes, (chunk) => {
        bytes += chunk.byteLength;
        decoder.write(chunk);
      });
      if (streamed) return { request: decodedToInferenceRequest(decoder.end(), name, version), bodyBytes: bytes, raw: false };
      const body = await readBody(c, options.maxRequestBytes);
      return { request: decodedToInferenceRequest(decodeV2Request(body, { ...decoderOptions, byteLength: body.byteLength }), name, version), bodyBytes: body.byteLength, raw: false };
    }
    const body = await readBody(c, options.maxRequestBytes);
    const { header, binary } = splitBinaryBody(body, headerLength);
    // Raw mode (an empty JSON header): the body is the only input, and every output is answered binary, as Triton does.
    const raw = header.byteLength === 0;
    const request: InferenceRequest = raw
      ? toRawInferenceRequest(model(), binary, name, version)
      : decodedToInferenceRequest(decodeV2Request(header, { ...decoderOptions, byteLength: header.byteLength, what: "the JSON header" }), name, version, binary);
    return { request, bodyBytes: body.byteLength, raw };
  };

  /** Queued to run later (Prefer: respond-async): not admitted to the model now, only checked to exist. */
  const submitAsync = async (c: Context, name: string, version: string | undefined, service: AsyncInference, userHeader: string) => {
    dataPlane.registry.find(name, version);
    markInference(c, { model: name, version, protocol: "v2" });
    const { request, bodyBytes } = await readInferenceRequest(c, name, version, () => dataPlane.registry.findReady(name, version).model);
    // The user: the ingress' header, else the request's user_id parameter.
    const header = c.get("userId");
    const fromBody = request.parameters?.user_id;
    if (header !== undefined && fromBody !== undefined && fromBody !== header) {
      throw new InferenceError(403, `parameter user_id does not match the authenticated user (the ${userHeader} header)`);
    }
    const given = header ?? fromBody;
    if (given === undefined) throw invalidInput(`no user: an asynchronous request needs the ${userHeader} header (set by the ingress) or the parameter user_id`);
    const record = await service.submit(request, { userId: checkUserId(given, "user_id"), inputBytes: bodyBytes });
    return acceptedResponse(c, record.id);
  };

  const infer = async (c: Context) => {
    const { name, version } = modelParams(c);
    if (options.async && prefersAsync(c)) return submitAsync(c, name, version, options.async.service, options.async.userHeader);

    // 1. Admission, before any byte of the body is read: 404 for an unknown model, 503 (Retry-After)
    //    when it is not ready, busy or its batch queue is full; from here it counts as in flight.
    const admitted = admitInference(c, dataPlane, { model: name, version, protocol: "v2" }, "requested");
    try {
      // 2. Size: a body larger than the model's signature could need is a 413 at once.
      const length = declaredLength(c);
      const bound = largestRequestFor(admitted.entry);
      if (length !== undefined && bound !== undefined && bound < options.maxRequestBytes) {
        // A compressed body can be a little larger than what it inflates to.
        const encoded = (c.req.header("content-encoding") ?? "identity").trim().toLowerCase() !== "identity";
        const allowed = encoded ? Math.ceil(bound * 1.01) + 1024 : bound;
        if (length > allowed) {
          throw new InferenceError(413, `request body of ${length} bytes exceeds the largest request model '${name}' can take (${allowed} bytes)`);
        }
      }
      // 3. Read and decode the body (reading reserves what the body declares first).
      const { request, raw } = await readInferenceRequest(c, name, version, () => admitted.entry.model);
      // 4. Run it on the admitted version.
      const response = await dataPlane.infer(request, { requestId: requestIdOf(c), protocol: "v2", userId: c.get("userId") }, admitted);
      noteClassification(c, response.outputs);
      const { json, binary } = encodeInferenceResponse(response, binaryOutputNames(request, response, raw));
      // Fresh header objects each time: Hono may keep and extend the one it is given.
      // As Triton: a binary body (and its Inference-Header-Content-Length) only when some binary output has bytes.
      if (binary.every((b) => b.byteLength === 0)) return c.body(json, 200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(json)) });
      const header = Buffer.from(json, "utf8");
      return c.body(Buffer.concat([header, ...binary]), 200, {
        "content-type": "application/octet-stream",
        "inference-header-content-length": String(header.byteLength),
      });
    } finally {
      admitted.release();
    }
  };
  app.post("/v2/models/:name/infer", infer);
  app.post("/v2/models/:name/versions/:version/infer", infer);

  return app;
}
