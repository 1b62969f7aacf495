/**
 * sklearn classifiers converted by skl2onnx (models/build/sklearn.ts builds them as skl2onnx
 * does): their ZipMap output, a sequence of maps ONNX Runtime's Node.js API cannot return, is
 * served as the FP32 [rows, classes] probability tensor, its class labels in the model metadata;
 * other non-tensor outputs are reported, never silently dropped. Through the real server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IRIS_LABELS, removeRepository, writeRepository, zipMapLayout } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";
import type { InstancePool } from "./instances.js";

let repo: string;
let server: RunningServer;

beforeAll(async () => {
  repo = await writeRepository(zipMapLayout());
  server = await startTestServer(repo, { strictReadiness: false });
});

afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
  [-1, 2, -3, 4],
  [0, 0, 0, 0],
];

async function classify(model: string, rows = ROWS, outputs?: string[]) {
  const body: Record<string, unknown> = { inputs: [{ name: "X", datatype: "FP32", shape: [rows.length, rows[0]!.length], data: rows.flat() }] };
  if (outputs) body.outputs = outputs.map((name) => ({ name }));
  return postJson(`${server.url}/v2/models/${model}/infer`, body);
}

/** Each row's probabilities sum to 1 and the label is the class of the largest. */
function expectConsistent(response: { outputs: Array<{ name: string; datatype: string; shape: number[]; data: unknown[] }> }, labels: readonly (string | number)[], rows: number) {
  const label = response.outputs.find((o) => o.name === "output_label")!;
  const probability = response.outputs.find((o) => o.name === "output_probability")!;
  expect(probability).toMatchObject({ datatype: "FP32", shape: [rows, labels.length] });
  expect(label.shape).toEqual([rows]);
  const p = probability.data as number[];
  for (let r = 0; r < rows; r++) {
    const row = p.slice(r * labels.length, (r + 1) * labels.length);
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    for (const v of row) expect(v).toBeGreaterThanOrEqual(0);
    expect(label.data[r]).toEqual(labels[row.indexOf(Math.max(...row))]);
  }
}

describe("ZipMap outputs (sklearn classifiers via skl2onnx)", () => {
  it("are listed in the metadata as FP32 [-1, classes] beside output_label, with the class labels", async () => {
    const { status, body } = await getJson(`${server.url}/v2/models/lr_int`);
    expect(status).toBe(200);
    expect(body.inputs).toEqual([{ name: "X", datatype: "FP32", shape: [-1, 4] }]);
    expect(body.outputs).toEqual([
      { name: "output_label", datatype: "INT64", shape: [-1] },
      { name: "output_probability", datatype: "FP32", shape: [-1, 3] },
    ]);
    expect(body.parameters).toEqual({ labels: ["0", "1", "2"] });
    expect((await getJson(`${server.url}/v2/models/lr_str`)).body).toMatchObject({
      outputs: [
        { name: "output_label", datatype: "BYTES", shape: [-1] },
        { name: "output_probability", datatype: "FP32", shape: [-1, 3] },
      ],
      parameters: { labels: IRIS_LABELS },
    });
    expect((await getJson(`${server.url}/v2/models/lr_bin`)).body).toMatchObject({
      outputs: [{ name: "output_label" }, { name: "output_probability", datatype: "FP32", shape: [-1, 2] }],
      parameters: { labels: ["0", "1"] },
    });
  });

  it("answer probabilities that sum to 1 per row, whose largest is the label (integer classes)", async () => {
    const { status, body } = await classify("lr_int");
    expect(status).toBe(200);
    expectConsistent(body, [0, 1, 2], ROWS.length);
  });

  it("answer with string class labels", async () => {
    const { status, body } = await classify("lr_str");
    expect(status).toBe(200);
    expect(body.outputs.find((o: { name: string }) => o.name === "output_label").datatype).toBe("BYTES");
    expectConsistent(body, IRIS_LABELS, ROWS.length);
  });

  it("answer the binary form (LOGISTIC, no Normalizer)", async () => {
    const { status, body } = await classify("lr_bin");
    expect(status).toBe(200);
    expectConsistent(body, [0, 1], ROWS.length);
  });

  it("keep negative and large int64 class labels exact", async () => {
    expect((await getJson(`${server.url}/v2/models/lr_wide`)).body.parameters).toEqual({ labels: ["-1", "7", "300000000000"] });
    const { status, body } = await classify("lr_wide");
    expect(status).toBe(200);
    expectConsistent(body, [-1, 7, 300_000_000_000], ROWS.length);
  });

  it("serve a graph of ai.onnx.ml operators only (the default domain imported for the rewrite)", async () => {
    expect((await getJson(`${server.url}/v2/models/ml_only`)).body.parameters).toEqual({ labels: ["3", "4", "5"] });
    const { status, body } = await classify("ml_only", [[1, 2], [-2, 0.5]]);
    expect(status).toBe(200);
    expectConsistent(body, [3, 4, 5], 2);
  });

  it("can be asked for alone, on every instance", async () => {
    const pool = server.dataPlane.registry.findReady("lr_int").model as InstancePool;
    expect(pool.instances).toHaveLength(2);
    // The second instance rewrites the graph on its own: wait until it serves too (16 runs then reach both).
    for (let i = 0; i < 200_000 && pool.liveInstances() < 2; i++) await new Promise((r) => setImmediate(r));
    expect(pool.liveInstances()).toBe(2);
    const answers = await Promise.all(Array.from({ length: 16 }, () => classify("lr_int", ROWS, ["output_probability"])));
    for (const { status, body } of answers) {
      expect(status).toBe(200);
      expect(body.outputs.map((o: { name: string }) => o.name)).toEqual(["output_probability"]);
    }
  });

  it("leave labels from the settings in front of the graph's", async () => {
    expect((await getJson(`${server.url}/v2/models/lr_named`)).body.parameters).toEqual({ labels: IRIS_LABELS });
  });
});

describe("other non-tensor outputs", () => {
  it("are served without, but named with their type in the metadata, and refused by name with the reason", async () => {
    const { body } = await getJson(`${server.url}/v2/models/sequence`);
    expect(body.outputs).toEqual([{ name: "OUTPUT", datatype: "FP32", shape: [-1] }]);
    expect(body.parameters).toEqual({ unserved_outputs: [{ name: "PAIR", type: "seq(tensor(float))" }] });
    const request = { inputs: [{ name: "INPUT", datatype: "FP32", shape: [2], data: [1, 2] }] };
    const all = await postJson(`${server.url}/v2/models/sequence/infer`, request);
    expect(all.status).toBe(200);
    expect(all.body.outputs).toEqual([{ name: "OUTPUT", datatype: "FP32", shape: [2], data: [1, 2] }]);
    const named = await postJson(`${server.url}/v2/models/sequence/infer`, { ...request, outputs: [{ name: "PAIR" }] });
    expect(named.status).toBe(501);
    expect(named.body.error).toBe("model 'sequence' output 'PAIR' is seq(tensor(float)), which this runtime cannot serve (tensors only); its outputs are: OUTPUT");
  });

  it("refuse a model when none of its outputs can be served, or when its settings name one", async () => {
    const { body } = await getJson(`${server.url}/v2/models`);
    const state = (name: string) => body.states.find((s: { name: string }) => s.name === name);
    expect(state("sequence_only")).toMatchObject({ state: "UNAVAILABLE" });
    expect(state("sequence_only").reason).toContain("the model has no tensor outputs: 'PAIR' (seq(tensor(float))) cannot be served");
    expect(state("sequence_override")).toMatchObject({ state: "UNAVAILABLE" });
    expect(state("sequence_override").reason).toContain("settings name output 'PAIR', which is not a tensor and cannot be served");
  });
});
