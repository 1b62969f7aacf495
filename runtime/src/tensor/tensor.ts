import type { Datatype, TensorData } from "./datatypes.js";
import { invalidInput } from "../dataplane/errors.js";

export type Parameters = Record<string, unknown>;

/** The one in-memory tensor every transport decodes into and every backend consumes. */
export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorData;
  parameters?: Parameters;
}

/** Product of the dimensions; NaN-safe for the huge shapes hostile clients send. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(",")}]`;
}

/** Throws a 400 unless the data holds exactly the elements its shape promises. */
export function checkElementCount(name: string, shape: readonly number[], length: number): void {
  const expected = elementCount(shape);
  if (expected !== length) {
    throw invalidInput(
      `input '${name}': shape ${formatShape(shape)} has ${expected} elements but the data has ${length}`,
    );
  }
}
