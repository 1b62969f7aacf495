/**
 * docs/own-model.md followed for scikit-learn, as a user would: the pinned scikit-learn +
 * skl2onnx environment (examples/own-model/python-env.sh, cached outside the checkout; .ci/run
 * prepares it), examples/own-model/sklearn_iris.py writing a model the server has never seen
 * into its repository while the server runs, the load API, the model's signature and an
 * inference, checked against scikit-learn's own predictions for the same rows (written by the
 * script with --expected, nothing hard-coded here). Once with skl2onnx's ZipMap turned off
 * (what the guide recommends) and once with it kept (served as an FP32 probability tensor).
 *
 * When the Python environment cannot be prepared the test fails with the script's reason; it
 * is never skipped.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, postJson, startTestServer, type RunningServer } from "../testing/server.js";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const EXAMPLES = join(ROOT, "examples", "own-model");
/** A first preparation installs from PyPI (about 20 s here); a cached one answers at once. */
const PREPARE_TIMEOUT_MS = 600_000;
const run = promisify(execFile);

interface Expected {
  input: number[][];
  label: number[];
  probabilities: number[][];
  labels: string[];
}

let scratch: string;
let repo: string;
let server: RunningServer | undefined;
let python: string;

async function sklearnPython(): Promise<string> {
  try {
    const { stdout } = await run("bash", [join(EXAMPLES, "python-env.sh"), "sklearn"], { timeout: PREPARE_TIMEOUT_MS, maxBuffer: 16 << 20 });
    const path = stdout.trim().split("\n").pop();
    if (!path) throw new Error("it printed no interpreter path");
    return path;
  } catch (error) {
    const e = error as Error & { stderr?: string };
    throw new Error(`the scikit-learn environment could not be prepared (bash examples/own-model/python-env.sh sklearn): ${e.stderr?.trim() || e.message}`);
  }
}

/** The guide's step 1: the example script, into the running server's repository. */
async function exportModel(name: string, extra: string[]): Promise<Expected> {
  const expectedFile = join(scratch, `${name}.expected.json`);
  try {
    await run(python, [join(EXAMPLES, "sklearn_iris.py"), repo, "--name", name, "--expected", expectedFile, ...extra], {
      timeout: 120_000,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    });
  } catch (error) {
    const e = error as Error & { stderr?: string; stdout?: string };
    throw new Error(`examples/own-model/sklearn_iris.py failed: ${e.stderr?.trim() || e.stdout?.trim() || e.message}`);
  }
  return JSON.parse(await readFile(expectedFile, "utf8")) as Expected;
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "own-model-"));
  repo = join(scratch, "models");
  await mkdir(repo);
  // The server starts on an empty repository; the models arrive later.
  server = await startTestServer(repo);
});

afterAll(async () => {
  await server?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("docs/own-model.md, followed for scikit-learn", () => {
  it("serves a classifier exported by examples/own-model/sklearn_iris.py, loaded into a running server, as scikit-learn predicts", async () => {
    // In the test itself, so that an environment that cannot be prepared fails it (with the reason).
    python = await sklearnPython();
    const url = server!.url;
    const [plain, zipmap] = await Promise.all([exportModel("iris", []), exportModel("iris-zipmap", ["--zipmap"])]);

    for (const [name, expected, outputs] of [
      ["iris", plain, ["label", "probabilities"]],
      ["iris-zipmap", zipmap, ["output_label", "output_probability"]],
    ] as const) {
      // Not there until loaded: the server was started before the model existed.
      expect((await getJson(`${url}/v2/models/${name}/ready`)).status, name).not.toBe(200);
      const load = await postJson(`${url}/v2/repository/models/${name}/load`, {});
      expect(load, name).toMatchObject({ status: 200, body: { name, load: true } });

      const metadata = await getJson(`${url}/v2/models/${name}`);
      expect(metadata.status, name).toBe(200);
      expect(metadata.body).toMatchObject({
        name,
        versions: ["1"],
        platform: "onnx_onnxv1",
        inputs: [{ name: "input", datatype: "FP32", shape: [-1, 4] }],
        outputs: [
          { name: outputs[0], datatype: "INT64", shape: [-1] },
          { name: outputs[1], datatype: "FP32", shape: [-1, 3] },
        ],
        parameters: { labels: expected.labels },
      });

      const rows = expected.input.length;
      const infer = await postJson(`${url}/v2/models/${name}/infer`, {
        inputs: [{ name: "input", shape: [rows, 4], datatype: "FP32", data: expected.input }],
      });
      expect(infer.status, JSON.stringify(infer.body)).toBe(200);
      const byName = Object.fromEntries((infer.body.outputs as { name: string; shape: number[]; data: number[] }[]).map((o) => [o.name, o]));
      expect(byName[outputs[0]]).toMatchObject({ shape: [rows], data: expected.label });
      expect(byName[outputs[1]]!.shape).toEqual([rows, 3]);
      const probabilities = byName[outputs[1]]!.data;
      expected.probabilities.flat().forEach((p, i) => expect(probabilities[i], `${name} probability ${i}`).toBeCloseTo(p, 5));
    }
  }, PREPARE_TIMEOUT_MS + 120_000);
});
