/** Thread counts bounded by the pod's CPUs: refused from a load request (400) and from a model-settings.json on disk (UNAVAILABLE). */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { availableCpus } from "../backends/cpu.js";
import { addConstantModel, removeRepository, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";
import { threadBoundIssues } from "./thread-bounds.js";

const cpus = availableCpus();
const pod = `the pod has ${cpus} CPU${cpus === 1 ? "" : "s"}`;

describe("thread bounds", () => {
  it("bounds intra-op and inter-op threads by the CPUs, and instances × threads by max(64, 2 × CPUs)", () => {
    expect(threadBoundIssues({ onnxruntime: { intra_op_num_threads: 64 } }, 2)).toEqual([
      { path: ["onnxruntime", "intra_op_num_threads"], message: "64 threads exceeds the bound of 2 (the pod has 2 CPUs)" },
    ]);
    expect(threadBoundIssues({ onnxruntime: { inter_op_num_threads: 3 } }, 2)[0]?.path).toEqual(["onnxruntime", "inter_op_num_threads"]);
    expect(threadBoundIssues({ onnxruntime: { intra_op_num_threads: 2 } }, 2)).toEqual([]);
    // 0 is "let the server choose", within the CPUs.
    expect(threadBoundIssues({ onnxruntime: { intra_op_num_threads: 0 } }, 2)).toEqual([]);
    expect(threadBoundIssues({ instance_count: 64, onnxruntime: { intra_op_num_threads: 1 } }, 2)).toEqual([]);
    expect(threadBoundIssues({ instance_count: 33, onnxruntime: { intra_op_num_threads: 2 } }, 2)).toEqual([
      { path: ["instance_count"], message: "33 instances × 2 threads each is 66 threads, over the bound of 64 (max(64, 2 × CPUs); the pod has 2 CPUs)" },
    ]);
    expect(threadBoundIssues({ instance_group: [{ count: 2 }, { count: 2 }], onnxruntime: { intra_op_num_threads: 32 } }, 32)[0]?.message).toBe(
      "4 instances × 32 threads each is 128 threads, over the bound of 64 (max(64, 2 × CPUs); the pod has 32 CPUs)",
    );
    // The inter-op pool counts only when execution is parallel (ONNX Runtime uses it only then).
    expect(threadBoundIssues({ instance_count: 2, onnxruntime: { intra_op_num_threads: 32, inter_op_num_threads: 32, execution_mode: "parallel" } }, 32)).toHaveLength(1);
    expect(threadBoundIssues({ instance_count: 2, onnxruntime: { intra_op_num_threads: 32, inter_op_num_threads: 32 } }, 32)).toEqual([]);
  });
});

describe("thread bounds on a real server", () => {
  let repo: string;
  let server: RunningServer;
  beforeAll(async () => {
    repo = await writeRepository({
      "simple/1/model.onnx": buildSimple(),
      "greedy/1/model.onnx": addConstantModel(1),
      "greedy/model-settings.json": JSON.stringify({ onnxruntime: { intra_op_num_threads: 100000 } }),
    });
    server = await startTestServer(repo);
  });
  afterAll(async () => {
    await server?.close();
    await removeRepository(repo);
  });

  it("marks a model whose model-settings.json asks for too many threads UNAVAILABLE, with the reason", async () => {
    const index = (await postJson(`${server.url}/v2/repository/index`, {})).body;
    expect(index).toContainEqual({
      name: "greedy", version: "1", state: "UNAVAILABLE",
      reason: `failed to load: invalid model-settings.json: onnxruntime.intra_op_num_threads: 100000 threads exceeds the bound of ${cpus} (${pod})`,
    });
    expect(index).toContainEqual({ name: "simple", version: "1", state: "READY" });
  });

  it("refuses a load request asking for too many threads with 400 naming the key and the bound", async () => {
    const settings = await postJson(`${server.url}/v2/repository/models/simple/load`, { parameters: { config: JSON.stringify({ onnxruntime: { intra_op_num_threads: 100000 } }) } });
    expect(settings).toMatchObject({ status: 400, body: { error: `invalid parameters.config: onnxruntime.intra_op_num_threads: 100000 threads exceeds the bound of ${cpus} (${pod})` } });
    const triton = await postJson(`${server.url}/v2/repository/models/simple/load`, { parameters: { config: JSON.stringify({ parameters: { inter_op_thread_count: { string_value: "100000" } } }) } });
    expect(triton).toMatchObject({ status: 400, body: { error: `invalid parameters.config: parameters.inter_op_thread_count: 100000 threads exceeds the bound of ${cpus} (${pod})` } });
    expect((await getJson(`${server.url}/v2/models/simple/ready`)).status).toBe(200);
  });
});
