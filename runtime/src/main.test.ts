/** The `inference-server` command as a user runs it: the built bundle, a real process, real HTTP. */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../models/build/simple.js";
import { removeRepository, writeRepository } from "./testing/fixtures.js";

const root = join(import.meta.dirname, "..", "..");
const bin = join(root, "bin", "inference-server.js");
let repo: string;

beforeAll(async () => {
  if (!existsSync(join(root, "dist", "inference-server.js"))) spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
  // KServe's storage initializer keeps the artifact's own file name.
  repo = await writeRepository({ "kserve/simple-model.onnx": buildSimple(), "empty/.keep": "" });
});
afterAll(() => removeRepository(repo));

/** Runs the server until it prints "listening" and answers, then calls `check`, then stops it with SIGTERM. */
async function withServer(args: string[], env: Record<string, string>, check: (url: string) => Promise<void>): Promise<number | null> {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, LOG_LEVEL: "info", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk;
      const match = /"port":(\d+)[^\n]*"msg":"listening"/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.stderr.on("data", (chunk: Buffer) => (output += chunk));
    child.once("exit", (code) => reject(new Error(`server exited with ${code}: ${output}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && (await fetch(`${url}/v2/health/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
  try {
    await check(url);
  } finally {
    child.kill("SIGTERM");
  }
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

describe("inference-server CLI", () => {
  it("serves a single model directory under --model_name, as a KServe ServingRuntime runs it, and exits 0 on SIGTERM", async () => {
    const code = await withServer(["--model_name=my-model", `--model_dir=${join(repo, "kserve")}`], { PORT: "0", HOST: "127.0.0.1" }, async (url) => {
      const models = (await fetch(`${url}/v2/models`).then((r) => r.json())) as { models: string[] };
      expect(models.models).toEqual(["my-model"]);
      const data = Array.from({ length: 16 }, (_, i) => i);
      const res = await fetch(`${url}/v2/models/my-model/infer`, {
        method: "POST",
        body: JSON.stringify({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data })) }),
      });
      expect(((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual(data.map((x) => 2 * x));
    });
    expect(code).toBe(0);
  });

  it("exits 2 naming the bad key on invalid configuration", () => {
    const result = spawnSync(process.execPath, [bin], { env: { ...process.env, PORT: "http" }, encoding: "utf8" });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("PORT (environment): expected a port number");
  });

  it("exits 1 when the model repository does not exist", () => {
    const result = spawnSync(process.execPath, [bin, "--model-repository", join(repo, "missing")], { encoding: "utf8" });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/model repository .*missing does not exist/);
  });

  it("prints usage with --help", () => {
    const result = spawnSync(process.execPath, [bin, "--help"], { encoding: "utf8" });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("--model_name NAME --model_dir DIR");
  });
});
