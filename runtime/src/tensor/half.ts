/**
 * IEEE half (FP16) and bfloat16 bit patterns to JS numbers. Half-precision tensors
 * travel as raw bits; JSON responses render them as ordinary numbers.
 */
export function fp16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

const bf16Scratch = new DataView(new ArrayBuffer(4));

export function bf16ToNumber(bits: number): number {
  bf16Scratch.setUint32(0, (bits & 0xffff) << 16);
  return bf16Scratch.getFloat32(0);
}
