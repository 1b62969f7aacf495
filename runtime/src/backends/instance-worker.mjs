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
 * Messages in:  {type: "run", id, feeds: [{name, type, dims, data}], outputNames}
 *               {type: "release"}, {type: "exit", code}
 * Messages out: {type: "ready", inputs, outputs, executionProviders, fallback?}
 *               {type: "result", id, outputs: [{name, type, dims, data}]}  (output buffers transferred)
 *               {type: "failed", id, message}                               (the run refused this input)
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

parentPort.on("message", async (message) => {
  if (message.type === "release") {
    await session.release().catch(() => undefined);
    parentPort.postMessage({ type: "released" });
    parentPort.close();
    return;
  }
  // Stops this instance the way a fault would, with whatever run it holds unfinished (the tests'
  // way to kill an instance mid-request: Worker.terminate() during a native run aborts the process).
  if (message.type === "exit") process.exit(message.code ?? 1);
  if (message.type !== "run") return;
  const { id, feeds, outputNames } = message;
  let results;
  try {
    const tensors = {};
    for (const f of feeds) tensors[f.name] = new ort.Tensor(f.type, f.data, f.dims);
    results = await session.run(tensors, outputNames);
  } catch (err) {
    parentPort.postMessage({ type: "failed", id, message: String(err?.message ?? err) });
    return;
  }
  const outputs = [];
  const transfer = [];
  for (const name of outputNames) {
    const value = results[name];
    outputs.push({ name, type: value.type, dims: value.dims.slice(), data: value.data });
    transferable(value.data, transfer);
  }
  parentPort.postMessage({ type: "result", id, outputs }, transfer);
});
