/**
 * The Knative objects: the Service (CPU revision), its PersistentVolumeClaim,
 * the configuration the Service reads, the GPU overlay's patch, and the
 * config-features flags. Every Kubernetes part is typed with
 * @kubernetes/client-node's models; values come from settings.ts and the
 * runtime's constants.
 */
import type {
  V1Affinity,
  V1ConfigMap,
  V1Container,
  V1EnvVar,
  V1ObjectMeta,
  V1PersistentVolumeClaim,
  V1PodSecurityContext,
  V1PodSpec,
  V1Probe,
  V1ResourceRequirements,
  V1SecurityContext,
  V1Toleration,
  V1Volume,
} from "@kubernetes/client-node";
import {
  APP_NAME,
  AUTOSCALING,
  CONCURRENCY,
  CONFIG_MAP_NAME,
  DEFAULT_HTTP_PORT,
  ENV,
  FEATURE_FLAGS,
  GPU,
  GRPC,
  GRPC_PORT_NAME,
  GRPC_HEALTH_SERVICES,
  GRPC_SERVICE,
  IMAGE_CPU,
  IMAGE_GPU,
  IMAGE_UID,
  IMAGE_WORKDIR,
  MAX_REQUEST_BYTES,
  MODEL_DIR,
  MODEL_MOUNT_PATH,
  MODEL_NAME,
  MODEL_SOURCE,
  PATHS,
  PULLER_BIN,
  PULLER_CONTAINER,
  PULLER_ENV,
  PVC_NAME,
  SERVER_CONTAINER,
  VERSION,
  VOLUME_NAME,
} from "./settings.js";
import { GENERATED_HEADER, type Commented } from "./yaml.js";

const SOURCE = "knative/build/knative.ts";
const AUTOSCALING_PREFIX = "autoscaling.knative.dev/";

/** The Knative Service's PodSpec: a core PodSpec plus Knative's revision fields. */
export interface RevisionSpec extends Omit<V1PodSpec, "containers"> {
  containers: V1Container[];
  containerConcurrency?: number;
  timeoutSeconds?: number;
}

export interface KnativeService {
  apiVersion: "serving.knative.dev/v1";
  kind: "Service";
  metadata: V1ObjectMeta;
  spec: {
    template: { metadata?: V1ObjectMeta; spec: RevisionSpec };
    traffic?: Record<string, unknown>[];
  };
}

export const labels = (component: string): Record<string, string> => ({
  "app.kubernetes.io/name": APP_NAME,
  "app.kubernetes.io/component": component,
  "app.kubernetes.io/part-of": APP_NAME,
});

/** The configuration both containers read (envFrom); kustomize generates the ConfigMap from it. */
export function configData(): Record<string, string> {
  return {
    [ENV.modelName]: MODEL_NAME,
    [ENV.modelDir]: MODEL_DIR,
    [ENV.executionProviders]: "cpu",
    [ENV.logLevel]: "info",
    [ENV.strictReadiness]: "true",
    [ENV.maxRequestBytes]: String(MAX_REQUEST_BYTES),
    [ENV.requestTimeoutMs]: String(AUTOSCALING.timeoutSeconds * 1000),
    [ENV.repositoryApi]: "disabled",
    [PULLER_ENV.source]: MODEL_SOURCE,
    [PULLER_ENV.timeout]: "10m",
    [PULLER_ENV.progress]: "log",
  };
}

/** Why each configuration key is there, written above the literals in kustomization.yaml. */
export const CONFIG_COMMENTS: Record<string, string> = {
  [ENV.modelName]: "Name the model is served under: /v2/models/<MODEL_NAME>/infer.",
  [ENV.modelDir]: `Read by both containers: the puller publishes the model there, the server serves it\n(single-model mode, like KServe's --model_dir). A subdirectory of ${MODEL_MOUNT_PATH}, so one\nvolume can hold several models.`,
  [ENV.executionProviders]: "cpu here; the GPU overlay sets cuda,cpu (CUDA, falling back to CPU with a warning).",
  [ENV.logLevel]: "fatal|error|warn|info|debug|trace|silent",
  [ENV.strictReadiness]: "Ready only once the model has loaded: the activator holds requests until then.",
  [ENV.maxRequestBytes]: "Larger requests get 413. Bounds a request's memory (see the memory limit in service.yaml).",
  [ENV.requestTimeoutMs]: "The server's own request timeout, equal to the revision's timeoutSeconds so that Knative's\n(which also covers the wait for a pod) is the one that applies.",
  [ENV.repositoryApi]: "No model load/unload API: a call would reach one pod of many (and pods come and go),\nand it would be open on the Service's public URL. Change models by changing STORAGE_URI.",
  [PULLER_ENV.source]: "Where the puller gets the model: the copy baked into the image by default;\ns3://bucket/prefix/, https://..., hf://org/repo or pvc://name/path for your own.",
  [PULLER_ENV.timeout]: "The init container gives up after this; the pod restarts it with back-off.",
  [PULLER_ENV.progress]: "One progress line per interval in the init container's log.",
};

/** How often and how patiently the probes run (the handler aside): the same for every variant. */
export type ProbeTuning = Pick<V1Probe, "periodSeconds" | "timeoutSeconds" | "successThreshold" | "failureThreshold">;
export const READINESS_TUNING: ProbeTuning = { periodSeconds: 2, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 };
export const LIVENESS_TUNING: ProbeTuning = { periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 };

export function httpProbe(path: string, tuning: ProbeTuning): V1Probe {
  return { httpGet: { path, port: DEFAULT_HTTP_PORT }, ...tuning };
}

/**
 * A gRPC health check (grpc.health.v1.Health/Check) of `service`. The port is a number (gRPC
 * probes have no named-port form) and is always written out: the queue-proxy dials the number
 * in the probe as it stands.
 */
export function grpcProbe(service: string, tuning: ProbeTuning): V1Probe {
  return { grpc: { port: DEFAULT_HTTP_PORT, service }, ...tuning };
}

export const containerSecurityContext = (): V1SecurityContext => ({
  runAsNonRoot: true,
  runAsUser: IMAGE_UID,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
});

export const serverResources = (): V1ResourceRequirements => ({
  requests: { cpu: "1", memory: "512Mi" },
  limits: { cpu: "1", memory: "512Mi" },
});

/** What the pod learns about itself from the downward API (not from the ConfigMap, which is the same in every namespace). */
export const serverEnv = (): V1EnvVar[] => [{ name: ENV.namespace, valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } }];

export function serverContainer(image: string): V1Container {
  return {
    name: SERVER_CONTAINER,
    image,
    ports: [{ name: "http1", containerPort: DEFAULT_HTTP_PORT, protocol: "TCP" }],
    env: serverEnv(),
    envFrom: [{ configMapRef: { name: CONFIG_MAP_NAME } }],
    readinessProbe: httpProbe(PATHS.ready, READINESS_TUNING),
    livenessProbe: httpProbe(PATHS.live, LIVENESS_TUNING),
    resources: serverResources(),
    securityContext: containerSecurityContext(),
    volumeMounts: [{ name: VOLUME_NAME, mountPath: MODEL_MOUNT_PATH, readOnly: true }],
  };
}

export function pullerContainer(image: string): V1Container {
  return {
    name: PULLER_CONTAINER,
    image,
    command: ["node", `${IMAGE_WORKDIR}/${PULLER_BIN}`],
    envFrom: [{ configMapRef: { name: CONFIG_MAP_NAME } }],
    resources: {
      requests: { cpu: "250m", memory: "256Mi" },
      limits: { cpu: "1", memory: "256Mi" },
    },
    securityContext: containerSecurityContext(),
    volumeMounts: [{ name: VOLUME_NAME, mountPath: MODEL_MOUNT_PATH }],
  };
}

export const podSecurityContext = (): V1PodSecurityContext => ({ fsGroup: IMAGE_UID });

export const modelVolume = (): V1Volume => ({ name: VOLUME_NAME, persistentVolumeClaim: { claimName: PVC_NAME } });

export function autoscalingAnnotations(): Record<string, string> {
  const cc = CONCURRENCY.containerConcurrency;
  return {
    [`${AUTOSCALING_PREFIX}class`]: "kpa.autoscaling.knative.dev",
    [`${AUTOSCALING_PREFIX}metric`]: "concurrency",
    [`${AUTOSCALING_PREFIX}target`]: String(cc),
    [`${AUTOSCALING_PREFIX}target-utilization-percentage`]: String(AUTOSCALING.targetUtilizationPercentage),
    [`${AUTOSCALING_PREFIX}min-scale`]: String(AUTOSCALING.minScale),
    [`${AUTOSCALING_PREFIX}max-scale`]: String(AUTOSCALING.maxScale),
    [`${AUTOSCALING_PREFIX}scale-to-zero-pod-retention-period`]: AUTOSCALING.scaleToZeroPodRetentionPeriod,
  };
}

export function service(): KnativeService {
  return {
    apiVersion: "serving.knative.dev/v1",
    kind: "Service",
    metadata: { name: APP_NAME, labels: labels("predictor") },
    spec: {
      template: {
        metadata: {
          labels: { ...labels("predictor"), "app.kubernetes.io/version": VERSION },
          annotations: autoscalingAnnotations(),
        },
        spec: {
          containerConcurrency: CONCURRENCY.containerConcurrency,
          timeoutSeconds: AUTOSCALING.timeoutSeconds,
          automountServiceAccountToken: false,
          securityContext: podSecurityContext(),
          initContainers: [pullerContainer(IMAGE_CPU)],
          containers: [serverContainer(IMAGE_CPU)],
          volumes: [modelVolume()],
        },
      },
    },
  };
}

function concurrencyComment(): string {
  const rows = ["| concurrency | req/s | p50 ms | p99 ms |", ...CONCURRENCY.table];
  return [
    `containerConcurrency ${CONCURRENCY.containerConcurrency}: a hard limit of in-flight requests per pod, chosen from measurement.`,
    "onnxruntime-node runs inferences one at a time on the event-loop thread, so a pod's",
    "throughput stops growing once HTTP parsing and JSON (de)serialization overlap with",
    "compute; past that knee, more concurrency only queues inside the pod and p99 grows.",
    "Measured with the sentiment model, one sentence per request:",
    ...rows,
    `Throughput stops growing at ${CONCURRENCY.containerConcurrency} (2937 req/s; the best, 3052 at 16, is 4% more), while p99`,
    "climbs from 5 to 7, 12 and 27 ms (p50 0 = under 1 ms; autocannon counts whole ms)",
    "Heavier models reach the knee sooner: measure yours with the same command.",
    `Command: ${CONCURRENCY.command}`,
    `(${CONCURRENCY.measuredOn}).`,
    "Requests above the limit wait in the queue-proxy/activator, where the autoscaler",
    "sees them and adds pods, instead of inside Node where nobody can.",
  ].join("\n");
}

const SERVICE_COMMENTS: [readonly (string | number)[], string][] = [
  [
    ["spec", "template", "metadata", "annotations"],
    [
      "Autoscaling annotations belong on the revision template (Knative rejects them on the",
      "Service's own metadata). KPA on concurrency: Knative adds pods when the average number",
      "of in-flight requests per pod exceeds target x target-utilization-percentage.",
    ].join("\n"),
  ],
  [
    ["spec", "template", "metadata", "annotations", `${AUTOSCALING_PREFIX}target`],
    `Soft target = containerConcurrency; at ${AUTOSCALING.targetUtilizationPercentage}% utilization Knative adds pods at ~${(CONCURRENCY.containerConcurrency * AUTOSCALING.targetUtilizationPercentage) / 100} requests in flight\nper pod, before requests queue at the hard limit.`,
  ],
  [["spec", "template", "metadata", "annotations", `${AUTOSCALING_PREFIX}min-scale`], "Scale to zero when idle: no traffic, no pods."],
  [
    ["spec", "template", "metadata", "annotations", `${AUTOSCALING_PREFIX}max-scale`],
    "Upper bound on pods (and on cost); raise it after load testing your model.",
  ],
  [
    ["spec", "template", "metadata", "annotations", `${AUTOSCALING_PREFIX}scale-to-zero-pod-retention-period`],
    [
      "Keep the last pod this long after the autoscaler decides to scale to zero. A cold start",
      "costs the first request the pod start, the init container (milliseconds on a warm PVC)",
      "and the model load; one idle 1-CPU pod for 5 more minutes is cheaper than that for",
      "traffic with gaps shorter than 5 minutes.",
    ].join("\n"),
  ],
  [["spec", "template", "spec", "containerConcurrency"], concurrencyComment()],
  [
    ["spec", "template", "spec", "timeoutSeconds"],
    "Longest a request may take, including the wait for a pod on scale from zero (at most\nmax-revision-timeout-seconds, 600 by default).",
  ],
  [["spec", "template", "spec", "automountServiceAccountToken"], "The server never calls the Kubernetes API: no token in the pod."],
  [
    ["spec", "template", "spec", "securityContext"],
    [
      `fsGroup ${IMAGE_UID}: makes a fresh volume writable by the non-root model puller (for volume types`,
      "that support ownership management; on NFS-like storage the export must allow uid 65532).",
      "Needs the kubernetes.podspec-securitycontext feature flag.",
    ].join("\n"),
  ],
  [
    ["spec", "template", "spec", "initContainers", 0],
    [
      "The model puller (same image): downloads STORAGE_URI into MODEL_DIR on the PVC, verifies it",
      "and publishes it atomically; exits 0 only when the model is there. On a warm PVC it finds",
      "the model already published and exits in milliseconds, so a scale-from-zero pod does not",
      "download again. Several pods starting at once take a lock on the volume; one downloads.",
      "Needs kubernetes.podspec-init-containers, and -persistent-volume-write for its rw mount.",
    ].join("\n"),
  ],
  [
    ["spec", "template", "spec", "containers", 0, "ports"],
    `Exactly one port: Knative routes to it. http1 = HTTP/1.1 (REST, CloudEvents); overlays/grpc names it\n${GRPC_PORT_NAME} for gRPC, in a Service of its own.`,
  ],
  [
    ["spec", "template", "spec", "containers", 0, "env"],
    [
      `${ENV.namespace}: the pod's namespace, from the downward API. The CloudEvents inference logger`,
      "puts it in the namespace extension of every event it sends (empty when unset), so a",
      "consumer can tell which deployment an event came from. Needs kubernetes.podspec-fieldref.",
    ].join("\n"),
  ],
  [
    ["spec", "template", "spec", "containers", 0, "envFrom"],
    "Configuration from the ConfigMap that kustomization.yaml generates (its name carries a content\nhash, so a config change makes a new revision and a rollback restores the old config).",
  ],
  [
    ["spec", "template", "spec", "containers", 0, "readinessProbe"],
    `Ready once the model has loaded (${PATHS.ready}); until then the activator holds requests\ninstead of failing them. The queue-proxy runs this probe.`,
  ],
  [["spec", "template", "spec", "containers", 0, "livenessProbe"], `Restart a wedged server (${PATHS.live} answers as soon as the server listens).`],
  [
    ["spec", "template", "spec", "containers", 0, "resources"],
    [
      "1 CPU: inference runs on one thread (the event loop), and ONNX Runtime sizes its intra-op",
      "thread pool from the cgroup CPU limit, so the limit is also its thread count.",
      "512Mi: the server with the sentiment model uses ~110 MiB RSS; the rest is headroom for",
      `containerConcurrency requests of up to MAX_REQUEST_BYTES (${MAX_REQUEST_BYTES / 1024 / 1024} MiB), whose JSON decodes to a few`,
      "times its size. requests = limits: Guaranteed QoS, so the pod is not the first evicted.",
      "Raise memory with the model size (roughly 2x the .onnx file plus 150 MiB).",
    ].join("\n"),
  ],
  [
    ["spec", "template", "spec", "containers", 0, "securityContext"],
    "Non-root, read-only root filesystem (the server writes nothing; the model volume is mounted\nread-only), no privilege escalation, no capabilities, the runtime's default seccomp profile.",
  ],
  [["spec", "template", "spec", "containers", 0, "volumeMounts", 0], "The server only reads the model store."],
  [
    ["spec", "template", "spec", "volumes", 0],
    "The model store (pvc.yaml). Needs kubernetes.podspec-persistent-volume-claim.",
  ],
];

export function serviceManifest(): Commented<KnativeService> {
  return {
    object: service(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The inference runtime as a Knative Service (CPU revision). Apply with `kubectl apply -k knative/`",
      "after enabling the feature flags in config-features.yaml. No spec.traffic here on purpose:",
      "traffic splits made with `kn service update --traffic` survive re-applying this file.",
    ].join("\n"),
    comments: SERVICE_COMMENTS,
  };
}

export function pvc(): V1PersistentVolumeClaim {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: PVC_NAME, labels: labels("model-store") },
    spec: {
      accessModes: ["ReadWriteMany"],
      resources: { requests: { storage: "5Gi" } },
    },
  };
}

export function pvcManifest(): Commented<V1PersistentVolumeClaim> {
  return {
    object: pvc(),
    header: [GENERATED_HEADER(SOURCE), "", "The model store: the puller writes the model here once; every pod reads it."].join("\n"),
    comments: [
      [
        ["spec", "accessModes"],
        [
          "ReadWriteMany: the volume is mounted by every pod of every revision at once, on different",
          "nodes: several CPU pods when the Service scales out, and GPU pods on GPU nodes during a",
          "traffic split. ReadWriteOnce would attach it to one node only (pods elsewhere stay",
          "ContainerCreating with a Multi-Attach error), so the Service could not scale out. The",
          "puller's lock file is made for several pods sharing one RWX volume.",
          "Needs an RWX-capable StorageClass (NFS, CephFS, EFS, Filestore, Azure Files...): set",
          "spec.storageClassName if the cluster's default class is not one.",
        ].join("\n"),
      ],
      [["spec", "resources", "requests", "storage"], "Room for the model plus one new version during an update (the puller publishes atomically)."],
    ],
  };
}

/** The ConfigMap kustomize generates from the base kustomization (also used by the validator). */
export function configMap(name = CONFIG_MAP_NAME, data = configData()): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data };
}

export function featureFlags(): Record<string, string> {
  return Object.fromEntries(Object.values(FEATURE_FLAGS).map((flag) => [flag, "enabled"]));
}

export function configFeatures(): V1ConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "config-features", namespace: "knative-serving" },
    data: featureFlags(),
  };
}

const FLAG_REASONS: Record<string, string> = {
  [FEATURE_FLAGS.initContainers]: "the model puller runs as an init container",
  [FEATURE_FLAGS.persistentVolumeClaim]: "the model store is a PersistentVolumeClaim",
  [FEATURE_FLAGS.persistentVolumeWrite]: "the puller mounts it read-write (the server mounts it read-only)",
  [FEATURE_FLAGS.securityContext]: "pod-level fsGroup, so the non-root puller can write to a fresh volume",
  [FEATURE_FLAGS.affinity]: "GPU overlay: required node affinity on the GPU node label",
  [FEATURE_FLAGS.tolerations]: "GPU overlay: tolerate the nvidia.com/gpu taint of GPU nodes",
  [FEATURE_FLAGS.fieldRef]: `${ENV.namespace} from the downward API (env valueFrom.fieldRef), for the inference logger's namespace extension`,
};

export function configFeaturesManifest(): Commented<V1ConfigMap> {
  return {
    object: configFeatures(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Knative Serving feature flags these manifests need, and only those. This is a patch of the",
      "cluster-wide ConfigMap knative-serving/config-features (it is not part of `kubectl apply -k`):",
      "a cluster admin merges it once, keeping the flags already set:",
      "",
      "  kubectl patch configmap/config-features -n knative-serving --type merge --patch-file knative/config-features.yaml",
      "",
      "With the Knative Operator, put these keys under spec.config.features of the KnativeServing",
      "resource instead (the operator reverts direct edits of the ConfigMap).",
    ].join("\n"),
    comments: Object.entries(FLAG_REASONS).map(([flag, reason]) => [["data", flag], reason]),
  };
}

/** What the GPU overlay changes in the Service: a JSON patch (RFC 6902), applied by kustomize. */
export interface JsonPatchOp {
  op: "add" | "replace" | "remove";
  path: string;
  value?: unknown;
}

export const gpuResources = (): V1ResourceRequirements => ({
  requests: { cpu: "2", memory: "8Gi", [GPU.resource]: "1" },
  limits: { cpu: "2", memory: "8Gi", [GPU.resource]: "1" },
});

export const gpuAffinity = (): V1Affinity => ({
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{ matchExpressions: [{ key: GPU.nodeLabel, operator: "In", values: ["true"] }] }],
    },
  },
});

export const gpuTolerations = (): V1Toleration[] => [{ key: GPU.resource, operator: "Exists", effect: "NoSchedule" }];

export const annotationPath = (key: string) => `/spec/template/metadata/annotations/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;

export function gpuPatch(): JsonPatchOp[] {
  return [
    { op: "replace", path: "/spec/template/spec/containers/0/image", value: IMAGE_GPU },
    { op: "replace", path: "/spec/template/spec/initContainers/0/image", value: IMAGE_GPU },
    { op: "replace", path: "/spec/template/spec/containers/0/resources", value: gpuResources() },
    { op: "add", path: "/spec/template/spec/affinity", value: gpuAffinity() },
    { op: "add", path: "/spec/template/spec/tolerations", value: gpuTolerations() },
    { op: "replace", path: "/spec/template/spec/timeoutSeconds", value: GPU.timeoutSeconds },
    { op: "replace", path: annotationPath(`${AUTOSCALING_PREFIX}max-scale`), value: String(GPU.maxScale) },
    { op: "replace", path: annotationPath(`${AUTOSCALING_PREFIX}scale-to-zero-pod-retention-period`), value: GPU.scaleToZeroPodRetentionPeriod },
    { op: "add", path: annotationPath("serving.knative.dev/progress-deadline"), value: GPU.progressDeadline },
    { op: "replace", path: "/spec/template/metadata/labels/app.kubernetes.io~1component", value: "predictor-gpu" },
  ];
}

/** A JSON patch as YAML: the generated header, then `header`, and each comment above the op at its path. */
function patchManifest(ops: JsonPatchOp[], header: string[], comments: [string, string][]): Commented<JsonPatchOp[]> {
  return {
    object: ops,
    header: [GENERATED_HEADER(SOURCE), "", ...header].join("\n"),
    comments: comments.map(([path, text]) => [[ops.findIndex((o) => o.path === path)], text]),
  };
}

export function gpuPatchManifest(): Commented<JsonPatchOp[]> {
  return patchManifest(
    gpuPatch(),
    [
      "The GPU revision: a JSON patch (RFC 6902) of the base Service, applied by",
      "overlays/gpu/kustomization.yaml. Applying the overlay makes a new revision of the same",
      "Service; split traffic between the CPU and GPU revisions with tags (see knative/README.md).",
    ],
    [
      ["/spec/template/spec/containers/0/image", "The CUDA image (Dockerfile.gpu): onnxruntime-node with its CUDA execution provider."],
      ["/spec/template/spec/initContainers/0/image", "The puller from the same image: one image to pull on the GPU node, not two."],
      [
        "/spec/template/spec/containers/0/resources",
        "One GPU (requests = limits for extended resources), and CPU/memory for the host side:\nrequest decoding, pre/post-processing and the CUDA context (~1-2 GiB host memory).",
      ],
      ["/spec/template/spec/affinity", `Only on GPU nodes: ${GPU.nodeLabel}=true is set by NVIDIA GPU feature discovery.\nOn GKE use cloud.google.com/gke-accelerator, on EKS/Karpenter karpenter.k8s.aws/instance-gpu-count.`],
      ["/spec/template/spec/tolerations", "GPU node pools are usually tainted nvidia.com/gpu:NoSchedule so other pods stay off them."],
      ["/spec/template/spec/timeoutSeconds", "A request that lands on a scaled-to-zero GPU revision may wait for a GPU node to be\nprovisioned and a multi-GB image to be pulled: give it the maximum Knative allows by default."],
      [annotationPath(`${AUTOSCALING_PREFIX}max-scale`), "GPUs are scarce and expensive: fewer pods."],
      [annotationPath(`${AUTOSCALING_PREFIX}scale-to-zero-pod-retention-period`), "A GPU cold start can take minutes (node scale-up): keep the last pod longer."],
      [
        annotationPath("serving.knative.dev/progress-deadline"),
        "How long a new GPU revision may take to become ready before Knative fails it: node\nscale-up plus the image pull can exceed the 10-minute default.",
      ],
    ],
  );
}

/**
 * The gRPC variant: a JSON patch of the base Service (knative/overlays/grpc) that makes it a
 * Service of its own, named GRPC.serviceName, whose revisions serve gRPC over h2c.
 */
export function grpcPatch(): JsonPatchOp[] {
  return [
    { op: "replace", path: "/metadata/name", value: GRPC.serviceName },
    { op: "replace", path: "/spec/template/spec/containers/0/ports/0/name", value: GRPC_PORT_NAME },
    { op: "add", path: "/spec/template/spec/containers/0/env/-", value: { name: ENV.protocol, value: GRPC.protocol } },
    { op: "replace", path: "/spec/template/spec/containers/0/readinessProbe", value: grpcProbe(GRPC_SERVICE, READINESS_TUNING) },
    { op: "replace", path: "/spec/template/spec/containers/0/livenessProbe", value: grpcProbe(GRPC_HEALTH_SERVICES.liveness, LIVENESS_TUNING) },
    { op: "replace", path: "/spec/template/metadata/labels/app.kubernetes.io~1component", value: GRPC.component },
  ];
}

export function grpcPatchManifest(): Commented<JsonPatchOp[]> {
  return patchManifest(
    grpcPatch(),
    [
      `The gRPC variant: a JSON patch (RFC 6902) of the base Service, applied by`,
      `overlays/grpc/kustomization.yaml. The result is a second Knative Service, ${GRPC.serviceName},`,
      "beside the REST one: same image, model store, autoscaling and resources, but its revisions",
      "speak gRPC (the Open Inference Protocol's GRPCInferenceService) over cleartext HTTP/2.",
    ],
    [
      [
        "/metadata/name",
        [
          "A Service of its own. Knative picks a revision's wire protocol from its port name, and one",
          "Service splits traffic across its revisions: gRPC calls that landed on an HTTP/1.1 revision",
          "would fail. Two Services keep REST and gRPC on their own URLs (and their own autoscaling).",
        ].join("\n"),
      ],
      [
        "/spec/template/spec/containers/0/ports/0/name",
        [
          `${GRPC_PORT_NAME}: Knative routes cleartext HTTP/2 with prior knowledge to a port of this name, from the`,
          "ingress through the activator and queue-proxy to the container, which gRPC needs (HTTP/1.1",
          "cannot carry its trailers). Same containerPort: the server answers gRPC (h2c) and HTTP/1.1",
          "on one port, so Prometheus still scrapes /metrics and the kubelet still probes over HTTP/1.1.",
          "Every RPC (one HTTP/2 stream) counts as one request for containerConcurrency and the",
          "concurrency autoscaler, as a REST request does; a ModelStreamInfer stream holds its slot",
          "for as long as it is open and is cut at timeoutSeconds.",
        ].join("\n"),
      ],
      [
        "/spec/template/spec/containers/0/env/-",
        `${ENV.protocol}=${GRPC.protocol}: the server adds gRPC (h2c) to its HTTP/1.1 port. Set on the container, not in the\nConfigMap, because it belongs with the port name above: one without the other does not work.`,
      ],
      [
        "/spec/template/spec/containers/0/readinessProbe",
        [
          `grpc.health.v1.Health/Check of ${GRPC_SERVICE}: SERVING once the model has loaded,`,
          "NOT_SERVING while loading or draining. The queue-proxy runs it (Knative rewrites readiness",
          `probes), dialling 127.0.0.1:<port> over h2c. The port is the containerPort, written out:`,
          "gRPC probes take a number, never a port name.",
        ].join("\n"),
      ],
      [
        "/spec/template/spec/containers/0/livenessProbe",
        [
          `grpc.health.v1.Health/Check of "${GRPC_HEALTH_SERVICES.liveness}": SERVING whenever the process answers, loading`,
          `or not (the readiness names report NOT_SERVING while a model loads, which as a liveness check`,
          "would restart a pod whose model takes longer than failureThreshold x periodSeconds to load).",
          "The kubelet runs it against the container directly.",
        ].join("\n"),
      ],
    ],
  );
}
