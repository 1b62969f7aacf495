/**
 * Model instances on worker threads, through the real server and real ONNX Runtime
 * sessions: the HTTP thread keeps answering while models run, instances run side by
 * side, a killed instance fails only its own request and comes back, reloads under
 * traffic lose nothing. Nothing here measures time: every assertion is about order
 * (which answer came first) or about state, with a model slow enough (tens of
 * milliseconds per request and more) that order is unambiguous.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { ModelSettingsSchema } from "../repository/settings.js";
import { removeRepository, slowInput, slowModel, writeRepository } from "../testing/fixtures.js";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";
import type { InstancePool } from "./instances.js";
import { defaultInstanceCount, intraOpThreadsPerInstance } from "./onnxruntime.js";

const raw = { "inference-header-content-length": "0" };
const infer = (url: string, model: string, rows: number) =>
  fetch(`${url}/v2/models/${model}/infer`, { method: "POST", body: slowInput(rows), headers: raw });

let repo: string;
let server: RunningServer;

const pool = (model: string) => server.dataPlane.registry.findReady(model).model as InstancePool;

/** Resolves once the predicate holds, checking on every event-loop turn (no sleeps, no timing). */
async function until(predicate: () => boolean, what: string, limit = 200_000): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (predicate()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

beforeAll(async () => {
  repo = await writeRepository({
    "slow/1/model.onnx": slowModel(),
    "slow/model-settings.json": JSON.stringify({ instance_count: 2, onnxruntime: { intra_op_num_threads: 1 } }),
    "single/1/model.onnx": slowModel(),
    "single/model-settings.json": JSON.stringify({ instance_group: [{ count: 1, kind: "KIND_CPU" }] }),
    "simple/1/model.onnx": buildSimple(),
  });
  server = await startTestServer(repo, { repositoryApi: "enabled" });
});

afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

describe("model instances", () => {
  it("start as many worker threads as the settings ask, in Triton's form too; the first serves at once, the others join", async () => {
    expect(pool("slow").instances).toHaveLength(2);
    expect(pool("single").instances).toHaveLength(1);
    expect(pool("slow").liveInstances()).toBeGreaterThanOrEqual(1);
    await until(() => pool("slow").liveInstances() === 2, "the second instance started and warmed up");
  });

  it("answer the probes and small requests while a long model run is in progress", async () => {
    const order: string[] = [];
    const long = infer(server.url, "slow", 400).then((res) => {
      order.push(`slow ${res.status}`);
    });
    await until(() => pool("slow").instances.some((i) => i.state === "busy"), "the slow run started");
    const live = await fetch(`${server.url}/v2/health/live`);
    order.push(`live ${live.status}`);
    const simple = await postJson(`${server.url}/v2/models/simple/infer`, {
      inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(1) })),
    });
    order.push(`simple ${simple.status}`);
    const metrics = await fetch(`${server.url}/metrics`);
    order.push(`metrics ${metrics.status}`);
    await long;
    expect(order).toEqual(["live 200", "simple 200", "metrics 200", "slow 200"]);
  });

  it("run two requests at once on two instances", async () => {
    const a = infer(server.url, "slow", 300);
    const b = infer(server.url, "slow", 300);
    await until(() => pool("slow").instances.every((i) => i.state === "busy"), "both instances busy at once");
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
  });

  it("queue requests in arrival order when every instance is busy, and answer them all", async () => {
    const answers = await Promise.all(Array.from({ length: 6 }, () => infer(server.url, "single", 20)));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
  });

  it("fail only the request of an instance that dies, restart it, and keep the model READY", async () => {
    const p = pool("slow");
    const exitsBefore = p.instances.reduce((n, i) => n + i.exits, 0);
    await until(() => p.instances.every((i) => i.state === "idle"), "both instances idle");
    // The next request goes to the first idle instance; its worker is told to exit instead of
    // running it, so the instance dies while the main thread holds the run as in flight.
    const victim = p.instances[0]!;
    const worker = victim.worker!;
    const post = worker.postMessage.bind(worker);
    worker.postMessage = (message: { type: string }, transfer?: readonly ArrayBuffer[]) => {
      post(message.type === "run" ? { type: "exit", code: 70 } : message, transfer as ArrayBuffer[]);
    };
    const res = await infer(server.url, "slow", 400);
    expect(res.status).toBe(500);
    expect((await res.json() as { error: string }).error).toMatch(new RegExp(`^model 'slow' version 1: instance ${victim.index} stopped unexpectedly during this request`));
    expect((await getJson(`${server.url}/v2/models/slow/ready`)).status).toBe(200);
    expect((await infer(server.url, "slow", 4)).status).toBe(200);
    await until(() => p.liveInstances() === 2, "the instance restarted");
    expect(p.instances.reduce((n, i) => n + i.exits, 0)).toBe(exitsBefore + 1);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(new RegExp(`^inference_server_model_instance_restarts_total\\{model="slow",version="1",instance="${victim.index}"\\} 1$`, "m"));
    expect(text).toMatch(/^inference_server_model_instances\{model="slow",version="1",state="live"\} 2$/m);
    // Both instances serve again.
    const both = [infer(server.url, "slow", 200), infer(server.url, "slow", 200)];
    await until(() => p.instances.every((i) => i.state === "busy"), "both instances busy after the restart");
    expect((await Promise.all(both)).map((r) => r.status)).toEqual([200, 200]);
  });

  it("reload under traffic across instances: every request is answered 200, and the old instances stop", async () => {
    const old = pool("slow");
    let stop = false;
    const statuses: number[] = [];
    const client = async () => {
      while (!stop) statuses.push((await infer(server.url, "slow", 8)).status);
    };
    const clients = [client(), client(), client()];
    await until(() => statuses.length >= 3, "traffic flowing");
    const reload = await postJson(`${server.url}/v2/repository/models/slow/load`, {});
    expect(reload.status).toBe(200);
    const after = statuses.length;
    await until(() => statuses.length >= after + 3, "traffic on the new version");
    stop = true;
    await Promise.all(clients);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(pool("slow")).not.toBe(old);
    await until(() => old.instances.every((i) => i.state === "stopped"), "the old instances released");
  });

  it("unload stops every instance of the model", async () => {
    const p = pool("single");
    expect((await postJson(`${server.url}/v2/repository/models/single/unload`, {})).status).toBe(200);
    expect(p.instances.every((i) => i.state === "stopped")).toBe(true);
  });
});

describe("instance settings", () => {
  it("default to two instances from two CPUs up, one on a single CPU, and share the CPUs out as intra-op threads", () => {
    expect([1, 2, 4, 16].map((cpus) => defaultInstanceCount(cpus))).toEqual([1, 2, 2, 2]);
    expect(intraOpThreadsPerInstance(2, 2)).toBe(1);
    expect(intraOpThreadsPerInstance(8, 2)).toBe(4);
    expect(intraOpThreadsPerInstance(2, 4)).toBe(1);
    expect(intraOpThreadsPerInstance(7, 2)).toBe(3);
  });

  it("accept instance_count or Triton's instance_group, not both, and refuse Triton's GPU placement by name", () => {
    const parse = (s: unknown) => ModelSettingsSchema.safeParse(s);
    expect(parse({ instance_count: 3 }).success).toBe(true);
    expect(parse({ instance_group: [{ count: 2 }, { count: 1, kind: "KIND_GPU" }] }).success).toBe(true);
    const both = parse({ instance_count: 2, instance_group: [{ count: 2 }] });
    expect(both.success).toBe(false);
    expect(JSON.stringify(both.error?.issues)).toContain("give instance_count or instance_group");
    const gpus = parse({ instance_group: [{ count: 1, gpus: [0] }] });
    expect(gpus.success).toBe(false);
    expect(JSON.stringify(gpus.error?.issues)).toContain("gpus");
    expect(parse({ instance_count: 0 }).success).toBe(false);
    expect(parse({ instance_count: 65 }).success).toBe(false);
  });
});
