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
 * Messages out: {type: "ready", inputs, outputs, executionProviders, fallback?}
 *               {type: "results", results: [{id, outputs: [{name, type, dims, data}]} | {id, message}]}
 *                 (output buffers transferred; `message`: the run refused this input)
 *               {type: "released"}
 * A failure to create the session is thrown: the main thread sees it as the worker's error.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

const { file, options, executionProviders } = workerData;

async function createSession() {
  try {
    return { session: await ort.InferenceSession.create(file, { ...options, executionProviders }), providers: executionProviders };
  } catch (err) {
    if (executionProviders.length === 1 && executionProviders[0] === "cpu") throw err;
    // CUDA missing on this node (or in this build): serve on CPU rather than not at all; the main thread says so.
    const session = await ort.InferenceSession.create(file, { ...options, executionProviders: ["cpu"] });
    return { session, providers: ["cpu"], fallback: String(err?.message ?? err) };
  }
}

const metadata = (list) => list.map(({ name, isTensor, type, shape }) => ({ name, isTensor, type, shape }));

const { session, providers, fallback } = await createSession();
parentPort.postMessage({
  type: "ready",
  inputs: metadata(session.inputMetadata),
  outputs: metadata(session.outputMetadata),
  executionProviders: providers,
  ...(fallback !== undefined && { fallback }),
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
