/**
 * examples/kn.sh runs the `kn` commands the deploy guide documents; a stand-in
 * `kn` on PATH records what it would have been called with.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "./generate.js";

const dir = mkdtempSync(join(tmpdir(), "kn-sh-"));
const log = join(dir, "calls");
const URL = "http://inference-runtime.inference.example.com";
// `kn service describe -o url` answers with a URL; grpcurl is recorded like kn.
writeFileSync(join(dir, "kn"), `#!/usr/bin/env bash\necho "kn $*" >> "${log}"\ncase "$*" in *"-o url"*) echo "${URL}" ;; esac\n`);
writeFileSync(join(dir, "grpcurl"), `#!/usr/bin/env bash\necho "grpcurl $*" >> "${log}"\n`);
chmodSync(join(dir, "kn"), 0o755);
chmodSync(join(dir, "grpcurl"), 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function knCalls(...args: string[]): string[] {
  writeFileSync(log, "");
  execFileSync("bash", [join(REPO_ROOT, "examples/kn.sh"), ...args], {
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, NAMESPACE: "inference" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return readFileSync(log, "utf8").trim().split("\n");
}

describe("examples/kn.sh", () => {
  it.each([
    [["split", "inference-runtime-00001", "90"], "service update inference-runtime -n inference --tag inference-runtime-00001=cpu --tag @latest=gpu --traffic cpu=90 --traffic gpu=10"],
    [["promote", "gpu"], "service update inference-runtime -n inference --traffic gpu=100"],
    [["rollback", "inference-runtime-00003"], "service update inference-runtime -n inference --traffic inference-runtime-00003=100"],
    [["follow-latest"], "service update inference-runtime -n inference --traffic @latest=100"],
    [["image", "reg/inference-runtime:0.2.0"], "service update inference-runtime -n inference --image reg/inference-runtime:0.2.0"],
    [["env", "LOG_LEVEL=debug", "STRICT_READINESS-"], "service update inference-runtime -n inference --env LOG_LEVEL=debug --env STRICT_READINESS-"],
    [["scale", "1", "20"], "service update inference-runtime -n inference --scale-min 1 --scale-max 20"],
    [["concurrency", "4"], "service update inference-runtime -n inference --concurrency-limit 4 --scale-target 4 --scale-utilization 70"],
    [["grpc"], "service update inference-runtime -n inference --port h2c:8080 --env PROTOCOL=grpc"],
  ])("%j runs kn %s", (args, expected) => {
    expect(knCalls(...args)).toEqual([`kn ${expected}`]);
  });

  it("grpc-infer calls ModelInfer with grpcurl on the Service's host, port 80, in cleartext", () => {
    const [describe, grpcurl] = knCalls("grpc-infer");
    expect(describe).toBe("kn service describe inference-runtime -n inference -o url");
    expect(grpcurl).toMatch(/^grpcurl -plaintext -import-path \S+\/runtime\/proto -proto grpc_predict_v2\.proto -d \{.*"model_name":"sentiment".*"bytes_contents":\["VGhpcyBtb3ZpZSB3YXMgZmFudGFzdGljIQ=="\].*\} inference-runtime\.inference\.example\.com:80 inference\.GRPCInferenceService\/ModelInfer$/);
  });

  it("refuses an unknown command with its usage", () => {
    expect(() => knCalls("bogus")).toThrow();
  });
});
