import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type RunningServer } from "../../runtime/src/testing/server.js";
import { InferenceClient, InferenceClientError } from "../../examples/client.js";

const root = join(import.meta.dirname, "..", "..");
let server: RunningServer;

// The examples run against the models the README's `npm start` serves.
beforeAll(async () => {
  server = await startTestServer(join(root, "models"));
});
afterAll(() => server?.close());

describe("examples against the shipped model repository", () => {
  it("the typed client reads metadata and infers", async () => {
    const client = new InferenceClient(server.url);
    expect(await client.ready()).toBe(true);
    expect((await client.server()).name).toBe("inference-runtime");
    const response = await client.infer("simple", {
      inputs: [
        { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: Array(16).fill(2) },
        { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: Array(16).fill(1) },
      ],
    });
    expect(response.outputs.find((o) => o.name === "OUTPUT1")?.data).toEqual(Array(16).fill(1));
  });

  it("the typed client surfaces the server's error message and status", async () => {
    const client = new InferenceClient(server.url);
    const error = await client.infer("simple", { inputs: [{ name: "INPUT0", shape: [1], datatype: "INT32", data: [1] }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceClientError);
    expect((error as InferenceClientError).status).toBe(400);
  });

  // Asynchronous child processes: the server runs in this process and must keep answering.
  it("examples/simple.sh and examples/client.ts run as documented", async () => {
    const run = promisify(execFile);
    const env = { ...process.env, INFERENCE_URL: server.url };
    const curl = await run("bash", [join(root, "examples", "simple.sh")], { env });
    expect(curl.stdout).toContain('"data":[2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]');
    const ts = await run(process.execPath, ["--import", "tsx", join(root, "examples", "client.ts")], { env });
    expect(ts.stdout).toContain("OUTPUT0 = [2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]");
  });
});
