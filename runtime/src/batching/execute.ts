/**
 * The data plane's one call into a model: through the version's dynamic batcher
 * when it has one, straight to the backend otherwise. Either way the Triton
 * statistics stay truthful: queue time, compute time, and one execution per
 * model run (a batch of several requests counts once).
 */
import type { InferOptions } from "../backends/backend.js";
import type { ReadyModelVersion } from "../registry/registry.js";
import { ModelStatistics } from "../registry/statistics.js";
import type { InferenceRequest } from "../dataplane/types.js";
import type { Tensor } from "../tensor/tensor.js";

/** Rows in a request: the batch dimension for batching models (max_batch_size > 0), else one inference. */
export function requestRows(request: InferenceRequest, maxBatchSize: number): number {
  return maxBatchSize > 0 ? (request.inputs[0]?.shape[0] ?? 1) : 1;
}

/** Runs a validated request; `dispatched` is when validation finished (performance.now()). */
export async function execute(entry: ReadyModelVersion, request: InferenceRequest, outputNames: readonly string[], dispatched: number, options: InferOptions = {}): Promise<Tensor[]> {
  const { stats } = entry.statistics;
  if (entry.batcher) {
    const result = await entry.batcher.infer(request.inputs, outputNames, request.parameters, options);
    ModelStatistics.add(stats.queue, result.queueMs);
    entry.statistics.observer?.queued(result.queueMs);
    ModelStatistics.add(stats.compute_infer, result.computeMs);
    return result.outputs;
  }
  ModelStatistics.add(stats.queue, 0);
  const outputs = await entry.model.infer(request.inputs, outputNames, request.parameters, options);
  const computeMs = performance.now() - dispatched;
  ModelStatistics.add(stats.compute_infer, computeMs);
  entry.statistics.executionCount++;
  entry.statistics.executed(requestRows(request, entry.settings.max_batch_size), computeMs);
  return outputs;
}
