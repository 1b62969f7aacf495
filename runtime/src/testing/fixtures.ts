/**
 * Test model repositories, built fresh in a temp directory with the same ONNX
 * builder as models/: identity models for every datatype ONNX Runtime serves,
 * versioned models, and deliberately broken ones.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { model, node, tensor, valueInfo, type ElemType } from "../../../models/build/onnx.js";
import { buildSimple } from "../../../models/build/simple.js";
import { buildSlowMlp, type SlowMlpSpec } from "../../../models/build/slow.js";
import type { Datatype } from "../tensor/datatypes.js";

/** Every V2 datatype ONNX Runtime's JavaScript API can feed, with its ONNX element type. */
export const SERVED_DATATYPES: [Datatype, ElemType][] = [
  ["BOOL", "BOOL"], ["UINT8", "UINT8"], ["UINT16", "UINT16"], ["UINT32", "UINT32"], ["UINT64", "UINT64"],
  ["INT8", "INT8"], ["INT16", "INT16"], ["INT32", "INT32"], ["INT64", "INT64"],
  ["FP16", "FLOAT16"], ["FP32", "FLOAT"], ["FP64", "DOUBLE"], ["BYTES", "STRING"],
];

export function identityModel(type: ElemType): Uint8Array {
  return model({
    name: `identity_${type}`,
    nodes: [node("Identity", ["INPUT"], ["OUTPUT"])],
    inputs: [valueInfo("INPUT", type, ["batch", "n"])],
    outputs: [valueInfo("OUTPUT", type, ["batch", "n"])],
  });
}

/** OUTPUT = INPUT + version, so a response shows which version answered. */
export function addConstantModel(constant: number): Uint8Array {
  return model({
    name: `add_${constant}`,
    nodes: [node("Add", ["INPUT", "C"], ["OUTPUT"])],
    inputs: [valueInfo("INPUT", "INT32", ["n"])],
    outputs: [valueInfo("OUTPUT", "INT32", ["n"])],
    initializers: [tensor("C", "INT32", [1], [constant])],
  });
}

/** FP32 in, FP16 and FP32 out: half-precision outputs rendered as JSON numbers. */
export function castToHalfModel(): Uint8Array {
  return model({
    name: "cast_fp16",
    nodes: [node("Cast", ["INPUT"], ["HALF"], { to: 10 }), node("Identity", ["INPUT"], ["SAME"])],
    inputs: [valueInfo("INPUT", "FLOAT", ["n"])],
    outputs: [valueInfo("HALF", "FLOAT16", ["n"]), valueInfo("SAME", "FLOAT", ["n"])],
  });
}

/** FP32 in, 1/x out: division by zero gives Infinity, which JSON cannot carry. */
export function reciprocalModel(): Uint8Array {
  return model({
    name: "reciprocal",
    nodes: [node("Reciprocal", ["INPUT"], ["OUTPUT"])],
    inputs: [valueInfo("INPUT", "FLOAT", ["n"])],
    outputs: [valueInfo("OUTPUT", "FLOAT", ["n"])],
  });
}

export type RepositoryLayout = Record<string, Uint8Array | string>;

/** Writes files (path → bytes or text) under a fresh temp directory and returns its path. */
export async function writeRepository(layout: RepositoryLayout): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "model-repo-"));
  for (const [path, content] of Object.entries(layout)) {
    const target = join(root, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content);
  }
  return root;
}

export const removeRepository = (root: string) => rm(root, { recursive: true, force: true });

/** The repository most server tests use: everything here loads. */
export function healthyLayout(): RepositoryLayout {
  const layout: RepositoryLayout = {
    "simple/1/model.onnx": buildSimple(),
    "flat/model.onnx": addConstantModel(100),
    "versioned/1/model.onnx": addConstantModel(1),
    "versioned/2/model.onnx": addConstantModel(2),
    "versioned/3/model.onnx": addConstantModel(3),
    "versioned/model-settings.json": JSON.stringify({ version_policy: { all: {} } }),
    "latest_only/1/model.onnx": addConstantModel(1),
    "latest_only/2/model.onnx": addConstantModel(2),
    "batched/1/model.onnx": buildSimple(),
    "batched/model-settings.json": JSON.stringify({ max_batch_size: 4, labels: ["a", "b"], parameters: { owner: "tests" } }),
    "cast_fp16/1/model.onnx": castToHalfModel(),
    "reciprocal/1/model.onnx": reciprocalModel(),
    "not_a_model/README.md": "helper folders without a model are passed over",
  };
  for (const [datatype, elem] of SERVED_DATATYPES) layout[`identity_${datatype.toLowerCase()}/1/model.onnx`] = identityModel(elem);
  return layout;
}

/** A slow MLP (models/build/slow.ts: BENCH_MLP_20MS, BENCH_MLP_100MS) as repository files under `name`, served with one intra-op thread as measured; never time a test against it (use testing/gated-backend.ts). */
export function slowMlpModel(spec: SlowMlpSpec, name = "slow_mlp"): RepositoryLayout {
  return {
    [`${name}/1/model.onnx`]: buildSlowMlp(spec),
    [`${name}/model-settings.json`]: JSON.stringify({ onnxruntime: { intra_op_num_threads: 1 } }),
  };
}

/** A raw-mode request body for a slow MLP: `rows` rows of `spec.input` floats. */
export function slowMlpInput(spec: SlowMlpSpec, rows = 1): Uint8Array {
  return new Uint8Array(Float32Array.from({ length: rows * spec.input }, (_, i) => Math.sin(i)).buffer);
}

/**
 * A deliberately slow model: `layers` square MatMuls sharing one weight matrix.
 * With input [rows, width] each run costs rows × width² × 2 × layers flops, so a
 * test can hold a request in flight for a predictable while without sleeping.
 */
export function slowModel(layers = 64, width = 512): Uint8Array {
  // Scaled near-identity weights keep values finite however many layers there are.
  const weights = new Float32Array(width * width);
  for (let i = 0; i < width; i++) weights[i * width + i] = 1;
  const nodes = Array.from({ length: layers }, (_, i) => node("MatMul", [i === 0 ? "INPUT" : `h${i - 1}`, "W"], [i === layers - 1 ? "OUTPUT" : `h${i}`]));
  return model({
    name: "slow",
    nodes,
    inputs: [valueInfo("INPUT", "FLOAT", ["batch", width])],
    outputs: [valueInfo("OUTPUT", "FLOAT", ["batch", width])],
    initializers: [tensor("W", "FLOAT", [width, width], weights)],
  });
}

/** A raw-mode request body for slowModel(): `rows` rows of ones (about 1 ms of compute per row on 2 cores). */
export function slowInput(rows: number, width = 512): Uint8Array {
  return new Uint8Array(new Float32Array(rows * width).fill(1).buffer);
}
