/**
 * INT64 and UINT64 values beyond 2^53 are exact through asynchronous inference,
 * as they are synchronously (runtime/src/rest/exact-integers.test.ts): a request
 * queued with `Prefer: respond-async` to an identity model answers
 * GET /api/v1/requests/{id} with the very digits it was sent, never rounded, in
 * process (embedded PGlite, and PostgreSQL) and through the results collector (a
 * Broker's reply event posted to POST /api/v1/results with RESULTS_TOKEN). The
 * store keeps the queued request's inputs and the response exactly, PostgreSQL
 * and PGlite alike. Answers are checked as text: a JSON parser in the test would
 * round them itself.
 */
import { CloudEvent, HTTP } from "cloudevents";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJsonExact, stringifyExact } from "../codecs/json-exact.js";
import { encodeInferenceRequest, toInferenceRequest } from "../codecs/v2.js";
import { EXTENSIONS, RESPONSE_EVENT_TYPE } from "../cloudevents/constants.js";
import { Sink, type ReceivedRequest } from "../cloudevents/testing.js";
import type { InferenceRequest } from "../dataplane/types.js";
import { identityModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { startPostgres, type TestPostgres } from "../testing/postgres.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import { PgliteStore } from "./store/pglite.js";
import { PostgresStore } from "./store/postgres.js";
import { deliverReply, deliverToWorker, getFrom, request, TEST_RESULTS_TOKEN, type HttpResult } from "./testing.js";
import type { RequestStore } from "./types.js";

/**
 * Per datatype: values beyond 2^53 as JSON number text, and what they are. Some a double
 * cannot hold (2^53+1, 2^63-1, 2^64-1); some it holds exactly (-2^63, 2^60, 2^63, 2^64-2048),
 * which JSON.stringify would write in its shortest form, another integer ("-9223372036854776000").
 */
const VALUES = {
  INT64: {
    text: "9007199254740993,-9223372036854775808,9223372036854775807,-4611686018427387907,1152921504606846976,-7",
    exact: [2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n, -(2n ** 62n) - 3n, 2n ** 60n, -7n],
  },
  UINT64: {
    text: "9007199254740993,18446744073709551615,9223372036854775808,18446744073709549568,18446744073709551557,1",
    exact: [2n ** 53n + 1n, 2n ** 64n - 1n, 2n ** 63n, 2n ** 64n - 2048n, 2n ** 64n - 59n, 1n],
  },
} as const;
type Wide = keyof typeof VALUES;
const WIDE: Wide[] = ["INT64", "UINT64"];
const model = (datatype: Wide) => `identity_${datatype.toLowerCase()}`;
const v2Body = (datatype: Wide) => `{"inputs":[{"name":"INPUT","datatype":"${datatype}","shape":[1,6],"data":[${VALUES[datatype].text}]}]}`;

let pg: TestPostgres;
let repo: string;

beforeAll(async () => {
  [pg, repo] = await Promise.all([startPostgres(), writeRepository({ "identity_int64/1/model.onnx": identityModel("INT64"), "identity_uint64/1/model.onnx": identityModel("UINT64") })]);
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  if (repo) await removeRepository(repo);
});

/** Queues a V2 request (Prefer: respond-async); its id. */
async function submit(url: string, datatype: Wide, user: string): Promise<string> {
  const res = await request(`${url}/v2/models/${model(datatype)}/infer`, {
    method: "POST",
    headers: { "content-type": "application/json", prefer: "respond-async", "x-user-id": user },
    body: v2Body(datatype),
  });
  expect(res.status, res.body).toBe(202);
  return res.json.request_id as string;
}

/** GET /api/v1/requests/{id} until it is final (polled, no timing asserted): the answer's text. */
async function finalText(url: string, id: string): Promise<string> {
  for (;;) {
    const res = await getFrom(`${url}/api/v1/requests/${id}`);
    expect(res.status, res.body).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    if (res.json.status === "succeeded" || res.json.status === "failed") return res.body;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The status answer holds the exact digits, as the synchronous answer does. */
async function expectExact(url: string, datatype: Wide, text: string): Promise<void> {
  expect(JSON.parse(text)).toMatchObject({ status: "succeeded", model: model(datatype) });
  expect(text).toContain(`"data":[${VALUES[datatype].text}]`);
  const sync = await request(`${url}/v2/models/${model(datatype)}/infer`, { method: "POST", headers: { "content-type": "application/json" }, body: v2Body(datatype) });
  expect(sync.status, sync.body).toBe(200);
  expect(sync.body).toContain(`"data":[${VALUES[datatype].text}]`);
}

describe("the store keeps 64-bit integers exact, PostgreSQL and PGlite alike", () => {
  const stores: Array<[string, () => Promise<RequestStore>]> = [
    ["PGlite", () => PgliteStore.create()],
    ["PostgreSQL", () => PostgresStore.create({ connectionString: pg.url })],
  ];
  for (const [name, open] of stores) {
    it(`${name}: the queued request's inputs and the response come back with the digits they were written with`, async () => {
      const store = await open();
      try {
        await store.migrate();
        for (const datatype of WIDE) {
          const exact = VALUES[datatype].exact;
          const data = datatype === "INT64" ? BigInt64Array.from(exact) : BigUint64Array.from(exact);
          const inference: InferenceRequest = { modelName: model(datatype), inputs: [{ name: "INPUT", datatype, shape: [1, 6], data }] };
          // As service.submit stores it: the "queue" encoding, wide integers as decimal strings.
          const id = `${name}-${datatype}`;
          const { record } = await store.createRequest(
            { id, userId: "exact", model: model(datatype), inputBytes: 1, tokens: 1, request: JSON.parse(encodeInferenceRequest(inference, "queue")) as unknown },
            new Date(0),
          );
          for (const stored of [record, await store.getRequest(id)]) {
            const back = toInferenceRequest(stored!.request, model(datatype), undefined);
            expect(Array.from(back.inputs[0]!.data as BigInt64Array | BigUint64Array)).toEqual(exact);
          }
          // The response as the collector and the in-process worker have it: parsed by parseJsonExact, BigInt for the
          // integers a double cannot hold, numbers for those it holds exactly.
          const text = `{"model_name":"${model(datatype)}","outputs":[{"name":"OUTPUT","datatype":"${datatype}","shape":[1,6],"data":[${VALUES[datatype].text}]}]}`;
          const response = parseJsonExact(Buffer.from(text), "the response");
          const done = await store.complete(id, { status: "succeeded", response });
          expect(done?.changed).toBe(true);
          for (const finished of [done!.record, await store.getRequest(id)]) {
            expect(finished!.status).toBe("succeeded");
            expect(stringifyExact(finished!.response)).toContain(`"data":[${VALUES[datatype].text}]`);
          }
        }
      } finally {
        await store.close();
      }
    }, 60_000);
  }
});

describe("in process (no Broker): GET /api/v1/requests/{id} answers the exact digits", () => {
  const setups: Array<[string, () => Record<string, unknown>]> = [
    ["embedded PGlite", () => ({})],
    ["PostgreSQL", () => ({ databaseUrl: pg.url })],
  ];
  for (const [name, config] of setups) {
    it(`${name}: INT64 and UINT64 beyond 2^53, in and out`, async () => {
      const server = await startTestServer(repo, { asyncInference: true, ...config() });
      try {
        for (const datatype of WIDE) {
          const id = await submit(server.url, datatype, `inproc-${datatype.toLowerCase()}`);
          await expectExact(server.url, datatype, await finalText(server.url, id));
        }
      } finally {
        await server.close();
      }
    }, 60_000);
  }
});

describe("through the results collector (Broker mode): the reply event's exact digits are what GET answers", () => {
  let broker: Sink;
  let server: RunningServer;
  let url: string;

  beforeAll(async () => {
    broker = await Sink.start();
    server = await startTestServer(repo, { asyncInference: true, databaseUrl: pg.url, asyncSink: broker.url, resultsToken: TEST_RESULTS_TOKEN });
    url = server.url;
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await broker?.close();
  });

  async function published(id: string): Promise<ReceivedRequest> {
    for (;;) {
      const found = broker.received.find((r) => r.event.id === id);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  for (const datatype of WIDE) {
    it(`${datatype}: the published request event, the worker's reply, the collector, the status answer`, async () => {
      const id = await submit(url, datatype, `broker-${datatype.toLowerCase()}`);
      const event = await published(id);
      // The queued request's inputs travel exactly (decimal strings in the event data).
      const queued = toInferenceRequest(JSON.parse(event.body) as unknown, model(datatype), undefined);
      expect(Array.from(queued.inputs[0]!.data as BigInt64Array | BigUint64Array)).toEqual(VALUES[datatype].exact);
      const reply = await deliverToWorker(url, event);
      expect(reply.status, reply.body).toBe(200);
      expect(reply.body).toContain(`"data":[${VALUES[datatype].text}]`);
      const collected = await deliverReply(url, reply);
      expect(collected.json).toEqual({ request_id: id, recorded: true, known: true });
      await expectExact(url, datatype, await finalText(url, id));
    }, 60_000);

    for (const mode of ["binary", "structured"] as const) {
      it(`${datatype}: a results event (${mode} mode) with JSON numbers beyond 2^53 is recorded exactly`, async () => {
        const id = await submit(url, datatype, `event-${mode}-${datatype.toLowerCase()}`);
        const running = await deliverToWorker(url, await published(id));
        expect(running.status, running.body).toBe(200);
        // The same result as the platform's reply, written by the test: the data as JSON text, numbers unquoted.
        const data = `{"model_name":"${model(datatype)}","model_version":"1","outputs":[{"name":"OUTPUT","datatype":"${datatype}","shape":[1,6],"data":[${VALUES[datatype].text}]}]}`;
        const attributes = { specversion: "1.0", id: `reply-${id}`, source: "/tests/exact", type: RESPONSE_EVENT_TYPE, [EXTENSIONS.correlationId]: id, [EXTENSIONS.resultsToken]: TEST_RESULTS_TOKEN, [EXTENSIONS.attempt]: "1" };
        let message: HttpResult;
        if (mode === "binary") {
          const headers: Record<string, string> = { "content-type": "application/json" };
          for (const [k, v] of Object.entries(attributes)) headers[`ce-${k}`] = v;
          message = { status: 200, headers, body: data, json: undefined };
        } else {
          const envelope = HTTP.structured(new CloudEvent<unknown>({ ...attributes, datacontenttype: "application/json", data: {} }));
          const body = `${JSON.stringify({ ...attributes, datacontenttype: "application/json" }).slice(0, -1)},"data":${data}}`;
          message = { status: 200, headers: envelope.headers as Record<string, string>, body, json: undefined };
        }
        const collected = await deliverReply(url, message);
        expect(collected.status, collected.body).toBe(200);
        expect(collected.json).toEqual({ request_id: id, recorded: true, known: true });
        const text = await finalText(url, id);
        expect(text).toContain(`"data":[${VALUES[datatype].text}]`);
        expect(JSON.parse(text)).toMatchObject({ status: "succeeded" });
      }, 60_000);
    }
  }
});
