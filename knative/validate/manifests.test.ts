/**
 * Every manifest under knative/ and kserve/ against the real CRD schemas, core
 * Kubernetes types and the webhook rules; the kustomize overlays as
 * `kubectl kustomize` renders them; and the checks themselves on broken input.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REPO_ROOT } from "../build/generate.js";
import { generatedFiles } from "../build/files.js";
import { configMap, gpuPatch, service } from "../build/knative.js";
import { DEFAULT_HTTP_PORT, ENV, FEATURE_FLAGS, GRPC, GRPC_HEALTH_SERVICES, GRPC_PORT_NAME, GRPC_SERVICE, PATHS, PVC_NAME } from "../build/settings.js";
import { validateCore } from "./core.js";
import { validateAgainstCrd } from "./crds.js";
import { applyPatch, asyncService, clone, features, grpcService } from "./fixtures.js";
import { validateKnativeService } from "./knative.js";
import { mergeContainer, validateKserve } from "./kserve.js";
import type { K8sObject } from "./problems.js";
import { checkQuery } from "./promql.js";
import { featuresFrom, formatProblems, parseManifests, validateDashboard, validateObjects } from "./validate.js";

const file = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");
const objectsOf = (...paths: string[]) => paths.flatMap((p) => parseManifests(file(p), p));

describe("committed manifests", () => {
  it("knative/base: PVC and Service valid with the generated ConfigMap and config-features", () => {
    const objects = [...objectsOf("knative/base/pvc.yaml", "knative/base/service.yaml"), configMap() as K8sObject];
    expect(formatProblems(validateObjects(objects, { features: featuresFrom(objectsOf("knative/config-features.yaml")) }))).toBe("");
  });

  it("config-features.yaml is a valid ConfigMap of knative-serving that enables exactly the flags the manifests use", () => {
    const [cm] = objectsOf("knative/config-features.yaml");
    expect(formatProblems(validateObjects([cm!]))).toBe("");
    expect(cm!.metadata?.namespace).toBe("knative-serving");
    const enabled = Object.entries(cm!.data as Record<string, string>).filter(([, v]) => v === "enabled").map(([k]) => k).sort();
    // The flags the webhook asks for when none is set, for every Service together (CPU, GPU, gRPC, async).
    const gpu = applyPatch(service(), gpuPatch()) as unknown as K8sObject;
    const needed = new Set<string>();
    for (const svc of [service() as unknown as K8sObject, gpu, grpcService(), asyncService()]) {
      for (const p of validateKnativeService(svc, {})) {
        const m = /feature flag (\S+)|enable (kubernetes\.podspec-persistent-volume-write)/.exec(p.message);
        if (m) needed.add(m[1] ?? m[2]!);
      }
    }
    expect(enabled).toEqual([...needed].sort());
    expect(enabled).toEqual(Object.values(FEATURE_FLAGS).sort());
  });

  it("the GPU revision (the overlay's patch applied) is valid and asks for a GPU on a GPU node", () => {
    const gpu = applyPatch(service(), gpuPatch()) as any;
    const problems = validateObjects([gpu, configMap()], { features: features() });
    expect(formatProblems(problems)).toBe("");
    const ps = gpu.spec.template.spec;
    expect(ps.containers[0].resources.limits["nvidia.com/gpu"]).toBe("1");
    expect(ps.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key).toBe("nvidia.com/gpu.present");
    expect(ps.tolerations[0].key).toBe("nvidia.com/gpu");
  });

  it("the gRPC Service (the overlay's patch applied) is valid: a Service of its own, h2c on the same port, PROTOCOL=grpc, a grpc readiness probe", () => {
    const svc = grpcService() as any;
    expect(formatProblems(validateObjects([svc, configMap()], { features: features() }))).toBe("");
    expect(svc.metadata.name).toBe(GRPC.serviceName);
    const server = svc.spec.template.spec.containers[0];
    expect(server.ports).toEqual([{ name: GRPC_PORT_NAME, containerPort: DEFAULT_HTTP_PORT, protocol: "TCP" }]);
    expect(server.env).toContainEqual({ name: ENV.protocol, value: "grpc" });
    expect(server.readinessProbe.grpc).toEqual({ port: DEFAULT_HTTP_PORT, service: GRPC_SERVICE });
    expect(server.readinessProbe.httpGet).toBeUndefined();
    // Liveness: the health service's "liveness" name, SERVING whenever the process answers (not while models load).
    expect(server.livenessProbe).toMatchObject({ grpc: { port: DEFAULT_HTTP_PORT, service: GRPC_HEALTH_SERVICES.liveness } });
    expect(svc.spec.template.spec.volumes[0].persistentVolumeClaim.claimName).toBe(PVC_NAME);
  });

  it("monitoring: PodMonitor and PrometheusRule valid, their PromQL on the runtime's metric names", () => {
    const objects = objectsOf("knative/monitoring/podmonitor.yaml", "knative/monitoring/prometheusrule.yaml");
    expect(formatProblems(validateObjects(objects))).toBe("");
    // Both Services' pods: the REST one and the gRPC one of knative/overlays/grpc.
    expect((objects[0]!.spec as any).selector.matchExpressions).toEqual([{ key: "serving.knative.dev/service", operator: "In", values: ["inference-runtime", GRPC.serviceName, "inference-runtime-async"] }]);
    const alerts = (objects[1]!.spec as any).groups[0].rules.map((r: { alert: string }) => r.alert);
    expect(alerts).toEqual(["InferenceRuntimeHighErrorRate", "InferenceRuntimeHighLatencyP95", "InferenceRuntimeRestarts", "InferenceRuntimeModelNotReady"]);
  });

  it("the Grafana dashboard's queries parse and use the runtime's metrics", () => {
    expect(formatProblems(validateDashboard(JSON.parse(file("knative/monitoring/grafana-dashboard.json"))))).toBe("");
  });

  it("kserve: the ClusterServingRuntime and the InferenceServices that use it", () => {
    const objects = objectsOf("kserve/cluster-serving-runtime.yaml", "kserve/inferenceservice-s3.yaml", "kserve/inferenceservice-pvc.yaml", "kserve/inferenceservice-grpc.yaml");
    expect(formatProblems(validateObjects(objects))).toBe("");
    const runtime = objects[0]!.spec as any;
    expect(runtime.supportedModelFormats[0].name).toBe("onnx");
    expect(runtime.protocolVersions).toEqual(["v2", "v1", "grpc-v2"]);
    expect(runtime.containers[0].env).toContainEqual({ name: ENV.protocol, value: "grpc" });
    expect(runtime.containers[0].name).toBe("kserve-container");
    expect(runtime.containers[0].args).toEqual(["--model_name={{.Name}}", "--model_dir=/mnt/models"]);
    expect(runtime.containers[0].ports[0].containerPort).toBe(8080);
    for (const isvc of objects.slice(1)) expect((isvc.spec as any).predictor.minReplicas).toBe(0);
  });

  it("kserve: the gRPC InferenceService asks for grpc-v2 and, merged into the runtime, gets the runtime's port named h2c", () => {
    const [runtime, isvc] = objectsOf("kserve/cluster-serving-runtime.yaml", "kserve/inferenceservice-grpc.yaml") as any[];
    const model = isvc.spec.predictor.model;
    expect(model.protocolVersion).toBe("grpc-v2");
    const { modelFormat: _f, runtime: _r, protocolVersion: _p, storageUri: _s, ...container } = model;
    const merged = mergeContainer(runtime.spec.containers[0], container);
    expect(merged.ports).toEqual([{ name: GRPC_PORT_NAME, containerPort: DEFAULT_HTTP_PORT, protocol: "TCP" }]);
    expect(merged.env).toContainEqual({ name: ENV.protocol, value: "grpc" });
    expect(Object.keys(merged.readinessProbe)).toContain("httpGet");
  });

  it("kustomization files use only fields that kustomize v2.0 (kubectl 1.20) also knows", () => {
    const v2Fields = new Set(["apiVersion", "kind", "resources", "bases", "configMapGenerator", "secretGenerator", "generatorOptions", "patchesJson6902", "patchesStrategicMerge", "configurations", "images", "namespace", "namePrefix", "nameSuffix", "commonLabels", "commonAnnotations", "vars", "crds"]);
    for (const [path, content] of generatedFiles()) {
      if (!path.endsWith("kustomization.yaml")) continue;
      for (const key of Object.keys(parse(content) as object)) expect(v2Fields.has(key), `${path}: ${key}`).toBe(true);
    }
  });
});

describe("the checks reject broken manifests", () => {
  const svc = () => clone(service()) as any;

  it("CRD schema: an unknown field in the Knative Service", () => {
    const s = svc();
    s.spec.template.spec.containers[0].imagePullPolicyy = "Always";
    expect(formatProblems(validateAgainstCrd(s)!)).toMatch(/spec\.template\.spec\.containers\[0\]: unknown field "imagePullPolicyy" \(Service CRD schema\)/);
  });

  it("CRD schema: a wrongly typed field", () => {
    const s = svc();
    s.spec.template.spec.containerConcurrency = "8";
    expect(formatProblems(validateAgainstCrd(s)!)).toMatch(/containerConcurrency: must be integer/);
  });

  it("CRD schema: a grpc probe with a named port, an unknown field or a null service", () => {
    const s = clone(grpcService()) as any;
    const probe = s.spec.template.spec.containers[0].readinessProbe;
    probe.grpc.port = "h2c";
    probe.grpc.host = "localhost";
    s.spec.template.spec.containers[0].livenessProbe = { grpc: { port: 8080, service: null } };
    const problems = formatProblems(validateAgainstCrd(s)!);
    expect(problems).toMatch(/readinessProbe\.grpc\.port: must be integer/);
    expect(problems).toMatch(/readinessProbe\.grpc: unknown field "host"/);
    expect(problems).toMatch(/livenessProbe\.grpc\.service: must be string/);
  });

  it("CRD schema: KServe InferenceService without a model format name, and a namespaced ClusterServingRuntime", () => {
    const isvc = objectsOf("kserve/inferenceservice-pvc.yaml")[0]! as any;
    delete isvc.spec.predictor.model.modelFormat.name;
    expect(formatProblems(validateAgainstCrd(isvc)!)).toMatch(/must have required property 'name'/);
    const csr = objectsOf("kserve/cluster-serving-runtime.yaml")[0]! as any;
    csr.metadata.namespace = "default";
    expect(formatProblems(validateAgainstCrd(csr)!)).toMatch(/cluster-scoped/);
  });

  it("CRD schema: Knative Eventing Trigger and Broker", () => {
    const trigger = {
      apiVersion: "eventing.knative.dev/v1",
      kind: "Trigger",
      metadata: { name: "sentiment" },
      spec: { broker: "default", subscriber: { ref: { apiVersion: "serving.knative.dev/v1", kind: "Service", name: "inference-runtime" } } },
    };
    expect(formatProblems(validateAgainstCrd(trigger)!)).toBe("");
    expect(formatProblems(validateAgainstCrd({ ...trigger, spec: { broker: 42, subscriber: trigger.spec.subscriber } })!)).toMatch(/spec\.broker: must be string/);
    const broker = { apiVersion: "eventing.knative.dev/v1", kind: "Broker", metadata: { name: "default" }, spec: { delivery: { retry: "3" } } };
    expect(formatProblems(validateAgainstCrd(broker)!)).toMatch(/retry: must be integer/);
  });

  it("core types: a PVC with a bad quantity and a misspelt field", () => {
    const pvc = objectsOf("knative/base/pvc.yaml")[0]! as any;
    pvc.spec.resources.requests.storage = "5 gigs";
    pvc.spec.acessModes = ["ReadWriteMany"];
    const problems = formatProblems(validateCore(pvc)!);
    expect(problems).toMatch(/storage/);
    expect(problems).toMatch(/spec\.acessModes: unknown field "acessModes"/);
  });

  it("core types: a PodMonitor with a wrongly typed field", () => {
    const pm = objectsOf("knative/monitoring/podmonitor.yaml")[0]! as any;
    pm.spec.podMetricsEndpoints = "user-port";
    expect(formatProblems(validateCore(pm)!)).toMatch(/podMetricsEndpoints/);
  });

  it("PromQL: syntax errors, unknown series, labels a series does not have", () => {
    expect(checkQuery("sum(rate(inference_server_requests_total[5m])")).toEqual([expect.stringMatching(/syntax error/)]);
    expect(checkQuery("rate(inference_server_requests[5m])")).toEqual([expect.stringMatching(/unknown series inference_server_requests /)]);
    expect(checkQuery('rate(inference_server_request_duration_seconds_count{status_code="500"}[5m])')).toEqual([
      expect.stringMatching(/inference_server_request_duration_seconds_count has no label status_code/),
    ]);
    expect(checkQuery('rate(inference_server_requests_total{status_code=~"5..", revision="x"}[$__rate_interval])', { grafana: true })).toEqual([]);
  });

  it("PrometheusRule: a bad `for` and an alert without severity", () => {
    const rule = objectsOf("knative/monitoring/prometheusrule.yaml")[0]! as any;
    rule.spec.groups[0].rules[0].for = "five minutes";
    delete rule.spec.groups[0].rules[1].labels.severity;
    const problems = formatProblems(validateObjects([rule]));
    expect(problems).toMatch(/rules\[0\]\.for: not a Prometheus duration/);
    expect(problems).toMatch(/rules\[1\]\.labels\.severity/);
  });

  it("KServe: a runtime that cannot serve the model, a bad storage URI, a wrong container name, PORT in env", () => {
    const runtime = objectsOf("kserve/cluster-serving-runtime.yaml")[0]! as any;
    const isvc = objectsOf("kserve/inferenceservice-s3.yaml")[0]! as any;
    isvc.spec.predictor.model.modelFormat.name = "tensorflow";
    isvc.spec.predictor.model.storageUri = "ftp://models/x";
    isvc.spec.predictor.maxReplicas = 0;
    isvc.spec.predictor.minReplicas = -1;
    runtime.spec.containers[0].name = "server";
    runtime.spec.containers[0].env.push({ name: "PORT", value: "9000" });
    const problems = formatProblems([...validateKserve(isvc, [runtime, isvc]), ...validateKserve(runtime, [runtime])]);
    expect(problems).toMatch(/does not support format tensorflow/);
    expect(problems).toMatch(/unsupported storage URI "ftp:\/\/models\/x"/);
    expect(problems).toMatch(/minReplicas: must be >= 0/);
    expect(problems).toMatch(/must be named kserve-container/);
    expect(problems).toMatch(/"PORT" is reserved by Knative/);
  });

  it("KServe: a grpc-v2 InferenceService without the h2c port, with PROTOCOL=http, with a grpc probe merged into an httpGet one, on a runtime without grpc-v2", () => {
    const runtime = objectsOf("kserve/cluster-serving-runtime.yaml")[0]! as any;
    const isvc = objectsOf("kserve/inferenceservice-grpc.yaml")[0]! as any;
    const model = isvc.spec.predictor.model;
    delete model.ports;
    model.env = [{ name: ENV.protocol, value: "http" }];
    model.readinessProbe = { grpc: { port: DEFAULT_HTTP_PORT, service: GRPC_SERVICE } };
    let problems = formatProblems(validateKserve(isvc, [runtime, isvc]));
    expect(problems).toMatch(/model\.ports: protocolVersion grpc-v2 on Knative needs the serving port named h2c/);
    expect(problems).toMatch(/model\.env: protocolVersion grpc-v2 needs PROTOCOL=grpc in the runtime's container, got http/);
    expect(problems).toMatch(/model\.readinessProbe: merged into the runtime's readinessProbe, this leaves httpGet and grpc/);
    model.readinessProbe.httpGet = null;
    expect(formatProblems(validateKserve(isvc, [runtime, isvc]))).not.toMatch(/readinessProbe/);
    runtime.spec.protocolVersions = ["v2", "v1"];
    problems = formatProblems(validateKserve(isvc, [runtime, isvc]));
    expect(problems).toMatch(/runtime inference-runtime does not speak grpc-v2/);
  });
});

const KUBECTL = process.env.KUBECTL ?? "kubectl";

function kustomize(dir: string): string {
  try {
    return execFileSync(KUBECTL, ["kustomize", join(REPO_ROOT, dir)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw new Error(`${KUBECTL} not found: the kustomize tests need kubectl (Debian: apt-get install kubernetes-client; .ci/run installs it)`);
    }
    throw new Error(`${KUBECTL} kustomize ${dir} failed: ${e.stderr ?? e.message}`);
  }
}

describe("kubectl kustomize renders each entry point, and the result is valid", () => {
  const cfgFeatures = () => featuresFrom(objectsOf("knative/config-features.yaml"));

  it("knative/ (the CPU revision)", () => {
    const objects = parseManifests(kustomize("knative"), "knative");
    expect(objects.map((o) => o.kind).sort()).toEqual(["ConfigMap", "PersistentVolumeClaim", "Service"]);
    expect(formatProblems(validateObjects(objects, { features: cfgFeatures() }))).toBe("");
    // The Service refers to the generated, hash-suffixed ConfigMap.
    const cm = objects.find((o) => o.kind === "ConfigMap")!;
    const svc = objects.find((o) => o.kind === "Service") as any;
    expect(cm.metadata!.name).toMatch(/^inference-runtime-config-[a-z0-9]+$/);
    expect(svc.spec.template.spec.containers[0].envFrom[0].configMapRef.name).toBe(cm.metadata!.name);
    expect(svc.spec.template.spec.initContainers[0].envFrom[0].configMapRef.name).toBe(cm.metadata!.name);
  });

  it("knative/overlays/gpu (the GPU revision of the same Service)", () => {
    const objects = parseManifests(kustomize("knative/overlays/gpu"), "gpu");
    expect(formatProblems(validateObjects(objects, { features: cfgFeatures() }))).toBe("");
    const svc = objects.find((o) => o.kind === "Service") as any;
    const cm = objects.find((o) => o.kind === "ConfigMap") as any;
    expect(svc.metadata.name).toBe("inference-runtime");
    expect(svc.spec.template.spec.containers[0].image).toMatch(/-cuda12$/);
    expect(svc.spec.template.spec.containers[0].envFrom[0].configMapRef.name).toBe(cm.metadata.name);
    expect(cm.data.EXECUTION_PROVIDERS).toBe("cuda,cpu");
    expect(cm.data.MODEL_DIR).toBe("/mnt/models/sentiment");
  });

  it("knative/monitoring", () => {
    const objects = parseManifests(kustomize("knative/monitoring"), "monitoring");
    expect(objects.map((o) => o.kind).sort()).toEqual(["ConfigMap", "PodMonitor", "PrometheusRule"]);
    expect(formatProblems(validateObjects(objects))).toBe("");
    const dashboard = objects.find((o) => o.kind === "ConfigMap") as any;
    expect(dashboard.metadata.labels.grafana_dashboard).toBe("1");
    expect(formatProblems(validateDashboard(JSON.parse(dashboard.data["grafana-dashboard.json"])))).toBe("");
  });

  it("knative/overlays/grpc (a second Service, serving gRPC, on the same model store)", () => {
    const objects = parseManifests(kustomize("knative/overlays/grpc"), "grpc");
    expect(objects.map((o) => o.kind).sort()).toEqual(["ConfigMap", "PersistentVolumeClaim", "Service"]);
    expect(formatProblems(validateObjects(objects, { features: cfgFeatures() }))).toBe("");
    const svc = objects.find((o) => o.kind === "Service") as any;
    const cm = objects.find((o) => o.kind === "ConfigMap") as any;
    const pvc = objects.find((o) => o.kind === "PersistentVolumeClaim") as any;
    expect(svc.metadata.name).toBe(GRPC.serviceName);
    expect(pvc.metadata.name).toBe(PVC_NAME);
    const server = svc.spec.template.spec.containers[0];
    expect(server.ports[0].name).toBe(GRPC_PORT_NAME);
    expect(server.env).toContainEqual({ name: ENV.protocol, value: "grpc" });
    expect(server.readinessProbe.grpc.service).toBe(GRPC_SERVICE);
    expect(server.envFrom[0].configMapRef.name).toBe(cm.metadata.name);
    // The same ConfigMap (name and hash) as the REST Service's: one configuration for both.
    const base = parseManifests(kustomize("knative"), "knative").find((o) => o.kind === "ConfigMap")!;
    expect(cm.metadata.name).toBe(base.metadata!.name);
  });

  it("kserve/", () => {
    const objects = parseManifests(kustomize("kserve"), "kserve");
    expect(objects.map((o) => o.kind)).toEqual(["ClusterServingRuntime"]);
    expect(formatProblems(validateObjects(objects))).toBe("");
  });
});
