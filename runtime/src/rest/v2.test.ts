import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { healthyLayout, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  repo = await writeRepository(healthyLayout());
  server = await startTestServer(repo, { maxRequestBytes: 64 * 1024 });
  url = server.url;
});

afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

const range = (n: number, f: (i: number) => number = (i) => i) => Array.from({ length: n }, (_, i) => f(i));

function simpleRequest(a: unknown = range(16), b: unknown = range(16, () => 1), extra: Record<string, unknown> = {}) {
  return {
    inputs: [
      { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: a },
      { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: b },
    ],
    ...extra,
  };
}

describe("health and server metadata", () => {
  it("answers live and ready once every model has loaded", async () => {
    expect(await getJson(`${url}/v2/health/live`)).toEqual({ status: 200, body: { live: true } });
    expect(await getJson(`${url}/v2/health/ready`)).toEqual({ status: 200, body: { ready: true } });
  });

  it("reports name, version and only the extensions it implements", async () => {
    const { status, body } = await getJson(`${url}/v2`);
    expect(status).toBe(200);
    expect(body).toEqual({ name: "inference-runtime", version: expect.stringMatching(/^\d+\.\d+\.\d+/), extensions: ["binary_tensor_data", "classification", "model_configuration", "model_repository", "statistics"] });
  });

  it("lists the models in the repository with their states, passing over folders without a model", async () => {
    const { status, body } = await getJson(`${url}/v2/models`);
    expect(status).toBe(200);
    expect(body.models).toContain("simple");
    expect(body.models).toContain("flat");
    expect(body.models).not.toContain("not_a_model");
    expect(body.states).toContainEqual({ name: "simple", version: "1", state: "READY" });
  });
});

describe("model metadata and readiness", () => {
  it("describes inputs and outputs with -1 for dynamic dimensions and the ONNX platform", async () => {
    const { status, body } = await getJson(`${url}/v2/models/simple`);
    expect(status).toBe(200);
    expect(body).toEqual({
      name: "simple",
      versions: ["1"],
      platform: "onnx_onnxv1",
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [-1, 16] },
        { name: "INPUT1", datatype: "INT32", shape: [-1, 16] },
      ],
      outputs: [
        { name: "OUTPUT0", datatype: "INT32", shape: [-1, 16] },
        { name: "OUTPUT1", datatype: "INT32", shape: [-1, 16] },
      ],
    });
  });

  it("reports settings (max batch size, labels, parameters) in metadata parameters", async () => {
    const { body } = await getJson(`${url}/v2/models/batched`);
    expect(body.parameters).toEqual({ owner: "tests", max_batch_size: 4, labels: ["a", "b"] });
  });

  it("answers metadata for a specific version", async () => {
    const { status, body } = await getJson(`${url}/v2/models/versioned/versions/2`);
    expect(status).toBe(200);
    expect(body.versions).toEqual(["2"]);
    expect((await getJson(`${url}/v2/models/versioned`)).body.versions).toEqual(["1", "2", "3"]);
  });

  it("answers model readiness, with and without a version", async () => {
    expect(await getJson(`${url}/v2/models/simple/ready`)).toEqual({ status: 200, body: { name: "simple", version: "1", ready: true } });
    expect((await getJson(`${url}/v2/models/versioned/versions/1/ready`)).body).toEqual({ name: "versioned", version: "1", ready: true });
  });

  it("is 404 for an unknown model or version, naming it", async () => {
    const unknown = await getJson(`${url}/v2/models/nosuchmodel`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toContain("nosuchmodel");
    const ready = await getJson(`${url}/v2/models/nosuchmodel/ready`);
    expect(ready.status).toBe(404);
    const version = await getJson(`${url}/v2/models/simple/versions/7`);
    expect(version.status).toBe(404);
    expect(version.body.error).toBe("Request for unknown model: 'simple' version 7 is not found (versions: 1)");
  });

  it("refuses model names that are not plain names", async () => {
    const res = await getJson(`${url}/v2/models/..%2F..%2Fetc`);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/invalid model name/);
    const version = await getJson(`${url}/v2/models/simple/versions/latest`);
    expect(version.status).toBe(400);
    expect(version.body.error).toMatch(/failed to get model version from specified version string/);
  });
});

describe("inference", () => {
  it("returns the sums and differences of simple, echoing the request id", async () => {
    const { status, body, headers } = await postJson(`${url}/v2/models/simple/infer`, simpleRequest(undefined, undefined, { id: "req-42" }));
    expect(status).toBe(200);
    expect(headers.get("content-type")).toMatch(/^application\/json/);
    expect(body).toEqual({
      model_name: "simple",
      model_version: "1",
      id: "req-42",
      outputs: [
        { name: "OUTPUT0", datatype: "INT32", shape: [1, 16], data: range(16, (i) => i + 1) },
        { name: "OUTPUT1", datatype: "INT32", shape: [1, 16], data: range(16, (i) => i - 1) },
      ],
    });
  });

  it("accepts nested row-major data as well as flat data", async () => {
    const nested = [range(8), range(8, (i) => i + 8)];
    const req = { inputs: [
      { name: "INPUT0", shape: [2, 16], datatype: "INT32", data: [[...nested[0]!, ...nested[1]!], range(16)] },
      { name: "INPUT1", shape: [2, 16], datatype: "INT32", data: [[range(16)], [range(16, () => 0)]] },
    ] };
    const { status, body } = await postJson(`${url}/v2/models/simple/infer`, req);
    expect(status).toBe(200);
    expect(body.outputs[0].shape).toEqual([2, 16]);
    expect(body.outputs[0].data).toEqual([...range(16, (i) => 2 * i), ...range(16)]);
  });

  it("returns only the requested outputs", async () => {
    const { status, body } = await postJson(`${url}/v2/models/simple/infer`, simpleRequest(undefined, undefined, { outputs: [{ name: "OUTPUT1" }] }));
    expect(status).toBe(200);
    expect(body.outputs.map((o: { name: string }) => o.name)).toEqual(["OUTPUT1"]);
  });

  it("selects the version in the URL and the newest loaded one otherwise", async () => {
    const req = { inputs: [{ name: "INPUT", shape: [2], datatype: "INT32", data: [10, 20] }] };
    for (const v of ["1", "2", "3"]) {
      const { body } = await postJson(`${url}/v2/models/versioned/versions/${v}/infer`, req);
      expect(body.model_version).toBe(v);
      expect(body.outputs[0].data).toEqual([10 + Number(v), 20 + Number(v)]);
    }
    const latest = await postJson(`${url}/v2/models/versioned/infer`, req);
    expect(latest.body.model_version).toBe("3");
  });

  it("loads only the latest version by default, as Triton's version policy does", async () => {
    const req = { inputs: [{ name: "INPUT", shape: [1], datatype: "INT32", data: [0] }] };
    const latest = await postJson(`${url}/v2/models/latest_only/infer`, req);
    expect(latest.body).toMatchObject({ model_version: "2", outputs: [{ data: [2] }] });
    const old = await postJson(`${url}/v2/models/latest_only/versions/1/infer`, req);
    expect(old.status).toBe(404);
    expect(old.body.error).toMatch(/^Request for unknown model: 'latest_only' version 1 is not found/);
  });

  it("serves the flat layout (models/<name>/model.onnx) as version 1", async () => {
    const { body } = await postJson(`${url}/v2/models/flat/infer`, { inputs: [{ name: "INPUT", shape: [1], datatype: "INT32", data: [1] }] });
    expect(body).toMatchObject({ model_version: "1", outputs: [{ data: [101] }] });
  });

  it("accepts bodies sent without a Content-Type, as text/plain, or form-encoded by curl -d", async () => {
    const body = JSON.stringify(simpleRequest());
    for (const contentType of [undefined, "text/plain", "application/x-www-form-urlencoded"]) {
      const res = await fetch(`${url}/v2/models/simple/infer`, {
        method: "POST",
        body: new TextEncoder().encode(body),
        headers: contentType ? { "content-type": contentType } : {},
      });
      expect(res.status).toBe(200);
    }
  });

  it("ignores unknown query parameters", async () => {
    const { status } = await postJson(`${url}/v2/models/simple/infer?foo=bar&trace=1`, simpleRequest());
    expect(status).toBe(200);
  });

  it("writes non-finite float outputs as null, keeping the JSON valid", async () => {
    const { status, body } = await postJson(`${url}/v2/models/reciprocal/infer`, { inputs: [{ name: "INPUT", shape: [3], datatype: "FP32", data: [0, 2, -0.5] }] });
    expect(status).toBe(200);
    expect(body.outputs[0].data).toEqual([null, 0.5, -2]);
  });

  it("renders FP16 outputs as JSON numbers", async () => {
    const { status, body } = await postJson(`${url}/v2/models/cast_fp16/infer`, { inputs: [{ name: "INPUT", shape: [3], datatype: "FP32", data: [1.5, -2, 65504] }] });
    expect(status).toBe(200);
    expect(body.outputs[0]).toEqual({ name: "HALF", datatype: "FP16", shape: [3], data: [1.5, -2, 65504] });
  });

  it("enforces max_batch_size from the model settings", async () => {
    const rows = (n: number) => ({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [n, 16], datatype: "INT32", data: range(16 * n) })) });
    expect((await postJson(`${url}/v2/models/batched/infer`, rows(4))).status).toBe(200);
    const tooMany = await postJson(`${url}/v2/models/batched/infer`, rows(5));
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error).toBe("input 'INPUT0': batch size 5 exceeds max_batch_size 4 of model 'batched'");
  });
});

describe("errors: status and message for each class of bad request", () => {
  const infer = (body: unknown, model = "simple") => postJson(`${url}/v2/models/${model}/infer`, body);

  it.each([
    ["malformed JSON", "{\"inputs\": [", /^malformed JSON in the request body: /],
    ["an empty body", "", /^the request body is empty/],
    ["a JSON array instead of an object", "[1,2]", /^invalid inference request: the request body must be a JSON object/],
    ["no inputs", { inputs: [] }, /^invalid inference request: inputs: must hold at least one input tensor/],
    ["an unknown datatype", { inputs: [{ name: "INPUT0", shape: [1, 16], datatype: "FLOAT32", data: range(16) }] }, /^invalid inference request: inputs\[0\]\.datatype: invalid datatype "FLOAT32"; expected one of BOOL/],
    ["a negative dimension", { inputs: [{ name: "INPUT0", shape: [1, -16], datatype: "INT32", data: range(16) }] }, /^invalid inference request: inputs\[0\]\.shape\[1\]: must not be negative/],
    ["a non-integer dimension", { inputs: [{ name: "INPUT0", shape: [1.5], datatype: "INT32", data: [1] }] }, /inputs\[0\]\.shape\[0\]: must be an integer/],
    ["a non-string id", simpleRequest(undefined, undefined, { id: 7 }), /^invalid inference request: id: must be a string/],
  ])("%s is a 400", async (_label, body, message) => {
    const res = await infer(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
  });

  it("element count that does not match the shape", async () => {
    const res = await infer(simpleRequest(range(15)));
    expect(res).toMatchObject({ status: 400, body: { error: "input 'INPUT0': shape [1,16] has 16 elements but the data has 15" } });
  });

  it("a shape that does not match the model", async () => {
    const req = { inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [2, 8], datatype: "INT32", data: range(16) })) };
    const res = await infer(req);
    expect(res).toMatchObject({ status: 400, body: { error: "input 'INPUT0': shape [2,8] does not match model 'simple' shape [-1,16]" } });
  });

  it("a datatype that does not match the model", async () => {
    const req = simpleRequest();
    req.inputs[1]!.datatype = "INT64";
    const res = await infer(req);
    expect(res).toMatchObject({ status: 400, body: { error: "input 'INPUT1': datatype INT64 does not match model 'simple', which expects INT32" } });
  });

  it("an unknown input", async () => {
    const req = simpleRequest();
    req.inputs.push({ name: "INPUT9", shape: [1, 16], datatype: "INT32", data: range(16) });
    const res = await infer(req);
    expect(res).toMatchObject({ status: 400, body: { error: "model 'simple' has no input named 'INPUT9'; its inputs are: INPUT0, INPUT1" } });
  });

  it("a missing input", async () => {
    const req = simpleRequest();
    req.inputs.pop();
    const res = await infer(req);
    expect(res).toMatchObject({ status: 400, body: { error: "missing input 'INPUT1' for model 'simple', which requires: INPUT0, INPUT1" } });
  });

  it("a duplicate input", async () => {
    const req = simpleRequest();
    req.inputs[1]!.name = "INPUT0";
    const res = await infer(req);
    expect(res).toMatchObject({ status: 400, body: { error: "input 'INPUT0' appears more than once in the request" } });
  });

  it("an unknown or duplicate requested output", async () => {
    const unknown = await infer(simpleRequest(undefined, undefined, { outputs: [{ name: "OUTPUT7" }] }));
    expect(unknown).toMatchObject({ status: 400, body: { error: "model 'simple' has no output named 'OUTPUT7'; its outputs are: OUTPUT0, OUTPUT1" } });
    const twice = await infer(simpleRequest(undefined, undefined, { outputs: [{ name: "OUTPUT0" }, { name: "OUTPUT0" }] }));
    expect(twice).toMatchObject({ status: 400, body: { error: "output 'OUTPUT0' is requested more than once" } });
  });

  it("a value of the wrong type or out of range for the datatype", async () => {
    const text = await infer(simpleRequest([...range(15), "x"]));
    expect(text).toMatchObject({ status: 400, body: { error: "input 'INPUT0': element 15 (\"x\") is not a valid INT32 value; expected an integer from -2147483648 to 2147483647" } });
    const big = await infer(simpleRequest([...range(15), 2 ** 31]));
    expect(big.status).toBe(400);
    expect(big.body.error).toMatch(/element 15 \(2147483648\) is not a valid INT32/);
  });

  it("FP16 or BF16 data in JSON, saying to use binary data", async () => {
    const res = await infer({ inputs: [{ name: "INPUT", shape: [1, 1], datatype: "FP16", data: [1] }] }, "identity_fp16");
    expect(res.status).toBe(400);
    expect(res.body.error).toBe("input 'INPUT': FP16 tensors cannot be sent as JSON numbers; send them as binary data (the binary_tensor_data extension)");
    const bf16 = await infer({ inputs: [{ name: "INPUT", shape: [1, 1], datatype: "BF16", data: [1] }] }, "identity_fp16");
    expect(bf16.body.error).toMatch(/^input 'INPUT': BF16 tensors cannot be sent as JSON/);
  });

  it("an unknown model is a 404 whatever the body", async () => {
    const res = await infer("{not json", "nosuchmodel");
    expect(res).toMatchObject({ status: 404, body: { error: "Request for unknown model: 'nosuchmodel' is not found" } });
  });

  it("a body over the configured limit is a 413", async () => {
    const huge = simpleRequest(range(16), range(16), { id: "x".repeat(70 * 1024) });
    const res = await infer(huge);
    expect(res.status).toBe(413);
    expect(res.body.error).toMatch(/exceeds the limit of 65536 bytes/);
  });

  it("an unknown route is a 404 with a JSON error", async () => {
    const res = await getJson(`${url}/v3/nothing`);
    expect(res).toEqual({ status: 404, body: { error: "no route for GET /v3/nothing" } });
  });

  it("an early answer (unknown model, bad name) leaves the keep-alive connection usable for the next request", async () => {
    const body = JSON.stringify({ id: "x".repeat(60_000) });
    let failures = 0;
    for (let i = 0; i < 60; i++) {
      try {
        await (await fetch(`${url}/v2/models/${i % 2 ? "..%2Fetc" : "nosuchmodel"}/infer`, { method: "POST", body })).text();
        await (await fetch(`${url}/v2/models/simple/infer`, { method: "POST", body: JSON.stringify(simpleRequest()) })).text();
      } catch {
        failures++;
      }
    }
    expect(failures).toBe(0);
  });

  it("keeps serving after every bad request", async () => {
    const { status } = await infer(simpleRequest());
    expect(status).toBe(200);
  });
});
