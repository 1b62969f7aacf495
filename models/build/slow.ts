/**
 * MLPs built to be slow: a run costs a chosen, steady amount of compute per
 * row, for tests that need a model run to take a while and for the benchmark.
 * Like BENCH_MLP they are built on the fly into temporary repositories and are
 * not in CATALOG.
 *
 * A batch-1 dense layer is a matrix-vector product, bound by memory bandwidth:
 * reaching 100 ms with distinct weights would take gigabytes of them. Here each
 * row is spread into `tokens` vectors (its first dense layer plus a position
 * table, as a sequence model's tokens), and one hidden weight matrix
 * (width × width) is applied `depth` times to all of them: matrix-matrix
 * products on weights that stay in cache, compute-bound, about
 * tokens × depth × width² multiply-adds per row from a model file of a few MiB.
 * Cost grows with the rows of a batch, as a real model's does. The shared matrix
 * is a permutation (dense, stored in full, so every product is really computed),
 * which keeps activations exactly in range however deep the stack: no overflow,
 * and no denormals to slow a run down on some machines.
 *
 *   input:  FP32 [-1, input]
 *   logits: FP32 [-1, classes]
 */
import { model, node, tensor, valueInfo, type OnnxTypes } from "./onnx.js";
import { mulberry32 } from "./sentiment/prng.js";

export interface SlowMlpSpec {
  /** Input width. */
  input: number;
  /** Hidden width: the shared hidden matrix is width × width. */
  width: number;
  /** Vectors each row is spread into (the M of every hidden matrix product, per row). */
  tokens: number;
  /** How many times the hidden layer (MatMul + Add + Relu) is applied. */
  depth: number;
  /** Output width. */
  classes: number;
  seed?: number;
}

/*
 * Per single-row run with one intra-op thread (ONNX Runtime 1.30 CPU, session options as served,
 * median of 20 runs after 3 warm-up runs), on the 2-core development machine (Intel Xeon, AVX-512):
 * 20.2 and 23.1 ms for BENCH_MLP_20MS, 102.8 and 100.7 ms for BENCH_MLP_100MS, about 0.42 ms a
 * hidden layer; 8 rows cost 10 to 12× one (their activations outgrow the cache). Files: 1.9 MB each, built in about 25 ms. A faster or
 * slower CPU scales these figures: a test must not rely on them against a timer (see
 * runtime/src/testing/gated-backend.ts for that).
 */
/** About 20 ms per single-row run with one intra-op thread (figures above). */
export const BENCH_MLP_20MS: SlowMlpSpec = { input: 256, width: 512, tokens: 128, depth: 48, classes: 10, seed: 11 };
/** About 100 ms per single-row run with one intra-op thread (figures above). */
export const BENCH_MLP_100MS: SlowMlpSpec = { input: 256, width: 512, tokens: 128, depth: 240, classes: 10, seed: 11 };

export function buildSlowMlp({ input, width, tokens, depth, classes, seed = 11 }: SlowMlpSpec): Uint8Array {
  if (input < 1 || width < 1 || tokens < 1 || classes < 1 || depth < 0) throw new Error("a slow MLP needs positive widths and a non-negative depth");
  const rand = mulberry32(seed);
  const dense = (name: string, fanIn: number, fanOut: number) => {
    const limit = Math.sqrt(6 / fanIn);
    const weights = new Float32Array(fanIn * fanOut);
    for (let k = 0; k < weights.length; k++) weights[k] = (rand() * 2 - 1) * limit;
    const bias = Float32Array.from({ length: fanOut }, () => (rand() * 2 - 1) * 0.01);
    return [tensor(`W_${name}`, "FLOAT", [fanIn, fanOut], weights), tensor(`B_${name}`, "FLOAT", [fanOut], bias)];
  };
  // A seeded random permutation of the hidden units, as a dense width × width matrix.
  const order = Array.from({ length: width }, (_, i) => i);
  for (let i = width - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const permutation = new Float32Array(width * width);
  for (let i = 0; i < width; i++) permutation[i * width + order[i]!] = 1;

  const initializers: OnnxTypes.ITensorProto[] = [
    ...dense("in", input, width),
    tensor("positions", "FLOAT", [tokens, width], Float32Array.from({ length: tokens * width }, () => rand() * 0.1)),
    tensor("token_axis", "INT64", [1], [1]),
    tensor("W_hidden", "FLOAT", [width, width], permutation),
    tensor("B_hidden", "FLOAT", [width], new Float32Array(width)),
    ...dense("out", width, classes),
  ];
  const nodes: OnnxTypes.INodeProto[] = [
    node("MatMul", ["input", "W_in"], ["matmul_in"]),
    node("Add", ["matmul_in", "B_in"], ["dense_in"]),
    node("Unsqueeze", ["dense_in", "token_axis"], ["row"]),
    node("Add", ["row", "positions"], ["embedded"]),
    node("Relu", ["embedded"], ["hidden0"]),
  ];
  for (let i = 0; i < depth; i++) {
    // MatMul + Add + Relu, as a real hidden layer (ONNX Runtime fuses them); the bias is zero and the
    // activations non-negative, so each layer permutes the hidden units exactly.
    nodes.push(node("MatMul", [`hidden${i}`, "W_hidden"], [`matmul${i}`]));
    nodes.push(node("Add", [`matmul${i}`, "B_hidden"], [`dense${i}`]));
    nodes.push(node("Relu", [`dense${i}`], [`hidden${i + 1}`]));
  }
  nodes.push(node("ReduceMean", [`hidden${depth}`], ["pooled"], { axes: [1], keepdims: 0 }));
  nodes.push(node("MatMul", ["pooled", "W_out"], ["matmul_out"]));
  nodes.push(node("Add", ["matmul_out", "B_out"], ["logits"]));
  return model(
    {
      name: "slow_mlp",
      nodes,
      inputs: [valueInfo("input", "FLOAT", ["batch", input])],
      outputs: [valueInfo("logits", "FLOAT", ["batch", classes])],
      initializers,
    },
    { docString: `Slow MLP ${input}-${width}×${depth}-${classes} over ${tokens} tokens a row, seed ${seed}: one shared ${width}×${width} hidden layer applied ${depth} times.` },
  );
}
