/**
 * A push JSON scanner: bytes in, in any chunking, events out (begin/end of
 * objects and arrays, keys, strings, numbers, literals). Hand-written because no
 * JSON library both accepts input incrementally and lets the consumer refuse a
 * value as soon as it is seen: JSON.parse needs the whole text and builds every
 * value first, which is what lets a hostile body cost seconds and gigabytes
 * before anything can say no.
 *
 * It keeps only what a token split across chunks needs (the pending bytes of a
 * string, the text of a number), never the body. Nesting is an explicit stack
 * capped at `maxDepth`, so no input grows the call stack. UTF-8 is validated as
 * it streams, and the grammar is JSON's exactly (RFC 8259, as JSON.parse reads
 * it, a leading byte-order mark included, since TextDecoder drops it).
 */
import { invalidInput, type InferenceError } from "../dataplane/errors.js";

export interface JsonSink {
  beginObject(): void;
  endObject(): void;
  beginArray(): void;
  endArray(): void;
  key(key: string): void;
  string(value: string): void;
  /** A number: read it with the scanner's number accessors during the call. */
  number(): void;
  literal(value: boolean | null): void;
}

// Scanner states.
const BOM = 0;
const VALUE = 1;
const VALUE_OR_CLOSE = 2; // after '['
const KEY_OR_CLOSE = 3; // after '{'
const KEY = 4; // after ',' in an object
const COLON = 5;
const AFTER_VALUE = 6;
const DONE = 7;
const STRING = 8;
const ESCAPE = 9;
const UNICODE = 10;
const NUMBER = 11;
const LITERAL = 12;

// Number sub-states; the accepting ones are N_ZERO, N_INT, N_FRAC and N_EXP.
const N_MINUS = 0;
const N_ZERO = 1;
const N_INT = 2;
const N_DOT = 3;
const N_FRAC = 4;
const N_E = 5;
const N_ESIGN = 6;
const N_EXP = 7;

const OBJECT = 1;
const ARRAY = 2;

const TWO_53 = 2 ** 53;
/** Powers of ten exact in a double: the range of the exact fast path (Clinger). */
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);
/** Decimal exponents beyond this go to Number(); capping the accumulator keeps it exact. */
const EXPONENT_CAP = 100_000_000;
/** Bytes of a chunk decoded at a time for the text of numbers that need Number(). */
const WINDOW = 64 * 1024;

const LITERALS = ["true", "false", "null"] as const;
const ESCAPES: Record<number, string> = { 0x22: '"', 0x5c: "\\", 0x2f: "/", 0x62: "\b", 0x66: "\f", 0x6e: "\n", 0x72: "\r", 0x74: "\t" };

export interface JsonScannerOptions {
  maxDepth: number;
  /** "the request body", "the JSON header": names the document in messages. */
  what: string;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function describe(c: number): string {
  return c >= 0x21 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, "0")}`;
}

export class JsonScanner {
  private state = BOM;
  private readonly stack: Uint8Array;
  private depth = 0;
  /** Depth at which the value being skipped ends; -1 when not skipping. */
  private skipDepth = -1;
  private offset = 0;
  private bytes: Uint8Array = new Uint8Array(0);
  private buffer: Buffer = Buffer.alloc(0);
  private failure?: unknown;

  // Strings: raw segments are decoded once whole, so a character split across chunks stays intact.
  private stringIsKey = false;
  private collect = false;
  private segmentStart = 0;
  private parts = "";
  private pending = new Uint8Array(64);
  private pendingLength = 0;
  private utf8Need = 0;
  private utf8Low = 0x80;
  private utf8High = 0xbf;
  private unicodeDigits = 0;
  private unicodeCode = 0;

  // Numbers: the fast path's accumulators, and the token text for the exact fallback.
  private numberState = N_MINUS;
  private negative = false;
  private mantissa = 0;
  private digits = 0;
  private fractionDigits = 0;
  private exponent = 0;
  private exponentNegative = false;
  private dropped = false;
  private plain = true;
  private numberStart = 0;
  private numberEnd = 0;
  private numberPrefix = "";
  private window = "";
  private windowStart = 0;
  private windowEnd = 0;

  private literal = 0;
  private literalIndex = 0;
  private bomIndex = 0;

  constructor(private readonly sink: JsonSink, private readonly options: JsonScannerOptions) {
    this.stack = new Uint8Array(options.maxDepth + 1);
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.offset;
  }

  write(chunk: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.scan(chunk);
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  end(): void {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.bytes = new Uint8Array(0);
      this.buffer = Buffer.alloc(0);
      this.window = "";
      this.windowEnd = 0;
      if (this.state === NUMBER) {
        this.numberStart = 0;
        this.numberEnd = 0;
        this.finishNumber(this.offset);
      }
      if (this.utf8Need !== 0) throw invalidInput(`${this.options.what} is not valid UTF-8`);
      if (this.state !== DONE) throw this.malformed("unexpected end of the data", this.offset);
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  /** Called from JsonSink.key(): the value of this key is validated but produces no events. */
  skipValue(): void {
    this.skipDepth = this.depth;
  }

  /** Called from JsonSink.beginObject/beginArray: the rest of this container produces no events. */
  skipContainer(): void {
    this.skipDepth = this.depth - 1;
  }

  malformed(reason: string, at: number): InferenceError {
    return invalidInput(`malformed JSON in ${this.options.what}: ${reason} at byte ${at}`);
  }

  // ---- numbers, read by the sink during JsonSink.number() ----

  /** The number as JSON.parse gives it: exact fast path for short mantissas, else Number() of the text. */
  numberValue(): number {
    if (this.mantissa === 0 && !this.dropped) return this.negative ? -0 : 0;
    if (this.isFast()) {
      const e = this.decimalExponent();
      const v = e >= 0 ? this.mantissa * POW10[e]! : this.mantissa / POW10[-e]!;
      return this.negative ? -v : v;
    }
    return Number(this.numberText());
  }

  /** True when numberValue() is an exact integer-or-not answer and, if integral, the exact value (below 2^53). */
  numberIsExactDouble(): boolean {
    if (this.mantissa === 0 && !this.dropped) return true;
    return this.isFast() && Math.abs(this.numberValue()) < TWO_53;
  }

  /** No fraction or exponent in the token. */
  numberIsPlainInteger(): boolean {
    return this.plain;
  }

  numberText(): string {
    const { numberStart: start, numberEnd: end } = this;
    if (end <= start) return this.numberPrefix;
    // Tokens are read from a window of the chunk decoded at once: one native call per 64 KiB, not per number.
    if (start < this.windowStart || end > this.windowEnd) {
      this.windowStart = start;
      this.windowEnd = Math.min(this.bytes.length, start + WINDOW);
      this.window = this.buffer.toString("latin1", start, Math.max(end, this.windowEnd));
      this.windowEnd = Math.max(end, this.windowEnd);
    }
    return this.numberPrefix + this.window.substring(start - this.windowStart, end - this.windowStart);
  }

  private isFast(): boolean {
    if (this.dropped || this.mantissa >= TWO_53) return false;
    const e = this.decimalExponent();
    return e >= -22 && e <= 22;
  }

  private decimalExponent(): number {
    return (this.exponentNegative ? -this.exponent : this.exponent) - this.fractionDigits;
  }

  // ---- the scanner proper ----

  private scan(chunk: Uint8Array): void {
    this.bytes = chunk;
    this.buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.window = "";
    this.windowStart = 0;
    this.windowEnd = 0;
    const n = chunk.length;
    let i = 0;
    if (this.state === STRING) this.segmentStart = 0;
    if (this.state === NUMBER) this.numberStart = 0;
    while (i < n) {
      switch (this.state) {
        case STRING:
          i = this.scanString(i);
          break;
        case NUMBER:
          i = this.scanNumber(i);
          break;
        case ESCAPE:
        case UNICODE:
          i = this.scanEscape(i);
          break;
        case LITERAL:
          i = this.scanLiteral(i);
          break;
        case BOM:
          i = this.scanBom(i);
          break;
        default: {
          const c = chunk[i]!;
          if (isSpace(c)) i++;
          else i = this.structural(c, i);
        }
      }
    }
    // A token cut by the chunk's end keeps what it needs, and nothing of the chunk itself.
    if (this.state === STRING && this.collect) this.keepPending(this.segmentStart, n);
    if (this.state === NUMBER) this.numberPrefix += this.buffer.toString("latin1", this.numberStart, n);
    this.offset += n;
  }

  private scanBom(i: number): number {
    const c = this.bytes[i]!;
    const expected = [0xef, 0xbb, 0xbf][this.bomIndex]!;
    if (c === expected) {
      if (++this.bomIndex === 3) this.state = VALUE;
      return i + 1;
    }
    if (this.bomIndex > 0) throw invalidInput(`${this.options.what} is not valid UTF-8`);
    this.state = VALUE;
    return i;
  }

  private structural(c: number, i: number): number {
    const at = this.offset + i;
    switch (this.state) {
      case VALUE:
      case VALUE_OR_CLOSE:
        if (c === 0x5d && this.state === VALUE_OR_CLOSE) return this.close(ARRAY, i);
        return this.startValue(c, i);
      case KEY_OR_CLOSE:
        if (c === 0x7d) return this.close(OBJECT, i);
      // fall through: otherwise a key
      case KEY:
        if (c !== 0x22) throw this.unexpected(c, at, "expected a string key");
        this.startString(true, i + 1);
        return i + 1;
      case COLON:
        if (c !== 0x3a) throw this.unexpected(c, at, "expected ':'");
        this.state = VALUE;
        return i + 1;
      case AFTER_VALUE: {
        const top = this.stack[this.depth];
        if (c === 0x2c) {
          this.state = top === OBJECT ? KEY : VALUE;
          return i + 1;
        }
        if (c === 0x5d && top === ARRAY) return this.close(ARRAY, i);
        if (c === 0x7d && top === OBJECT) return this.close(OBJECT, i);
        throw this.unexpected(c, at, top === OBJECT ? "expected ',' or '}'" : "expected ',' or ']'");
      }
      default:
        throw this.unexpected(c, at, "after the end of the JSON value");
    }
  }

  private unexpected(c: number, at: number, context: string): InferenceError {
    if (c >= 0x80 && !isUtf8Lead(c)) return invalidInput(`${this.options.what} is not valid UTF-8`);
    return this.malformed(`unexpected ${describe(c)} (${context})`, at);
  }

  private startValue(c: number, i: number): number {
    const skipping = this.skipDepth >= 0;
    if (c === 0x7b || c === 0x5b) {
      if (this.depth >= this.options.maxDepth) {
        throw invalidInput(`invalid inference request: the JSON nests deeper than ${this.options.maxDepth} levels (at byte ${this.offset + i})`);
      }
      const kind = c === 0x7b ? OBJECT : ARRAY;
      this.stack[++this.depth] = kind;
      this.state = kind === OBJECT ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
      if (!skipping) {
        if (kind === OBJECT) this.sink.beginObject();
        else this.sink.beginArray();
      }
      return i + 1;
    }
    if (c === 0x22) {
      this.startString(false, i + 1);
      return i + 1;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      this.startNumber(c, i);
      return i + 1;
    }
    const literal = c === 0x74 ? 0 : c === 0x66 ? 1 : c === 0x6e ? 2 : -1;
    if (literal < 0) throw this.unexpected(c, this.offset + i, "expected a value");
    this.literal = literal;
    this.literalIndex = 1;
    this.state = LITERAL;
    return i + 1;
  }

  private close(kind: number, i: number): number {
    const skipping = this.skipDepth >= 0;
    this.depth--;
    if (!skipping) {
      if (kind === OBJECT) this.sink.endObject();
      else this.sink.endArray();
    }
    this.valueDone();
    return i + 1;
  }

  private valueDone(): void {
    this.state = this.depth === 0 ? DONE : AFTER_VALUE;
    if (this.skipDepth === this.depth) this.skipDepth = -1;
  }

  private scanLiteral(i: number): number {
    const text = LITERALS[this.literal]!;
    const bytes = this.bytes;
    const n = bytes.length;
    while (i < n && this.literalIndex < text.length) {
      if (bytes[i] !== text.charCodeAt(this.literalIndex)) throw this.unexpected(bytes[i]!, this.offset + i, `in the literal ${text}`);
      this.literalIndex++;
      i++;
    }
    if (this.literalIndex === text.length) {
      if (this.skipDepth < 0) this.sink.literal(this.literal === 0 ? true : this.literal === 1 ? false : null);
      this.valueDone();
    }
    return i;
  }

  // ---- strings ----

  private startString(isKey: boolean, start: number): void {
    this.state = STRING;
    this.segmentStart = start;
    this.stringIsKey = isKey;
    this.collect = this.skipDepth < 0;
    this.parts = "";
    this.pendingLength = 0;
  }

  private scanString(i: number): number {
    const bytes = this.bytes;
    const n = bytes.length;
    let need = this.utf8Need;
    let low = this.utf8Low;
    let high = this.utf8High;
    for (; i < n; i++) {
      const c = bytes[i]!;
      if (need !== 0) {
        if (c < low || c > high) throw invalidInput(`${this.options.what} is not valid UTF-8`);
        need--;
        low = 0x80;
        high = 0xbf;
        continue;
      }
      if (c >= 0x80) {
        if (c >= 0xc2 && c <= 0xdf) need = 1;
        else if (c >= 0xe0 && c <= 0xef) {
          need = 2;
          if (c === 0xe0) low = 0xa0;
          else if (c === 0xed) high = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
          need = 3;
          if (c === 0xf0) low = 0x90;
          else if (c === 0xf4) high = 0x8f;
        } else throw invalidInput(`${this.options.what} is not valid UTF-8`);
        continue;
      }
      if (c === 0x22 || c === 0x5c || c < 0x20) break;
    }
    this.utf8Need = need;
    this.utf8Low = low;
    this.utf8High = high;
    if (i === n) return i;
    const c = bytes[i]!;
    if (c < 0x20) throw this.malformed(`unescaped control character 0x${c.toString(16).padStart(2, "0")} in a string`, this.offset + i);
    if (this.collect) this.parts += this.decodeSegment(this.segmentStart, i);
    if (c === 0x5c) {
      this.state = ESCAPE;
      return i + 1;
    }
    const value = this.parts;
    this.parts = "";
    if (this.stringIsKey) {
      this.state = COLON;
      if (this.collect) this.sink.key(value);
    } else {
      if (this.collect) this.sink.string(value);
      this.valueDone();
    }
    return i + 1;
  }

  private decodeSegment(start: number, end: number): string {
    if (this.pendingLength === 0) return end > start ? this.buffer.toString("utf8", start, end) : "";
    this.keepPending(start, end);
    const all = Buffer.from(this.pending.buffer, 0, this.pendingLength);
    this.pendingLength = 0;
    return all.toString("utf8");
  }

  private keepPending(start: number, end: number): void {
    const length = end - start;
    if (length <= 0) return;
    if (this.pendingLength + length > this.pending.length) {
      const grown = new Uint8Array(Math.max(this.pending.length * 2, this.pendingLength + length));
      grown.set(this.pending.subarray(0, this.pendingLength));
      this.pending = grown;
    }
    this.pending.set(this.bytes.subarray(start, end), this.pendingLength);
    this.pendingLength += length;
  }

  private scanEscape(i: number): number {
    const bytes = this.bytes;
    const n = bytes.length;
    if (this.state === ESCAPE) {
      const c = bytes[i]!;
      if (c === 0x75) {
        this.state = UNICODE;
        this.unicodeDigits = 0;
        this.unicodeCode = 0;
        i++;
      } else {
        const text = ESCAPES[c];
        if (text === undefined) throw this.malformed(`bad escape \\${c < 0x80 ? String.fromCharCode(c) : "…"} in a string`, this.offset + i);
        if (this.collect) this.parts += text;
        this.state = STRING;
        this.segmentStart = i + 1;
        return i + 1;
      }
    }
    for (; i < n && this.unicodeDigits < 4; i++) {
      const c = bytes[i]!;
      const digit = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
      if (digit < 0) throw this.malformed("bad \\u escape in a string", this.offset + i);
      this.unicodeCode = this.unicodeCode * 16 + digit;
      this.unicodeDigits++;
    }
    if (this.unicodeDigits === 4) {
      // Lone surrogates stay, as JSON.parse keeps them.
      if (this.collect) this.parts += String.fromCharCode(this.unicodeCode);
      this.state = STRING;
      this.segmentStart = i;
    }
    return i;
  }

  // ---- numbers ----

  private startNumber(c: number, i: number): void {
    this.state = NUMBER;
    this.negative = c === 0x2d;
    this.numberState = c === 0x2d ? N_MINUS : c === 0x30 ? N_ZERO : N_INT;
    this.mantissa = c > 0x30 ? c - 0x30 : 0;
    this.digits = c > 0x30 ? 1 : 0;
    this.fractionDigits = 0;
    this.exponent = 0;
    this.exponentNegative = false;
    this.dropped = false;
    this.plain = true;
    this.numberStart = i;
    this.numberPrefix = "";
  }

  private scanNumber(i: number): number {
    const bytes = this.bytes;
    const n = bytes.length;
    let sub = this.numberState;
    let mantissa = this.mantissa;
    let digits = this.digits;
    let fraction = this.fractionDigits;
    let exponent = this.exponent;
    let dropped = this.dropped;
    // One tight loop per part of the token; a part cut by the chunk's end resumes in its sub-state.
    scan: while (i < n) {
      let c = bytes[i]!;
      switch (sub) {
        case N_MINUS:
          if (c < 0x30 || c > 0x39) break scan;
          sub = c === 0x30 ? N_ZERO : N_INT;
          if (c !== 0x30) {
            mantissa = c - 0x30;
            digits = 1;
          }
          i++;
          continue;
        case N_INT:
          for (; i < n; i++) {
            c = bytes[i]!;
            if (c < 0x30 || c > 0x39) break;
            if (digits < 16) {
              mantissa = mantissa * 10 + (c - 0x30);
              digits++;
            } else dropped = true;
          }
          if (i === n) break scan;
        // fall through: what follows the integer part
        case N_ZERO:
          if (c === 0x2e) sub = N_DOT;
          else if (c === 0x65 || c === 0x45) sub = N_E;
          else if (c >= 0x30 && c <= 0x39) throw this.malformed("a number has a leading zero", this.offset + i);
          else break scan;
          this.plain = false;
          i++;
          continue;
        case N_DOT:
          if (c < 0x30 || c > 0x39) break scan;
          sub = N_FRAC;
        // fall through
        case N_FRAC:
          for (; i < n; i++) {
            c = bytes[i]!;
            if (c < 0x30 || c > 0x39) break;
            const d = c - 0x30;
            if (mantissa === 0 && d === 0) fraction++; // a leading zero of the fraction only scales
            else if (digits < 16) {
              mantissa = mantissa * 10 + d;
              digits++;
              fraction++;
            } else dropped = true;
          }
          if (i === n) break scan;
          if (c !== 0x65 && c !== 0x45) break scan;
          sub = N_E;
          i++;
          continue;
        case N_E:
          if (c === 0x2b || c === 0x2d) {
            sub = N_ESIGN;
            this.exponentNegative = c === 0x2d;
            i++;
            continue;
          }
        // fall through
        case N_ESIGN:
          if (c < 0x30 || c > 0x39) break scan;
          sub = N_EXP;
        // fall through
        default:
          for (; i < n; i++) {
            c = bytes[i]!;
            if (c < 0x30 || c > 0x39) break;
            if (exponent < EXPONENT_CAP) exponent = exponent * 10 + (c - 0x30);
          }
          break scan;
      }
    }
    this.numberState = sub;
    this.mantissa = mantissa;
    this.digits = digits;
    this.fractionDigits = fraction;
    this.exponent = exponent;
    this.dropped = dropped;
    if (i < n) this.finishNumber(this.offset + i, i);
    return i;
  }

  private finishNumber(at: number, end = 0): void {
    const sub = this.numberState;
    if (sub !== N_ZERO && sub !== N_INT && sub !== N_FRAC && sub !== N_EXP) {
      const c = this.bytes[end];
      throw c === undefined ? this.malformed("unexpected end of the data in a number", at) : this.unexpected(c, at, "in a number");
    }
    this.numberEnd = end;
    if (this.skipDepth < 0) this.sink.number();
    this.valueDone();
  }
}

function isUtf8Lead(c: number): boolean {
  return c >= 0xc2 && c <= 0xf4;
}
