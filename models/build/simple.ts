/**
 * `simple`: the classic Open Inference Protocol / Triton example model.
 * INPUT0, INPUT1: INT32 [-1,16]; OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1.
 */
import { model, node, valueInfo } from "./onnx.js";

export function buildSimple(): Uint8Array {
  const shape = ["batch", 16];
  return model(
    {
      name: "simple",
      nodes: [node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]), node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
      inputs: [valueInfo("INPUT0", "INT32", shape), valueInfo("INPUT1", "INT32", shape)],
      outputs: [valueInfo("OUTPUT0", "INT32", shape), valueInfo("OUTPUT1", "INT32", shape)],
    },
    { docString: "Element-wise sum and difference of two INT32 [-1,16] tensors." },
  );
}
