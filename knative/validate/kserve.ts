/**
 * KServe checks beyond its CRD schemas, after KServe's webhooks and controller:
 * names, storageUri schemes, replica bounds, the runtime an InferenceService
 * names (format and protocol), the serving container (named
 * kserve-container, one port, no Knative-reserved env vars or ports, since
 * KServe's Serverless mode turns it into a Knative revision), and the container
 * an InferenceService gets once its model container is merged into the
 * runtime's (probes with one handler; for grpc-v2, the port named h2c).
 */
import { ENV, GRPC_PORT_NAME } from "../../runtime/src/constants.js";
import { DNS1035_LABEL } from "./core.js";
import { RESERVED_ENV_VARS, RESERVED_PORTS } from "./knative.js";
import { describe, isRecord, joinPath, type K8sObject, type Problem } from "./problems.js";

export const STORAGE_SCHEMES = ["s3://", "gs://", "pvc://", "hf://", "oci://", "hdfs://", "webhdfs://", "https://", "http://", "file://"] as const;

const RUNTIME_KINDS = ["ServingRuntime", "ClusterServingRuntime"];

export function isKserve(obj: K8sObject): boolean {
  return obj.apiVersion?.startsWith("serving.kserve.io/") === true;
}

export function validateKserve(obj: K8sObject, all: K8sObject[]): Problem[] {
  const problems: Problem[] = [];
  const add = (path: (string | number)[], message: string) => problems.push({ object: describe(obj), path: joinPath(path), message, rule: "kserve" });
  const spec = (isRecord(obj.spec) ? obj.spec : {}) as Record<string, any>;

  if (RUNTIME_KINDS.includes(obj.kind ?? "")) {
    const containers = (spec.containers as Record<string, any>[] | undefined) ?? [];
    if (containers[0]?.name !== "kserve-container") add(["spec", "containers", 0, "name"], "the serving container must be named kserve-container (KServe mounts the model into it)");
    if (!Array.isArray(spec.supportedModelFormats) || spec.supportedModelFormats.length === 0) add(["spec", "supportedModelFormats"], "name at least one model format");
    for (const [i, v] of ((spec.protocolVersions as string[] | undefined) ?? []).entries()) {
      if (!["v1", "v2", "grpc-v1", "grpc-v2"].includes(v)) add(["spec", "protocolVersions", i], `unknown protocol version "${v}"`);
    }
    for (const [ci, c] of containers.entries()) {
      for (const [i, e] of ((c.env as { name: string }[] | undefined) ?? []).entries()) {
        if ((RESERVED_ENV_VARS as readonly string[]).includes(e.name)) add(["spec", "containers", ci, "env", i, "name"], `"${e.name}" is reserved by Knative`);
      }
      const ports = (c.ports as { containerPort: number }[] | undefined) ?? [];
      if (ci === 0 && ports.length !== 1) add(["spec", "containers", ci, "ports"], `expected exactly one port, got ${ports.length}`);
      for (const [i, p] of ports.entries()) {
        if ((RESERVED_PORTS as readonly number[]).includes(p.containerPort)) add(["spec", "containers", ci, "ports", i, "containerPort"], `${p.containerPort} is reserved by Knative`);
      }
    }
  }

  if (obj.kind === "InferenceService") {
    const name = obj.metadata?.name ?? "";
    if (!DNS1035_LABEL.test(name) || name.length > 63) add(["metadata", "name"], `must be a DNS-1035 label (lower case, starting with a letter), got "${name}"`);
    const predictor = (spec.predictor ?? {}) as Record<string, any>;
    const p = ["spec", "predictor"];
    if (typeof predictor.minReplicas === "number" && predictor.minReplicas < 0) add([...p, "minReplicas"], "must be >= 0");
    if (typeof predictor.maxReplicas === "number" && predictor.maxReplicas !== 0 && predictor.maxReplicas < (predictor.minReplicas ?? 1)) add([...p, "maxReplicas"], "must be >= minReplicas");
    if (predictor.minReplicas === 0 && obj.metadata?.annotations?.["serving.kserve.io/deploymentMode"] === "RawDeployment") add([...p, "minReplicas"], "scale to zero needs the Serverless (Knative) deployment mode");
    if (typeof predictor.scaleTarget === "number" && predictor.scaleTarget < 1) add([...p, "scaleTarget"], "must be >= 1");
    if (typeof predictor.containerConcurrency === "number" && (predictor.containerConcurrency < 0 || predictor.containerConcurrency > 1000)) add([...p, "containerConcurrency"], "must be between 0 and 1000");
    const model = (predictor.model ?? {}) as Record<string, any>;
    const uri = model.storageUri as string | undefined;
    if (uri !== undefined && !STORAGE_SCHEMES.some((s) => uri.startsWith(s))) add([...p, "model", "storageUri"], `unsupported storage URI "${uri}" (${STORAGE_SCHEMES.join(", ")})`);
    if (uri?.startsWith("pvc://") && !/^pvc:\/\/[a-z0-9]([-a-z0-9]*[a-z0-9])?(\/.*)?$/.test(uri)) add([...p, "model", "storageUri"], "pvc:// URIs are pvc://<claim-name>/<path>");
    if (model.runtime) {
      const runtime = all.find((o) => RUNTIME_KINDS.includes(o.kind ?? "") && o.metadata?.name === model.runtime) as { spec?: Record<string, any> } | undefined;
      if (runtime?.spec) {
        const formats = ((runtime.spec.supportedModelFormats as { name: string }[] | undefined) ?? []).map((f) => f.name);
        if (model.modelFormat?.name && !formats.includes(model.modelFormat.name)) add([...p, "model", "modelFormat"], `runtime ${model.runtime} does not support format ${model.modelFormat.name} (${formats.join(", ")})`);
        const protocols = (runtime.spec.protocolVersions as string[] | undefined) ?? [];
        if (model.protocolVersion && !protocols.includes(model.protocolVersion)) add([...p, "model", "protocolVersion"], `runtime ${model.runtime} does not speak ${model.protocolVersion}`);
        const runtimeContainer = ((runtime.spec.containers as Record<string, any>[] | undefined) ?? []).find((c) => c.name === "kserve-container");
        if (runtimeContainer) checkMergedContainer(add, runtimeContainer, model, obj.metadata?.annotations?.["serving.kserve.io/deploymentMode"] !== "RawDeployment");
      }
    }
  }
  return problems;
}

type Add = (path: (string | number)[], message: string) => void;

/**
 * The container KServe runs: the InferenceService's model container merged into the runtime's
 * (KServe applies it as a strategic merge patch: env merges by name, ports by containerPort,
 * objects such as probes field by field, a null removes a field).
 */
export function mergeContainer(runtime: Record<string, any>, model: Record<string, any>): Record<string, any> {
  const byKey = (key: string) => (base: Record<string, any>[] = [], patch: Record<string, any>[] = []) => {
    const out = base.map((item) => ({ ...item }));
    for (const item of patch) {
      const i = out.findIndex((o) => o[key] === item[key]);
      if (i >= 0) out[i] = mergeObject(out[i]!, item);
      else out.push(item);
    }
    return out;
  };
  const lists: Record<string, (a?: Record<string, any>[], b?: Record<string, any>[]) => Record<string, any>[]> = {
    env: byKey("name"),
    ports: byKey("containerPort"),
    volumeMounts: byKey("mountPath"),
  };
  const out: Record<string, any> = { ...runtime };
  for (const [k, v] of Object.entries(model)) {
    if (v === null) delete out[k];
    else if (lists[k] && Array.isArray(v)) out[k] = lists[k]!(runtime[k] as Record<string, any>[] | undefined, v as Record<string, any>[]);
    else if (isRecord(v) && isRecord(out[k])) out[k] = mergeObject(out[k] as Record<string, any>, v);
    else out[k] = v;
  }
  return out;
}

function mergeObject(base: Record<string, any>, patch: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isRecord(v) && isRecord(out[k])) out[k] = mergeObject(out[k] as Record<string, any>, v);
    else out[k] = v;
  }
  return out;
}

/** The InferenceService's fields that KServe merges into the runtime's container. */
const MODEL_ONLY_FIELDS = ["modelFormat", "runtime", "runtimeVersion", "protocolVersion", "storageUri", "storage"];

/**
 * What the merged container must hold: probes with one handler each, and for a grpc-v2
 * InferenceService on Knative a serving port named h2c (Knative sends HTTP/1.1 to any other),
 * and PROTOCOL=grpc where the runtime uses that variable (this project's runtime does).
 */
function checkMergedContainer(add: Add, runtimeContainer: Record<string, any>, model: Record<string, any>, knative: boolean): void {
  const modelContainer = Object.fromEntries(Object.entries(model).filter(([k]) => !MODEL_ONLY_FIELDS.includes(k)));
  const merged = mergeContainer(runtimeContainer, modelContainer);
  const p = ["spec", "predictor", "model"];
  for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
    const handlers = ["httpGet", "tcpSocket", "exec", "grpc"].filter((h) => isRecord(merged[probe]) && merged[probe][h] !== undefined && merged[probe][h] !== null);
    if (handlers.length > 1) {
      add([...p, probe], `merged into the runtime's ${probe}, this leaves ${handlers.join(" and ")} (KServe merges the container as a strategic merge patch); set the runtime's handler to null here`);
    }
  }
  if (model.protocolVersion !== "grpc-v2") return;
  const port = ((merged.ports as { name?: string; containerPort?: number }[] | undefined) ?? [])[0];
  if (knative && port?.name !== GRPC_PORT_NAME) {
    add([...p, "ports"], `protocolVersion grpc-v2 on Knative needs the serving port named ${GRPC_PORT_NAME}: Knative sends HTTP/1.1 to a port named ${port?.name ?? "nothing"}, which cannot carry gRPC`);
  }
  const declared = ((runtimeContainer.env as { name: string }[] | undefined) ?? []).some((e) => e.name === ENV.protocol);
  const value = ((merged.env as { name: string; value?: string }[] | undefined) ?? []).find((e) => e.name === ENV.protocol)?.value;
  if (declared && value !== "grpc") add([...p, "env"], `protocolVersion grpc-v2 needs ${ENV.protocol}=grpc in the runtime's container, got ${value ?? "none"}`);
}
