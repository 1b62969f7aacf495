/**
 * Warm-up: one inference per model version before it reports READY, so the
 * first user request does not pay for ONNX Runtime's first-run allocations
 * and kernel set-up. Inputs are zeros (BYTES: empty strings) of the model's
 * declared shape, with every variable dimension 1.
 */
import type { LoadedModel, TensorMetadata } from "../backends/backend.js";
import { DATATYPE_INFO } from "../tensor/datatypes.js";
import { elementCount, type Tensor } from "../tensor/tensor.js";

export function warmupInputs(inputs: readonly TensorMetadata[]): Tensor[] {
  return inputs.map(({ name, datatype, shape }) => {
    const dims = shape.map((d) => (d < 0 ? 1 : d));
    const n = elementCount(dims);
    const Ctor = DATATYPE_INFO[datatype].array;
    return { name, datatype, shape: dims, data: Ctor ? new Ctor(n) : new Array<string>(n).fill("") };
  });
}

/**
 * Runs the warm-up inference on every instance at once (each idle instance takes one);
 * resolves with the duration in milliseconds, or rejects with the model's error.
 */
export async function warmup(model: LoadedModel): Promise<number> {
  const started = performance.now();
  const outputs = model.outputs.map((o) => o.name);
  await Promise.all(Array.from({ length: model.instanceCount ?? 1 }, () => model.infer(warmupInputs(model.inputs), outputs, undefined, { transfer: true })));
  return performance.now() - started;
}
