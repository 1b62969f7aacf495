/**
 * Triton's load with files over REST (`file:<path>` parameters, base64, as tritonclient.http's
 * load_model(config=..., files=...) sends them): written into the repository, then served.
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { addConstantModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;

const io = (prefix: string) => [0, 1].map((i) => ({ name: `${prefix}${i}`, data_type: "TYPE_INT32", dims: [16] }));
const simpleConfig = (name: string) => JSON.stringify({ name, backend: "onnxruntime", max_batch_size: 8, input: io("INPUT"), output: io("OUTPUT") });
const b64 = (bytes: Uint8Array | string) => Buffer.from(bytes).toString("base64");
const simpleRequest = { inputs: ["INPUT0", "INPUT1"].map((name, i) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(i + 2) })) };
const addRequest = { inputs: [{ name: "INPUT", shape: [1], datatype: "INT32", data: [1] }] };
const load = (name: string, parameters: Record<string, unknown>, url = server.url) => postJson(`${url}/v2/repository/models/${name}/load`, { parameters });
/** Hidden entries that no model's link points at: what a failed or partial upload would leave behind. */
const leftovers = async () => {
  const entries = await readdir(repo);
  const targets = await Promise.all(entries.filter((e) => !e.startsWith(".")).map((e) => readlink(join(repo, e)).catch(() => undefined)));
  return entries.filter((e) => e.startsWith(".") && !targets.includes(e));
};

beforeAll(async () => {
  repo = await writeRepository({ "adder/1/model.onnx": addConstantModel(10) });
  server = await startTestServer(repo);
});
afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

describe("load with model files (REST)", () => {
  it("writes the files into the repository as the model's directory and serves the model", async () => {
    const res = await load("uploaded", { config: simpleConfig("uploaded"), "file:1/model.onnx": b64(buildSimple()) });
    expect(res).toMatchObject({ status: 200, body: { name: "uploaded", load: true } });
    const infer = await postJson(`${server.url}/v2/models/uploaded/infer`, simpleRequest);
    expect(infer.status).toBe(200);
    expect(infer.body.outputs[0].data).toEqual(Array(16).fill(5));
    expect((await getJson(`${server.url}/v2/models/uploaded`)).body.parameters).toEqual({ max_batch_size: 8 });
    // On disk: the version file and the settings the configuration mapped to; nothing half-written beside it.
    expect(await readFile(join(repo, "uploaded/1/model.onnx"))).toEqual(Buffer.from(buildSimple()));
    expect(JSON.parse(await readFile(join(repo, "uploaded/model-settings.json"), "utf8"))).toMatchObject({ max_batch_size: 8 });
    expect(await leftovers()).toEqual([]);
  });

  it("replaces a model's directory, honouring the configuration's default_model_filename", async () => {
    const config = JSON.stringify({ name: "adder", default_model_filename: "graph.onnx" });
    expect((await load("adder", { config, "file:2/graph.onnx": b64(addConstantModel(30)) })).status).toBe(200);
    expect((await postJson(`${server.url}/v2/models/adder/infer`, addRequest)).body).toMatchObject({ model_version: "2", outputs: [{ data: [31] }] });
    expect((await readdir(join(repo, "adder"))).sort()).toEqual(["2", "model-settings.json"]);
  });

  it("leaves the repository as it was when the files do not load, and the model keeps serving", async () => {
    const res = await load("adder", { config: JSON.stringify({ default_model_filename: "graph.onnx" }), "file:2/graph.onnx": b64("not an ONNX graph") });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^failed to load model 'adder': version 2: .*; the versions already serving keep serving$/);
    expect((await postJson(`${server.url}/v2/models/adder/infer`, addRequest)).body.outputs[0].data).toEqual([31]);
    expect((await readdir(join(repo, "adder"))).sort()).toEqual(["2", "model-settings.json"]);
    expect(await leftovers()).toEqual([]);
  });

  it("needs the config parameter with files, as Triton does", async () => {
    const res = await load("nocfg", { "file:1/model.onnx": b64(buildSimple()) });
    expect(res).toMatchObject({ status: 400, body: { error: "parameters.config is required with model files (file:1/model.onnx): the configuration to serve them with, as Triton requires" } });
    expect(await readdir(repo)).not.toContain("nocfg");
  });

  it("refuses paths outside the layouts the repository reads", async () => {
    for (const key of ["file:../x", "file:1/../../x", "file:/etc/passwd", "file:1/sub/model.onnx", "file:v1/model.onnx", "file:model-settings.json", "file:1\\model.onnx"]) {
      const res = await load("bad_path", { config: "{}", [key]: b64("x") });
      expect(res.status, key).toBe(400);
      expect(res.body.error, key).toContain(`parameter '${key}': `);
    }
    expect(await readdir(repo)).not.toContain("bad_path");
    expect(await leftovers()).toEqual([]);
  });

  it("refuses content that is not base64, unknown parameters and Triton configurations it cannot honour", async () => {
    expect((await load("bad", { config: "{}", "file:1/model.onnx": "not base64!" })).body.error).toBe("parameter 'file:1/model.onnx': the file content is not valid base64");
    expect((await load("bad", { config: "{}", "file:1/model.onnx": 42 })).status).toBe(400);
    expect((await load("adder", { colour: "blue" })).body.error).toBe("unrecognized load parameter 'colour'; expected config or file:<path>");
    const seq = await load("bad", { config: JSON.stringify({ sequence_batching: {} }), "file:1/model.onnx": b64(buildSimple()) });
    expect(seq.status).toBe(400);
    expect(seq.body.error).toMatch(/^invalid parameters\.config: sequence_batching: not supported by this server/);
    expect(await readdir(repo)).not.toContain("bad");
    expect(await getJson(`${server.url}/v2/health/live`)).toMatchObject({ status: 200, body: { live: true } });
  });

  it("bounds the number of files", async () => {
    const parameters: Record<string, string> = { config: "{}" };
    for (let i = 0; i < 129; i++) parameters[`file:1/f${i}`] = "";
    expect((await load("many", parameters)).body.error).toBe("129 model files in one load request; at most 128");
  });
});

describe("load with model files where the repository cannot take them", () => {
  it("answers 403 when the repository API is disabled", async () => {
    const disabled = await startTestServer(repo, { repositoryApi: "disabled" });
    try {
      const res = await load("other", { config: simpleConfig("other"), "file:1/model.onnx": b64(buildSimple()) }, disabled.url);
      expect(res).toMatchObject({ status: 403, body: { error: "model load and unload are disabled on this server (REPOSITORY_API=disabled)" } });
    } finally {
      await disabled.close();
    }
  });

  it("answers 403 for KServe's single model directory, which is not a repository", async () => {
    const dir = await writeRepository({ "model.onnx": addConstantModel(1) });
    const single = await startTestServer(dir, { modelName: "adder", modelDir: dir });
    try {
      const res = await load("adder", { config: "{}", "file:1/model.onnx": b64(buildSimple()) }, single.url);
      expect(res.status).toBe(403);
      expect(res.body.error).toMatch(/^model files cannot be loaded: this server serves the single model directory .*, not a writable model repository$/);
    } finally {
      await single.close();
      await removeRepository(dir);
    }
  });
});
