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

/**
 * The shape's element count, or a 400 naming the input (`label`: "input 'x'") when it is no
 * exact integer: a product beyond 2^53 (far beyond any tensor a request can carry), or Infinity × 0.
 */
export function checkedElementCount(label: string, shape: readonly number[]): number {
  const count = elementCount(shape);
  if (!Number.isSafeInteger(count)) {
    throw invalidInput(`${label}: shape ${formatShape(shape)} has more elements than a tensor can hold (the product of its dimensions exceeds 2^53)`);
  }
  return count;
}

/** Throws a 400 unless the data holds exactly the elements its shape promises. */
export function checkElementCount(name: string, shape: readonly number[], length: number): void {
  const expected = checkedElementCount(`input '${name}'`, shape);
  if (expected !== length) {
    throw invalidInput(
      `input '${name}': shape ${formatShape(shape)} has ${expected} elements but the data has ${length}`,
    );
  }
}
