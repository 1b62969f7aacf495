/**
 * The deployment's parameters: what the Knative and KServe manifests are built
 * from. Facts about the server (port, probe paths, env names, model mount path,
 * metric names) come from runtime/src/constants.ts; the choices made here for a
 * deployment (scale bounds, concurrency, resources) carry their reasons, which
 * the generator writes into the YAML as comments.
 */
import packageJson from "../../package.json" with { type: "json" };
import { DEFAULT_HTTP_PORT, ENV, GRPC_HEALTH_SERVICES, GRPC_PORT_NAME, GRPC_SERVICE, MODEL_MOUNT_PATH, PATHS, PROTOCOLS } from "../../runtime/src/constants.js";

export { DEFAULT_HTTP_PORT, ENV, GRPC_HEALTH_SERVICES, GRPC_PORT_NAME, GRPC_SERVICE, MODEL_MOUNT_PATH, PATHS, PROTOCOLS };

/** Name of the Knative Service, and the prefix of everything else it owns. */
export const APP_NAME = "inference-runtime";
export const VERSION: string = packageJson.version;

/** The image (see Dockerfile and Dockerfile.gpu). Tags are the package version, never `latest`. */
export const IMAGE_REPOSITORY = "registry.example.com/inference-runtime";
export const IMAGE_CPU = `${IMAGE_REPOSITORY}:${VERSION}`;
export const IMAGE_GPU = `${IMAGE_REPOSITORY}:${VERSION}-cuda12`;
/** WORKDIR and USER of both Dockerfiles (a test checks they agree). */
export const IMAGE_WORKDIR = "/app";
export const IMAGE_UID = 65532;

/** The package's bin entries, run from the image's WORKDIR. */
export const SERVER_BIN: string = packageJson.bin["inference-server"];
export const PULLER_BIN: string = packageJson.bin["model-puller"];

export const CONFIG_MAP_NAME = `${APP_NAME}-config`;
export const PVC_NAME = `${APP_NAME}-models`;
export const VOLUME_NAME = "model-store";
export const SERVER_CONTAINER = "inference-server";
export const PULLER_CONTAINER = "model-puller";

/**
 * The model the example deployment serves. Its default source is the copy baked
 * into the image (models/sentiment), so `kubectl apply -k knative/` works with no
 * object store; point STORAGE_URI at s3://, https:// or hf:// for your own model.
 */
export const MODEL_NAME = "sentiment";
export const MODEL_SOURCE = `file://${IMAGE_WORKDIR}/models/${MODEL_NAME}`;
/** The puller publishes into a subdirectory, so one volume can hold several models. */
export const MODEL_DIR = `${MODEL_MOUNT_PATH}/${MODEL_NAME}`;

/**
 * Environment variables of the model puller (bin/model-puller.js). They are not
 * in runtime/src/constants.ts; a test checks each one against the puller's --help.
 */
export const PULLER_ENV = {
  source: "STORAGE_URI",
  dest: "MODEL_DIR",
  timeout: "PULLER_TIMEOUT",
  progress: "PULLER_PROGRESS",
  logLevel: "PULLER_LOG_LEVEL",
} as const;

/**
 * containerConcurrency, from `knative/build/measure-concurrency.ts` (see the
 * comment the generator writes above it in knative/base/service.yaml).
 */
export const CONCURRENCY = {
  containerConcurrency: 4,
  measuredOn: "2026-11-21; server `PORT=18123 taskset -c 0 node bin/inference-server.js` on 1 CPU as in a 1-CPU pod, load generator on the other CPU; Node 20, onnxruntime-node 1.30; medians of 5 runs of 5 s",
  command: "taskset -c 1 npx tsx knative/build/measure-concurrency.ts --url http://127.0.0.1:18123 --model sentiment --rounds 5 --duration 5 --levels 1,2,4,8,16,32",
  /** Rows as the script printed them: concurrency | req/s | p50 ms | p99 ms. */
  table: ["| 1 | 1520 | 0 | 4 |", "| 2 | 2588 | 0 | 3 |", "| 4 | 2937 | 0 | 5 |", "| 8 | 2934 | 2 | 7 |", "| 16 | 3052 | 4 | 12 |", "| 32 | 2928 | 9 | 27 |"] as string[],
} as const;

/** Requests over this size are refused with 413; it bounds the memory a request can take. */
export const MAX_REQUEST_BYTES = 8 * 1024 * 1024;

export const AUTOSCALING = {
  minScale: 0,
  maxScale: 10,
  targetUtilizationPercentage: 70,
  scaleToZeroPodRetentionPeriod: "5m",
  timeoutSeconds: 120,
} as const;

export const GPU = {
  /** Label of the NVIDIA GPU feature discovery / GPU operator on GPU nodes. */
  nodeLabel: "nvidia.com/gpu.present",
  resource: "nvidia.com/gpu",
  maxScale: 4,
  scaleToZeroPodRetentionPeriod: "15m",
  progressDeadline: "20m",
  timeoutSeconds: 600,
  executionProviders: "cuda,cpu",
} as const;

/**
 * The gRPC variant (knative/overlays/grpc): the same server with PROTOCOL=grpc, as a Knative
 * Service of its own. A revision's wire protocol follows its port name (h2c or http1), and a
 * Service's traffic is split across revisions, so REST and gRPC revisions of one Service would
 * hand gRPC calls to HTTP/1.1 revisions: two Services, two URLs, one model store.
 */
export const GRPC = {
  serviceName: `${APP_NAME}-grpc`,
  /** The value of PROTOCOL that serves gRPC (h2c) beside HTTP/1.1 on the one port. */
  protocol: "grpc" satisfies (typeof PROTOCOLS)[number],
  component: "predictor-grpc",
} as const;

/** Feature flags of Knative Serving that the manifests use (knative/config-features.yaml). */
export const FEATURE_FLAGS = {
  initContainers: "kubernetes.podspec-init-containers",
  persistentVolumeClaim: "kubernetes.podspec-persistent-volume-claim",
  persistentVolumeWrite: "kubernetes.podspec-persistent-volume-write",
  securityContext: "kubernetes.podspec-securitycontext",
  affinity: "kubernetes.podspec-affinity",
  tolerations: "kubernetes.podspec-tolerations",
  fieldRef: "kubernetes.podspec-fieldref",
} as const;

/** p95 request latency above which the PrometheusRule alerts, in seconds. */
export const LATENCY_P95_THRESHOLD_SECONDS = 0.5;

/** knative/platform's Service with asynchronous inference on (platform.ts names it; monitoring selects it). */
export const ASYNC_SERVICE_NAME = `${APP_NAME}-async`;
