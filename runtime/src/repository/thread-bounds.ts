/**
 * Bounds on the threads one model's settings may start, by the pod's CPUs. A load request
 * once asked for 100000 intra-op threads and ONNX Runtime started them: thread counts are
 * resources of the whole pod, so they are checked like any other invalid setting (400 on a
 * load request, UNAVAILABLE with the reason for a model-settings.json on disk).
 *
 * The bounds, and why:
 *   - intra_op_num_threads ≤ CPUs and inter_op_num_threads ≤ CPUs: a pool with more threads
 *     than the pod has CPUs cannot run them at once; the extra threads only contend (and cost
 *     memory for their stacks). 0 keeps its meaning "let the server choose", which picks within
 *     the CPUs (backends/onnxruntime.ts).
 *   - instances × threads per instance ≤ max(MAX_INSTANCE_COUNT, 2 × CPUs): instance_count alone
 *     may already reach MAX_INSTANCE_COUNT single-threaded instances, so that many threads is
 *     accepted whatever the CPUs; beyond it, up to two instances may each use every CPU (one
 *     running while the next starts its run), but not more: past that every instance only
 *     slows the others down. The threads per instance are the intra-op pool plus the inter-op
 *     pool when execution_mode is parallel (ORT uses the inter-op pool only then). When
 *     intra_op_num_threads is not given the server shares the CPUs out itself and stays within.
 */
import type { z } from "zod";
import { availableCpus } from "../backends/cpu.js";

/** Instances one model may run (settings.ts re-exports it, with its schema). */
export const MAX_INSTANCE_COUNT = 64;

export interface ThreadSettings {
  instance_count?: unknown;
  instance_group?: unknown;
  onnxruntime?: { intra_op_num_threads?: unknown; inter_op_num_threads?: unknown; execution_mode?: unknown };
}

export interface ThreadBoundIssue {
  path: (string | number)[];
  message: string;
}

export function maxModelThreads(cpus: number): number {
  return Math.max(MAX_INSTANCE_COUNT, 2 * cpus);
}

const count = (v: unknown): number | undefined => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : undefined);

/** The instances the settings ask for (1 when they leave it to the server: its own split stays within the CPUs). */
function instances(s: ThreadSettings): number {
  const explicit = count(s.instance_count);
  if (explicit !== undefined) return Math.max(1, explicit);
  if (Array.isArray(s.instance_group)) return Math.max(1, s.instance_group.reduce((n: number, g: { count?: unknown }) => n + (count(g?.count) ?? 1), 0));
  return 1;
}

/** What is wrong with the settings' thread counts on a pod with `cpus` CPUs; empty when nothing is. Works on unvalidated input. */
export function threadBoundIssues(s: ThreadSettings, cpus = availableCpus()): ThreadBoundIssue[] {
  const issues: ThreadBoundIssue[] = [];
  const ort = s.onnxruntime ?? {};
  const intra = count(ort.intra_op_num_threads);
  const inter = count(ort.inter_op_num_threads);
  const perPod = `the pod has ${cpus} CPU${cpus === 1 ? "" : "s"}`;
  if (intra !== undefined && intra > cpus) issues.push({ path: ["onnxruntime", "intra_op_num_threads"], message: `${intra} threads exceeds the bound of ${cpus} (${perPod})` });
  if (inter !== undefined && inter > cpus) issues.push({ path: ["onnxruntime", "inter_op_num_threads"], message: `${inter} threads exceeds the bound of ${cpus} (${perPod})` });
  if (issues.length === 0 && intra !== undefined && intra > 0) {
    const perInstance = intra + (ort.execution_mode === "parallel" ? (inter ?? 1) : 0);
    const n = instances(s);
    const bound = maxModelThreads(cpus);
    if (n * perInstance > bound) {
      issues.push({
        path: [s.instance_count !== undefined ? "instance_count" : "instance_group"],
        message: `${n} instances × ${perInstance} threads each is ${n * perInstance} threads, over the bound of ${bound} (max(${MAX_INSTANCE_COUNT}, 2 × CPUs); ${perPod})`,
      });
    }
  }
  return issues;
}

/** For a zod superRefine: adds the issues to the context. */
export function refineThreadBounds(s: ThreadSettings, ctx: z.RefinementCtx): void {
  for (const issue of threadBoundIssues(s)) ctx.addIssue({ code: "custom", path: issue.path, message: issue.message });
}
