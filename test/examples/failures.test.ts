/**
 * What each example says when it cannot work: no server, a server without the feature it needs
 * (gRPC, asynchronous inference), a missing command (curl, jq, kn, grpcurl), no Kubernetes
 * configuration. Real processes against a closed port, a real server, a stand-in Kubernetes API.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type RunningServer } from "../../runtime/src/testing/server.js";

const root = join(import.meta.dirname, "..", "..");
const examples = join(root, "examples");
const bash = execFileSync("bash", ["-c", "command -v bash"], { encoding: "utf8" }).trim();
const tmp = mkdtempSync(join(tmpdir(), "example-failures-"));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; a non-zero exit is a result, not an error. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

const script = (name: string, args: string[], env: NodeJS.ProcessEnv) => run(bash, [join(examples, name), ...args], { ...process.env, ...env });
const tsExample = (name: string, args: string[], env: NodeJS.ProcessEnv) => run(process.execPath, ["--import", "tsx", join(examples, name), ...args], { ...process.env, ...env });

/** A port nothing listens on (taken from the OS, then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.once("error", reject);
  });
}

/** A directory for PATH holding only the named commands (symlinks to the real ones). */
function pathWith(name: string, commands: string[]): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const c of commands) symlinkSync(execFileSync(bash, ["-c", `command -v ${c}`], { encoding: "utf8" }).trim(), join(dir, c));
  return dir;
}

let url: string;
let rest: RunningServer;

beforeAll(async () => {
  url = `http://127.0.0.1:${await closedPort()}`;
  // A server as `npm start` runs it: REST only, no asynchronous inference.
  rest = await startTestServer(join(root, "models"));
});
afterAll(async () => {
  await rest?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("examples with no server", () => {
  it.each(["simple.sh", "sentiment.sh", "cloudevents.sh"])("%s says there is no server and to start one with npm start", async (name) => {
    const r = await script(name, [], { INFERENCE_URL: url });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`${name}: no server at ${url}; start one with \`npm start\` (it serves models/ on http://localhost:8080), or set INFERENCE_URL to where one runs\n`);
  });

  it("async.sh says how to start a server with asynchronous inference", async () => {
    const r = await script("async.sh", [], { INFERENCE_URL: url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`async.sh: no server at ${url}; start one with \`ASYNC_INFERENCE=true QUOTA_REQUESTS=100 npm start\``);
  });

  it.each(["client.ts", "sentiment.ts", "cloudevents.ts"])("%s says there is no server and to start one, without a stack", async (name) => {
    const r = await tsExample(name, [], { INFERENCE_URL: url });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${name}: no server at ${url} (ECONNREFUSED); start one with \`npm start\`, or set INFERENCE_URL to where one runs\n`);
  });

  it("grpc.ts says there is no server and to start one with gRPC on", async () => {
    const target = new URL(url).host;
    const r = await tsExample("grpc.ts", [], { GRPC_TARGET: target });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`grpc.ts: no server at ${target} (ECONNREFUSED); start one with \`PROTOCOL=grpc npm start\`, or set GRPC_TARGET (host:port) to where one runs\n`);
  });
});

// Asynchronous child processes: the server runs in this process and must keep answering.
describe("examples against a server without the feature they show", () => {
  it("grpc.ts against a REST-only server says to start it with PROTOCOL=grpc", async () => {
    const target = new URL(rest.url).host;
    const r = await tsExample("grpc.ts", [], { GRPC_TARGET: target });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `grpc.ts: the server at ${target} answers REST (GET /v2/health/live: HTTP 200) but not gRPC: start it with gRPC on, \`PROTOCOL=grpc npm start\` (or --protocol grpc)\n`,
    );
  });

  it("async.sh against a server without asynchronous inference says to restart it with ASYNC_INFERENCE=true", async () => {
    const r = await script("async.sh", [], { INFERENCE_URL: rest.url });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`async.sh: the server at ${rest.url} has asynchronous inference off; restart it with \`ASYNC_INFERENCE=true QUOTA_REQUESTS=100 npm start\`\n`);
  });

  it("simple.sh against an address where something else answers names what answered", async () => {
    const r = await script("simple.sh", [], { INFERENCE_URL: `${rest.url}/not-here` });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`simple.sh: ${rest.url}/not-here answered GET /v2/health/live with HTTP 404: is it this inference server? Set INFERENCE_URL to the server's URL\n`);
  });
});

describe("examples with a command missing", () => {
  it("simple.sh without curl says how to install it", async () => {
    const r = await script("simple.sh", [], { PATH: pathWith("no-curl", ["dirname"]) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^simple\.sh: curl is not installed; install it: apt-get install curl, .*brew install curl/);
  });

  it("sentiment.sh with sentences of your own, without jq, says how to install it", async () => {
    const r = await script("sentiment.sh", ["Loved it."], { PATH: pathWith("no-jq", ["dirname", "curl"]), INFERENCE_URL: url });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sentiment\.sh: jq is not installed; it builds the request from your sentences; install it: apt-get install jq, .*brew install jq/);
  });

  it("kn.sh without kn says what kn is and where to get it", async () => {
    const r = await script("kn.sh", ["status"], { PATH: pathWith("no-kn", []) });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "kn.sh: kn is not installed; it is the Knative CLI: https://knative.dev/docs/client/install-kn/ (brew install knative/client/kn, or a binary from https://github.com/knative/client/releases)\n",
    );
  });

  it("kn.sh grpc-infer without grpcurl says where to get it", async () => {
    const dir = pathWith("no-grpcurl", []);
    writeFileSync(join(dir, "kn"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const r = await script("kn.sh", ["grpc-infer"], { PATH: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^kn\.sh: grpcurl is not installed; https:\/\/github\.com\/fullstorydev\/grpcurl#installation/);
  });
});

describe("traffic-split.ts without a cluster", () => {
  const args = ["--service", "inference-runtime", "--traffic", "@latest=100"];
  const noKubeconfig = () => {
    const home = join(tmp, "home");
    mkdirSync(home, { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
    delete env.KUBECONFIG;
    return env;
  };

  // In a pod, client-node finds the service account's configuration instead.
  it.skipIf(existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token"))("says there is no Kubernetes configuration and what to do, not 'HTTP protocol is not allowed'", async () => {
    const r = await run(process.execPath, ["--import", "tsx", join(examples, "traffic-split.ts"), ...args], noKubeconfig());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^traffic-split: no Kubernetes configuration found \(KUBECONFIG is not set, there is no ~\/\.kube\/config, and this is not a pod\): point KUBECONFIG at your cluster's kubeconfig .* or add --dry-run/);
    expect(r.stderr).not.toContain("skipTLSVerify");
  });

  it("names a KUBECONFIG file that does not exist", async () => {
    const missing = join(tmp, "missing-kubeconfig");
    const r = await tsExample("traffic-split.ts", args, { KUBECONFIG: missing });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`traffic-split: cannot read the kubeconfig (KUBECONFIG=${missing}): ENOENT`);
  });

  describe("against a Kubernetes API", () => {
    let api: Server;
    let kubeconfig: string;
    let answer: { status: number; body: object };

    beforeAll(async () => {
      api = createHttpServer((_req, res) => {
        res.writeHead(answer.status, { "content-type": "application/json" });
        res.end(JSON.stringify(answer.body));
      });
      await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
      const { port } = api.address() as { port: number };
      kubeconfig = join(tmp, "kubeconfig");
      writeFileSync(
        kubeconfig,
        [
          "apiVersion: v1",
          "kind: Config",
          "clusters:",
          `- name: test\n  cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}`,
          "users:",
          "- name: test\n  user: {token: test-token}",
          "contexts:",
          "- name: test\n  context: {cluster: test, user: test, namespace: demo}",
          "current-context: test",
          "",
        ].join("\n"),
      );
    });
    afterAll(() => new Promise<void>((r) => api.close(() => r())));

    it("a Service that does not exist: names it and how to list them", async () => {
      answer = { status: 404, body: { kind: "Status", status: "Failure", reason: "NotFound", code: 404, message: 'services.serving.knative.dev "inference-runtime" not found' } };
      const r = await tsExample("traffic-split.ts", args, { KUBECONFIG: kubeconfig });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('traffic-split: no Knative Service demo/inference-runtime (services.serving.knative.dev "inference-runtime" not found): `kn service list -n demo` lists them');
    });

    it("a cluster without Knative Serving: says so", async () => {
      answer = { status: 404, body: { kind: "Status", status: "Failure", reason: "NotFound", code: 404, message: "the server could not find the requested resource" } };
      const r = await tsExample("traffic-split.ts", args, { KUBECONFIG: kubeconfig });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^traffic-split: the Kubernetes API at http:\/\/127\.0\.0\.1:\d+ \(context test\) has no serving\.knative\.dev\/v1 services: is Knative Serving installed there\?/m);
    });

    it("a cluster that cannot be reached: names it and the context", async () => {
      const unreachable = join(tmp, "kubeconfig-unreachable");
      writeFileSync(unreachable, readFileSync(kubeconfig, "utf8").replace(/http:\/\/127\.0\.0\.1:\d+/, url));
      const r = await tsExample("traffic-split.ts", args, { KUBECONFIG: unreachable });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`traffic-split: cannot reach the Kubernetes API at ${url} (context test): ECONNREFUSED; is the cluster running`);
    });
  });
});
