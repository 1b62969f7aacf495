/**
 * One input's `data`, built element by element as the scanner reads it (see
 * v2-decoder.ts). When the datatype and shape came first, each element goes
 * straight into a TypedArray of the right type and is checked as it arrives;
 * otherwise elements are kept compactly (a Float64Array, plus the exact text of
 * the few numbers a double cannot hold exactly, and strings) and converted once
 * the datatype and shape are known. Either way an object or null is refused at
 * once, and so is nesting that is ragged or that cannot fit the shape.
 */
import { invalidInput } from "../dataplane/errors.js";
import { DATATYPE_INFO, preview, truncate, type Datatype, type NumericArray, type TensorData } from "../tensor/datatypes.js";
import { checkedElementCount, formatShape } from "../tensor/tensor.js";
import type { JsonScanner } from "./json-scan.js";

const TWO_53 = 2 ** 53;
const INTEGER_TEXT = /^-?\d{1,20}$/;
const NUMBER_TEXT = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
/** Beyond every 64-bit range: what an integer of more than 21 digits becomes. */
const HUGE = 2n ** 80n;
/** Elements allocated up front when the body's size cannot vouch for the shape. */
const FIRST_CAPACITY = 1 << 16;

// What a buffered element is.
const DOUBLE = 0; // a number whose double is exact for every use
const NUMBER_TEXT_KIND = 1; // a number kept as text too (64-bit exactness)
const STRING = 2;
const TRUE = 3;
const FALSE = 4;

/**
 * The exact integer a JSON number token denotes, HUGE (signed) beyond 21 digits,
 * or undefined when it is not integral: `1e2` is 100, `1.5` is not an integer.
 */
export function exactInteger(text: string): bigint | undefined {
  const m = NUMBER_TEXT.exec(text);
  if (!m) return undefined;
  const fraction = m[3] ?? "";
  let digits = (m[2]! + fraction).replace(/^0+/, "");
  if (digits === "") return 0n;
  let exponent = Number(m[4] ?? "0") - fraction.length;
  if (exponent < 0) {
    const zeros = digits.length - digits.replace(/0+$/, "").length;
    if (zeros < -exponent) return undefined;
    digits = digits.slice(0, digits.length + exponent);
    exponent = 0;
  }
  const sign = m[1] === "-" ? -1n : 1n;
  if (digits.length + exponent > 21) return sign * HUGE;
  return sign * BigInt(digits + "0".repeat(exponent));
}

export class TensorBuilder {
  private readonly json: (typeof DATATYPE_INFO)[Datatype]["json"] | undefined;
  private readonly expected: number;
  // Direct: the tensor's own storage.
  private numeric?: NumericArray;
  private strings?: string[];
  // Buffered: elements until the datatype and shape are known.
  private values?: Float64Array;
  private kinds?: Uint8Array;
  private texts?: Map<number, string>;
  private capacity = 0;
  /** Elements received (leaves of the nesting). */
  private count = 0;
  // Nesting: child counts of the open arrays, sizes fixed by the first array closed at each level.
  private level = 0;
  private readonly counts: number[] = [0];
  private readonly sizes: number[] = [0];
  private deepest = 0;
  private leafDepth = -1;
  private scalar = false;

  /**
   * `label` names the input ("input 'x'"). `datatype` and `shape` are given when
   * known before the data: then elements are checked and stored as they come.
   */
  constructor(
    private readonly scanner: JsonScanner,
    private label: string,
    private readonly datatype: Datatype | undefined,
    private readonly shape: number[] | undefined,
    private readonly capacityHint: number,
  ) {
    this.json = datatype === undefined ? undefined : DATATYPE_INFO[datatype].json;
    // A shape whose element count is no exact integer is refused at its first element.
    this.expected = shape === undefined ? Infinity : checkedElementCount(label, shape);
    if (this.json === "binary-only") throw binaryOnly(label, datatype!);
    if (this.direct && this.json === "bytes") this.strings = [];
  }

  /** The input's name, once it is known (it may follow the data). */
  rename(label: string): void {
    this.label = label;
  }

  get direct(): boolean {
    return this.json !== undefined && this.shape !== undefined;
  }

  // ---- nesting ----

  beginArray(): void {
    if (this.level > 0) {
      this.child();
      if (this.leafDepth !== -1 && this.level >= this.leafDepth) throw this.mixed();
    }
    this.level++;
    this.counts[this.level] = 0;
    if (this.level > this.deepest) {
      this.deepest = this.level;
      this.sizes[this.level] = -1;
    }
  }

  /** True when the data's outermost array closed. */
  endArray(): boolean {
    const k = this.level;
    const size = this.counts[k]!;
    if (this.sizes[k] === -1) {
      this.sizes[k] = size;
      if (this.shape !== undefined && k > 1) this.checkNestingSuffix(k);
    } else if (size !== this.sizes[k]) {
      throw this.ragged(k, size);
    }
    this.level--;
    return this.level === 0;
  }

  private child(): void {
    const k = this.level;
    const n = ++this.counts[k]!;
    if (this.sizes[k] !== -1 && n > this.sizes[k]!) throw this.ragged(k, n);
  }

  private leaf(): number {
    if (this.level === 0) this.scalar = true;
    else {
      this.child();
      if (this.leafDepth === -1) {
        if (this.deepest > this.level) throw this.mixed();
        this.leafDepth = this.level;
      } else if (this.leafDepth !== this.level) throw this.mixed();
    }
    const index = this.count++;
    if (this.count > this.expected) {
      throw invalidInput(`${this.label}: shape ${formatShape(this.shape!)} has ${this.expected} elements but the data has more`);
    }
    return index;
  }

  private mixed(): Error {
    return invalidInput(`${this.label}: the data mixes values and arrays at the same depth; send it flat or nested like the shape`);
  }

  private ragged(level: number, size: number): Error {
    return invalidInput(`${this.label}: the data is ragged: an array at depth ${level} has ${size} elements where an earlier one has ${this.sizes[level]}`);
  }

  /** Sizes of the nesting levels from `from` down, once all known. */
  private nesting(from: number): number[] {
    return this.sizes.slice(from, this.deepest + 1);
  }

  /** Rows nested below the outermost level must be the shape's own rows (dimensions of 1 aside). */
  private checkNestingSuffix(from: number): void {
    // Empty rows say nothing of the dimensions below them.
    if (this.leafDepth === -1) return;
    const have = squeeze(this.nesting(from));
    const want = squeeze(this.shape!);
    const fits = have.length <= want.length && have.every((d, i) => d === want[want.length - have.length + i]);
    if (!fits) throw this.misfit(this.shape!, `[…,${this.nesting(from).join(",")}]`);
  }

  private misfit(shape: readonly number[], nested: string): Error {
    return invalidInput(`${this.label}: data nested as ${nested} does not fit shape ${formatShape(shape)}; send it flat or nested like the shape`);
  }

  /** The element count, then the nesting, against the shape: flat, or nested like it (dimensions of 1 aside). */
  private checkShape(shape: number[]): void {
    const expected = checkedElementCount(this.label, shape);
    if (this.count !== expected) {
      throw invalidInput(`${this.label}: shape ${formatShape(shape)} has ${expected} elements but the data has ${this.count}`);
    }
    if (this.scalar || this.deepest <= 1 || this.count === 0) return;
    const nested = this.nesting(1);
    const have = squeeze(nested);
    const want = squeeze(shape);
    if (have.length !== want.length || have.some((d, i) => d !== want[i])) throw this.misfit(shape, formatShape(nested));
  }

  // ---- elements ----

  number(): void {
    const index = this.leaf();
    const s = this.scanner;
    if (!this.direct) return this.keepNumber(index);
    switch (this.json) {
      case "float":
        this.store(index, s.numberValue());
        return;
      case "int":
        this.store(index, this.checkInt(index, s.numberValue()));
        return;
      case "bool": {
        const v = s.numberValue();
        if (v !== 1 && v !== 0) this.bad(index, preview(v));
        this.store(index, v);
        return;
      }
      case "bigint":
        this.storeBig(index, this.checkBig(index, s.numberIsExactDouble() ? s.numberValue() : undefined, () => s.numberText()));
        return;
      default:
        this.bad(index, preview(s.numberValue()));
    }
  }

  string(value: string): void {
    const index = this.leaf();
    if (!this.direct) return this.keep(index, STRING, 0, value);
    if (this.json === "bytes") this.strings!.push(value);
    else if (this.json === "bigint") this.storeBig(index, this.checkBigText(index, value));
    else this.bad(index, preview(value));
  }

  literal(value: boolean | null): void {
    const index = this.leaf();
    if (value === null) this.bad(index, "null");
    if (!this.direct) return this.keep(index, value ? TRUE : FALSE, 0);
    if (this.json === "bool") this.store(index, value ? 1 : 0);
    else this.bad(index, String(value));
  }

  object(): never {
    this.bad(this.leaf(), "{…}");
  }

  private bad(index: number, shown: string): never {
    if (this.json === undefined) {
      throw invalidInput(`${this.label}: element ${index} (${shown}) is not a valid tensor element; expected a number, a string or true/false`);
    }
    throw invalidInput(`${this.label}: element ${index} (${shown}) is not a valid ${this.datatype} value; expected ${this.expectation()}`);
  }

  private expectation(): string {
    const info = DATATYPE_INFO[this.datatype!];
    switch (info.json) {
      case "bytes":
        return "a string";
      case "bool":
        return "true or false";
      case "float":
        return "a number";
      case "bigint":
        return this.datatype === "UINT64" ? "an integer from 0 to 2^64-1" : "an integer from -2^63 to 2^63-1";
      default:
        return `an integer from ${info.min} to ${info.max}`;
    }
  }

  private checkInt(index: number, v: number): number {
    const info = DATATYPE_INFO[this.datatype!];
    if (!Number.isInteger(v) || v < info.min! || v > info.max!) this.bad(index, preview(v));
    return v;
  }

  /** `exact` is the double when it is exact, else the token text gives the integer. */
  private checkBig(index: number, exact: number | undefined, text: () => string): bigint {
    let big: bigint | undefined;
    if (exact !== undefined) big = Number.isInteger(exact) ? BigInt(exact) : undefined;
    else big = exactInteger(text());
    if (big === undefined || !this.inBigRange(big)) this.bad(index, exact !== undefined ? preview(exact) : truncate(text(), 40));
    return big;
  }

  private checkBigText(index: number, value: string): bigint {
    // Integers beyond 2^53 lose precision as JSON numbers elsewhere; a decimal string keeps them exact.
    const big = INTEGER_TEXT.test(value) ? BigInt(value) : undefined;
    if (big === undefined || !this.inBigRange(big)) this.bad(index, preview(value));
    return big;
  }

  private inBigRange(big: bigint): boolean {
    return this.datatype === "UINT64" ? big >= 0n && big <= UINT64_MAX : big >= INT64_MIN && big <= INT64_MAX;
  }

  // ---- storage ----

  private store(index: number, v: number): void {
    if (index >= this.capacity) this.growNumeric(index);
    (this.numeric as Float64Array)[index] = v;
  }

  private storeBig(index: number, v: bigint): void {
    if (index >= this.capacity) this.growNumeric(index);
    (this.numeric as BigInt64Array)[index] = v;
  }

  /**
   * Room for one more: the whole shape at once when the rest of the body could
   * hold that many elements (or it is small), else doubling from a small start,
   * so a huge declared shape costs only what is actually sent.
   */
  private growNumeric(index: number): void {
    const ctor = DATATYPE_INFO[this.datatype!].array!;
    const first = this.expected <= Math.max(FIRST_CAPACITY, this.capacityHint) ? this.expected : FIRST_CAPACITY;
    const capacity = Math.min(this.expected, this.capacity === 0 ? first : this.capacity * 2);
    const grown = new ctor(Math.max(capacity, index + 1));
    if (this.numeric) (grown as Float64Array).set(this.numeric as Float64Array);
    this.numeric = grown;
    this.capacity = grown.length;
  }

  private keepNumber(index: number): void {
    const s = this.scanner;
    if (s.numberIsExactDouble()) this.keep(index, DOUBLE, s.numberValue());
    else this.keep(index, NUMBER_TEXT_KIND, s.numberValue(), s.numberText());
  }

  private keep(index: number, kind: number, value: number, text?: string): void {
    if (index >= this.capacity) {
      const capacity = Math.max(1024, this.capacity * 2);
      const values = new Float64Array(capacity);
      const kinds = new Uint8Array(capacity);
      if (this.values) values.set(this.values);
      if (this.kinds) kinds.set(this.kinds);
      this.values = values;
      this.kinds = kinds;
      this.capacity = capacity;
    }
    this.values![index] = value;
    this.kinds![index] = kind;
    if (text !== undefined) (this.texts ??= new Map()).set(index, text);
  }

  // ---- the tensor ----

  /** The tensor data, once the input's datatype and shape are final. */
  finish(label: string, datatype: Datatype, shape: number[]): TensorData {
    this.label = label;
    if (DATATYPE_INFO[datatype].json === "binary-only") throw binaryOnly(label, datatype);
    this.checkShape(shape);
    if (this.direct) {
      if (this.json === "bytes") return this.strings!;
      if (!this.numeric || this.numeric.length !== this.count) {
        const ctor = DATATYPE_INFO[datatype].array!;
        const exact = new ctor(this.count);
        if (this.numeric) (exact as Float64Array).set((this.numeric as Float64Array).subarray(0, this.count));
        return exact;
      }
      return this.numeric;
    }
    return new TensorBuilder(this.scanner, label, datatype, shape, this.count).convert(this);
  }

  /** Replays buffered elements into a direct builder, so both paths share every check and message. */
  private convert(from: TensorBuilder): TensorData {
    for (let i = 0; i < from.count; i++) {
      const kind = from.kinds![i]!;
      const value = from.values![i]!;
      this.count = i + 1;
      if (kind === STRING) this.replayString(i, from.texts!.get(i)!);
      else if (kind === TRUE || kind === FALSE) this.replayBool(i, kind === TRUE);
      else this.replayNumber(i, value, kind === DOUBLE ? undefined : from.texts!.get(i)!);
    }
    if (this.json === "bytes") return this.strings!;
    if (!this.numeric || this.numeric.length !== this.count) return new (DATATYPE_INFO[this.datatype!].array!)(this.count);
    return this.numeric;
  }

  private replayNumber(index: number, value: number, text: string | undefined): void {
    switch (this.json) {
      case "float":
        return this.store(index, value);
      case "int":
        return this.store(index, this.checkInt(index, value));
      case "bool":
        if (value !== 1 && value !== 0) this.bad(index, preview(value));
        return this.store(index, value);
      case "bigint":
        return this.storeBig(index, this.checkBig(index, text === undefined ? value : undefined, () => text!));
      default:
        this.bad(index, preview(value));
    }
  }

  private replayString(index: number, value: string): void {
    if (this.json === "bytes") this.strings!.push(value);
    else if (this.json === "bigint") this.storeBig(index, this.checkBigText(index, value));
    else this.bad(index, preview(value));
  }

  private replayBool(index: number, value: boolean): void {
    if (this.json === "bool") this.store(index, value ? 1 : 0);
    else this.bad(index, String(value));
  }
}

function squeeze(dims: readonly number[]): number[] {
  return dims.filter((d) => d !== 1);
}

export function binaryOnly(label: string, datatype: Datatype): Error {
  return invalidInput(`${label}: ${datatype} tensors cannot be sent as JSON numbers; send them as binary data (the binary_tensor_data extension)`);
}
