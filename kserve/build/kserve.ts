/**
 * KServe manifests: a ClusterServingRuntime that runs this server for ONNX
 * models over the Open Inference Protocol (v2) and KServe V1, and
 * InferenceService examples that use it with storageUri (s3:// and pvc://) and
 * scale to zero. Built from the same settings and container parts as the
 * Knative manifests.
 */
import type { V1Container } from "@kubernetes/client-node";
import { containerSecurityContext, httpProbe, labels, serverResources } from "../../knative/build/knative.js";
import {
  APP_NAME,
  AUTOSCALING,
  CONCURRENCY,
  DEFAULT_HTTP_PORT,
  ENV,
  IMAGE_CPU,
  MAX_REQUEST_BYTES,
  MODEL_MOUNT_PATH,
  MODEL_NAME,
  PATHS,
  PVC_NAME,
} from "../../knative/build/settings.js";
import { GENERATED_HEADER, type Commented } from "../../knative/build/yaml.js";

const SOURCE = "kserve/build/kserve.ts";
export const RUNTIME_NAME = APP_NAME;
/** KServe only hands the model (storage initializer, /mnt/models) to a container with this name. */
export const KSERVE_CONTAINER = "kserve-container";

export function runtimeContainer(): V1Container {
  return {
    name: KSERVE_CONTAINER,
    image: IMAGE_CPU,
    args: ["--model_name={{.Name}}", `--model_dir=${MODEL_MOUNT_PATH}`],
    env: [
      { name: ENV.maxRequestBytes, value: String(MAX_REQUEST_BYTES) },
      { name: ENV.logLevel, value: "info" },
      { name: ENV.repositoryApi, value: "disabled" },
      { name: ENV.requestTimeoutMs, value: String(AUTOSCALING.timeoutSeconds * 1000) },
    ],
    ports: [{ containerPort: DEFAULT_HTTP_PORT, protocol: "TCP" }],
    readinessProbe: httpProbe(PATHS.ready, { periodSeconds: 2, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 }),
    livenessProbe: httpProbe(PATHS.live, { periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 }),
    resources: serverResources(),
    securityContext: containerSecurityContext(),
  };
}

export function clusterServingRuntime() {
  return {
    apiVersion: "serving.kserve.io/v1alpha1",
    kind: "ClusterServingRuntime",
    metadata: { name: RUNTIME_NAME, labels: labels("serving-runtime") },
    spec: {
      annotations: {
        "prometheus.kserve.io/port": String(DEFAULT_HTTP_PORT),
        "prometheus.kserve.io/path": PATHS.metrics,
      },
      supportedModelFormats: [{ name: "onnx", version: "1", autoSelect: true, priority: 2 }],
      protocolVersions: ["v2", "v1"],
      multiModel: false,
      containers: [runtimeContainer()],
    },
  };
}

export function clusterServingRuntimeManifest(): Commented {
  return {
    object: clusterServingRuntime(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "A cluster-wide KServe serving runtime for ONNX models: `kubectl apply -k kserve/`",
      "(cluster-admin), then create InferenceServices like the examples beside this file.",
    ].join("\n"),
    comments: [
      [["spec", "annotations"], "Where KServe's metrics aggregation (if enabled) scrapes the server."],
      [
        ["spec", "supportedModelFormats", 0],
        "autoSelect: InferenceServices with modelFormat onnx may pick this runtime without naming it;\npriority 2 wins over KServe's built-in ONNX runtime (priority 1) when both can serve.",
      ],
      [["spec", "protocolVersions"], "Open Inference Protocol (v2) first: the default for InferenceServices that do not choose."],
      [
        ["spec", "containers", 0, "args"],
        `KServe fills in {{.Name}} (the InferenceService's name) and mounts the model at ${MODEL_MOUNT_PATH}:\nthe server's single-model mode, as with KServe's own runtimes. PORT is set by Knative.`,
      ],
    ],
  };
}

const autoscaling = {
  minReplicas: AUTOSCALING.minScale,
  maxReplicas: AUTOSCALING.maxScale,
  scaleMetric: "concurrency",
  scaleTarget: CONCURRENCY.containerConcurrency,
  containerConcurrency: CONCURRENCY.containerConcurrency,
  timeout: AUTOSCALING.timeoutSeconds,
};

export function inferenceService(name: string, storageUri: string, serviceAccountName?: string) {
  return {
    apiVersion: "serving.kserve.io/v1beta1",
    kind: "InferenceService",
    metadata: {
      name,
      annotations: { "serving.kserve.io/deploymentMode": "Serverless" },
    },
    spec: {
      predictor: {
        ...autoscaling,
        serviceAccountName,
        model: {
          modelFormat: { name: "onnx" },
          runtime: RUNTIME_NAME,
          protocolVersion: "v2",
          storageUri,
        },
      },
    },
  };
}

const ISVC_COMMENTS: [readonly (string | number)[], string][] = [
  [["metadata", "annotations"], "Serverless = on Knative, which is what allows minReplicas: 0."],
  [["spec", "predictor", "minReplicas"], "Scale to zero when idle (KServe passes this to Knative's min-scale)."],
  [["spec", "predictor", "scaleTarget"], "Same concurrency figures as knative/base/service.yaml (measured there)."],
  [["spec", "predictor", "model", "runtime"], "The ClusterServingRuntime from cluster-serving-runtime.yaml."],
];

export function inferenceServiceS3Manifest(): Commented {
  return {
    object: inferenceService(`${MODEL_NAME}-s3`, `s3://models/${MODEL_NAME}/`, "models-s3"),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The sentiment model from S3 (or any S3-compatible store). KServe's storage initializer",
      `downloads the prefix into ${MODEL_MOUNT_PATH} before the server starts. Credentials come from the`,
      "service account's secret, e.g.:",
      "",
      "  kubectl create secret generic models-s3 --from-literal=AWS_ACCESS_KEY_ID=... --from-literal=AWS_SECRET_ACCESS_KEY=...",
      "  kubectl annotate secret models-s3 serving.kserve.io/s3-endpoint=s3.amazonaws.com serving.kserve.io/s3-usehttps=1",
      "  kubectl create serviceaccount models-s3 && kubectl patch serviceaccount models-s3 -p '{\"secrets\":[{\"name\":\"models-s3\"}]}'",
    ].join("\n"),
    comments: [...ISVC_COMMENTS, [["spec", "predictor", "model", "storageUri"], "A prefix holding model.onnx (or 1/model.onnx, ...), e.g. uploaded from models/sentiment."]],
  };
}

export function inferenceServicePvcManifest(): Commented {
  return {
    object: inferenceService(`${MODEL_NAME}-pvc`, `pvc://${PVC_NAME}/${MODEL_NAME}`),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The sentiment model from a PersistentVolumeClaim: KServe mounts pvc://<claim>/<path> read-only",
      `at ${MODEL_MOUNT_PATH}, with no download. This uses the claim of knative/base/pvc.yaml, where the`,
      "Knative deployment's model puller has already published the model.",
    ].join("\n"),
    comments: ISVC_COMMENTS,
  };
}
