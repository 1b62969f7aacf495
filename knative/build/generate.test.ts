/**
 * The generated manifests: committed files are current, and they take their
 * facts from the runtime (ports, paths, env names, mount path, puller env).
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_HTTP_PORT, ENV, GRPC_PORT_NAME, GRPC_SERVICE, MODEL_MOUNT_PATH, PATHS, PROTOCOLS } from "../../runtime/src/constants.js";
import { HELP as PULLER_HELP } from "../../runtime/src/puller/config.js";
import { staleFiles } from "./generate.js";
import { generatedFiles } from "./files.js";
import { configData, gpuPatch, grpcPatch, service } from "./knative.js";
import { asyncPatch } from "./platform.js";
import { CONCURRENCY, PULLER_ENV } from "./settings.js";

describe("generated manifests", () => {
  it("are committed as generated (run `npm run manifests` after changing the generator)", async () => {
    expect(await staleFiles()).toEqual([]);
  });

  it("use the server's port, probe paths and model mount path", () => {
    const ps = service().spec.template.spec;
    const server = ps.containers[0]!;
    expect(server.ports?.map((p) => p.containerPort)).toEqual([DEFAULT_HTTP_PORT]);
    expect(server.readinessProbe?.httpGet?.path).toBe(PATHS.ready);
    expect(server.livenessProbe?.httpGet?.path).toBe(PATHS.live);
    expect(server.volumeMounts?.[0]?.mountPath).toBe(MODEL_MOUNT_PATH);
    expect(ps.initContainers?.[0]?.volumeMounts?.[0]?.mountPath).toBe(MODEL_MOUNT_PATH);
  });

  it("configure only variables the server or the puller reads", () => {
    const serverEnv = new Set<string>(Object.values(ENV));
    for (const key of Object.keys(configData())) {
      const known = serverEnv.has(key) || (Object.values(PULLER_ENV) as string[]).includes(key);
      expect(known, `${key} is neither in runtime/src/constants.ts ENV nor a puller variable`).toBe(true);
    }
  });

  it("name puller variables that the puller's --help documents", () => {
    for (const name of Object.values(PULLER_ENV)) expect(PULLER_HELP).toContain(name);
  });

  it("point the server at the directory the puller fills", () => {
    const data = configData();
    expect(data[ENV.modelDir]!.startsWith(`${MODEL_MOUNT_PATH}/`)).toBe(true);
    expect(data[PULLER_ENV.dest] ?? data[ENV.modelDir]).toBe(data[ENV.modelDir]);
  });

  it("justify containerConcurrency with the measured figures and the command", () => {
    const yaml = generatedFiles().get("knative/base/service.yaml")!;
    expect(CONCURRENCY.table.length).toBeGreaterThan(2);
    expect(yaml).toContain(`containerConcurrency: ${CONCURRENCY.containerConcurrency}`);
    expect(yaml).toContain(CONCURRENCY.command);
    for (const row of CONCURRENCY.table) expect(yaml).toContain(row);
  });

  it.each([
    ["GPU revision", gpuPatch],
    ["gRPC Service", grpcPatch],
    ["async Service", asyncPatch],
  ])("patch the %s at paths that exist in the base Service", (_name, patch) => {
    const svc = service() as unknown as Record<string, unknown>;
    for (const op of patch()) {
      // replace needs the value there; add needs its parent (an array for "-").
      const segments = op.path.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
      if (op.op === "add") segments.pop();
      let node: unknown = svc;
      for (const s of segments) node = (node as Record<string, unknown> | undefined)?.[s];
      if (op.op === "add" && op.path.endsWith("/-")) expect(Array.isArray(node), op.path).toBe(true);
      else expect(node, op.path).not.toBeUndefined();
    }
  });

  it("make the gRPC Service from the server's constants: h2c port name, PROTOCOL, the gRPC service name, the same port", () => {
    const ops = grpcPatch();
    const value = (path: string) => ops.find((o) => o.path === path)?.value;
    expect(value("/spec/template/spec/containers/0/ports/0/name")).toBe(GRPC_PORT_NAME);
    const env = value("/spec/template/spec/containers/0/env/-") as { name: string; value: string };
    expect(env.name).toBe(ENV.protocol);
    expect(PROTOCOLS).toContain(env.value);
    expect(value("/spec/template/spec/containers/0/readinessProbe")).toMatchObject({ grpc: { port: DEFAULT_HTTP_PORT, service: GRPC_SERVICE } });
  });
});
