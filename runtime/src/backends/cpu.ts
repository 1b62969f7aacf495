import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/**
 * CPUs this container may use. On Kubernetes the CPU limit lives in the cgroup
 * (cpu.max), while os.availableParallelism() reports every core of the node:
 * sizing ONNX Runtime's thread pool by the node oversubscribes a small pod.
 */
export function availableCpus(cpuMaxPath = "/sys/fs/cgroup/cpu.max"): number {
  const cores = availableParallelism();
  try {
    const [quota, period] = readFileSync(cpuMaxPath, "utf8").trim().split(/\s+/);
    if (quota && period && quota !== "max") return Math.max(1, Math.min(cores, Math.ceil(Number(quota) / Number(period))));
  } catch {
    // cgroup v1 or no cgroup: fall through to the machine's count.
  }
  return cores;
}
