/**
 * KServe manifests: a ClusterServingRuntime that runs this server for ONNX
 * models over the Open Inference Protocol (v2, REST and gRPC) and KServe V1,
 * and InferenceService examples that use it with storageUri (s3:// and pvc://),
 * over gRPC, and scale to zero. Built from the same settings and container
 * parts as the Knative manifests.
 */
import type { V1Container } from "@kubernetes/client-node";
import { LIVENESS_TUNING, READINESS_TUNING, containerSecurityContext, httpProbe, labels, serverResources } from "../../knative/build/knative.js";
import {
  APP_NAME,
  AUTOSCALING,
  CONCURRENCY,
  DEFAULT_HTTP_PORT,
  ENV,
  GRPC,
  GRPC_PORT_NAME,
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

/**
 * KServe's protocol versions, as InferenceServices name them in
 * spec.predictor.model.protocolVersion. KServe only picks a runtime whose
 * protocolVersions holds the one an InferenceService asks for.
 */
export const PROTOCOL_VERSIONS = { restV2: "v2", restV1: "v1", grpcV2: "grpc-v2" } as const;

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
      { name: ENV.protocol, value: GRPC.protocol },
    ],
    ports: [{ containerPort: DEFAULT_HTTP_PORT, protocol: "TCP" }],
    readinessProbe: httpProbe(PATHS.ready, READINESS_TUNING),
    livenessProbe: httpProbe(PATHS.live, LIVENESS_TUNING),
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
      protocolVersions: [PROTOCOL_VERSIONS.restV2, PROTOCOL_VERSIONS.restV1, PROTOCOL_VERSIONS.grpcV2],
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
      [
        ["spec", "protocolVersions"],
        [
          "KServe picks this runtime only for InferenceServices whose protocolVersion is listed here (or",
          `that name none): REST v2 and V1, and ${PROTOCOL_VERSIONS.grpcV2}, the Open Inference Protocol's gRPC API. KServe passes`,
          "the protocolVersion to no container, so the server serves all three on its one port (see",
          `${ENV.protocol} below); a ${PROTOCOL_VERSIONS.grpcV2} InferenceService names that port ${GRPC_PORT_NAME} (inferenceservice-grpc.yaml).`,
        ].join("\n"),
      ],
      [
        ["spec", "containers", 0, "args"],
        `KServe fills in {{.Name}} (the InferenceService's name) and mounts the model at ${MODEL_MOUNT_PATH}:\nthe server's single-model mode, as with KServe's own runtimes. PORT is set by Knative.`,
      ],
      [
        ["spec", "containers", 0, "env", runtimeContainer().env!.findIndex((e) => e.name === ENV.protocol)],
        [
          `${ENV.protocol}=${GRPC.protocol}: gRPC (h2c) beside HTTP/1.1 on the one port (Triton and MLServer serve both too, on two ports).`,
          "Knative sends each revision one protocol, chosen by the port's name: HTTP/1.1 to this unnamed",
          `port (REST v2 and V1 InferenceServices), cleartext HTTP/2 when an InferenceService names it ${GRPC_PORT_NAME}.`,
          `Not to be confused with KServe's own ${ENV.protocol}=v1|v2, which KServe reads on custom predictor`,
          "containers (spec.predictor.containers), never on a runtime's: this server takes http or grpc.",
        ].join("\n"),
      ],
      [
        ["spec", "containers", 0, "readinessProbe"],
        [
          "HTTP/1.1 probes, which serve REST and gRPC InferenceServices alike: the queue-proxy probes",
          "over HTTP/1.1 whatever the port's name (unless config-features enables autodetect-http2), and",
          `the server answers HTTP/1.1 on a ${GRPC_PORT_NAME} port too.`,
          "An InferenceService should not set a grpc: probe: KServe merges its container into this one",
          "(a strategic merge patch), which would leave the probe with two handlers.",
        ].join("\n"),
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

export interface InferenceServiceOptions {
  serviceAccountName?: string;
  /** grpc: the Open Inference Protocol's gRPC API (protocolVersion grpc-v2, the port named h2c). */
  grpc?: boolean;
}

export function inferenceService(name: string, storageUri: string, { serviceAccountName, grpc = false }: InferenceServiceOptions = {}) {
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
          protocolVersion: grpc ? PROTOCOL_VERSIONS.grpcV2 : PROTOCOL_VERSIONS.restV2,
          storageUri,
          // Merged into the runtime's port (same containerPort): only its name changes.
          ports: grpc ? [{ name: GRPC_PORT_NAME, containerPort: DEFAULT_HTTP_PORT, protocol: "TCP" }] : undefined,
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
    object: inferenceService(`${MODEL_NAME}-s3`, `s3://models/${MODEL_NAME}/`, { serviceAccountName: "models-s3" }),
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

export function inferenceServiceGrpcManifest(): Commented {
  const name = `${MODEL_NAME}-grpc`;
  return {
    object: inferenceService(name, `pvc://${PVC_NAME}/${MODEL_NAME}`, { grpc: true }),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The sentiment model over gRPC (the Open Inference Protocol's inference.GRPCInferenceService),",
      "from the same claim as inferenceservice-pvc.yaml. Through Knative a revision gets one protocol,",
      `chosen by its port's name: this InferenceService names the port ${GRPC_PORT_NAME}, so its URL speaks gRPC`,
      "(cleartext HTTP/2) end to end; REST clients use a REST InferenceService such as sentiment-pvc.",
      "",
      `  grpcurl -plaintext -authority ${name}.<namespace>.<domain> -import-path runtime/proto -proto grpc_predict_v2.proto \\`,
      `    -d '{"model_name":"${name}","inputs":[{"name":"text","datatype":"BYTES","shape":[1],"contents":{"bytes_contents":["VGhpcyBtb3ZpZSB3YXMgZmFudGFzdGljIQ=="]}}]}' \\`,
      "    <ingress address>:80 inference.GRPCInferenceService/ModelInfer",
    ].join("\n"),
    comments: [
      ...ISVC_COMMENTS,
      [
        ["spec", "predictor", "model", "protocolVersion"],
        "KServe selects the runtime only if its protocolVersions lists grpc-v2; it passes the protocol to no\ncontainer (the runtime serves gRPC and HTTP/1.1 on one port).",
      ],
      [
        ["spec", "predictor", "model", "ports"],
        [
          `KServe exposes one port per predictor, HTTP/1.1 unless it is named ${GRPC_PORT_NAME}; this entry merges into`,
          `the runtime's port ${DEFAULT_HTTP_PORT} (same containerPort) and names it, as KServe's Triton examples do`,
          "for their gRPC port. The probes stay HTTP/1.1, which the server answers on this port too.",
        ].join("\n"),
      ],
    ],
  };
}
