/**
 * A streaming, tensor-aware decoder for Open Inference Protocol v2 JSON
 * inference requests: bytes in as they arrive, the request out, with `data`
 * decoded straight into TypedArrays and anything that cannot belong refused at
 * the byte it is seen. Hand-written (json-scan.ts) because no JSON library
 * decodes straight into TypedArrays incrementally with early rejection:
 * JSON.parse needs the whole body and boxes every element first, so a hostile
 * 63 MB `[{},{},…]` cost seconds of a blocked event loop and gigabytes before
 * being refused, and it rounds 64-bit integers beyond 2^53.
 *
 * Outside `data` it accepts exactly what InferenceRequestSchema (rest/schemas.ts)
 * accepts, with the same messages (first problem only), except that a known key
 * given twice in the request, an input or an output is refused rather than the
 * last one winning. Inside `data`, it accepts flat row-major data or data nested
 * like the shape (dimensions of 1 aside), not ragged or mismatched nesting.
 */
import type { TensorMetadata } from "../backends/backend.js";
import { invalidInput } from "../dataplane/errors.js";
import type { InferenceRequest, RequestedOutput } from "../dataplane/types.js";
import { DATATYPE_INFO, DATATYPES, preview, type Datatype } from "../tensor/datatypes.js";
import { formatShape, type Parameters, type Tensor } from "../tensor/tensor.js";
import { decodeBinaryTensor } from "./binary.js";
import { JsonScanner, type JsonSink } from "./json-scan.js";
import { binaryOnly, exactInteger, TensorBuilder } from "./json-tensor-builder.js";

const TWO_53 = 2 ** 53;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

export interface DecodedInput {
  name: string;
  datatype: Datatype;
  shape: number[];
  parameters?: Parameters;
  /** absent when the tensor has no 'data' (binary_data_size) */
  tensor?: Tensor;
}

export interface DecodedV2Request {
  id?: string;
  parameters?: Parameters;
  inputs: DecodedInput[];
  outputs?: RequestedOutput[];
}

export interface V2DecoderOptions {
  /** the model's inputs when known (name → datatype/shape, -1 = any), so a mismatch is refused as soon as it is seen */
  signature?: readonly TensorMetadata[];
  /** The model's name, for signature messages (as validateInputs words them). */
  modelName?: string;
  /** The model's max_batch_size (0: no batching), checked with the signature as validateInputs does. */
  maxBatchSize?: number;
  /** Deepest JSON nesting accepted; default 64. */
  maxDepth?: number;
  /** "the request body" | "the JSON header", for messages */
  what?: string;
  /**
   * The body's size when known (a Content-Length already checked against the
   * size limit; never more than the real size): a tensor whose shape the rest of
   * the body could hold is allocated whole at once, any other grows as it comes.
   */
  byteLength?: number;
}

// What the next value is, by the key (or array) it belongs to.
const REQUEST = 0;
const ID = 1;
const PARAMETERS = 2;
const INPUTS = 3;
const OUTPUTS = 4;
const INPUT = 5;
const NAME = 6;
const SHAPE = 7;
const DIMENSION = 8;
const DATATYPE = 9;
const DATA = 10;
const PARAMETER = 11;
const OUTPUT = 12;
const OUTPUT_NAME = 13;

// The containers being read (only the ones that carry meaning: data nesting is the builder's).
const F_REQUEST = 1;
const F_PARAMETERS = 2;
const F_INPUTS = 3;
const F_INPUT = 4;
const F_SHAPE = 5;
const F_DATA = 6;
const F_OUTPUTS = 7;
const F_OUTPUT = 8;

const DATATYPE_SET: ReadonlySet<string> = new Set(DATATYPES);
const REQUEST_KEYS: Record<string, number> = { id: ID, parameters: PARAMETERS, inputs: INPUTS, outputs: OUTPUTS };
const INPUT_KEYS: Record<string, number> = { name: NAME, shape: SHAPE, datatype: DATATYPE, parameters: PARAMETERS, data: DATA };
const OUTPUT_KEYS: Record<string, number> = { name: OUTPUT_NAME, parameters: PARAMETERS };

function refuse(message: string): Error {
  return invalidInput(`invalid inference request: ${message}`);
}

/** A parameters object: strings, numbers and booleans; the last of a repeated key wins, as in JSON.parse. */
class ParameterCollector {
  readonly values: Parameters = {};
  private readonly invalid = new Set<string>();
  key = "";

  constructor(readonly path: string) {}

  set(value: string | number | boolean): void {
    this.invalid.delete(this.key);
    // zod's record leaves out __proto__, which would otherwise set the prototype.
    if (this.key !== "__proto__") this.values[this.key] = value;
  }

  refuse(): void {
    if (this.key === "__proto__") return;
    this.invalid.add(this.key);
    delete this.values[this.key];
  }

  finish(): Parameters {
    for (const key of this.invalid) throw refuse(`${this.path}.${key}: parameter values must be strings, numbers or booleans`);
    return this.values;
  }
}

interface InputState {
  index: number;
  keys: Set<number>;
  name?: string;
  datatype?: Datatype;
  shape?: number[];
  shapeDone: boolean;
  parameters?: Parameters;
  builder?: TensorBuilder;
}

interface OutputState {
  index: number;
  keys: Set<number>;
  name?: string;
  parameters?: Parameters;
}

export class V2RequestDecoder implements JsonSink {
  private readonly scanner: JsonScanner;
  private readonly frames: number[] = [];
  private top = 0;
  private slot = REQUEST;
  private readonly requestKeys = new Set<number>();
  private id?: string;
  private parameters?: Parameters;
  private inputs?: DecodedInput[];
  private outputs?: RequestedOutput[];
  private input?: InputState;
  private output?: OutputState;
  private collector?: ParameterCollector;
  private inputCount = 0;
  private outputCount = 0;
  private bytes = 0;
  private readonly seenNames = new Set<string>();

  constructor(private readonly options: V2DecoderOptions = {}) {
    this.scanner = new JsonScanner(this, { maxDepth: options.maxDepth ?? 64, what: options.what ?? "the request body" });
  }

  write(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    this.scanner.write(chunk);
  }

  end(): DecodedV2Request {
    if (this.bytes === 0) throw invalidInput(`${this.options.what ?? "the request body"} is empty; expected a JSON inference request`);
    this.scanner.end();
    this.checkMissingInputs();
    const request: DecodedV2Request = { inputs: this.inputs! };
    if (this.id !== undefined) request.id = this.id;
    if (this.parameters) request.parameters = this.parameters;
    if (this.outputs) request.outputs = this.outputs;
    return request;
  }

  // ---- JsonSink ----

  beginObject(): void {
    const slot = this.currentSlot();
    switch (slot) {
      case REQUEST:
        return this.push(F_REQUEST);
      case PARAMETERS:
        this.collector = new ParameterCollector(this.parametersPath());
        return this.push(F_PARAMETERS);
      case INPUT:
        this.input = { index: this.inputCount++, keys: new Set(), shapeDone: false };
        return this.push(F_INPUT);
      case OUTPUT:
        this.output = { index: this.outputCount++, keys: new Set() };
        return this.push(F_OUTPUT);
      case DATA:
        return this.dataBuilder().object();
      case PARAMETER:
        this.collector!.refuse();
        return this.scanner.skipContainer();
      default:
        throw this.wrongType(slot, "object", "{…}");
    }
  }

  beginArray(): void {
    if (this.top === F_DATA) return this.input!.builder!.beginArray();
    const slot = this.currentSlot();
    switch (slot) {
      case INPUTS:
        this.inputs = [];
        this.inputCount = 0;
        return this.push(F_INPUTS);
      case OUTPUTS:
        this.outputs = [];
        this.outputCount = 0;
        return this.push(F_OUTPUTS);
      case SHAPE:
        this.input!.shape = [];
        return this.push(F_SHAPE);
      case DATA:
        this.dataBuilder().beginArray();
        return this.push(F_DATA);
      case PARAMETER:
        this.collector!.refuse();
        return this.scanner.skipContainer();
      default:
        throw this.wrongType(slot, "array", "[…]");
    }
  }

  endObject(): void {
    switch (this.pop()) {
      case F_PARAMETERS:
        return this.finishParameters();
      case F_INPUT:
        return this.finishInput();
      case F_OUTPUT:
        return this.finishOutput();
      case F_REQUEST:
        if (this.inputs === undefined) throw refuse("inputs: must be an array of input tensors");
        return;
    }
  }

  endArray(): void {
    if (this.top === F_DATA) {
      if (!this.input!.builder!.endArray()) return;
      this.pop();
      return;
    }
    switch (this.pop()) {
      case F_SHAPE:
        this.input!.shapeDone = true;
        return this.checkSignature(this.input!);
      case F_INPUTS:
        if (this.inputs!.length === 0) throw refuse("inputs: must hold at least one input tensor");
        return;
    }
  }

  key(key: string): void {
    const table = this.top === F_REQUEST ? REQUEST_KEYS : this.top === F_INPUT ? INPUT_KEYS : this.top === F_OUTPUT ? OUTPUT_KEYS : undefined;
    if (table === undefined) {
      this.collector!.key = key;
      this.slot = PARAMETER;
      return;
    }
    const slot = Object.hasOwn(table, key) ? table[key]! : undefined;
    if (slot === undefined) return this.scanner.skipValue();
    const keys = this.top === F_REQUEST ? this.requestKeys : this.top === F_INPUT ? this.input!.keys : this.output!.keys;
    if (keys.has(slot)) throw refuse(`${this.objectPath()}: the key "${key}" appears more than once`);
    keys.add(slot);
    this.slot = slot;
  }

  string(value: string): void {
    if (this.top === F_DATA) return this.input!.builder!.string(value);
    const slot = this.currentSlot();
    switch (slot) {
      case ID:
        this.id = value;
        return;
      case NAME:
        this.input!.name = this.checkName(value, `inputs[${this.input!.index}]`);
        this.input!.builder?.rename(`input '${value}'`);
        return this.checkSignature(this.input!);
      case OUTPUT_NAME:
        this.output!.name = this.checkName(value, `outputs[${this.output!.index}]`);
        return;
      case DATATYPE:
        return this.setDatatype(value);
      case PARAMETER:
        return this.collector!.set(value);
      case DATA:
        return this.dataBuilder().string(value);
      default:
        throw this.wrongType(slot, "string", preview(value));
    }
  }

  number(): void {
    if (this.top === F_DATA) return this.input!.builder!.number();
    const slot = this.currentSlot();
    switch (slot) {
      case DIMENSION:
        return this.addDimension(this.scanner.numberValue());
      case PARAMETER: {
        const value = this.scanner.numberValue();
        if (Number.isFinite(value)) this.collector!.set(this.exactParameter(value));
        else this.collector!.refuse();
        return;
      }
      case DATA:
        return this.dataBuilder().number();
      default:
        throw this.wrongType(slot, "number", preview(this.scanner.numberValue()));
    }
  }

  literal(value: boolean | null): void {
    if (this.top === F_DATA) return this.input!.builder!.literal(value);
    const slot = this.currentSlot();
    switch (slot) {
      case PARAMETER:
        if (value === null) this.collector!.refuse();
        else this.collector!.set(value);
        return;
      case DATA:
        return this.dataBuilder().literal(value);
      default:
        throw this.wrongType(slot, value === null ? "null" : "boolean", String(value));
    }
  }

  // ---- where we are ----

  private push(frame: number): void {
    this.frames.push(frame);
    this.top = frame;
  }

  private pop(): number {
    const frame = this.frames.pop()!;
    this.top = this.frames[this.frames.length - 1] ?? 0;
    return frame;
  }

  /** The meaning of the value starting now: an array's element, or the value of the last key. */
  private currentSlot(): number {
    switch (this.top) {
      case 0:
        return REQUEST;
      case F_INPUTS:
        return INPUT;
      case F_OUTPUTS:
        return OUTPUT;
      case F_SHAPE:
        return DIMENSION;
      default:
        return this.slot;
    }
  }

  private objectPath(): string {
    if (this.top === F_INPUT) return `inputs[${this.input!.index}]`;
    if (this.top === F_OUTPUT) return `outputs[${this.output!.index}]`;
    return "the request";
  }

  private parametersPath(): string {
    if (this.top === F_INPUT) return `inputs[${this.input!.index}].parameters`;
    if (this.top === F_OUTPUT) return `outputs[${this.output!.index}].parameters`;
    return "parameters";
  }

  /** The message InferenceRequestSchema gives for a value of the wrong type in this place. */
  private wrongType(slot: number, type: string, shown: string): Error {
    switch (slot) {
      case REQUEST:
        return refuse("the request body must be a JSON object with an 'inputs' array");
      case ID:
        return refuse("id: must be a string");
      case PARAMETERS:
        return refuse(`${this.parametersPath()}: must be an object of parameters`);
      case INPUTS:
        return refuse("inputs: must be an array of input tensors");
      case OUTPUTS:
        return refuse("outputs: must be an array of requested outputs");
      case INPUT:
        return refuse(`inputs[${this.inputCount}]: Invalid input: expected object, received ${type}`);
      case OUTPUT:
        return refuse(`outputs[${this.outputCount}]: Invalid input: expected object, received ${type}`);
      case NAME:
        return refuse(`inputs[${this.input!.index}].name: must be a string`);
      case OUTPUT_NAME:
        return refuse(`outputs[${this.output!.index}].name: must be a string`);
      case SHAPE:
        return refuse(`inputs[${this.input!.index}].shape: must be an array of dimensions`);
      case DIMENSION:
        return refuse(`inputs[${this.input!.index}].shape[${this.input!.shape!.length}]: must be a number`);
      case DATATYPE:
        return refuse(`inputs[${this.input!.index}].datatype: ${invalidDatatype(shown)}`);
      default:
        return refuse(`unexpected ${type}`);
    }
  }

  // ---- fields ----

  private checkName(value: string, path: string): string {
    if (value.length === 0) throw refuse(`${path}.name: must not be empty`);
    return value;
  }

  private setDatatype(value: string): void {
    const input = this.input!;
    if (!DATATYPE_SET.has(value)) throw refuse(`inputs[${input.index}].datatype: ${invalidDatatype(preview(value))}`);
    input.datatype = value as Datatype;
    // Data already read can never become valid as FP16/BF16: say so now.
    if (input.builder && DATATYPE_INFO[input.datatype].json === "binary-only") throw binaryOnly(this.label(input), input.datatype);
    this.checkSignature(input);
  }

  private addDimension(value: number): void {
    const input = this.input!;
    const path = `inputs[${input.index}].shape[${input.shape!.length}]`;
    if (!Number.isFinite(value)) throw refuse(`${path}: must be a number`);
    if (!Number.isSafeInteger(value)) throw refuse(`${path}: must be an integer`);
    if (value < 0) throw refuse(`${path}: must not be negative`);
    input.shape!.push(value);
  }

  /**
   * An integer parameter from 2^53 up (within 64 bits) as its exact decimal text, even when a
   * double holds it (it would print back in shortest form, -2^63 as "-9223372036854776000"), as gRPC's int64/uint64 parameters arrive (codecs/grpc.ts); any other number as is.
   */
  private exactParameter(value: number): number | string {
    if (Math.abs(value) < TWO_53 || this.scanner.numberIsExactDouble()) return value;
    const exact = exactInteger(this.scanner.numberText());
    if (exact === undefined || exact > UINT64_MAX || exact < INT64_MIN) return value;
    return exact.toString();
  }

  private label(input: InputState): string {
    return input.name !== undefined ? `input '${input.name}'` : `inputs[${input.index}]`;
  }

  private dataBuilder(): TensorBuilder {
    const input = this.input!;
    if (input.builder) return input.builder;
    const known = input.name !== undefined && input.datatype !== undefined && input.shapeDone;
    const hint = this.options.byteLength === undefined ? 0 : Math.floor((this.options.byteLength - this.scanner.position) / 2);
    input.builder = new TensorBuilder(this.scanner, this.label(input), known ? input.datatype : undefined, known ? input.shape : undefined, hint);
    return input.builder;
  }

  private finishParameters(): void {
    const parameters = this.collector!.finish();
    this.collector = undefined;
    if (this.top === F_INPUT) this.input!.parameters = parameters;
    else if (this.top === F_OUTPUT) this.output!.parameters = parameters;
    else this.parameters = parameters;
  }

  private finishInput(): void {
    const input = this.input!;
    const path = `inputs[${input.index}]`;
    // In the order InferenceRequestSchema reports them.
    if (input.name === undefined) throw refuse(`${path}.name: must be a string`);
    if (input.shape === undefined) throw refuse(`${path}.shape: must be an array of dimensions`);
    if (input.datatype === undefined) throw refuse(`${path}.datatype: ${invalidDatatype("undefined")}`);
    const { name, datatype, shape, parameters } = input;
    const decoded: DecodedInput = { name, datatype, shape };
    if (parameters) decoded.parameters = parameters;
    if (input.builder) {
      const data = input.builder.finish(`input '${name}'`, datatype, shape);
      decoded.tensor = parameters ? { name, datatype, shape, data, parameters } : { name, datatype, shape, data };
    } else if (parameters?.binary_data_size === undefined) {
      // As decodeJsonTensor says it: an input with neither data nor binary data.
      if (DATATYPE_INFO[datatype].json === "binary-only") throw binaryOnly(`input '${name}'`, datatype);
      throw invalidInput(`input '${name}' has no 'data'`);
    }
    this.checkSignature(input);
    this.seenNames.add(name);
    this.inputs!.push(decoded);
    this.input = undefined;
  }

  private finishOutput(): void {
    const output = this.output!;
    if (output.name === undefined) throw refuse(`outputs[${output.index}].name: must be a string`);
    this.outputs!.push(output.parameters ? { name: output.name, parameters: output.parameters } : { name: output.name });
    this.output = undefined;
  }

  /**
   * The model's signature, checked as far as this input is known, in the order
   * and words of validateInputs (dataplane.ts), which still runs afterwards:
   * this only says no sooner, never to anything validateInputs would accept.
   */
  private checkSignature(input: InputState): void {
    const signature = this.options.signature;
    if (!signature || input.name === undefined) return;
    const model = this.options.modelName ?? "";
    const name = input.name;
    if (this.seenNames.has(name)) throw invalidInput(`input '${name}' appears more than once in the request`);
    const expected = signature.find((m) => m.name === name);
    if (!expected) {
      throw invalidInput(`model '${model}' has no input named '${name}'; its inputs are: ${signature.map((m) => m.name).join(", ")}`);
    }
    if (input.datatype === undefined) return;
    if (input.datatype !== expected.datatype) {
      throw invalidInput(`input '${name}': datatype ${input.datatype} does not match model '${model}', which expects ${expected.datatype}`);
    }
    if (!input.shapeDone) return;
    const shape = input.shape!;
    const fits = shape.length === expected.shape.length && expected.shape.every((d, i) => d === -1 || d === shape[i]);
    if (!fits) {
      throw invalidInput(`input '${name}': shape ${formatShape(shape)} does not match model '${model}' shape ${formatShape(expected.shape)}`);
    }
    const maxBatchSize = this.options.maxBatchSize ?? 0;
    if (maxBatchSize > 0 && (shape[0] ?? 0) > maxBatchSize) {
      throw invalidInput(`input '${name}': batch size ${shape[0]} exceeds max_batch_size ${maxBatchSize} of model '${model}'`);
    }
  }

  /** validateInputs' last check: every input of the signature was sent. */
  private checkMissingInputs(): void {
    const signature = this.options.signature;
    if (!signature) return;
    const missing = signature.filter((m) => !this.seenNames.has(m.name));
    if (missing.length === 0) return;
    const model = this.options.modelName ?? "";
    const all = signature.map((m) => m.name).join(", ");
    throw invalidInput(`missing input${missing.length > 1 ? "s" : ""} ${missing.map((m) => `'${m.name}'`).join(", ")} for model '${model}', which requires: ${all}`);
  }
}

function invalidDatatype(shown: string): string {
  return `invalid datatype ${shown}; expected one of ${DATATYPES.join(", ")}`;
}

/** One-shot: the whole body at once. */
export function decodeV2Request(bytes: Uint8Array, options: V2DecoderOptions = {}): DecodedV2Request {
  const decoder = new V2RequestDecoder({ byteLength: bytes.byteLength, ...options });
  decoder.write(bytes);
  return decoder.end();
}

/**
 * The decoded request into the data plane's request: what toInferenceRequest
 * (v2.ts) does after zod, with the same checks and messages. `binary` is the
 * section after the JSON header (binary extension); inputs with
 * binary_data_size take their slices of it in order.
 */
export function decodedToInferenceRequest(decoded: DecodedV2Request, modelName: string, modelVersion: string | undefined, binary?: Uint8Array): InferenceRequest {
  let cursor = 0;
  const inputs = decoded.inputs.map((input): Tensor => {
    const size = input.parameters?.binary_data_size;
    // Without binary_data_size the decoder already refused an input with no data.
    if (size === undefined) return input.tensor!;
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
      throw invalidInput(`input '${input.name}': binary_data_size must be a non-negative integer`);
    }
    if (!binary) throw invalidInput(`input '${input.name}' has binary_data_size but the request has no Inference-Header-Content-Length header`);
    if (input.tensor !== undefined) throw invalidInput(`input '${input.name}' has both 'data' and binary_data_size; send one`);
    if (cursor + size > binary.byteLength) {
      throw invalidInput(`input '${input.name}': binary_data_size ${size} runs past the end of the body (${binary.byteLength - cursor} bytes of binary data left)`);
    }
    const tensor = decodeBinaryTensor(input, binary.subarray(cursor, cursor + size));
    cursor += size;
    return tensor;
  });
  if (binary && cursor !== binary.byteLength) {
    throw invalidInput(`the body has ${binary.byteLength - cursor} bytes of binary data after the last input's binary_data_size`);
  }
  const request: InferenceRequest = { modelName, modelVersion, inputs };
  if (decoded.id !== undefined) request.id = decoded.id;
  if (decoded.parameters) request.parameters = decoded.parameters;
  if (decoded.outputs) request.outputs = decoded.outputs;
  return request;
}
