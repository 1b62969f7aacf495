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
import { buildScores, buildSimpleInt8, buildSimpleString } from "../../../models/build/simple-typed.js";
import { buildSlowMlp, type SlowMlpSpec } from "../../../models/build/slow.js";
import { buildLinearClassifier, buildMlOnlyClassifier, buildSequenceOutputModel } from "../../../models/build/sklearn.js";
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

/** The class names of tritonClientLayout()'s `classifier` (index-aligned with its SCORES). */
export const CLASSIFIER_LABELS = ["cat", "dog", "bird", "fish"];

/**
 * The models Triton's stock client examples and the Python client tests (runtime/src/clients/) use,
 * shaped as Triton's QA models are: `simple`, `simple_string` and `simple_int8` (max_batch_size 8,
 * like Triton's, so their config reports dims [16]), INT64 and UINT64 identities (values beyond
 * 2^53), and `classifier` (FP32 SCORES = INPUT, [-1,4], with CLASSIFIER_LABELS) for the
 * classification extension. `npx tsx models/build/examples-repository.ts DIR` writes the same files.
 */
export function tritonClientLayout(): RepositoryLayout {
  const batched = JSON.stringify({ max_batch_size: 8 });
  return {
    "simple/1/model.onnx": buildSimple(),
    "simple/model-settings.json": batched,
    "simple_string/1/model.onnx": buildSimpleString(),
    "simple_string/model-settings.json": batched,
    "simple_int8/1/model.onnx": buildSimpleInt8(),
    "simple_int8/model-settings.json": batched,
    "identity_int64/1/model.onnx": identityModel("INT64"),
    "identity_uint64/1/model.onnx": identityModel("UINT64"),
    "classifier/1/model.onnx": buildScores(CLASSIFIER_LABELS.length),
    "classifier/model-settings.json": JSON.stringify({ max_batch_size: 8, labels: CLASSIFIER_LABELS }),
  };
}

/** The class labels of zipMapLayout()'s string-labelled classifier. */
export const IRIS_LABELS = ["setosa", "versicolor", "virginica"];

/**
 * sklearn classifiers as skl2onnx exports them, with ZipMap outputs (models/build/sklearn.ts):
 * integer, string, binary and int64-extreme class labels, one with ai.onnx.ml operators only, one
 * whose settings name the labels; and graphs with a sequence output, which cannot be served.
 */
export function zipMapLayout(): RepositoryLayout {
  return {
    "lr_int/1/model.onnx": buildLinearClassifier({ labels: [0, 1, 2], features: 4 }),
    "lr_int/model-settings.json": JSON.stringify({ instance_count: 2 }),
    "lr_str/1/model.onnx": buildLinearClassifier({ labels: IRIS_LABELS, features: 4 }),
    "lr_bin/1/model.onnx": buildLinearClassifier({ labels: [0, 1], features: 4 }),
    "lr_wide/1/model.onnx": buildLinearClassifier({ labels: [-1, 7, 300_000_000_000], features: 4 }),
    "ml_only/1/model.onnx": buildMlOnlyClassifier([3, 4, 5], 2),
    "lr_named/1/model.onnx": buildLinearClassifier({ labels: [0, 1, 2], features: 4 }),
    "lr_named/model-settings.json": JSON.stringify({ labels: IRIS_LABELS }),
    "sequence/1/model.onnx": buildSequenceOutputModel(),
    "sequence_only/1/model.onnx": buildSequenceOutputModel(true),
    "sequence_override/1/model.onnx": buildSequenceOutputModel(),
    "sequence_override/model-settings.json": JSON.stringify({ outputs: [{ name: "PAIR", shape: [2] }] }),
  };
}
