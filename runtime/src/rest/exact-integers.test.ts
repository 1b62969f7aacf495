/**
 * INT64 and UINT64 values beyond 2^53 sent as JSON numbers, as tritonclient.http
 * (binary_data=False) and KServe's REST client send them, come back exact on every
 * path that carries JSON: V2 REST, the V2 JSON header of a binary request, KServe V1,
 * CloudEvents (binary and structured mode) and, for comparison, gRPC. Responses are
 * checked as text: a JSON parser in the test would round them itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { startTestServer, type RunningServer } from "../testing/server.js";
import { REQUEST_EVENT_TYPE } from "../cloudevents/constants.js";

let repo: string;
let server: RunningServer;
let client: GrpcTestClient;

beforeAll(async () => {
  repo = await writeRepository(healthyLayout());
  server = await startTestServer(repo, { protocol: "grpc" });
  client = grpcClient(grpcTarget(server.url));
});
afterAll(async () => {
  client?.close();
  await server?.close();
  await removeRepository(repo);
});

/** Per datatype: the values (2^53+1 and a large negative or the largest unsigned) as JSON number text. */
const VALUES = {
  INT64: { text: "9007199254740993,-4611686018427387907", exact: [2n ** 53n + 1n, -(2n ** 62n) - 3n] },
  UINT64: { text: "9007199254740993,18446744073709551615", exact: [2n ** 53n + 1n, 2n ** 64n - 1n] },
} as const;
type Wide = keyof typeof VALUES;
const WIDE: Wide[] = ["INT64", "UINT64"];
const model = (datatype: Wide) => `identity_${datatype.toLowerCase()}`;
const v2Body = (datatype: Wide, extra = "") => `{"inputs":[{"name":"INPUT","datatype":"${datatype}","shape":[1,2],"data":[${VALUES[datatype].text}]}]${extra}}`;

async function postText(path: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}${path}`, { method: "POST", body, headers });
  return { status: res.status, headers: res.headers, text: Buffer.from(await res.arrayBuffer()) };
}

describe("64-bit integers beyond 2^53 as JSON numbers are exact on every path", () => {
  for (const datatype of WIDE) {
    const { text } = VALUES[datatype];

    it(`${datatype}: V2 REST JSON in and out`, async () => {
      const res = await postText(`/v2/models/${model(datatype)}/infer`, v2Body(datatype));
      expect(res.status).toBe(200);
      expect(res.text.toString()).toContain(`"data":[${text}]`);
    });

    it(`${datatype}: the JSON header of a binary request, answered as JSON and as binary`, async () => {
      const header = Buffer.from(v2Body(datatype));
      const json = await postText(`/v2/models/${model(datatype)}/infer`, header, { "Inference-Header-Content-Length": String(header.byteLength) });
      expect(json.status).toBe(200);
      expect(json.text.toString()).toContain(`"data":[${text}]`);

      const asked = Buffer.from(v2Body(datatype, ',"outputs":[{"name":"OUTPUT","parameters":{"binary_data":true}}]'));
      const binary = await postText(`/v2/models/${model(datatype)}/infer`, asked, { "Inference-Header-Content-Length": String(asked.byteLength) });
      expect(binary.status).toBe(200);
      const length = Number(binary.headers.get("inference-header-content-length"));
      const bytes = binary.text.subarray(length);
      const values = datatype === "INT64" ? new BigInt64Array(new Uint8Array(bytes).buffer) : new BigUint64Array(new Uint8Array(bytes).buffer);
      expect(Array.from(values)).toEqual(VALUES[datatype].exact);
    });

    it(`${datatype}: KServe V1 :predict, instances in, predictions out`, async () => {
      const res = await postText(`/v1/models/${model(datatype)}:predict`, `{"instances":[[${text}]]}`, { "content-type": "application/json" });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(res.text.toString()).toBe(`{"predictions":[[${text}]]}`);
    });

    it(`${datatype}: a CloudEvent in binary mode and in structured mode`, async () => {
      const attributes = { specversion: "1.0", id: `exact-${datatype}`, source: "/tests/exact", type: REQUEST_EVENT_TYPE };
      const binary = await postText(`/v2/models/${model(datatype)}/infer`, v2Body(datatype), {
        ...Object.fromEntries(Object.entries(attributes).map(([k, v]) => [`ce-${k}`, v])),
        "content-type": "application/json",
      });
      expect(binary.status).toBe(200);
      expect(binary.text.toString()).toContain(`"data":[${text}]`);

      const envelope = `${JSON.stringify({ ...attributes, datacontenttype: "application/json" }).slice(0, -1)},"data":${v2Body(datatype)}}`;
      const structured = await postText(`/v2/models/${model(datatype)}/infer`, envelope, { "content-type": "application/cloudevents+json" });
      expect(structured.status).toBe(200);
      expect(structured.headers.get("content-type")).toMatch(/^application\/cloudevents\+json/);
      expect(structured.text.toString()).toContain(`"data":[${text}]`);
      // Still one valid JSON envelope, the reply's data an object.
      expect(JSON.parse(structured.text.toString()).data.outputs[0].name).toBe("OUTPUT");
    });

    it(`${datatype}: a CloudEvent's V1 data ({"instances": ...})`, async () => {
      const res = await postText(`/v1/models/${model(datatype)}:predict`, `{"instances":[[${text}]]}`, {
        "ce-specversion": "1.0", "ce-id": "v1-exact", "ce-source": "/tests/exact", "ce-type": REQUEST_EVENT_TYPE, "content-type": "application/json",
      });
      expect(res.status).toBe(200);
      expect(res.text.toString()).toBe(`{"predictions":[[${text}]]}`);
    });

    it(`${datatype}: gRPC typed contents, decimal text both ways`, async () => {
      const field = datatype === "INT64" ? "int64_contents" : "uint64_contents";
      const values = VALUES[datatype].exact.map(String);
      const { response } = await client.call("ModelInfer", {
        model_name: model(datatype),
        inputs: [{ name: "INPUT", datatype, shape: [1, 2], contents: { [field]: values } }],
        parameters: { raw_output_contents: { bool_param: false } },
      });
      expect(response.outputs[0].contents[field]).toEqual(values);
    });
  }

  it("a value JSON.parse could not hold is refused when out of range, never wrapped", async () => {
    const res = await postText(`/v1/models/identity_int64:predict`, `{"instances":[[9223372036854775809]]}`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text.toString()).error).toBe("input 'INPUT': element 0 (9223372036854775809) is not a valid INT64 value; expected an integer from -2^63 to 2^63-1");
  });

  it("FP64 inputs take such numbers as JSON.parse does (the nearest double)", async () => {
    const res = await postText(`/v1/models/identity_fp64:predict`, `{"instances":[[9007199254740993, 0.5]]}`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text.toString())).toEqual({ predictions: [[9007199254740992, 0.5]] });
  });
});
