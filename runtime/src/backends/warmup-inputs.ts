/**
 * The warm-up inference's inputs: zeros (BYTES: empty strings) of the model's declared
 * shape, with every variable dimension 1. The registry warms a version with them before
 * READY; an instance that starts later (instances.ts) warms itself with them.
 */
import { DATATYPE_INFO } from "../tensor/datatypes.js";
import { elementCount, type Tensor } from "../tensor/tensor.js";
import type { TensorMetadata } from "./backend.js";

export function warmupInputs(inputs: readonly TensorMetadata[]): Tensor[] {
  return inputs.map(({ name, datatype, shape }) => {
    const dims = shape.map((d) => (d < 0 ? 1 : d));
    const n = elementCount(dims);
    const Ctor = DATATYPE_INFO[datatype].array;
    return { name, datatype, shape: dims, data: Ctor ? new Ctor(n) : new Array<string>(n).fill("") };
  });
}
