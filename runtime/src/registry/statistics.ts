/**
 * Triton's statistics extension, counted for real on the hot path: a handful
 * of number additions per request, no allocation.
 */
export interface Duration {
  count: number;
  ns: number;
}

export interface InferenceStats {
  success: Duration;
  fail: Duration;
  queue: Duration;
  compute_input: Duration;
  compute_infer: Duration;
  compute_output: Duration;
}

const zero = (): Duration => ({ count: 0, ns: 0 });

/** Told of each model execution and queue wait, for Prometheus histograms (metrics.ts). */
export interface StatisticsObserver {
  executed(rows: number, computeMs: number): void;
  queued(queueMs: number): void;
}

export class ModelStatistics {
  constructor(readonly observer?: StatisticsObserver) {}

  /** A model run finished: `rows` inferences in `computeMs`. */
  executed(rows: number, computeMs: number): void {
    this.observer?.executed(rows, computeMs);
  }

  /** Inferences performed: a batch of 8 rows counts 8. */
  inferenceCount = 0;
  /** Model executions: a batch of 8 rows run together counts 1. */
  executionCount = 0;
  /** Milliseconds since the epoch of the last inference, 0 before any. */
  lastInference = 0;
  readonly stats: InferenceStats = {
    success: zero(), fail: zero(), queue: zero(), compute_input: zero(), compute_infer: zero(), compute_output: zero(),
  };

  static add(d: Duration, ms: number): void {
    d.count++;
    d.ns += Math.round(ms * 1e6);
  }

  toJSON(name: string, version: string) {
    return {
      name,
      version,
      last_inference: this.lastInference,
      inference_count: this.inferenceCount,
      execution_count: this.executionCount,
      inference_stats: this.stats,
      batch_stats: [],
    };
  }
}
