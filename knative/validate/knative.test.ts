/**
 * The webhook rules: the generated Service passes, and for each rule a Service
 * that breaks it is rejected with a message that names the problem.
 */
import { describe, expect, it } from "vitest";
import { configMap } from "../build/knative.js";
import { GRPC_SERVICE } from "../../runtime/src/constants.js";
import { brokenService, baseObjects, features, grpcService } from "./fixtures.js";
import { flagEnabled, flagGates, validateKnativeService } from "./knative.js";
import type { K8sObject } from "./problems.js";
import { formatProblems, validateObjects } from "./validate.js";

const spec = (svc: any) => svc.spec.template.spec;
const server = (svc: any) => spec(svc).containers[0];
const annotations = (svc: any) => svc.spec.template.metadata.annotations;

function problemsOf(obj: K8sObject, feats = features(), configMaps = new Map<string, Record<string, string>>()): string {
  return formatProblems(validateKnativeService(obj, feats, configMaps));
}

describe("Knative webhook rules", () => {
  it("accepts the generated deployment", () => {
    const problems = validateObjects(baseObjects(), { features: features() });
    expect(formatProblems(problems)).toBe("");
  });

  it("accepts the gRPC Service (knative/overlays/grpc)", () => {
    const problems = validateObjects([...baseObjects().filter((o) => o.kind !== "Service"), grpcService()], { features: features() });
    expect(formatProblems(problems)).toBe("");
  });

  it("derives the feature-flagged fields from the CRD", () => {
    const byPath = new Map(flagGates().map((g) => [g.path.join("."), g.flag]));
    expect(byPath.get("spec.template.spec.initContainers")).toBe("kubernetes.podspec-init-containers");
    expect(byPath.get("spec.template.spec.affinity")).toBe("kubernetes.podspec-affinity");
    expect(byPath.get("spec.template.spec.tolerations")).toBe("kubernetes.podspec-tolerations");
    expect(byPath.get("spec.template.spec.nodeSelector")).toBe("kubernetes.podspec-nodeselector");
    expect(byPath.get("spec.template.spec.volumes.*.persistentVolumeClaim")).toBe("kubernetes.podspec-persistent-volume-claim");
    expect(byPath.get("spec.template.spec.initContainers.*.securityContext.capabilities.add")).toBe("kubernetes.containerspec-addcapabilities");
    for (const kind of ["containers", "initContainers"]) {
      for (const ref of ["fieldRef", "resourceFieldRef"]) expect(byPath.get(`spec.template.spec.${kind}.*.env.*.valueFrom.${ref}`)).toBe("kubernetes.podspec-fieldref");
    }
  });

  it("reads flags case-insensitively, with Knative's defaults", () => {
    expect(flagEnabled({ x: "Enabled" }, "x")).toBe(true);
    expect(flagEnabled({ x: "allowed" }, "x")).toBe(true);
    expect(flagEnabled({ x: "disabled" }, "x")).toBe(false);
    expect(flagEnabled({}, "kubernetes.podspec-affinity")).toBe(false);
    expect(flagEnabled({}, "kubernetes.podspec-volumes-emptydir")).toBe(true);
  });

  const cases: [string, (svc: any) => void, RegExp][] = [
    [
      "autoscaling annotations on the Service's own metadata",
      (svc) => (svc.metadata.annotations = { "autoscaling.knative.dev/min-scale": "0" }),
      /metadata\.annotations\.autoscaling\.knative\.dev\/min-scale: autoscaling annotations must be put under `spec\.template\.metadata\.annotations`/,
    ],
    ["KPA metric other than concurrency or rps", (svc) => (annotations(svc)["autoscaling.knative.dev/metric"] = "cpu"), /the KPA scales on concurrency or rps only/],
    ["negative min-scale", (svc) => (annotations(svc)["autoscaling.knative.dev/min-scale"] = "-1"), /min-scale: must be between 0/],
    ["max-scale below min-scale", (svc) => (annotations(svc)["autoscaling.knative.dev/min-scale"] = "20"), /max-scale=10 is less than min-scale=20/],
    ["target below 0.01", (svc) => (annotations(svc)["autoscaling.knative.dev/target"] = "0"), /target 0 should be at least 0.01/],
    ["target utilization above 100", (svc) => (annotations(svc)["autoscaling.knative.dev/target-utilization-percentage"] = "120"), /between 1 and 100/],
    ["retention period over an hour", (svc) => (annotations(svc)["autoscaling.knative.dev/scale-to-zero-pod-retention-period"] = "2h"), /between 0s and 3600s/],
    ["retention period that is not a duration", (svc) => (annotations(svc)["autoscaling.knative.dev/scale-to-zero-pod-retention-period"] = "5 minutes"), /must be a duration/],
    ["window under 6s", (svc) => (annotations(svc)["autoscaling.knative.dev/window"] = "2s"), /window: must be between 6s and 3600s/],
    ["unknown autoscaling annotation (typo)", (svc) => (annotations(svc)["autoscaling.knative.dev/minscale"] = "1"), /unknown autoscaling annotation/],
    ["an annotation set under both spellings", (svc) => (annotations(svc)["autoscaling.knative.dev/minScale"] = "0"), /set twice, as autoscaling.knative.dev\/min-scale and autoscaling.knative.dev\/minScale/],
    ["containerConcurrency above 1000", (svc) => (spec(svc).containerConcurrency = 1001), /containerConcurrency: must be between 0 and 1000/],
    ["timeoutSeconds above 600", (svc) => (spec(svc).timeoutSeconds = 601), /timeoutSeconds: must be between 0 and 600/],
    ["two container ports", (svc) => server(svc).ports.push({ containerPort: 9000 }), /expected exactly one container port/],
    ["no container port", (svc) => (server(svc).ports = []), /expected exactly one container port/],
    ["a port named other than http1/h2c", (svc) => (server(svc).ports[0].name = "http"), /Port name http is not allowed/],
    ["a reserved port", (svc) => (server(svc).ports[0].containerPort = 8012), /8012 is a reserved port/],
    ["a reserved port (queue-proxy metrics)", (svc) => (server(svc).ports[0].containerPort = 9091), /9091 is a reserved port/],
    ["the reserved env var PORT", (svc) => (server(svc).env = [{ name: "PORT", value: "9000" }]), /"PORT" is a reserved environment variable/],
    ["the reserved env var K_SERVICE in the init container", (svc) => (spec(svc).initContainers[0].env = [{ name: "K_SERVICE", value: "x" }]), /initContainers\[0\]\.env\[0\]\.name: "K_SERVICE" is a reserved/],
    ["a probe on an init container", (svc) => (spec(svc).initContainers[0].readinessProbe = { tcpSocket: { port: 8080 } }), /initContainers\[0\]\.readinessProbe: field not allowed in an init container/],
    ["a lifecycle hook on an init container", (svc) => (spec(svc).initContainers[0].lifecycle = { preStop: { exec: { command: ["true"] } } }), /initContainers\[0\]\.lifecycle: field not allowed in an init container/],
    ["an init container field Knative does not allow", (svc) => (spec(svc).initContainers[0].stdin = true), /field "stdin" is not allowed in a Knative container/],
    ["a probe on another port", (svc) => (server(svc).readinessProbe.httpGet.port = 9000), /may only probe the container port 8080/],
    ["a grpc probe on another port", (svc) => (server(svc).livenessProbe = { grpc: { port: 9000, service: "" } }), /livenessProbe\.grpc\.port: may only probe the container port 8080, got 9000/],
    ["a probe with two handlers (httpGet and grpc)", (svc) => (server(svc).readinessProbe.grpc = { port: 8080, service: "" }), /readinessProbe: expected exactly one handler of httpGet, tcpSocket, exec, grpc; got 2/],
    ["a named probe port that is not the container port's name", (svc) => (server(svc).readinessProbe.httpGet.port = "h2c"), /readinessProbe\.httpGet\.port: probe port "h2c" must match the container port, named "http1"/],
    [
      "a named probe port on an unnamed container port, other than http",
      (svc) => {
        delete server(svc).ports[0].name;
        server(svc).livenessProbe.httpGet.port = "http1";
      },
      /probe port "http1" must match the container port, named "http"/,
    ],
    ["PROTOCOL=grpc on an http1 port (policy)", (svc) => server(svc).env.push({ name: "PROTOCOL", value: "grpc" }), /ports\[0\]\.name: PROTOCOL=grpc, but the port is named http1: Knative sends HTTP\/1\.1 to it/],
    ["an h2c port without PROTOCOL=grpc (policy)", (svc) => (server(svc).ports[0].name = "h2c"), /to a port named h2c, which the server speaks only with PROTOCOL=grpc \(PROTOCOL is unset\)/],
    [
      "a grpc readiness probe without PROTOCOL=grpc (policy)",
      (svc) => (server(svc).readinessProbe = { grpc: { port: 8080, service: GRPC_SERVICE }, periodSeconds: 2 }),
      /readinessProbe\.grpc: a grpc probe needs PROTOCOL=grpc/,
    ],
    ["a KServe protocolVersion as PROTOCOL (policy)", (svc) => server(svc).env.push({ name: "PROTOCOL", value: "v2" }), /PROTOCOL=v2 is not a value the server accepts: http or grpc \(v2 is a KServe protocolVersion/],
    ["a mount at a reserved path", (svc) => (server(svc).volumeMounts[0].mountPath = "/tmp"), /mountPath "\/tmp" is a reserved path/],
    ["a mount without a volume", (svc) => (server(svc).volumeMounts[0].name = "other"), /volumeMount "other" has no matching volume/],
    ["duplicate container names", (svc) => (spec(svc).initContainers[0].name = server(svc).name), /duplicate container name "inference-server"/],
    ["the reserved container name queue-proxy", (svc) => (server(svc).name = "queue-proxy"), /"queue-proxy" is a reserved container name/],
    ["an image on :latest", (svc) => (server(svc).image = "registry.example.com/inference-runtime:latest"), /must be pinned to a version tag or digest, not latest/],
    ["an untagged image", (svc) => (server(svc).image = "registry.example.com/inference-runtime"), /not untagged/],
    ["a service name that is not a DNS-1035 label", (svc) => (svc.metadata.name = "1nference"), /must be a DNS-1035 label/],
    ["unknown field in an init container (core types)", (svc) => (spec(svc).initContainers[0].resources.limitz = {}), /unknown field "limitz"/],
    ["a wrongly typed toleration", (svc) => (spec(svc).tolerations = [{ key: "nvidia.com/gpu", operator: "Exists", tolerationSeconds: "soon" }]), /tolerationSeconds/],
    ["traffic not summing to 100", (svc) => (svc.spec.traffic = [{ latestRevision: true, percent: 90 }]), /must sum to 100, got 90/],
    ["traffic tag used twice", (svc) => (svc.spec.traffic = [{ latestRevision: true, percent: 50, tag: "a" }, { revisionName: "inference-runtime-00001", percent: 50, tag: "a" }]), /tag "a" used twice/],
  ];

  it.each(cases)("rejects %s", (_name, edit, message) => {
    expect(problemsOf(brokenService(edit))).toMatch(message);
  });

  const grpcCases: [string, (svc: any) => void, RegExp][] = [
    ["the gRPC Service without PROTOCOL=grpc", (svc) => (server(svc).env = server(svc).env.filter((e: { name: string }) => e.name !== "PROTOCOL")), /port named h2c, which the server speaks only with PROTOCOL=grpc/],
    ["the gRPC Service with PROTOCOL=http", (svc) => (server(svc).env.find((e: { name: string }) => e.name === "PROTOCOL").value = "http"), /a grpc probe needs PROTOCOL=grpc: .*\(PROTOCOL is http\)/],
    ["the gRPC Service on an http1 port", (svc) => (server(svc).ports[0].name = "http1"), /PROTOCOL=grpc, but the port is named http1/],
    ["the gRPC Service with a grpc probe without a port (core types)", (svc) => delete server(svc).readinessProbe.grpc.port, /readinessProbe\.grpc must have required property port/],
  ];

  it.each(grpcCases)("rejects %s", (_name, edit, message) => {
    expect(problemsOf(brokenService(edit, grpcService))).toMatch(message);
  });

  it("reads PROTOCOL from the ConfigMaps used with envFrom, env winning over them", () => {
    const withoutEnv = brokenService((svc) => (server(svc).env = server(svc).env.filter((e: { name: string }) => e.name !== "PROTOCOL")), grpcService);
    expect(problemsOf(withoutEnv, features(), new Map([["inference-runtime-config", { PROTOCOL: "grpc" }]]))).toBe("");
    expect(problemsOf(brokenService(() => undefined), features(), new Map([["inference-runtime-config", { PROTOCOL: "grpc" }]]))).toMatch(/PROTOCOL=grpc, but the port is named http1/);
    expect(problemsOf(grpcService(), features(), new Map([["inference-runtime-config", { PROTOCOL: "http" }]]))).toBe("");
  });

  it("judges PROTOCOL and the h2c port only on the inference server's container", () => {
    const other = brokenService((svc) => {
      server(svc).name = "other-app";
      server(svc).image = "registry.example.com/other-app:1.0.0";
      server(svc).ports[0].name = "h2c";
    });
    expect(problemsOf(other)).toBe("");
  });

  const flagCases: [string, string, (svc: any) => void][] = [
    ["kubernetes.podspec-init-containers", "initContainers", () => undefined],
    ["kubernetes.podspec-persistent-volume-claim", "volumes[0].persistentVolumeClaim", () => undefined],
    ["kubernetes.podspec-securitycontext", "securityContext", () => undefined],
    ["kubernetes.podspec-affinity", "affinity", (svc) => (spec(svc).affinity = { nodeAffinity: {} })],
    ["kubernetes.podspec-tolerations", "tolerations", (svc) => (spec(svc).tolerations = [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }])],
    ["kubernetes.podspec-nodeselector", "nodeSelector", (svc) => (spec(svc).nodeSelector = { "nvidia.com/gpu.present": "true" })],
    ["kubernetes.podspec-fieldref", "containers[0].env[0].valueFrom.fieldRef", () => undefined],
  ];

  it.each(flagCases)("rejects a field gated by %s when the flag is off", (flag, field, edit) => {
    const feats = { ...features(), [flag]: "disabled" };
    expect(problemsOf(brokenService(edit), feats)).toContain(`spec.template.spec.${field}: this field needs the feature flag ${flag} enabled`);
  });

  it("rejects env valueFrom.fieldRef / resourceFieldRef in any container when config-features lacks kubernetes.podspec-fieldref", () => {
    const { "kubernetes.podspec-fieldref": _absent, ...feats } = features();
    const svc = brokenService((s) => {
      server(s).env = [{ name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } }];
      spec(s).initContainers[0].env = [{ name: "CPU_LIMIT", valueFrom: { resourceFieldRef: { resource: "limits.cpu" } } }];
    });
    const problems = problemsOf(svc, feats);
    expect(problems).toContain("spec.template.spec.containers[0].env[0].valueFrom.fieldRef: this field needs the feature flag kubernetes.podspec-fieldref enabled in config-features");
    expect(problems).toContain("spec.template.spec.initContainers[0].env[0].valueFrom.resourceFieldRef: this field needs the feature flag kubernetes.podspec-fieldref enabled in config-features");
    expect(problemsOf(svc, features())).toBe("");
  });

  it("rejects a writable PVC when the write flag is off", () => {
    const feats = { ...features(), "kubernetes.podspec-persistent-volume-write": "disabled" };
    const problems = problemsOf(brokenService(() => undefined), feats);
    expect(problems).toMatch(/Persistent volume write support is disabled, but found persistent volume claim inference-runtime-models that is not read-only/);
    expect(problems).toMatch(/initContainers\[0\]\.volumeMounts\[0\]\.readOnly/);
  });

  it("rejects a ConfigMap used with envFrom that sets a reserved variable", () => {
    const cm = configMap("inference-runtime-config", { PORT: "9000" });
    const problems = problemsOf(brokenService(() => undefined), features(), new Map([["inference-runtime-config", cm.data!]]));
    expect(problems).toMatch(/ConfigMap inference-runtime-config sets "PORT", a reserved environment variable/);
  });
});
