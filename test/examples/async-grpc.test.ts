/** examples/grpc.ts and examples/async.sh against real servers on the shipped models. */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { startTestServer, type RunningServer } from "../../runtime/src/testing/server.js";

const root = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);
const servers: RunningServer[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

// Asynchronous child processes: the server runs in this process and must keep answering.
describe("gRPC and asynchronous examples", () => {
  it("examples/grpc.ts checks health, reads metadata, infers with raw and typed contents, shows an error code", async () => {
    const server = await startTestServer(join(root, "models"), { protocol: "grpc" });
    servers.push(server);
    const { stdout } = await run(process.execPath, ["--import", "tsx", join(root, "examples", "grpc.ts")], { env: { ...process.env, GRPC_TARGET: new URL(server.url).host } });
    expect(stdout.trim().split("\n")).toEqual([
      "health: SERVING",
      "simple inputs: INPUT0 INT32 [-1,16], INPUT1 INT32 [-1,16]",
      "OUTPUT0 [1,16]: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
      "OUTPUT1 [1,16]: -1 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14",
      "sentiment labels: positive, negative",
      "error: NOT_FOUND: Request for unknown model: 'no-such-model' is not found",
    ]);
  });

  it("examples/async.sh submits, polls to succeeded and reads the usage", async () => {
    const server = await startTestServer(join(root, "models"), { asyncInference: true, quotaRequests: 100 });
    servers.push(server);
    const { stdout } = await run("bash", [join(root, "examples", "async.sh")], { env: { ...process.env, INFERENCE_URL: server.url } });
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^\{"request_id":"[0-9a-f-]{36}","status":"queued","location":"\/api\/v1\/requests\/[0-9a-f-]{36}"\}$/);
    expect(stdout).toMatch(/^HTTP\/1\.1 202/m);
    expect(stdout).toMatch(/^preference-applied: respond-async\r?$/m);
    const final = JSON.parse(lines.find((l) => l.includes('"attempts"'))!) as { status: string; response: { outputs: { name: string; data: string[] }[] } };
    expect(final.status).toBe("succeeded");
    expect(final.response.outputs.find((o) => o.name === "label")!.data).toEqual(["positive"]);
    const usage = JSON.parse(lines[lines.length - 1]!) as { requests: number; quota: { requests: number }; remaining: { requests: number } };
    expect(usage).toMatchObject({ requests: 2, quota: { requests: 100 }, remaining: { requests: 98 } });
  });
});
