/**
 * JSON.parse, exact for 64-bit integers: for the bodies that are parsed whole
 * rather than streamed through the tensor decoder (KServe V1, CloudEvents, the
 * structured envelope). JSON.parse rounds every number to a double, so
 * 9007199254740993 (2^53+1) would silently become 9007199254740992; Node 20
 * has no reviver `context.source` to recover the text. Here a number token
 * whose double is not the integer it spells (and which fits 64 bits) becomes a
 * BigInt holding it exactly (so does any integer from 2^53 up, which a double
 * would print back in shortest form); every other value is what JSON.parse gives. The
 * codecs take BigInt wherever a JSON number may stand (decodeJsonTensor: exact
 * for INT64/UINT64, a double for the float types; parameters: decimal text).
 *
 * Cost: JSON.parse, then one walk over the parsed value looking for a number
 * at or beyond 2^53; only a body holding one is parsed again, by the streaming
 * scanner (json-scan.ts), which keeps each token's text.
 */
import { invalidInput } from "../dataplane/errors.js";
import { truncate } from "../tensor/datatypes.js";
import { JsonScanner, type JsonSink } from "./json-scan.js";
import { exactInteger } from "./json-tensor-builder.js";

const TWO_53 = 2 ** 53;
const TWO_64 = 2 ** 64;
const BIG_TWO_64 = 2n ** 64n;
/** Nesting the exact re-parse accepts: JSON.parse already accepted the text, so this only bounds the scanner's stack. */
const MAX_DEPTH = 10_000;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** True when a number in `value` is an integer JSON.parse may have rounded (|v| from 2^53 up to 2^64). */
function mayBeRounded(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === "number") {
      if ((v >= TWO_53 && v <= TWO_64) || (v <= -TWO_53 && v >= -TWO_64)) return true;
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const e = v[i];
        if (typeof e === "number") {
          if ((e >= TWO_53 && e <= TWO_64) || (e <= -TWO_53 && e >= -TWO_64)) return true;
        } else if (typeof e === "object" && e !== null) stack.push(e);
      }
    } else if (typeof v === "object" && v !== null) {
      for (const key in v) stack.push((v as Record<string, unknown>)[key]);
    }
  }
  return false;
}

/** Builds JS values from the scanner's events, as JSON.parse would, but for the integers a double cannot hold. */
class ValueBuilder implements JsonSink {
  private readonly containers: (unknown[] | Record<string, unknown>)[] = [];
  private pendingKey = "";
  value: unknown;
  scanner!: JsonScanner;

  private add(value: unknown): void {
    const top = this.containers[this.containers.length - 1];
    if (top === undefined) this.value = value;
    else if (Array.isArray(top)) top.push(value);
    // As JSON.parse does: "__proto__" is an own property, never the prototype.
    else if (this.pendingKey === "__proto__") Object.defineProperty(top, "__proto__", { value, writable: true, enumerable: true, configurable: true });
    else top[this.pendingKey] = value;
  }

  beginObject(): void {
    const object: Record<string, unknown> = {};
    this.add(object);
    this.containers.push(object);
  }

  beginArray(): void {
    const array: unknown[] = [];
    this.add(array);
    this.containers.push(array);
  }

  endObject(): void {
    this.containers.pop();
  }

  endArray(): void {
    this.containers.pop();
  }

  key(key: string): void {
    this.pendingKey = key;
  }

  string(value: string): void {
    this.add(value);
  }

  number(): void {
    const s = this.scanner;
    if (s.numberIsExactDouble()) return this.add(s.numberValue());
    const double = s.numberValue();
    if (Math.abs(double) >= TWO_53 && Math.abs(double) <= TWO_64) {
      const exact = exactInteger(s.numberText());
      // Also when the double happens to be exact (-2^63, 2^60): written back out, a double
      // prints in shortest form ("-9223372036854776000"), which a 64-bit reader takes as
      // another integer; a BigInt prints its digits.
      if (exact !== undefined && exact <= BIG_TWO_64 && exact >= -BIG_TWO_64) return this.add(exact);
    }
    this.add(double);
  }

  literal(value: boolean | null): void {
    this.add(value);
  }
}

/**
 * Parses JSON text (UTF-8 bytes) as JSON.parse does, except that integers a
 * double cannot hold exactly (up to 2^64 in magnitude) come back as BigInt.
 * Errors are 400s, worded as rest/body.ts parseJson words them: "<what> is empty…",
 * "<what> is not valid UTF-8", "malformed JSON in <what>: …".
 */
export function parseJsonExact(bytes: Uint8Array, what = "the request body"): unknown {
  if (bytes.byteLength === 0) throw invalidInput(`${what} is empty; expected a JSON inference request`);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw invalidInput(`${what} is not valid UTF-8`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalidInput(`malformed JSON in ${what}: ${truncate((err as Error).message, 160)}`);
  }
  if (!mayBeRounded(value)) return value;
  const builder = new ValueBuilder();
  const scanner = new JsonScanner(builder, { maxDepth: MAX_DEPTH, what });
  builder.scanner = scanner;
  scanner.write(bytes);
  scanner.end();
  return builder.value;
}

/** JSON text of a parsed value: JSON.stringify, with BigInt written as its exact digits. */
export function stringifyExact(value: unknown): string {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) {
    let text = "[";
    for (let i = 0; i < value.length; i++) {
      const e = value[i];
      if (i > 0) text += ",";
      text += e === undefined || typeof e === "function" || typeof e === "symbol" ? "null" : stringifyExact(e);
    }
    return `${text}]`;
  }
  if (typeof value === "object" && value !== null && !ArrayBuffer.isView(value) && typeof (value as { toJSON?: unknown }).toJSON !== "function") {
    let text = "{";
    let first = true;
    for (const [key, v] of Object.entries(value)) {
      if (v === undefined || typeof v === "function" || typeof v === "symbol") continue;
      text += `${first ? "" : ","}${JSON.stringify(key)}:${stringifyExact(v)}`;
      first = false;
    }
    return `${text}}`;
  }
  return JSON.stringify(value) ?? "null";
}
