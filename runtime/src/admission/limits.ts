/**
 * Sizes decided before a request body is read: the default budget of request
 * bytes buffered at once (from the container's memory limit), and the largest
 * body a model version's signature could ever need.
 */
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import type { TensorMetadata } from "../backends/backend.js";
import type { Datatype } from "../tensor/datatypes.js";

const GiB = 1024 ** 3;

/** cgroup v1 reports "no limit" as a page-rounded 2^63: anything past this is no limit. */
const NO_LIMIT_ABOVE = 2 ** 60;

/**
 * The container's memory limit in bytes, or undefined when there is none: cgroup v2
 * (`memory.max`, "max" when unlimited), else cgroup v1 (`memory.limit_in_bytes`).
 */
export function containerMemoryLimit(
  paths: { v2: string; v1: string } = { v2: "/sys/fs/cgroup/memory.max", v1: "/sys/fs/cgroup/memory/memory.limit_in_bytes" },
): number | undefined {
  for (const path of [paths.v2, paths.v1]) {
    let text: string;
    try {
      text = readFileSync(path, "utf8").trim();
    } catch {
      continue; // not this cgroup version, or no cgroup at all
    }
    if (text === "max") return undefined;
    const bytes = Number(text);
    if (Number.isFinite(bytes) && bytes > 0 && bytes < NO_LIMIT_ABOVE) return bytes;
    return undefined;
  }
  return undefined;
}

export interface BudgetDefault {
  bytes: number;
  /** Where the number came from, for the start-up log line. */
  source: string;
}

/**
 * The default MAX_BUFFERED_REQUEST_BYTES. An eighth of the container's memory limit:
 * each body held costs several times its size before it is answered (the decoded
 * tensors, the strings of a text input, their copy on the model's instance, ONNX
 * Runtime's own intermediates: `npm run bench`'s hostile load of 1 MB texts to
 * `sentiment` peaked at about 3.5 bytes of resident memory per budgeted byte), and
 * the rest of the limit holds the Node heap, the models and their arenas, and the
 * responses. A 512 MiB pod holds at most 64 MiB of request bodies at once.
 * Without a limit (a laptop, a VM), an eighth of the machine's memory, at most 1 GiB:
 * the machine is shared with whatever else runs there.
 */
export function defaultBufferedRequestBytes(memoryLimit = containerMemoryLimit(), machine = totalmem()): BudgetDefault {
  if (memoryLimit !== undefined) {
    return { bytes: Math.max(1, Math.floor(memoryLimit / 8)), source: `an eighth of the container memory limit (${memoryLimit} bytes)` };
  }
  return { bytes: Math.max(1, Math.min(GiB, Math.floor(machine / 8))), source: `an eighth of the machine's memory (${machine} bytes), at most 1 GiB; no container memory limit` };
}

/**
 * The widest an element of each datatype can be written, in bytes: its JSON text
 * (with quotes where clients send 64-bit integers as strings; floats in their
 * longest shortest-round-trip form such as -2.2250738585072014e-308, with room to
 * spare) or its binary encoding, whichever is larger. FP16 and BF16 travel only
 * as binary data (2 bytes), but a generous width costs nothing.
 */
const ELEMENT_WIDTH: Record<Exclude<Datatype, "BYTES">, number> = {
  BOOL: 5, // false
  UINT8: 3, // 255
  INT8: 4, // -128
  UINT16: 5, // 65535
  INT16: 6, // -32768
  UINT32: 10, // 4294967295
  INT32: 11, // -2147483648
  UINT64: 22, // "18446744073709551615"
  INT64: 22, // "-9223372036854775808"
  FP16: 32,
  BF16: 32,
  FP32: 32,
  FP64: 32,
};

/**
 * What a body may spend beside the digits, per element: a separator, and pretty-printing
 * (a client's json.dumps(indent=...) puts every element on its own indented line, and every
 * nested array opens and closes on lines of their own). 128 bytes, plus 16 × (rank + 8) per
 * dimension for the brackets and indentation of nested arrays: 272 bytes an element at rank 1,
 * 896 at rank 4. Integers written as 1.0 or 1e0 fit in the same room.
 */
const perElementOverhead = (rank: number) => 128 + rank * (rank + 8) * 16;

/** Names, ids, parameters, outputs requested, and whitespace: a fixed allowance per request, and per input. */
export const FIXED_ALLOWANCE = 64 * 1024;
export const PER_INPUT_ALLOWANCE = 4 * 1024;

/**
 * The largest V2 request body (JSON or binary) a model version could need, in bytes,
 * or undefined when the signature does not bound it: a BYTES input (strings have no
 * length bound), or a dynamic dimension (-1) other than a batch dimension bounded by
 * max_batch_size. Generous on purpose: refusing a legal request would be a bug,
 * while an 8 MiB body for a model that takes 32 integers is refused at once.
 */
export function largestRequestBytes(inputs: readonly TensorMetadata[], maxBatchSize: number): number | undefined {
  let total = FIXED_ALLOWANCE;
  for (const input of inputs) {
    if (input.datatype === "BYTES") return undefined;
    let elements = 1;
    for (let i = 0; i < input.shape.length; i++) {
      let d = input.shape[i]!;
      if (d < 0) {
        if (i === 0 && maxBatchSize > 0) d = maxBatchSize;
        else return undefined;
      }
      elements *= d;
    }
    const width = ELEMENT_WIDTH[input.datatype] ?? 32;
    total += PER_INPUT_ALLOWANCE + elements * (width + perElementOverhead(input.shape.length));
    if (!Number.isSafeInteger(total)) return undefined;
  }
  return total;
}

/** Per loaded model (one per version and load: a reload loads a new one), computed once. */
const cache = new WeakMap<object, number | null>();

/** largestRequestBytes() of a loaded model version, cached on its loaded model. */
export function largestRequestFor(entry: { model: { inputs: readonly TensorMetadata[] }; settings: { max_batch_size: number } }): number | undefined {
  let bound = cache.get(entry.model);
  if (bound === undefined) {
    bound = largestRequestBytes(entry.model.inputs, entry.settings.max_batch_size) ?? null;
    cache.set(entry.model, bound);
  }
  return bound ?? undefined;
}
