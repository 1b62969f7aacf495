/**
 * The images cannot be built here (no Docker engine), so their invariants are
 * checked by reading the Dockerfiles: pinned bases, multi-stage, production
 * dependencies only, a numeric non-root user, an exec-form entrypoint, and
 * agreement with the manifests (WORKDIR, uid, bin paths).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "./generate.js";
import { IMAGE_UID, IMAGE_WORKDIR, PULLER_BIN, SERVER_BIN } from "./settings.js";

interface Instruction {
  op: string;
  args: string;
  line: number;
}

/** Instructions of a Dockerfile, with continuation lines joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (current === "" && (line === "" || line.startsWith("#"))) return;
    if (current !== "" && line.startsWith("#")) return;
    if (current === "") start = i + 1;
    current += (current ? " " : "") + line.replace(/\\$/, "").trim();
    if (!line.endsWith("\\")) {
      const m = /^(\S+)\s*(.*)$/.exec(current)!;
      out.push({ op: m[1]!.toUpperCase(), args: m[2]!, line: start });
      current = "";
    }
  });
  return out;
}

function stages(instructions: Instruction[]): Instruction[][] {
  const result: Instruction[][] = [];
  for (const ins of instructions) {
    if (ins.op === "FROM") result.push([]);
    result[result.length - 1]?.push(ins);
  }
  return result;
}

const read = (name: string) => parseDockerfile(readFileSync(join(REPO_ROOT, name), "utf8"));

describe.each(["Dockerfile", "Dockerfile.gpu"])("%s", (file) => {
  const instructions = read(file);
  const all = stages(instructions);
  const final = all[all.length - 1]!;
  const stageNames = new Set(instructions.filter((i) => i.op === "FROM").map((i) => /\bAS\s+(\S+)/i.exec(i.args)?.[1]).filter(Boolean));

  it("is multi-stage, every base image pinned by version (never latest)", () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const from of instructions.filter((i) => i.op === "FROM")) {
      const image = from.args.split(/\s+/)[0]!;
      if (stageNames.has(image)) continue;
      expect(image, `line ${from.line}`).not.toMatch(/\$|:latest\b/);
      expect(image, `line ${from.line}: ${image} needs a version tag or digest`).toMatch(/(:\d+\.\d+\.\d+[\w.-]*|@sha256:[a-f0-9]{64})$/);
    }
    expect(JSON.stringify(instructions)).not.toMatch(/:latest\b/);
  });

  it("builds on Node 24 LTS, by patch version", () => {
    const nodeBases = instructions.filter((i) => i.op === "FROM" && i.args.startsWith("node:"));
    expect(nodeBases.length).toBeGreaterThan(0);
    for (const b of nodeBases) expect(b.args).toMatch(/^node:24\.\d+\.\d+-bookworm-slim\b/);
  });

  it("installs production dependencies only in what it ships, skipping the build-time prepare script", () => {
    const runs = instructions.filter((i) => i.op === "RUN").map((i) => i.args);
    expect(runs.some((r) => /npm ci\b.*--omit=dev/.test(r) && /--ignore-scripts/.test(r))).toBe(true);
    // The shipped node_modules comes from the stage that omitted dev dependencies.
    const copyModules = final.find((i) => i.op === "COPY" && /node_modules/.test(i.args))!;
    const from = /--from=(\S+)/.exec(copyModules.args)![1]!;
    const depsStage = all.find((s) => new RegExp(`\\bAS\\s+${from}\\b`, "i").test(s[0]!.args))!;
    expect(depsStage.some((i) => i.op === "RUN" && /--omit=dev/.test(i.args))).toBe(true);
  });

  it("runs as a numeric non-root user, in the WORKDIR and with the uid the manifests use", () => {
    const user = final.filter((i) => i.op === "USER").pop()!;
    expect(user.args).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user.args.split(":")[0])).toBe(IMAGE_UID);
    expect(Number(user.args.split(":")[0])).not.toBe(0);
    expect(final.filter((i) => i.op === "WORKDIR").pop()!.args).toBe(IMAGE_WORKDIR);
  });

  it("starts node in exec form so SIGTERM reaches it, from a bin the package declares", () => {
    const entry = final.filter((i) => i.op === "ENTRYPOINT").pop()!;
    const argv = JSON.parse(entry.args) as string[];
    expect(argv).toEqual(["node", SERVER_BIN]);
    for (const i of final.filter((x) => x.op === "CMD")) expect(i.args.trim().startsWith("[")).toBe(true);
    expect(final.some((i) => i.op === "ENV" && /NODE_ENV=production/.test(i.args))).toBe(true);
    // The init container runs the puller from the same image.
    expect(existsSync(join(REPO_ROOT, PULLER_BIN))).toBe(true);
  });

  it("copies only paths that exist and that .dockerignore lets through", () => {
    const ignore = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    for (const copy of instructions.filter((i) => i.op === "COPY" && !/--from=/.test(i.args))) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const src of sources) {
        expect(existsSync(join(REPO_ROOT, src)), `${file}:${copy.line} COPY ${src}`).toBe(true);
        expect(ignore, `${src} is excluded by .dockerignore`).not.toContain(src.replace(/\/$/, ""));
      }
    }
    expect(ignore).toContain("node_modules");
  });
});

describe("Dockerfile.gpu", () => {
  const instructions = read("Dockerfile.gpu");
  it("fetches onnxruntime-node's CUDA provider at build time and prefers it at run time", () => {
    const text = JSON.stringify(instructions);
    expect(instructions.some((i) => i.op === "ENV" && /ONNXRUNTIME_NODE_INSTALL=cuda12/.test(i.args))).toBe(true);
    expect(text).toMatch(/npm rebuild onnxruntime-node/);
    expect(instructions.some((i) => i.op === "ENV" && /EXECUTION_PROVIDERS=cuda,cpu/.test(i.args))).toBe(true);
  });
  it("runs on a CUDA 12 runtime image with cuDNN", () => {
    const final = instructions.filter((i) => i.op === "FROM").pop()!;
    expect(final.args).toMatch(/^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/);
  });
});

describe("parseDockerfile", () => {
  it("joins continuation lines and skips comments", () => {
    const ins = parseDockerfile("# c\nFROM a:1.2.3 AS x\nRUN one \\\n  # inside\n  && two\nUSER 1\n");
    expect(ins.map((i) => i.op)).toEqual(["FROM", "RUN", "USER"]);
    expect(ins[1]!.args).toBe("one && two");
  });
});
