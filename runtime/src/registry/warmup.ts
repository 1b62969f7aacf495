/**
 * Warm-up: one inference per model version before it reports READY, so the
 * first user request does not pay for ONNX Runtime's first-run allocations
 * and kernel set-up.
 */
import type { LoadedModel } from "../backends/backend.js";
import { warmupInputs } from "../backends/warmup-inputs.js";

/**
 * Runs the warm-up inference (on the model's first instance; instances that start later run
 * their own before they serve, see backends/instances.ts); resolves with its duration in
 * milliseconds, or rejects with the model's error.
 */
export async function warmup(model: LoadedModel): Promise<number> {
  const started = performance.now();
  await model.infer(warmupInputs(model.inputs), model.outputs.map((o) => o.name), undefined, { transfer: true });
  return performance.now() - started;
}
