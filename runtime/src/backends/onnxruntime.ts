/**
 * The ONNX Runtime backend (onnxruntime-node): every model version runs on its own
 * pool of worker-thread instances (instances.ts), each with its own session.
 */
import { Worker } from "node:worker_threads";
import { requestedInstanceCount } from "../repository/settings.js";
import type { LoadedModel, ModelBackend, ModelLoadSpec } from "./backend.js";
import { availableCpus } from "./cpu.js";
import { InstancePool, type InstanceExitListener } from "./instances.js";
import { ONNX_PLATFORM, sessionOptions } from "./ort-session.js";

export { ModelLoadError, ONNX_PLATFORM, sessionOptions } from "./ort-session.js";

/**
 * The worker's file: beside this module in the sources (tests, tsx), beside the bundle in dist/
 * (scripts/build.mjs copies it there), so one relative URL finds it in both.
 */
const WORKER_URL = new URL("./instance-worker.mjs", import.meta.url);

/**
 * Instances per model when its settings do not say: two where the pod has two CPUs or
 * more, so that one long run never holds up the next request and two runs use two cores;
 * one on a single CPU. Measured with `npm run bench` (README, "Model instances").
 */
export function defaultInstanceCount(cpus = availableCpus()): number {
  return cpus >= 2 ? 2 : 1;
}

/** Intra-op threads per instance: the pod's CPUs shared out, so instances × threads does not oversubscribe them. */
export function intraOpThreadsPerInstance(cpus: number, instances: number): number {
  return Math.max(1, Math.floor(cpus / instances));
}

export interface WorkerBackendOptions {
  executionProviders: string[];
  onInstanceExit?: InstanceExitListener;
  /** The pod's CPUs (default: the cgroup limit), for the default count and thread split. */
  cpus?: number;
}

/** The ONNX Runtime backend: every model version on its own pool of worker-thread instances. */
export class OnnxRuntimeBackend implements ModelBackend {
  readonly platform = ONNX_PLATFORM;
  private readonly cpus: number;

  constructor(private readonly options: WorkerBackendOptions) {
    this.cpus = options.cpus ?? availableCpus();
  }

  async load(spec: ModelLoadSpec): Promise<LoadedModel> {
    const count = requestedInstanceCount(spec.settings) ?? defaultInstanceCount(this.cpus);
    const settings = spec.settings.onnxruntime;
    // 0 (Triton's "let the runtime choose") is the server's choice here: ONNX Runtime's own default counts the
    // node's cores, not the pod's CPUs (repository/thread-bounds.ts bounds explicit counts).
    const options = sessionOptions({
      ...settings,
      intra_op_num_threads: settings.intra_op_num_threads || intraOpThreadsPerInstance(this.cpus, count),
      inter_op_num_threads: settings.inter_op_num_threads || undefined,
    });
    const workerData = {
      file: spec.file,
      options,
      executionProviders: spec.settings.execution_providers ?? this.options.executionProviders,
    };
    const pool = new InstancePool(spec, count, () => new Worker(WORKER_URL, { workerData, name: `${spec.name}/${spec.version}` }), this.options.onInstanceExit);
    await pool.load();
    return pool;
  }
}
