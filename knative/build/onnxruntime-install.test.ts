/**
 * `npm install` must not run onnxruntime-node's install script, which downloads the
 * CUDA provider from NuGet (outside the npm registry; the CPU binaries ship inside the
 * package), and the way it is skipped must not make npm warn.
 *
 * The skip is the `"allowScripts": {"onnxruntime-node": false}` entry of package.json
 * (npm 11.16+ honours it, npm 12 enforces the policy). These tests run the package's
 * real install script through the npm on PATH, in a scratch project that has the
 * repository's package.json policy and .npmrc, with every HTTP(S) request the script
 * makes sent (by its own global-agent) to a loopback proxy that records it and refuses
 * it: a download attempt is seen, never made. No network is needed.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ORT_DIR = join(REPO_ROOT, "node_modules", "onnxruntime-node");
const repoPackage = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { allowScripts?: Record<string, unknown> };
const ortPackage = JSON.parse(readFileSync(join(ORT_DIR, "package.json"), "utf8")) as { version: string; scripts?: Record<string, string> };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((res) => {
    execFile(cmd, args, { cwd, env, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? ((err as { code?: unknown }).code as number | null) ?? 1 : 0, stdout, stderr });
    });
  });
}

const npmVersion = await run("npm", ["--version"], tmpdir(), { PATH: process.env.PATH, HOME: process.env.HOME }).then((r) => r.stdout.trim());
const [major = 0, minor = 0] = npmVersion.split(".").map(Number);
/** npm versions that read package.json's allowScripts (11.16 and later). */
const npmHasAllowScripts = major > 11 || (major === 11 && minor >= 16);

/** Loopback HTTP proxy: records each request (CONNECT for https) and answers 403. */
let proxy: http.Server;
let proxyUrl = "";
const proxied: string[] = [];
let scratch = "";

beforeAll(async () => {
  proxy = http.createServer((req, res) => {
    proxied.push(`${req.method} ${req.url}`);
    res.writeHead(403).end();
  });
  proxy.on("connect", (req, socket) => {
    proxied.push(`CONNECT ${req.url}`);
    socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  scratch = mkdtempSync(join(tmpdir(), "ort-install-"));
});

afterAll(async () => {
  await new Promise<void>((r) => proxy.close(() => r()));
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

let n = 0;
/**
 * A project that depends on onnxruntime-node, with the repository's .npmrc and the
 * given allowScripts, and a copy of the package's manifest and install scripts (its
 * binaries stay where they are: nothing can write into the real node_modules).
 */
function project(allowScripts: Record<string, unknown> | undefined): string {
  const dir = join(scratch, `p${++n}`);
  const pkg = join(dir, "node_modules", "onnxruntime-node");
  mkdirSync(pkg, { recursive: true });
  cpSync(join(ORT_DIR, "package.json"), join(pkg, "package.json"));
  cpSync(join(ORT_DIR, "script"), join(pkg, "script"), { recursive: true });
  cpSync(join(REPO_ROOT, ".npmrc"), join(dir, ".npmrc"));
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "scratch", version: "0.0.0", private: true, dependencies: { "onnxruntime-node": ortPackage.version }, ...(allowScripts ? { allowScripts } : {}) }),
  );
  return dir;
}

/** A clean environment (no npm_config_* or ONNXRUNTIME_* from the caller), every request through the proxy. */
function env(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: dir,
    // The install script's own dependencies (global-agent, adm-zip) come from the repository.
    NODE_PATH: join(REPO_ROOT, "node_modules"),
    GLOBAL_AGENT_HTTP_PROXY: proxyUrl,
    GLOBAL_AGENT_HTTPS_PROXY: proxyUrl,
    npm_config_cache: join(dir, ".npm-cache"),
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
    ...extra,
  };
}

/** What `npm install`/`npm ci` does with an installed dependency's scripts, for that one package. */
const rebuild = (dir: string, extra: NodeJS.ProcessEnv = {}, flags: string[] = []) =>
  run("npm", ["rebuild", "onnxruntime-node", "--foreground-scripts", ...flags], dir, env(dir, extra));

const downloads = (since: number) => proxied.slice(since);

describe("onnxruntime-node's install script (CUDA download) under the project's npm configuration", () => {
  it("is a postinstall script that would download on linux/x64 (what the skip is for)", () => {
    expect(ortPackage.scripts?.postinstall).toMatch(/script\/install/);
  });

  it("is denied in package.json, and .npmrc sets no key npm does not know", () => {
    expect(repoPackage.allowScripts?.["onnxruntime-node"]).toBe(false);
    const keys = readFileSync(join(REPO_ROOT, ".npmrc"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#") && !l.startsWith(";"))
      .map((l) => l.split("=")[0]!.trim());
    expect(keys).not.toContain("onnxruntime-node-install");
    expect(keys).not.toContain("onnxruntime-node-install-cuda");
  });

  it.skipIf(!npmHasAllowScripts)(`is skipped by npm ${npmVersion}: no download attempt, no warning about the configuration`, async () => {
    const dir = project(repoPackage.allowScripts);
    const before = proxied.length;
    const r = await rebuild(dir);
    expect(r.code, r.stderr).toBe(0);
    expect(downloads(before)).toEqual([]);
    expect(r.stderr).not.toMatch(/Unknown (project|user|env|cli) config/);
    expect(r.stderr + r.stdout).not.toMatch(/onnxruntime-node-install|nuget/i);
  });

  it("would download without the denial (the proxy sees the attempt: this test can fail)", async () => {
    const dir = project(undefined);
    const before = proxied.length;
    const r = await rebuild(dir);
    expect(downloads(before).some((l) => /nuget/i.test(l)), `${proxied.join("\n")}\n${r.stderr}`).toBe(true);
    expect(r.code).not.toBe(0);
  });

  it("is skipped by ONNXRUNTIME_NODE_INSTALL=skip, the package's own variable (npm older than 11.16)", async () => {
    const dir = project(undefined);
    const before = proxied.length;
    const r = await rebuild(dir, { ONNXRUNTIME_NODE_INSTALL: "skip" });
    expect(r.code, r.stderr).toBe(0);
    expect(downloads(before)).toEqual([]);
  });

  it.skipIf(!npmHasAllowScripts)("runs for the GPU image: ONNXRUNTIME_NODE_INSTALL=cuda12 and npm rebuild --dangerously-allow-all-scripts", async () => {
    const dockerfile = readFileSync(join(REPO_ROOT, "Dockerfile.gpu"), "utf8");
    expect(dockerfile).toMatch(/npm rebuild onnxruntime-node\b.*--dangerously-allow-all-scripts/);
    const dir = project(repoPackage.allowScripts);
    const before = proxied.length;
    const r = await rebuild(dir, { ONNXRUNTIME_NODE_INSTALL: "cuda12" }, ["--dangerously-allow-all-scripts"]);
    expect(downloads(before).some((l) => /nuget/i.test(l)), `${proxied.join("\n")}\n${r.stderr}`).toBe(true);
    expect(r.code).not.toBe(0); // the proxy refused the download
  });
});
