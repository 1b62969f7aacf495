/**
 * Runs the Python client scripts in py/ (Triton's tritonclient and KServe's SDK, pinned in
 * requirements.txt) for the client-fidelity tests. The interpreter is the cached virtual
 * environment scripts/python-clients.sh prepares (instant once prepared; .ci/run prepares
 * it before the tests). A test that cannot get it fails with the script's reason: these
 * tests are never skipped.
 */
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const PREPARE = join(ROOT, "scripts", "python-clients.sh");
const SCRIPTS = join(import.meta.dirname, "py");

/** How long a first preparation (venv + pip install from PyPI) may take. */
export const PREPARE_TIMEOUT_MS = 600_000;

let prepared: Promise<string> | undefined;

/** The path of the clients' python, preparing the environment if needed (once per test file). */
export function pythonClients(): Promise<string> {
  prepared ??= promisify(execFile)("bash", [PREPARE], { timeout: PREPARE_TIMEOUT_MS, maxBuffer: 16 << 20 }).then(
    ({ stdout }) => {
      const python = stdout.trim().split("\n").pop() ?? "";
      if (!python) throw new Error("scripts/python-clients.sh printed no interpreter path");
      return python;
    },
    (error: Error & { stderr?: string }) => {
      throw new Error(`the Python clients could not be prepared (scripts/python-clients.sh): ${error.stderr?.trim() || error.message}`);
    },
  );
  return prepared;
}

export type CaseResult = { ok: unknown } | { error: string; trace?: string };
export type CaseResults = Record<string, CaseResult>;

/**
 * Runs py/<script> with `plan` as JSON on stdin and returns its cases' results. Rejects with
 * the script's stderr when it does not finish with its RESULT line.
 */
export async function runClientScript(script: string, plan: unknown, timeoutMs = 120_000): Promise<CaseResults> {
  const python = await pythonClients();
  return new Promise((resolve, reject) => {
    const child = spawn(python, [join(SCRIPTS, script)], { cwd: SCRIPTS, env: { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      if (!line) {
        const why = signal ? `killed by ${signal} after ${timeoutMs} ms` : `exit code ${code}`;
        reject(new Error(`py/${script} gave no result (${why}):\n${stderr.slice(-4000)}${stdout.slice(-2000)}`));
        return;
      }
      resolve(JSON.parse(line.slice("RESULT ".length)) as CaseResults);
    });
    child.stdin.end(JSON.stringify(plan));
  });
}

/** One case's value; throws the Python side's error (with the client's message and status) otherwise. */
export function caseValue<T = any>(results: CaseResults, name: string): T {
  const result = results[name];
  if (!result) throw new Error(`the script ran no case '${name}'`);
  if ("error" in result) throw new Error(`${name}: ${result.error}${result.trace ? `\n${result.trace}` : ""}`);
  return result.ok as T;
}

/** One case's error text (for cases that expect the call to fail: they return the error they caught). */
export const caseError = (results: CaseResults, name: string): string => caseValue<string>(results, name);
