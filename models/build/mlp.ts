/**
 * A compute-heavy benchmark model: a multilayer perceptron (MatMul + Add + Relu
 * layers, FP32, batch-first) with weights from a seeded PRNG, so every build is
 * byte for byte the same. It is built on the fly by `npm run bench` into a
 * temporary repository and is deliberately not in CATALOG: the repository that
 * `npm start` serves stays small.
 *
 *   input:  FP32 [-1, dims[0]]
 *   logits: FP32 [-1, dims[dims.length - 1]]
 */
import { model, node, tensor, valueInfo, type OnnxTypes } from "./onnx.js";
import { mulberry32 } from "./sentiment/prng.js";

export interface MlpSpec {
  /** Layer widths, input first: [256, 3072, 3072, 10] is three dense layers. */
  dims: number[];
  seed?: number;
}

/** The widths `npm run bench` uses: one inference takes about 1 ms on two cores of a current server CPU. */
export const BENCH_MLP: MlpSpec = { dims: [256, 3072, 3072, 10], seed: 7 };

export function buildMlp({ dims, seed = 7 }: MlpSpec): Uint8Array {
  if (dims.length < 2) throw new Error("an MLP needs at least an input and an output width");
  const rand = mulberry32(seed);
  const nodes: OnnxTypes.INodeProto[] = [];
  const initializers: OnnxTypes.ITensorProto[] = [];
  let previous = "input";
  for (let i = 0; i < dims.length - 1; i++) {
    const [fanIn, fanOut] = [dims[i]!, dims[i + 1]!];
    // He-uniform weights keep activations in range through the Relu layers; biases small.
    const limit = Math.sqrt(6 / fanIn);
    const weights = new Float32Array(fanIn * fanOut);
    for (let k = 0; k < weights.length; k++) weights[k] = (rand() * 2 - 1) * limit;
    const bias = Float32Array.from({ length: fanOut }, () => (rand() * 2 - 1) * 0.01);
    initializers.push(tensor(`W${i}`, "FLOAT", [fanIn, fanOut], weights), tensor(`B${i}`, "FLOAT", [fanOut], bias));
    const last = i === dims.length - 2;
    nodes.push(node("MatMul", [previous, `W${i}`], [`matmul${i}`]));
    nodes.push(node("Add", [`matmul${i}`, `B${i}`], [last ? "logits" : `dense${i}`]));
    if (!last) {
      nodes.push(node("Relu", [`dense${i}`], [`relu${i}`]));
      previous = `relu${i}`;
    }
  }
  return model(
    {
      name: "mlp",
      nodes,
      inputs: [valueInfo("input", "FLOAT", ["batch", dims[0]!])],
      outputs: [valueInfo("logits", "FLOAT", ["batch", dims[dims.length - 1]!])],
      initializers,
    },
    { docString: `Benchmark MLP ${dims.join("-")}, seed ${seed}: MatMul + Add + Relu layers with seeded random weights.` },
  );
}
