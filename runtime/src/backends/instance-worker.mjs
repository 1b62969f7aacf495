/**
 * One model instance: a worker thread that owns one ONNX Runtime session and runs it.
 * onnxruntime-node's session.run does its work on the calling thread, so running it
 * here keeps the HTTP thread free for I/O, admission and the probes
 * (runtime/src/backends/instances.ts starts and feeds these workers).
 *
 * Plain JavaScript on purpose: a worker is started from a file, and this one must start
 * the same way from the TypeScript sources (tests, tsx) and from the bundle in dist/
 * (scripts/build.mjs copies it there). Everything with logic worth typing (signatures,
 * datatypes, errors) stays on the main thread; this file only moves tensors.
 *
 * Messages in:  {type: "run", runs: [{id, feeds: [{name, type, dims, data}], outputNames}]}
 *               {type: "release"}, {type: "exit", code}
 * Messages out: {type: "ready", inputs, outputs, executionProviders, fallback?, classLabels?, outputTypes?}
 *                 (classLabels: {output: labels} for ZipMap outputs served as probability tensors;
 *                 outputTypes: {output: ONNX type} for the outputs still not tensors, which cannot be served)
 *               {type: "results", results: [{id, outputs: [{name, type, dims, data}]} | {id, message}]}
 *                 (output buffers transferred; `message`: the run refused this input)
 *               {type: "released"}
 * A failure to create the session is thrown: the main thread sees it as the worker's error.
 *
 * sklearn classifiers converted by skl2onnx end in a ZipMap node: `output_probability` is a
 * sequence of maps (class label → probability), which onnxruntime-node cannot return (its
 * outputMetadata says isTensor: false and session.run throws "Non tensor type is temporarily not
 * supported"). When the session from the file has such an output, the graph is read and
 * rewritten here and the session created again from the new bytes (servedZipMaps below; other
 * models pay nothing): the ZipMap becomes an Identity, so the output, under the same name, is the
 * FP32 [rows, classes] probability tensor the ZipMap was given, and its class labels go back to the
 * main thread (the model's default `labels`). Converting with skl2onnx's `options={"zipmap": False}`
 * gives the same tensor without the rewrite. (A session from bytes has no directory to find
 * external data files in; sklearn graphs never use them.)
 */
import { readFile } from "node:fs/promises";
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

const { file, options, executionProviders } = workerData;

// ONNX Runtime's own log goes straight to stderr as coloured text lines, which would break the
// server's one-JSON-object-per-line log. Its errors are also thrown (a failed load, a CUDA
// fallback, a refused run), and those reach the server's log and the client: so only fatal
// messages print. ORT_LOG_LEVEL=warning (verbose, info, warning, error, fatal) brings its lines
// back when diagnosing, e.g. the library a CUDA fallback could not load. Process-wide: the first
// session to be created sets it.
ort.env.logLevel = process.env.ORT_LOG_LEVEL || "fatal";

/** `source`: the model's path, or its bytes once rewritten. */
async function createSession(source) {
  try {
    return { session: await ort.InferenceSession.create(source, { ...options, executionProviders }), providers: executionProviders };
  } catch (err) {
    if (executionProviders.length === 1 && executionProviders[0] === "cpu") throw err;
    // CUDA missing on this node (or in this build): serve on CPU rather than not at all; the main thread says so.
    const session = await ort.InferenceSession.create(source, { ...options, executionProviders: ["cpu"] });
    return { session, providers: ["cpu"], fallback: String(err?.message ?? err) };
  }
}

// ---------------------------------------------------------------------------------------------
// ZipMap outputs. The graph is read with a minimal protobuf walker rather than a protobuf library:
// this file must run as is from the sources and from dist/ (where only it is copied, unbundled),
// the runtime has no ONNX schema at run time (onnx-proto is a build-time dependency), and decoding
// a whole ModelProto would copy every initializer into JavaScript objects. The walker reads only
// the tags and lengths along ModelProto → GraphProto → nodes and outputs, decodes just the nodes'
// names and the outputs' types, and builds the new model from slices of the original bytes (one
// copy), splicing in one Identity node and one tensor output per ZipMap.
// ---------------------------------------------------------------------------------------------

/** A varint as a number: exact for tags, lengths and enums (below 2^53), which is all it reads. */
function readVarint(buf, pos) {
  let value = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (pos >= buf.length) throw new Error("truncated varint");
    const byte = buf[pos++];
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, pos];
  }
  throw new Error("malformed varint");
}

/** A varint as a signed 64-bit integer (int64 class labels, negative ones included). */
function readVarint64(buf, pos) {
  let value = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (pos >= buf.length) throw new Error("truncated varint");
    const byte = buf[pos++];
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [BigInt.asIntN(64, value), pos];
  }
  throw new Error("malformed varint");
}

/** The fields of the message in buf[start, end): {field, wire, at (its tag), start and end (its value), value (varints)}. */
function fields(buf, start, end) {
  const out = [];
  let pos = start;
  while (pos < end) {
    const at = pos;
    let tag, value, len;
    [tag, pos] = readVarint(buf, pos);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    let valueStart = pos;
    if (wire === 0) [value, pos] = readVarint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      [len, pos] = readVarint(buf, pos);
      valueStart = pos;
      pos += len;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (pos > end) throw new Error("truncated message");
    out.push({ field, wire, at, start: valueStart, end: pos, value });
  }
  return out;
}

const text = (buf, f) => buf.toString("utf8", f.start, f.end);

/** ONNX TensorProto.DataType names, as ONNX writes types: tensor(float), seq(map(int64,tensor(float))). */
const ELEM_TYPES = ["undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64", "string", "bool", "float16", "double", "uint32", "uint64", "complex64", "complex128", "bfloat16"];
const elemName = (n) => ELEM_TYPES[n] ?? `element type ${n}`;

/** A TypeProto as ONNX spells it. */
function typeName(buf, start, end, depth = 0) {
  if (depth > 16) return "a nested type";
  for (const f of fields(buf, start, end)) {
    if (f.wire !== 2) continue;
    const inner = fields(buf, f.start, f.end);
    const sub = (n) => inner.find((g) => g.field === n);
    const nested = (n) => (sub(n) && sub(n).wire === 2 ? typeName(buf, sub(n).start, sub(n).end, depth + 1) : "?");
    if (f.field === 1) return `tensor(${elemName(sub(1)?.value ?? 0)})`; // tensor_type
    if (f.field === 4) return `seq(${nested(1)})`; // sequence_type
    if (f.field === 5) return `map(${elemName(sub(1)?.value ?? 0)},${nested(2)})`; // map_type
    if (f.field === 8) return `sparse_tensor(${elemName(sub(1)?.value ?? 0)})`; // sparse_tensor_type
    if (f.field === 9) return `optional(${nested(1)})`; // optional_type
  }
  return "an undeclared type";
}

/** NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7. */
function readNode(buf, f) {
  const node = { field: f, inputs: [], outputs: [], name: undefined, opType: "", domain: "", attributes: [] };
  for (const g of fields(buf, f.start, f.end)) {
    if (g.wire !== 2) continue;
    if (g.field === 1) node.inputs.push(text(buf, g));
    else if (g.field === 2) node.outputs.push(text(buf, g));
    else if (g.field === 3) node.name = text(buf, g);
    else if (g.field === 4) node.opType = text(buf, g);
    else if (g.field === 5) node.attributes.push(g);
    else if (g.field === 7) node.domain = text(buf, g);
  }
  return node;
}

/** A ZipMap's class labels (AttributeProto: name 1, ints 8 (packed or not), strings 9), as strings; undefined when it has none. */
function zipMapLabels(buf, node) {
  for (const a of node.attributes) {
    const parts = fields(buf, a.start, a.end);
    const name = parts.find((p) => p.field === 1 && p.wire === 2);
    if (!name) continue;
    const attr = text(buf, name);
    if (attr === "classlabels_strings") {
      const labels = parts.filter((p) => p.field === 9 && p.wire === 2).map((p) => text(buf, p));
      if (labels.length > 0) return labels;
    }
    if (attr === "classlabels_int64s") {
      const labels = [];
      for (const p of parts) {
        if (p.field !== 8) continue;
        if (p.wire === 0) labels.push(readVarint64(buf, p.start)[0]);
        else if (p.wire === 2) for (let pos = p.start; pos < p.end; ) {
          let v;
          [v, pos] = readVarint64(buf, pos);
          labels.push(v);
        }
      }
      if (labels.length > 0) return labels.map(String);
    }
  }
  return undefined;
}

function encodeVarint(n) {
  const bytes = [];
  while (n >= 0x80) {
    bytes.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}
const header = (field, length) => Buffer.concat([encodeVarint(field * 8 + 2), encodeVarint(length)]);
const message = (field, ...parts) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([header(field, body.length), body]);
};
const stringField = (field, s) => message(field, Buffer.from(s, "utf8"));
const varintField = (field, n) => Buffer.concat([encodeVarint(field * 8), encodeVarint(n)]);

/**
 * Finds the graph outputs that are not tensors and rewrites those a ZipMap (ai.onnx.ml) produces and
 * nothing else reads: Identity instead of the ZipMap, a tensor(float) [?, classes] output instead of
 * seq(map(...)). Returns the new model's bytes (undefined when nothing was rewritten), the labels per
 * rewritten output, and the ONNX type of every output that stays a non-tensor.
 */
function rewriteZipMaps(buf) {
  const model = fields(buf, 0, buf.length);
  const graphs = model.filter((f) => f.field === 7 && f.wire === 2); // ModelProto.graph
  if (graphs.length !== 1) throw new Error(`the model holds ${graphs.length} graphs`);
  const graph = fields(buf, graphs[0].start, graphs[0].end);
  const nodes = graph.filter((f) => f.field === 1 && f.wire === 2).map((f) => readNode(buf, f)); // GraphProto.node
  const replace = new Map(); // graph field → its new bytes (null: dropped)
  const classLabels = {};
  const outputTypes = {};
  for (const f of graph) {
    if (f.field !== 12 || f.wire !== 2) continue; // GraphProto.output: ValueInfoProto {name 1, type 2}
    const info = fields(buf, f.start, f.end);
    const nameField = info.find((g) => g.field === 1 && g.wire === 2);
    const typeField = info.find((g) => g.field === 2 && g.wire === 2);
    if (!nameField) continue;
    const name = text(buf, nameField);
    const type = typeField ? typeName(buf, typeField.start, typeField.end) : "an undeclared type";
    if (type.startsWith("tensor(")) continue;
    const producer = nodes.find((n) => n.outputs.includes(name));
    const labels = producer && zipMapLabels(buf, producer);
    const servable =
      producer?.opType === "ZipMap" && producer.domain === "ai.onnx.ml" && producer.inputs.length === 1 && producer.outputs.length === 1 &&
      labels !== undefined && !nodes.some((n) => n.inputs.includes(name)) && !replace.has(producer.field);
    if (!servable) {
      outputTypes[name] = type;
      continue;
    }
    const identity = [stringField(1, producer.inputs[0]), stringField(2, name)];
    if (producer.name !== undefined) identity.push(stringField(3, producer.name));
    identity.push(stringField(4, "Identity"));
    replace.set(producer.field, message(1, ...identity));
    // tensor_type {elem_type FLOAT, shape {dim {} (rows, unknown), dim {dim_value classes}}}
    const shape = message(2, message(1), message(1, varintField(1, labels.length)));
    replace.set(f, message(12, stringField(1, name), message(2, message(1, varintField(1, 1), shape))));
    classLabels[name] = labels;
  }
  if (Object.keys(classLabels).length === 0) return { bytes: undefined, classLabels, outputTypes };
  // A value_info entry (field 13) still declaring a rewritten output's old type would contradict the new one.
  for (const f of graph) {
    if (f.field !== 13 || f.wire !== 2) continue;
    const nameField = fields(buf, f.start, f.end).find((g) => g.field === 1 && g.wire === 2);
    if (nameField && text(buf, nameField) in classLabels) replace.set(f, null);
  }
  const graphParts = [];
  for (const f of graph) {
    const bytes = replace.has(f) ? replace.get(f) : buf.subarray(f.at, f.end);
    if (bytes !== null) graphParts.push(bytes);
  }
  const graphLength = graphParts.reduce((n, b) => n + b.length, 0);
  const parts = [];
  for (const f of model) {
    if (f === graphs[0]) parts.push(header(7, graphLength), ...graphParts);
    else parts.push(buf.subarray(f.at, f.end));
  }
  // Identity is in the default domain: import it when the model imports only ai.onnx.ml (OperatorSetIdProto: domain 1, version 2).
  const importsDefault = model.some((f) => {
    if (f.field !== 8 || f.wire !== 2) return false;
    const domain = fields(buf, f.start, f.end).find((g) => g.field === 1 && g.wire === 2);
    return !domain || ["", "ai.onnx"].includes(text(buf, domain));
  });
  if (!importsDefault) parts.push(message(8, varintField(2, DEFAULT_DOMAIN_OPSET)));
  return { bytes: Buffer.concat(parts), classLabels, outputTypes };
}

/** The default-domain opset imported for Identity when a model has none: the oldest ONNX Runtime runs. */
const DEFAULT_DOMAIN_OPSET = 7;

/**
 * Called when the session has outputs that are not tensors: reads the graph, and when ZipMaps produce
 * some, creates the session again from the rewritten graph. Whatever cannot be served is described
 * (outputTypes) so the main thread can say so; if the graph cannot be read, the first session stays.
 */
async function servedZipMaps(first) {
  let plan;
  try {
    plan = rewriteZipMaps(await readFile(file));
  } catch (err) {
    const outputTypes = {};
    for (const m of first.session.outputMetadata) if (!m.isTensor) outputTypes[m.name] = `a non-tensor value (the graph could not be read: ${String(err?.message ?? err)})`;
    return { ...first, outputTypes };
  }
  if (plan.bytes === undefined) return { ...first, outputTypes: plan.outputTypes };
  await first.session.release();
  let rewritten;
  try {
    rewritten = await createSession(plan.bytes);
  } catch (err) {
    throw new Error(`the graph with its ZipMap outputs (${Object.keys(plan.classLabels).join(", ")}) served as tensors failed to load: ${String(err?.message ?? err)}`);
  }
  return { ...rewritten, classLabels: plan.classLabels, outputTypes: plan.outputTypes };
}

const metadata = (list) => list.map(({ name, isTensor, type, shape }) => ({ name, isTensor, type, shape }));

let loaded = await createSession(file);
if (loaded.session.outputMetadata.some((m) => !m.isTensor)) loaded = await servedZipMaps(loaded);
const { session, providers, fallback, classLabels, outputTypes } = loaded;
parentPort.postMessage({
  type: "ready",
  inputs: metadata(session.inputMetadata),
  outputs: metadata(session.outputMetadata),
  executionProviders: providers,
  ...(fallback !== undefined && { fallback }),
  ...(classLabels !== undefined && { classLabels }),
  ...(outputTypes !== undefined && Object.keys(outputTypes).length > 0 && { outputTypes }),
});

/** A buffer can be handed over without a copy only when the array is all of it. */
function transferable(data, list) {
  if (ArrayBuffer.isView(data) && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer) {
    list.push(data.buffer);
  }
}

/** Runs waiting here, in arrival order: the main thread may send the next before this one is done. */
const queue = [];
let draining = false;
/** Answers not yet sent, and since when the oldest has waited. */
let replies = [];
let replyTransfer = [];
let oldestReply = 0;

function flush() {
  if (replies.length === 0) return;
  parentPort.postMessage({ type: "results", results: replies }, replyTransfer);
  replies = [];
  replyTransfer = [];
}

async function runOne({ id, feeds, outputNames }) {
  let results;
  try {
    const tensors = {};
    for (const f of feeds) tensors[f.name] = new ort.Tensor(f.type, f.data, f.dims);
    results = await session.run(tensors, outputNames);
  } catch (err) {
    return { id, message: String(err?.message ?? err) };
  }
  const outputs = [];
  for (const name of outputNames) {
    const value = results[name];
    outputs.push({ name, type: value.type, dims: value.dims.slice(), data: value.data });
    transferable(value.data, replyTransfer);
  }
  return { id, outputs };
}

/**
 * Runs the queue dry. Answers go back together while they come quickly (one message, one
 * wake-up of the main thread for several tiny runs), and at once when the queue is empty or
 * the oldest answer has waited a millisecond, so a long run never delays an earlier answer much.
 */
async function drain() {
  draining = true;
  while (queue.length > 0) {
    const reply = await runOne(queue.shift());
    if (replies.length === 0) oldestReply = performance.now();
    replies.push(reply);
    if (queue.length === 0 || performance.now() - oldestReply >= 1) flush();
  }
  draining = false;
}

parentPort.on("message", async (message) => {
  if (message.type === "release") {
    await session.release().catch(() => undefined);
    parentPort.postMessage({ type: "released" });
    parentPort.close();
    return;
  }
  // Stops this instance the way a fault would, with whatever runs it holds unfinished (the tests'
  // way to kill an instance mid-request: Worker.terminate() during a native run aborts the process).
  if (message.type === "exit") process.exit(message.code ?? 1);
  if (message.type !== "run") return;
  queue.push(...message.runs);
  if (!draining) void drain();
});
