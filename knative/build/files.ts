/**
 * Every generated file under knative/ and kserve/, as (path, content) pairs.
 * `npm run manifests` writes them; generate.test.ts compares them with the
 * committed files byte for byte.
 *
 * Kustomization files stay within what both kustomize v2.0 (built into the
 * kubectl 1.20 of Debian's kubernetes-client) and current kustomize accept:
 * `bases:` for the overlay's base, `patchesJson6902:` with a patch file,
 * `configMapGenerator` with literals, `configurations:`.
 */
import {
  clusterServingRuntimeManifest,
  inferenceServiceGrpcManifest,
  inferenceServicePvcManifest,
  inferenceServiceS3Manifest,
} from "../../kserve/build/kserve.js";
import {
  CONFIG_COMMENTS,
  configData,
  configFeaturesManifest,
  gpuPatchManifest,
  grpcPatchManifest,
  pvcManifest,
  serviceManifest,
} from "./knative.js";
import { dashboard, podMonitorManifest, prometheusRuleManifest } from "./monitoring.js";
import { eventingFiles } from "./eventing.js";
import { platformFiles } from "./platform.js";
import { APP_NAME, CONFIG_MAP_NAME, ENV, GPU, GRPC, IMAGE_REPOSITORY, PVC_NAME } from "./settings.js";
import { GENERATED_HEADER, renderDocument, type Commented } from "./yaml.js";

const KUSTOMIZE_API = { apiVersion: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization" } as const;
const SOURCE = "knative/build/files.ts";

/** Where kustomize finds ConfigMap names in a Knative Service, so the hash-suffixed name is filled in. */
export function kustomizeConfig(): Commented {
  const spec = "spec/template/spec";
  const paths = [
    `${spec}/containers/envFrom/configMapRef/name`,
    `${spec}/containers/env/valueFrom/configMapKeyRef/name`,
    `${spec}/initContainers/envFrom/configMapRef/name`,
    `${spec}/initContainers/env/valueFrom/configMapKeyRef/name`,
    `${spec}/volumes/configMap/name`,
  ];
  return {
    object: {
      nameReference: [
        {
          kind: "ConfigMap",
          version: "v1",
          fieldSpecs: paths.map((path) => ({ kind: "Service", group: "serving.knative.dev", path })),
        },
      ],
    },
    header: [GENERATED_HEADER(SOURCE), "", "Teaches kustomize where a Knative Service refers to ConfigMaps (it knows Deployments, not CRDs)."].join("\n"),
  };
}

export function baseKustomization(): Commented {
  const data = configData();
  const literals = Object.entries(data).map(([k, v]) => `${k}=${v}`);
  return {
    object: {
      ...KUSTOMIZE_API,
      resources: ["pvc.yaml", "service.yaml"],
      configMapGenerator: [{ name: CONFIG_MAP_NAME, literals }],
      configurations: ["kustomizeconfig.yaml"],
    },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The CPU deployment; knative/kustomization.yaml, knative/overlays/gpu and knative/overlays/grpc build on it.",
      "",
      "To use your own image registry, add (or `kustomize edit set image ...`):",
      "  images:",
      `    - name: ${IMAGE_REPOSITORY}`,
      "      newName: <your-registry>/inference-runtime",
    ].join("\n"),
    comments: [
      [
        ["configMapGenerator"],
        [
          "The server's and the puller's configuration. kustomize appends a hash of the content to",
          "the ConfigMap's name and puts that name into the Service, so changing a value here makes",
          "a new revision (instead of silently changing what restarted pods of the old one see), and",
          "rolling back to a revision brings its configuration back.",
        ].join("\n"),
      ],
      ...Object.keys(data).map((k, i): [(string | number)[], string] => [["configMapGenerator", 0, "literals", i], CONFIG_COMMENTS[k] ?? k]),
    ],
  };
}

/** knative/kustomization.yaml: `kubectl apply -k knative/` deploys the base (the CPU revision). */
export function rootKustomization(): Commented {
  return {
    object: { ...KUSTOMIZE_API, bases: ["base"] },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "kubectl apply -k knative/              the CPU revision (enable config-features.yaml first)",
      "kubectl apply -k knative/overlays/gpu  the same Service with a GPU revision",
      `kubectl apply -k knative/overlays/grpc a second Service, ${GRPC.serviceName}, serving gRPC (h2c)`,
      "kubectl apply -k knative/monitoring    PodMonitor, PrometheusRule, Grafana dashboard",
      "kubectl apply -k knative/platform      asynchronous inference on a RabbitMQ Broker (see its kustomization.yaml)",
      "",
      "The manifests live in base/ because kustomize refuses an overlay inside its base's directory.",
    ].join("\n"),
  };
}

export function gpuKustomization(): Commented {
  return {
    object: {
      ...KUSTOMIZE_API,
      bases: ["../../base"],
      configMapGenerator: [{ name: CONFIG_MAP_NAME, behavior: "merge", literals: [`${ENV.executionProviders}=${GPU.executionProviders}`, `${ENV.requestTimeoutMs}=${GPU.timeoutSeconds * 1000}`] }],
      patchesJson6902: [
        {
          target: { group: "serving.knative.dev", version: "v1", kind: "Service", name: APP_NAME },
          path: "service-gpu-patch.yaml",
        },
      ],
    },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The GPU revision of the same Service: kubectl apply -k knative/overlays/gpu",
      "(current kustomize warns that bases/patchesJson6902 are deprecated; they are kept so that",
      "the kustomize v2 inside older kubectl versions can render this too).",
      "",
      "Your own registry: the same images: entry as in base/kustomization.yaml, here too (this",
      "patch sets the CUDA image after the base's images: entry has been applied).",
    ].join("\n"),
    comments: [
      [
        ["configMapGenerator"],
        "CUDA first, CPU as the fallback: if the CUDA provider cannot load (no GPU, driver mismatch),\nthe server logs it and serves on CPU. The merged ConfigMap gets its own hash, so the CPU and\nGPU revisions keep their own configuration side by side.",
      ],
    ],
  };
}

export function grpcKustomization(): Commented {
  return {
    object: {
      ...KUSTOMIZE_API,
      bases: ["../../base"],
      patchesJson6902: [
        {
          target: { group: "serving.knative.dev", version: "v1", kind: "Service", name: APP_NAME },
          path: "service-grpc-patch.yaml",
        },
      ],
    },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      `The gRPC variant: kubectl apply -k knative/overlays/grpc creates the Knative Service ${GRPC.serviceName}`,
      `beside ${APP_NAME} (the REST one), serving the Open Inference Protocol's gRPC API over h2c.`,
      `It renders the base's PersistentVolumeClaim ${PVC_NAME} and ConfigMap too, under the same`,
      "names: both Services read one model store, and applying either entry point leaves the other",
      "intact. For the same reason, remove the gRPC Service with",
      `  kubectl delete ksvc ${GRPC.serviceName}`,
      "and not with kubectl delete -k, which would delete the shared claim as well.",
      "",
      "Your own registry: the images: entry of base/kustomization.yaml applies here as well (this",
      "patch leaves the image alone).",
    ].join("\n"),
  };
}

export function monitoringKustomization(): Commented {
  return {
    object: {
      ...KUSTOMIZE_API,
      resources: ["podmonitor.yaml", "prometheusrule.yaml"],
      configMapGenerator: [{ name: `${APP_NAME}-dashboard`, files: ["grafana-dashboard.json"] }],
      generatorOptions: { disableNameSuffixHash: true, labels: { grafana_dashboard: "1" } },
    },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Monitoring (needs prometheus-operator's CRDs): kubectl apply -k knative/monitoring",
      "The dashboard goes into a ConfigMap labelled grafana_dashboard=1, which Grafana's dashboard",
      "sidecar (kube-prometheus-stack) loads; or import grafana-dashboard.json by hand.",
    ].join("\n"),
  };
}

export function kserveKustomization(): Commented {
  return {
    object: { ...KUSTOMIZE_API, resources: ["cluster-serving-runtime.yaml"] },
    header: [
      GENERATED_HEADER("knative/build/files.ts"),
      "",
      "kubectl apply -k kserve/ installs the ClusterServingRuntime; the InferenceServices beside it",
      "are examples to apply one by one (kubectl apply -f kserve/inferenceservice-pvc.yaml).",
    ].join("\n"),
  };
}

/** All generated files: path relative to the repository root -> content. */
export function generatedFiles(): Map<string, string> {
  const yaml = (doc: Commented) => renderDocument(doc);
  return new Map([
    ["knative/config-features.yaml", yaml(configFeaturesManifest())],
    ["knative/kustomization.yaml", yaml(rootKustomization())],
    ["knative/base/kustomization.yaml", yaml(baseKustomization())],
    ["knative/base/kustomizeconfig.yaml", yaml(kustomizeConfig())],
    ["knative/base/pvc.yaml", yaml(pvcManifest())],
    ["knative/base/service.yaml", yaml(serviceManifest())],
    ["knative/overlays/gpu/kustomization.yaml", yaml(gpuKustomization())],
    ["knative/overlays/gpu/service-gpu-patch.yaml", yaml(gpuPatchManifest())],
    ["knative/overlays/grpc/kustomization.yaml", yaml(grpcKustomization())],
    ["knative/overlays/grpc/service-grpc-patch.yaml", yaml(grpcPatchManifest())],
    ["knative/monitoring/kustomization.yaml", yaml(monitoringKustomization())],
    ["knative/monitoring/podmonitor.yaml", yaml(podMonitorManifest())],
    ["knative/monitoring/prometheusrule.yaml", yaml(prometheusRuleManifest())],
    ["knative/monitoring/grafana-dashboard.json", `${JSON.stringify(dashboard(), null, 2)}\n`],
    ["kserve/kustomization.yaml", yaml(kserveKustomization())],
    ["kserve/cluster-serving-runtime.yaml", yaml(clusterServingRuntimeManifest())],
    ["kserve/inferenceservice-s3.yaml", yaml(inferenceServiceS3Manifest())],
    ["kserve/inferenceservice-pvc.yaml", yaml(inferenceServicePvcManifest())],
    ["kserve/inferenceservice-grpc.yaml", yaml(inferenceServiceGrpcManifest())],
    // Knative Eventing (knative/build/eventing.ts): Broker, Triggers, SinkBinding, example sinks.
    ...eventingFiles(),
    // Asynchronous inference (knative/build/platform.ts): RabbitMQ Broker, Triggers, async Service, migration Job, KEDA variant.
    ...platformFiles(),
  ]);
}
