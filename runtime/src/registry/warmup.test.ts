/**
 * Warm-up: one inference per model version before READY, on zeros and empty
 * strings of the declared shape; MODEL_WARMUP=false or a model's
 * `"warmup": false` skips it; a model that refuses the warm-up input still
 * serves, with a warning in the log.
 */
import { pino, type Logger } from "pino";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { model, node, valueInfo } from "../../../models/build/onnx.js";
import { buildSimple } from "../../../models/build/simple.js";
import { identityModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";
import { warmupInputs } from "../backends/warmup-inputs.js";

describe("warm-up inputs", () => {
  it("are zeros, or empty strings, of the declared shape with each variable dimension 1", () => {
    const inputs = warmupInputs([
      { name: "a", datatype: "FP32", shape: [-1, 3] },
      { name: "b", datatype: "BYTES", shape: [2, -1] },
      { name: "c", datatype: "INT64", shape: [] },
      { name: "d", datatype: "BOOL", shape: [-1] },
    ]);
    expect(inputs.map((t) => [t.name, t.shape])).toEqual([["a", [1, 3]], ["b", [2, 1]], ["c", []], ["d", [1]]]);
    expect(inputs[0]!.data).toEqual(new Float32Array(3));
    expect(inputs[1]!.data).toEqual(["", ""]);
    expect(inputs[2]!.data).toEqual(new BigInt64Array(1));
    expect(inputs[3]!.data).toEqual(new Uint8Array(1));
  });
});

/** Y = reshape(X, S) with allowzero: S = [0] is no shape for two elements, so the warm-up fails. */
function reshapeModel(): Uint8Array {
  return model({
    name: "reshape",
    nodes: [node("Reshape", ["X", "S"], ["Y"], { allowzero: 1 })],
    inputs: [valueInfo("X", "FLOAT", [2]), valueInfo("S", "INT64", [1])],
    outputs: [valueInfo("Y", "FLOAT", ["n"])],
  });
}

function capture(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

let server: RunningServer | undefined;
let repo: string | undefined;

afterEach(async () => {
  await server?.close();
  if (repo) await removeRepository(repo);
  server = undefined;
  repo = undefined;
});

async function start(layout: Record<string, Uint8Array | string>, config: Record<string, unknown> = {}) {
  repo = await writeRepository(layout);
  const { logger, lines } = capture();
  server = await startTestServer(repo, config, { logger });
  const loaded = (name: string) => lines.find((l) => l.msg === "model loaded" && l.model === name);
  return { lines, loaded };
}

describe("warm-up at load", () => {
  it("runs once per model before READY, and is not counted in the statistics", async () => {
    const { loaded } = await start({ "simple/1/model.onnx": buildSimple(), "strings/1/model.onnx": identityModel("STRING") });
    expect(loaded("simple")).toMatchObject({ warmup_ms: expect.any(Number) });
    expect(loaded("strings")).toMatchObject({ warmup_ms: expect.any(Number) });
    const stats = await getJson(`${server!.url}/v2/models/simple/stats`);
    expect(stats.body.model_stats[0]).toMatchObject({ inference_count: 0, execution_count: 0 });
  });

  it("is skipped with MODEL_WARMUP=false, or for a model whose settings say \"warmup\": false", async () => {
    const off = await start({ "simple/1/model.onnx": buildSimple() }, { warmup: false });
    expect(off.loaded("simple")).toBeDefined();
    expect(off.loaded("simple")).not.toHaveProperty("warmup_ms");
    await server!.close();
    await removeRepository(repo!);
    server = undefined;

    const perModel = await start({
      "cold/1/model.onnx": buildSimple(),
      "cold/model-settings.json": JSON.stringify({ warmup: false }),
      "warm/1/model.onnx": buildSimple(),
    });
    expect(perModel.loaded("cold")).not.toHaveProperty("warmup_ms");
    expect(perModel.loaded("warm")).toHaveProperty("warmup_ms");
  });

  it("logs a warm-up the model refuses, and serves the model anyway", async () => {
    const { lines, loaded } = await start({ "reshape/1/model.onnx": reshapeModel() });
    expect(lines.find((l) => l.level === 40 && l.model === "reshape")).toMatchObject({
      msg: expect.stringMatching(/^warm-up inference failed; the model serves anyway/),
      error: expect.stringMatching(/could not run on this input/),
    });
    expect(loaded("reshape")).not.toHaveProperty("warmup_ms");
    expect((await getJson(`${server!.url}/v2/models/reshape/ready`)).status).toBe(200);
    const res = await postJson(`${server!.url}/v2/models/reshape/infer`, {
      inputs: [
        { name: "X", datatype: "FP32", shape: [2], data: [1.5, 2.5] },
        { name: "S", datatype: "INT64", shape: [1], data: [2] },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.outputs[0]).toMatchObject({ name: "Y", shape: [2], data: [1.5, 2.5] });
  });
});
