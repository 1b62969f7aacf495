/**
 * One in-process "instance" for `npm run bench` (bench/run.ts, inProcessInstances): a worker
 * thread with its own ONNX Runtime session, like the server's model instances
 * (runtime/src/backends/instance-worker.mjs), running back-to-back session.run calls.
 * onnxruntime-node's session.run blocks the thread that calls it, so N sessions run side by
 * side only on N threads.
 *
 * workerData: {file, options, input, width, row (Float32Array), rows}
 * Messages in:  {type: "run", ms}   → {type: "done", runs, ms}
 *               {type: "exit"}
 * Messages out: {type: "ready"} once the session is created and warmed up.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

const { file, options, input, width, row, rows } = workerData;
const session = await ort.InferenceSession.create(file, options);

/** Feeds are created per run, as the server does. */
function feeds() {
  const data = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) data.set(row, r * width);
  return { [input]: new ort.Tensor("float32", data, [rows, width]) };
}

const warmUntil = performance.now() + 300;
while (performance.now() < warmUntil) await session.run(feeds());
parentPort.postMessage({ type: "ready" });

parentPort.on("message", async (message) => {
  if (message.type === "exit") {
    await session.release();
    process.exit(0);
  }
  if (message.type !== "run") return;
  let runs = 0;
  const started = performance.now();
  const until = started + message.ms;
  while (performance.now() < until) {
    await session.run(feeds());
    runs++;
  }
  parentPort.postMessage({ type: "done", runs, ms: performance.now() - started });
});
