/**
 * CloudEvents in and out against the real server: events built with the SDK
 * (binary and structured mode), POSTed with fetch, replies parsed with the
 * SDK. Covers POST /, the V2 and V1 endpoints, the model selection rule,
 * every failure status, and CE_TYPE / CE_SOURCE / CE_MERGE.
 */
import { CloudEvent, HTTP } from "cloudevents";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { removeRepository, writeRepository } from "../testing/fixtures.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";
import { REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "./constants.js";
import { post, replyEvent, simpleRequest, type Reply } from "./testing.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let repo: string;
let single: string;
let server: RunningServer;
let custom: RunningServer;

beforeAll(async () => {
  const sentiment = await readFile(join(import.meta.dirname, "../../../models/sentiment/1/model.onnx"));
  repo = await writeRepository({ "sentiment/1/model.onnx": sentiment, "simple/1/model.onnx": buildSimple(), "broken/1/model.onnx": "garbage" });
  single = await writeRepository({ "sentiment/1/model.onnx": sentiment });
  [server, custom] = await Promise.all([
    startTestServer(repo),
    startTestServer(single, { ceType: "com.example.sentiment.scored", ceSource: "/inference/sentiment", ceMerge: true }),
  ]);
});
afterAll(async () => {
  await Promise.all([server?.close(), custom?.close()]);
  await Promise.all([removeRepository(repo), removeRepository(single)]);
});

const requestEvent = (data: unknown, extra: Record<string, unknown> = {}) =>
  new CloudEvent<unknown>({ type: REQUEST_EVENT_TYPE, source: "/tests/cloudevents", datacontenttype: "application/json", data, ...extra });

/** The reply's CE headers only (binary mode): an error reply must have none. */
const ceHeaders = (reply: Reply) => Object.keys(reply.headers).filter((h) => h.startsWith("ce-"));

function expectReplyTo(request: CloudEvent<unknown>, reply: Reply, model: string) {
  expect(reply.status, reply.body).toBe(200);
  const event = replyEvent(reply);
  expect(event.specversion).toBe("1.0");
  expect(event.type).toBe(RESPONSE_EVENT_TYPE);
  expect(event.source).toBe(`io.kserve.inference.${model}`);
  expect(event.id).toMatch(UUID);
  expect(event.id).not.toBe(request.id);
  expect(Date.now() - Date.parse(event.time!)).toBeLessThan(60_000);
  expect(event.datacontenttype).toBe("application/json");
  expect(event.causationid).toBe(request.id);
  expect(event.correlationid).toBe(request.id);
  expect(event.model).toBe(model);
  expect(event.modelversion).toBe("1");
  return event;
}

describe("POST / (a Trigger's subscriber URL)", () => {
  it("binary mode in, binary mode out; the model from the 'model' extension", async () => {
    const request = requestEvent(simpleRequest(3, 1, "req-7"), { model: "simple" });
    const reply = await post(server.url, HTTP.binary(request));
    expect(reply.headers["content-type"]).toMatch(/^application\/json/);
    expect(reply.headers["ce-specversion"]).toBe("1.0");
    const event = expectReplyTo(request, reply, "simple");
    expect(event.data).toMatchObject({ model_name: "simple", model_version: "1", id: "req-7" });
    const outputs = Object.fromEntries((event.data.outputs as { name: string; data: number[] }[]).map((o) => [o.name, o.data]));
    expect(outputs).toEqual({ OUTPUT0: Array(16).fill(4), OUTPUT1: Array(16).fill(2) });
  });

  it("structured mode in, structured mode out; the model from the subject", async () => {
    const request = requestEvent(simpleRequest(5, 5), { subject: "simple" });
    const reply = await post(server.url, HTTP.structured(request));
    expect(reply.headers["content-type"]).toMatch(/^application\/cloudevents\+json/);
    expect(ceHeaders(reply)).toEqual([]);
    const event = expectReplyTo(request, reply, "simple");
    expect(event.data.outputs[0]).toEqual({ name: "OUTPUT0", datatype: "INT32", shape: [1, 16], data: Array(16).fill(10) });
    expect(event.data.id).toBeUndefined();
  });

  it("the 'model' extension wins over the subject, and 'modelversion' picks the version", async () => {
    const request = requestEvent({ text: "What a wonderful, moving film." }, { model: "sentiment", modelversion: "1", subject: "simple" });
    const reply = await post(server.url, HTTP.binary(request));
    const event = expectReplyTo(request, reply, "sentiment");
    expect(event.data.predictions[0].label).toBe("positive");
  });

  it("a plain {\"text\": ...} for a text model gets V1-style predictions, one per text", async () => {
    const one = await post(server.url, HTTP.binary(requestEvent({ text: "Terrible, boring and far too long." }, { model: "sentiment" })));
    expect(replyEvent(one).data).toEqual({ predictions: [{ probabilities: expect.any(Array), label: "negative" }] });
    const many = await post(server.url, HTTP.structured(requestEvent({ text: ["Loved every minute.", "Awful service, never again."] }, { model: "sentiment" })));
    expect(replyEvent(many).data.predictions.map((p: { label: string }) => p.label)).toEqual(["positive", "negative"]);
  });

  it("a V1 body ({\"instances\": [...]}) gets V1 predictions", async () => {
    const reply = await post(server.url, HTTP.binary(requestEvent({ instances: ["Great food and friendly staff."] }, { model: "sentiment" })));
    expect(reply.status, reply.body).toBe(200);
    expect(replyEvent(reply).data.predictions[0].label).toBe("positive");
  });

  it("the only model loaded needs no naming", async () => {
    const request = requestEvent({ text: "A delight from start to finish." }, { type: REQUEST_EVENT_TYPE });
    const reply = await post(custom.url, HTTP.binary(request));
    expect(reply.status, reply.body).toBe(200);
    expect(replyEvent(reply).model).toBe("sentiment");
  });

  it("with several models loaded and none named, the event is refused and the rule explained", async () => {
    const reply = await post(server.url, HTTP.binary(requestEvent(simpleRequest(1, 1))));
    expect(reply.status).toBe(400);
    expect(reply.json.error).toContain("3 models are loaded (broken, sentiment, simple)");
    expect(reply.json.error).toContain("'model' extension or its subject");
  });

  it("a model named by the subject that is not loaded is a 404 that says where the name came from", async () => {
    const reply = await post(server.url, HTTP.structured(requestEvent(simpleRequest(1, 1), { subject: "ghost" })));
    expect(reply.status).toBe(404);
    expect(reply.json.error).toMatch(/^Request for unknown model: 'ghost' is not found \(named by the event's subject\)$/);
  });

  it("takes only the request type, so an unfiltered Trigger cannot feed replies back", async () => {
    const other = await post(server.url, HTTP.binary(requestEvent(simpleRequest(1, 1), { model: "simple", type: "com.example.other" })));
    expect(other.status).toBe(400);
    expect(other.json.error).toContain(`POST / takes events of type '${REQUEST_EVENT_TYPE}'`);
    const echo = await post(server.url, HTTP.binary(requestEvent(simpleRequest(1, 1), { model: "simple", type: RESPONSE_EVENT_TYPE })));
    expect(echo.status).toBe(400);
    expect(echo.json.error).toContain("reply type");
  });

  it("a POST / that is not a CloudEvent is told what to send", async () => {
    const reply = await postJson(server.url, simpleRequest(1, 1));
    expect(reply.status).toBe(400);
    expect(reply.body.error).toContain("POST / takes CloudEvents");
  });
});

describe("CloudEvents on the infer endpoints", () => {
  it("/v2/models/{name}/infer in binary mode, any event type", async () => {
    const request = requestEvent(simpleRequest(2, 7, "v2-binary"), { type: "com.example.anything" });
    const reply = await post(`${server.url}/v2/models/simple/infer`, HTTP.binary(request));
    const event = expectReplyTo(request, reply, "simple");
    expect(event.data.id).toBe("v2-binary");
  });

  it("/v2/models/{name}/versions/{v}/infer in structured mode", async () => {
    const request = requestEvent(simpleRequest(2, 7), { type: "com.example.anything" });
    const reply = await post(`${server.url}/v2/models/simple/versions/1/infer`, HTTP.structured(request));
    expect(reply.headers["content-type"]).toMatch(/^application\/cloudevents\+json/);
    expect(expectReplyTo(request, reply, "simple").data.outputs[1].data).toEqual(Array(16).fill(-5));
  });

  it("/v1/models/{name}:predict in both modes", async () => {
    for (const serialize of [HTTP.binary, HTTP.structured]) {
      const request = requestEvent({ instances: ["This movie was fantastic!", "Not worth the ticket."] });
      const reply = await post(`${server.url}/v1/models/sentiment:predict`, serialize(request));
      const event = expectReplyTo(request, reply, "sentiment");
      expect(event.data.predictions.map((p: { label: string }) => p.label)).toEqual(["positive", "negative"]);
    }
  });

  it("/v1 takes 'inputs' as V1 rows, and {\"text\": ...} too", async () => {
    const rows = await post(`${server.url}/v1/models/sentiment:predict`, HTTP.binary(requestEvent({ inputs: ["Superb."] })));
    expect(replyEvent(rows).data.predictions[0].label).toBe("positive");
    const text = await post(`${server.url}/v2/models/sentiment/infer`, HTTP.binary(requestEvent({ text: "Dreadful." })));
    expect(replyEvent(text).data.predictions[0].label).toBe("negative");
  });

  it("leaves plain REST requests to the REST transports, answered as before", async () => {
    const reply = await postJson(`${server.url}/v2/models/simple/infer`, simpleRequest(1, 2, "rest"));
    expect(reply.status).toBe(200);
    expect(reply.body.id).toBe("rest");
    expect([...reply.headers.keys()].filter((h) => h.startsWith("ce-"))).toEqual([]);
  });

  it("echoes the request id and accepts leading whitespace and a charset in binary mode", async () => {
    const request = requestEvent(simpleRequest(1, 1), { model: "simple" });
    const message = HTTP.binary(request);
    const reply = await post(server.url, { headers: message.headers, body: `\n  ${message.body as string}` }, { "content-type": "Application/JSON;charset=UTF-8", "x-request-id": "trace-42" });
    expect(reply.status, reply.body).toBe(200);
    expect(reply.headers["x-request-id"]).toBe("trace-42");
  });

  it("accepts a gzip-compressed event body", async () => {
    const { gzipSync } = await import("node:zlib");
    const request = requestEvent(simpleRequest(1, 1), { model: "simple" });
    const message = HTTP.binary(request);
    const res = await fetch(server.url, { method: "POST", headers: { ...(message.headers as Record<string, string>), "content-encoding": "gzip" }, body: gzipSync(message.body as string) });
    expect(res.status).toBe(200);
  });
});

describe("failures are JSON errors with the status the Broker acts on, never a 200", () => {
  const binaryHeaders = { "ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "/tests", "ce-type": REQUEST_EVENT_TYPE, "content-type": "application/json", "ce-model": "simple" };
  const send = (path: string, headers: Record<string, string>, body: string) => post(`${server.url}${path}`, { headers, body });

  async function expectError(reply: Reply, status: number, message: string | RegExp) {
    expect(reply.status, reply.body).toBe(status);
    expect(reply.headers["content-type"]).toMatch(/^application\/json/);
    expect(ceHeaders(reply)).toEqual([]);
    if (typeof message === "string") expect(reply.json.error).toContain(message);
    else expect(reply.json.error).toMatch(message);
  }

  it("400 naming the missing attribute, in binary mode", async () => {
    const { "ce-source": _, ...noSource } = binaryHeaders;
    await expectError(await send("/", noSource, JSON.stringify(simpleRequest(1, 1))), 400, "CloudEvent is missing required attribute 'source' (binary mode: header ce-source)");
    // A request with only some ce-* headers is an invalid event, not a REST request.
    await expectError(await send("/v2/models/simple/infer", { "ce-id": "x", "content-type": "application/json" }, JSON.stringify(simpleRequest(1, 1))), 400, "missing required attributes 'specversion', 'source', 'type'");
  });

  it("400 naming the missing attribute, in structured mode", async () => {
    const envelope = { specversion: "1.0", id: "e-2", type: REQUEST_EVENT_TYPE, model: "simple", data: simpleRequest(1, 1) };
    await expectError(await send("/", { "content-type": "application/cloudevents+json" }, JSON.stringify(envelope)), 400, "CloudEvent is missing required attribute 'source'");
    await expectError(await send("/", { "content-type": "application/cloudevents+json" }, JSON.stringify({ ...envelope, source: "/t", id: "" })), 400, "missing required attribute 'id'");
  });

  it("400 for other invalid events: specversion, malformed envelope or data, no data, bad extension", async () => {
    await expectError(await send("/", { ...binaryHeaders, "ce-specversion": "0.3" }, JSON.stringify(simpleRequest(1, 1))), 400, "unsupported CloudEvents specversion \"0.3\"");
    await expectError(await send("/", { "content-type": "application/cloudevents+json" }, "{not json"), 400, "malformed JSON in the structured CloudEvent");
    await expectError(await send("/", binaryHeaders, '{"inputs": ['), 400, "malformed JSON in the event data");
    await expectError(await send("/", binaryHeaders, ""), 400, "the event has no data");
    await expectError(await send("/", binaryHeaders, "[1, 2]"), 400, "must be a JSON object");
    await expectError(await send("/", { ...binaryHeaders, "ce-model": "../etc" }, JSON.stringify(simpleRequest(1, 1))), 400, "'model' extension is not a model name");
    await expectError(await send("/", { ...binaryHeaders, "ce-Bad-Name": "x" }, JSON.stringify(simpleRequest(1, 1))), 400, "invalid CloudEvent");
  });

  it("400 for an invalid inference request, with the message the REST path gives", async () => {
    const bad = { inputs: [{ name: "INPUT9", datatype: "INT32", shape: [1, 16], data: Array(16).fill(1) }] };
    const rest = await postJson(`${server.url}/v2/models/simple/infer`, bad);
    expect(rest.status).toBe(400);
    await expectError(await send("/", binaryHeaders, JSON.stringify(bad)), 400, rest.body.error);
    const restSchema = await postJson(`${server.url}/v2/models/simple/infer`, { inputs: "nope" });
    await expectError(await send("/v2/models/simple/infer", binaryHeaders, JSON.stringify({ inputs: "nope" })), 400, restSchema.body.error);
    const restV1 = await postJson(`${server.url}/v1/models/sentiment:predict`, { instances: "nope" });
    await expectError(await send("/v1/models/sentiment:predict", binaryHeaders, JSON.stringify({ instances: "nope" })), 400, restV1.body.error);
    await expectError(await send("/", binaryHeaders, JSON.stringify({ text: "hello" })), 400, "needs a model with one BYTES input");
    await expectError(await send("/", { ...binaryHeaders, "ce-model": "sentiment" }, JSON.stringify({ text: [] })), 400, "'text' must be a string or a non-empty list of strings");
  });

  it("400 for binary data of any kind: the binary tensor extension, octet-stream, data_base64, binary_data_size", async () => {
    await expectError(await send("/", { ...binaryHeaders, "inference-header-content-length": "10" }, JSON.stringify(simpleRequest(1, 1))), 400, "binary tensor data (Inference-Header-Content-Length) is not valid event data");
    await expectError(await send("/", { ...binaryHeaders, "content-type": "application/octet-stream" }, "\u0001\u0002"), 400, "not valid event data");
    const envelope = { specversion: "1.0", id: "e-3", source: "/t", type: REQUEST_EVENT_TYPE, model: "simple", data_base64: "AAEC" };
    await expectError(await send("/", { "content-type": "application/cloudevents+json" }, JSON.stringify(envelope)), 400, "data_base64");
    const binaryInput = { inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1, 16], parameters: { binary_data_size: 64 } }] };
    await expectError(await send("/", binaryHeaders, JSON.stringify(binaryInput)), 400, "binary tensor data is not valid event data");
  });

  it("404 for an unknown model, by path or by extension", async () => {
    await expectError(await send("/v2/models/ghost/infer", binaryHeaders, JSON.stringify(simpleRequest(1, 1))), 404, "Request for unknown model: 'ghost' is not found");
    await expectError(await send("/v1/models/ghost:predict", binaryHeaders, JSON.stringify({ instances: [1] })), 404, "Request for unknown model: 'ghost' is not found");
    await expectError(await send("/", { ...binaryHeaders, "ce-model": "ghost" }, JSON.stringify(simpleRequest(1, 1))), 404, "(named by the event's 'model' extension)");
    await expectError(await send("/v2/models/simple/versions/9/infer", binaryHeaders, JSON.stringify(simpleRequest(1, 1))), 404, "Request for unknown model: 'simple' version 9 is not found");
  });

  it("503 for a model that is not ready (the Broker retries)", async () => {
    await expectError(await send("/", { ...binaryHeaders, "ce-model": "broken" }, JSON.stringify(simpleRequest(1, 1))), 503, "model 'broken' version 1 is not ready");
    await expectError(await send("/v2/models/broken/infer", binaryHeaders, JSON.stringify(simpleRequest(1, 1))), 503, "not ready");
    await expectError(await send("/v1/models/broken:predict", binaryHeaders, JSON.stringify({ instances: [1] })), 503, "not ready");
  });

  it("415 for batched mode and for structured formats other than JSON", async () => {
    const batch = JSON.stringify([{ specversion: "1.0", id: "1", source: "/t", type: REQUEST_EVENT_TYPE, data: simpleRequest(1, 1) }]);
    await expectError(await send("/", { "content-type": "application/cloudevents-batch+json" }, batch), 415, "batched CloudEvents (application/cloudevents-batch+json) are not supported");
    await expectError(await send("/v2/models/simple/infer", { "content-type": "application/cloudevents-batch+json" }, batch), 415, "one event per request");
    await expectError(await send("/", { "content-type": "application/cloudevents+avro" }, "x"), 415, "must be application/cloudevents+json");
    await expectError(await send("/", { ...binaryHeaders, "content-type": "text/csv" }, "1,2"), 415, "cannot carry an inference request");
  });

  it("400 for the reply's own type on any endpoint (loop guard)", async () => {
    await expectError(await send("/v2/models/simple/infer", { ...binaryHeaders, "ce-type": RESPONSE_EVENT_TYPE }, JSON.stringify(simpleRequest(1, 1))), 400, "cannot loop");
  });
});

describe("CE_TYPE, CE_SOURCE and CE_MERGE", () => {
  it("override the reply's type and source, and merge the request's extensions without overwriting the reply's own", async () => {
    const request = requestEvent(
      { text: "An absolute joy." },
      { subject: "sentiment", tenant: "acme", priority: 3, correlationid: "flow-1", causationid: "forged", model: "sentiment", source: "/upstream" },
    );
    for (const serialize of [HTTP.binary, HTTP.structured]) {
      const reply = await post(custom.url, serialize(request));
      expect(reply.status, reply.body).toBe(200);
      const event = replyEvent(reply);
      expect(event.type).toBe("com.example.sentiment.scored");
      expect(event.source).toBe("/inference/sentiment");
      expect(event.tenant).toBe("acme");
      expect(String(event.priority)).toBe("3");
      expect(event.subject).toBe("sentiment");
      expect(event.correlationid).toBe("flow-1");
      expect(event.causationid).toBe(request.id);
      expect(event.id).not.toBe(request.id);
      expect(event.data.predictions[0].label).toBe("positive");
    }
  });

  it("without CE_MERGE, request extensions stay behind (correlationid still carries over)", async () => {
    const request = requestEvent(simpleRequest(1, 1), { model: "simple", tenant: "acme", correlationid: "flow-2" });
    const event = replyEvent(await post(server.url, HTTP.binary(request)));
    expect(event.tenant).toBeUndefined();
    expect(event.subject).toBeUndefined();
    expect(event.correlationid).toBe("flow-2");
  });

  it("the custom reply type is refused as a request (loop guard follows CE_TYPE)", async () => {
    const reply = await post(`${custom.url}/v2/models/sentiment/infer`, HTTP.binary(requestEvent({ text: "x" }, { type: "com.example.sentiment.scored" })));
    expect(reply.status).toBe(400);
  });
});

describe("metrics", () => {
  it("label event inferences with protocol=\"cloudevent\"", async () => {
    await post(server.url, HTTP.binary(requestEvent(simpleRequest(1, 1), { model: "simple" })));
    const text = await server.metrics.registry.metrics();
    expect(text).toMatch(/inference_server_requests_total\{model="simple",version="1",protocol="cloudevent",status_code="200"\} \d+/);
  });
});
