/** The `inference-server` command as a user runs it: the built bundle, a real process, real HTTP. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { model, node, tensor, valueInfo } from "../../models/build/onnx.js";
import { buildSimple } from "../../models/build/simple.js";
import { removeRepository, writeRepository } from "./testing/fixtures.js";

const root = join(import.meta.dirname, "..", "..");
const bin = join(root, "bin", "inference-server.js");
let repo: string;

beforeAll(async () => {
  if (!existsSync(join(root, "dist", "inference-server.js"))) spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
  // KServe's storage initializer keeps the artifact's own file name.
  repo = await writeRepository({
    "kserve/simple-model.onnx": buildSimple(),
    "empty/.keep": "",
    // ONNX Runtime warns while loading this one (the unused initializer), and logs an error when a run fails.
    "noisy/unused/1/model.onnx": model({
      name: "unused_initializer",
      nodes: [node("Identity", ["INPUT"], ["OUTPUT"])],
      inputs: [valueInfo("INPUT", "INT32", ["n"])],
      outputs: [valueInfo("OUTPUT", "INT32", ["n"])],
      initializers: [tensor("UNUSED", "INT32", [1], [7])],
    }),
    "noisy/reshape/1/model.onnx": model({
      name: "reshape_2x2",
      nodes: [node("Reshape", ["INPUT", "SHAPE"], ["OUTPUT"])],
      inputs: [valueInfo("INPUT", "INT32", ["n"])],
      outputs: [valueInfo("OUTPUT", "INT32", [2, 2])],
      initializers: [tensor("SHAPE", "INT64", [2], [2, 2])],
    }),
  });
});
afterAll(() => removeRepository(repo));

/** A running `inference-server` process: its URL once ready, and everything it wrote so far. */
interface Cli {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startCli(args: string[], env: Record<string, string>): Promise<Cli> {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, LOG_LEVEL: "info", PORT: "0", HOST: "127.0.0.1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const match = /"port":(\d+)[^\n]*"msg":"listening"/.exec(stdout);
      if (match) resolve(`http://127.0.0.1:${match[1]}`);
    };
    child.stdout.on("data", onData);
    void exited.then(({ code }) => reject(new Error(`server exited with ${code}: ${stdout}${stderr}`)));
  });
  for (let i = 0; i < 200 && (await fetch(`${url}/v2/health/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
  return { child, url, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Resolves once `text()` matches `pattern` (bounded by the test's timeout). */
async function until(text: () => string, pattern: RegExp): Promise<void> {
  while (!pattern.test(text())) await new Promise((r) => setTimeout(r, 20));
}

/** Every non-empty line of `text`, each of which must be a JSON object. */
function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON log line: ${JSON.stringify(line)}`);
      }
    });
}

const reshapeRequest = JSON.stringify({ inputs: [{ name: "INPUT", shape: [3], datatype: "INT32", data: [1, 2, 3] }] });

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

  it("keeps stdout and stderr pure JSON lines while ONNX Runtime warns (a model with an unused initializer) and errors (a run it refuses)", async () => {
    const server = await startCli(["--model-repository", join(repo, "noisy")], {});
    const res = await fetch(`${server.url}/v2/models/reshape/infer`, { method: "POST", body: reshapeRequest });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^model .reshape. could not run on this input: .*Reshape/);
    server.child.kill("SIGTERM");
    expect((await server.exited).code).toBe(0);
    expect(server.stderr()).toBe("");
    const lines = jsonLines(server.stdout());
    expect(lines.filter((l) => l.msg === "model loaded").map((l) => l.model).sort()).toEqual(["reshape", "unused"]);
    expect(lines.every((l) => typeof l.level === "string")).toBe(true);
  });

  it("ORT_LOG_LEVEL=warning brings ONNX Runtime's own lines back (what the JSON-only test above would catch)", async () => {
    const server = await startCli(["--model-repository", join(repo, "noisy")], { ORT_LOG_LEVEL: "warning" });
    server.child.kill("SIGTERM");
    await server.exited;
    expect(server.stderr()).toContain("Removing initializer 'UNUSED'");
  });

  it("logs its configuration at start-up with unset secrets as unset", async () => {
    const server = await startCli(["--model-repository", join(repo, "empty")], {});
    server.child.kill("SIGTERM");
    await server.exited;
    const starting = jsonLines(server.stdout()).find((l) => l.msg === "starting") as { config: Record<string, unknown> };
    expect(starting.config).toMatchObject({ repositoryApiToken: "unset", resultsToken: "unset" });
  });

  it("on a second SIGINT while draining, logs a line and exits 130", async () => {
    // A long drain delay keeps it draining until the second signal.
    const server = await startCli(["--model-repository", join(repo, "empty")], { DRAIN_DELAY_MS: "600000", DRAIN_TIMEOUT_MS: "900000" });
    server.child.kill("SIGINT");
    await until(server.stdout, /"msg":"draining"/);
    server.child.kill("SIGINT");
    expect(await server.exited).toEqual({ code: 130, signal: null });
    const second = jsonLines(server.stdout()).find((l) => l.signal === "SIGINT" && l.level === "warn");
    expect(second).toMatchObject({ exit_code: 130, msg: "second SIGINT while draining: exiting now; requests still in flight are dropped" });
  });

  it("prints usage with --help", () => {
    const result = spawnSync(process.execPath, [bin, "--help"], { encoding: "utf8" });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("--model_name NAME --model_dir DIR");
  });
});
