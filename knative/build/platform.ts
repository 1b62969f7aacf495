/**
 * The asynchronous-inference platform (knative/platform/): a RabbitMQ-backed
 * Knative Broker, the Triggers that carry inference requests to the runtime's
 * worker (POST /) and its replies to the results collector (POST
 * /api/v1/results), the async variant of the runtime's Knative Service, the
 * database migration Job, Secret templates, an example RabbitmqCluster, and a
 * KEDA alternative (knative/platform/keda/) in which a plain Deployment works
 * the queue and KEDA scales it on the queue's length.
 *
 * Facts about the runtime (environment names, paths, event types) come from
 * runtime/src/constants.ts and runtime/src/cloudevents/constants.ts; facts about
 * eventing-rabbitmq and KEDA are cited where they are used (see also
 * knative/README.md, "Asynchronous inference platform").
 *
 * Layout (kustomize refuses an overlay inside its base's directory, so the
 * default entry point builds on platform/base/, like knative/ on knative/base/):
 *
 *   knative/platform/                 kubectl apply -k: the default (Knative Service worker, KPA)
 *   knative/platform/base/            the objects, and the async Service as a patch of knative/base's
 *   knative/platform/keda/            the alternative: a KEDA-scaled worker Deployment
 *   knative/platform/rabbitmq/        an example RabbitmqCluster (only if you have none)
 *   knative/platform/secrets/         Secret templates, never applied by kustomize
 */
import type { V1Container, V1Deployment, V1EnvVar, V1Job, V1Secret, V1Service } from "@kubernetes/client-node";
import packageJson from "../../package.json" with { type: "json" };
import { REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "../../runtime/src/cloudevents/constants.js";
import { ASYNC_PATHS } from "../../runtime/src/constants.js";
import { REQUEST_DELIVERY, SINK_DELIVERY, type DeliverySpec, type Destination, type KReference } from "./eventing.js";
import {
  annotationPath,
  autoscalingAnnotations,
  containerSecurityContext,
  labels,
  modelVolume,
  podSecurityContext,
  pullerContainer,
  serverContainer,
  serverEnv,
  service,
  type JsonPatchOp,
  type KnativeService,
} from "./knative.js";
import { APP_NAME, ASYNC_SERVICE_NAME, CONCURRENCY, ENV, IMAGE_CPU, IMAGE_WORKDIR, VERSION } from "./settings.js";
import { GENERATED_HEADER, renderDocument, renderDocuments, type Commented, type Path } from "./yaml.js";

const SOURCE = "knative/build/platform.ts";
const KUSTOMIZE_API = { apiVersion: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization" } as const;
export const EVENTING_API = "eventing.knative.dev/v1";
export const SERVING_API = "serving.knative.dev/v1";
export const RABBITMQ_BROKER_CONFIG_API = "eventing.knative.dev/v1alpha1";
export const RABBITMQ_CLUSTER_API = "rabbitmq.com/v1beta1";
export const KEDA_API = "keda.sh/v1alpha1";

/** eventing-rabbitmq's Broker class (pkg/apis/eventing/v1alpha1: the webhook acts on Brokers of this class only). */
export const RABBITMQ_BROKER_CLASS = "RabbitMQBroker";
export const BROKER_CLASS_ANNOTATION = "eventing.knative.dev/broker.class";
/** Number of dispatcher workers of a RabbitMQ Trigger: concurrent deliveries, 1 (the default, in order) to 1000. */
export const PARALLELISM_ANNOTATION = "rabbitmq.eventing.knative.dev/parallelism";

/** The package's bin entry that the migration Job runs (bin/migrate.js: applies runtime/migrations/*.sql). */
export const MIGRATE_BIN: string = packageJson.bin["inference-migrate"];

export const PLATFORM = {
  /** The Knative Service with ASYNC_INFERENCE=true: async API and worker (POST /), public; RESULTS_COLLECTOR=false. */
  service: ASYNC_SERVICE_NAME,
  /** The cluster-local Knative Service that runs the results collector (the result Trigger's and dead letters' subscriber). */
  resultsService: `${ASYNC_SERVICE_NAME}-results`,
  resultsSecret: "inference-async-results",
  broker: "inference-async",
  brokerConfig: "inference-async-rabbitmq",
  /** The RabbitmqCluster the RabbitmqBrokerConfig points at (knative/platform/rabbitmq/ makes one). */
  rabbitmqCluster: "inference-rabbitmq",
  requestTrigger: "inference-async-requests",
  resultTrigger: "inference-async-results",
  /** Versioned: a Job's pod template cannot change, so each release gets a Job of its own. */
  migrationJob: `inference-async-migrate-${VERSION.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`,
  dbSecret: "inference-async-db",
  redisSecret: "inference-async-redis",
  /** The KEDA alternative. */
  worker: `${APP_NAME}-async-worker`,
  kedaSecret: "inference-async-rabbitmq-keda",
  triggerAuthentication: "inference-async-rabbitmq",
} as const;

/** Labels' component values (app.kubernetes.io/component). */
export const COMPONENTS = { service: "async", results: "async-results", worker: "async-worker", eventing: "async-eventing", migration: "async-migration", queue: "async-queue" } as const;

/** Async Service bounds, and the dispatch concurrency that follows from them. */
export const ASYNC = {
  /** Upper bound on worker pods, in both variants (KPA max-scale, KEDA maxReplicaCount). */
  maxScale: 5,
  /** The header the ingress sets to the authenticated user (oauth2-proxy's, with --set-xauthrequest). */
  userHeader: "x-auth-request-user",
  /** Example default quotas per user and window; per-user overrides in QUOTA_USERS. */
  quota: { requests: 1000, tokens: 200_000, windowSeconds: 3600, onStoreError: "fail-closed" as const },
  quotaUsers: { "batch-pipeline": { requests: 100_000, tokens: 20_000_000 } },
} as const;

/**
 * Concurrent deliveries of the request Trigger: containerConcurrency x maxScale. The dispatcher's
 * in-flight deliveries are exactly the concurrency the worker sees, so this lets the autoscaler reach
 * maxScale on a deep queue, and never puts more in flight than maxScale pods take at their hard limit.
 */
export const REQUEST_PARALLELISM = CONCURRENCY.containerConcurrency * ASYNC.maxScale;
/** Results are one small database write each: one pod's worth is plenty, and keeps them from scaling the Service out. */
export const RESULT_PARALLELISM = CONCURRENCY.containerConcurrency;

/** Results must not be lost while the collector (or its database) is briefly away: 1 s doubling, 10 retries (about 17 minutes). */
export const RESULT_DELIVERY = { retry: 10, backoffPolicy: "exponential", backoffDelay: "PT1S" } as const;
/**
 * KEDA variant: a Deployment at zero replicas has no endpoints until KEDA notices the queue (pollingInterval)
 * and a pod starts and loads its model; 1 s doubling, 8 retries (about 4 minutes) covers that.
 */
export const KEDA_REQUEST_DELIVERY = { retry: 8, backoffPolicy: "exponential", backoffDelay: "PT1S" } as const;

/** The per-Broker ingress Service eventing-rabbitmq creates (<broker>-broker-ingress, port 80); the Broker's address. */
export const BROKER_INGRESS_SERVICE = `${PLATFORM.broker}-broker-ingress`;
/**
 * ASYNC_SINK: the Broker's address. RabbitMQ Brokers are not behind the shared broker-ingress of
 * knative-eventing (that is the channel-based Broker's, with /<namespace>/<broker> paths): each gets
 * its own ingress Service in its namespace. $(POD_NAMESPACE) is expanded by the kubelet from the
 * POD_NAMESPACE variable defined before it.
 */
export const ASYNC_SINK_VALUE = `http://${BROKER_INGRESS_SERVICE}.$(${ENV.namespace}).svc.cluster.local`;

/** Secret templates: name, key, placeholder value (never a real credential) and what it is. */
export const SECRETS = {
  database: {
    name: PLATFORM.dbSecret,
    key: ENV.databaseUrl,
    placeholder: "postgresql://USER:PASSWORD@HOST:5432/DB?sslmode=require",
    what: "the PostgreSQL connection string of the request store (the runtime and the migration Job)",
  },
  redis: {
    name: PLATFORM.redisSecret,
    key: ENV.redisUrl,
    placeholder: "rediss://:PASSWORD@HOST:6379/0",
    what: "the Redis URL of the quota counters",
  },
  results: {
    name: PLATFORM.resultsSecret,
    key: ENV.resultsToken,
    placeholder: "REPLACE-WITH-A-RANDOM-TOKEN-openssl-rand-hex-32",
    what: "the shared secret of the results path (RESULTS_TOKEN): the worker's replies carry it, the results collector accepts only results that do",
  },
  keda: {
    name: PLATFORM.kedaSecret,
    keys: { host: "http://HOST.NAMESPACE.svc:15672/", username: "USERNAME", password: "PASSWORD" } as Record<string, string>,
    what: "the RabbitMQ management API that KEDA reads the queue length from (KEDA variant only)",
  },
} as const;

const secretEnv = (name: string, secret: string, key: string): V1EnvVar => ({ name, valueFrom: { secretKeyRef: { name: secret, key } } });

/** What the async runtime adds to the server container's environment (after POD_NAMESPACE, which ASYNC_SINK expands). */
export function asyncEnv(): V1EnvVar[] {
  return [
    { name: ENV.asyncInference, value: "true" },
    secretEnv(ENV.databaseUrl, SECRETS.database.name, SECRETS.database.key),
    secretEnv(ENV.redisUrl, SECRETS.redis.name, SECRETS.redis.key),
    { name: ENV.asyncSink, value: ASYNC_SINK_VALUE },
    secretEnv(ENV.resultsToken, SECRETS.results.name, SECRETS.results.key),
    { name: ENV.userHeader, value: ASYNC.userHeader },
    { name: ENV.quotaRequests, value: String(ASYNC.quota.requests) },
    { name: ENV.quotaTokens, value: String(ASYNC.quota.tokens) },
    { name: ENV.quotaWindowSeconds, value: String(ASYNC.quota.windowSeconds) },
    { name: ENV.quotaUsers, value: JSON.stringify(ASYNC.quotaUsers) },
    { name: ENV.quotaOnStoreError, value: ASYNC.quota.onStoreError },
  ];
}

const ENV_COMMENTS: Record<string, string> = {
  [ENV.asyncInference]: "The async API (Prefer: respond-async, /api/v1/*), the worker on POST / and the results collector.",
  [ENV.databaseUrl]: `From the Secret ${SECRETS.database.name} (secrets/database.yaml says how to create it): never written here.`,
  [ENV.redisUrl]: `From the Secret ${SECRETS.redis.name}: quota counters shared by every pod.`,
  [ENV.asyncSink]: [
    "Where queued requests are published: the RabbitMQ Broker's own ingress Service, <broker>-broker-ingress",
    "in this namespace (not knative-eventing's shared broker-ingress). Check it against",
    `kubectl get broker ${PLATFORM.broker} -o jsonpath='{.status.address.url}'.`,
  ].join("\n"),
  [ENV.resultsToken]: `From the Secret ${SECRETS.results.name} (secrets/results-token.yaml): the shared secret on the request events and the\nworker's replies; the results collector refuses any result without it. The same Secret in every runtime here.`,
  [ENV.resultsCollector]: `false: POST ${ASYNC_PATHS.results} is not served on this public URL; the collector runs in ${PLATFORM.resultsService},\nwhich is cluster-local (service-results.yaml).`,
  [ENV.userHeader]: "The header your ingress sets to the authenticated user (here oauth2-proxy's). The ingress must\nstrip it from client requests, or clients can spend each other's quota.",
  [ENV.quotaRequests]: "Example per-user limits per window (unset: unlimited); tune them.",
  [ENV.quotaUsers]: "Per-user overrides, JSON.",
  [ENV.quotaOnStoreError]: "Redis unreachable: refuse (503) rather than admit unmetered work.",
};

const SERVER_ENV = "/spec/template/spec/containers/0/env/-";

/** The async Service: a JSON patch of knative/base's Service, as overlays/grpc makes the gRPC one. */
export function asyncPatch(): JsonPatchOp[] {
  return [
    { op: "replace", path: "/metadata/name", value: PLATFORM.service },
    { op: "replace", path: "/metadata/labels/app.kubernetes.io~1component", value: COMPONENTS.service },
    { op: "replace", path: "/spec/template/metadata/labels/app.kubernetes.io~1component", value: COMPONENTS.service },
    { op: "replace", path: annotationPath("autoscaling.knative.dev/max-scale"), value: String(ASYNC.maxScale) },
    ...asyncEnv().map((value): JsonPatchOp => ({ op: "add", path: SERVER_ENV, value })),
    { op: "add", path: SERVER_ENV, value: { name: ENV.resultsCollector, value: "false" } },
  ];
}

/** Knative Serving's label that keeps a Service off the public ingress (cluster-local: <name>.<namespace>.svc.cluster.local only). */
export const VISIBILITY_LABEL = "networking.knative.dev/visibility";
export const CLUSTER_LOCAL = "cluster-local";

/**
 * The results collector's own Knative Service: cluster-local (no route through the public ingress), running
 * the collector (RESULTS_COLLECTOR=true) for the result Trigger and the dead-letter sinks. Same image, model
 * store and ConfigMap as the async Service (a full runtime; it serves the collector only to the Broker).
 */
export function resultsService(): KnativeService {
  const base = service();
  const template = base.spec.template;
  const container = serverContainer(IMAGE_CPU);
  return {
    ...base,
    metadata: { name: PLATFORM.resultsService, labels: { ...labels(COMPONENTS.results), [VISIBILITY_LABEL]: CLUSTER_LOCAL } },
    spec: {
      template: {
        ...template,
        metadata: {
          labels: { ...labels(COMPONENTS.results), "app.kubernetes.io/version": VERSION },
          annotations: { ...autoscalingAnnotations(), "autoscaling.knative.dev/max-scale": "2" },
        },
        spec: { ...template.spec, containers: [{ ...container, env: [...serverEnv(), ...asyncEnv(), { name: ENV.resultsCollector, value: "true" }] }] },
      },
    },
  };
}

function resultsServiceManifest(): Commented<KnativeService> {
  const object = resultsService();
  const env = object.spec.template.spec.containers[0]!.env!;
  return {
    object,
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      `The results collector (POST ${ASYNC_PATHS.results}) in a Knative Service of its own, cluster-local: the`,
      `result Trigger and the dead-letter sinks deliver to it; the public Services (${PLATFORM.service}, ${APP_NAME})`,
      `run with ${ENV.resultsCollector}=false, so no client can post a result through the ingress. Results are also`,
      `authenticated: each carries ${ENV.resultsToken} (the resultstoken CloudEvent extension), from a Secret.`,
    ].join("\n"),
    comments: [
      [["metadata", "labels", VISIBILITY_LABEL], "Knative Serving's cluster-local visibility: reachable only inside the cluster\n(http://<name>.<namespace>.svc.cluster.local), never through the ingress gateway."],
      [["spec", "template", "metadata", "annotations", "autoscaling.knative.dev/max-scale"], "Results are one small database write each: two pods are plenty."],
      [["spec", "template", "spec", "containers", 0, "env", env.findIndex((e) => e.name === ENV.resultsCollector)], "The collector on; the async API and the worker run here too but nothing routes to them."],
    ],
  };
}

export function asyncPatchManifest(): Commented<JsonPatchOp[]> {
  const ops = asyncPatch();
  const comments: [Path, string][] = [
    [
      [0],
      [
        `A Service of its own, beside ${APP_NAME}: the async API and the results collector are on its URL,`,
        `and the request Trigger delivers queued requests to its root (POST /, the worker).`,
      ].join("\n"),
    ],
    [
      [ops.findIndex((o) => o.path.endsWith("max-scale"))],
      `At most ${ASYNC.maxScale} pods: the request Trigger dispatches ${REQUEST_PARALLELISM} events at once (containerConcurrency ${CONCURRENCY.containerConcurrency} x ${ASYNC.maxScale}),\nwhich the concurrency autoscaler turns into up to ${ASYNC.maxScale} pods.`,
    ],
  ];
  ops.forEach((op, i) => {
    const name = (op.value as V1EnvVar | undefined)?.name;
    if (op.path === SERVER_ENV && name && ENV_COMMENTS[name]) comments.push([[i], ENV_COMMENTS[name]!]);
  });
  return {
    object: ops,
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      `The async runtime: a JSON patch (RFC 6902) of knative/base's Service, applied by platform/base/kustomization.yaml.`,
      `The result is the Knative Service ${PLATFORM.service}: same image, model store, ConfigMap, probes and`,
      "security as the REST Service, plus asynchronous inference. Connection settings come from Secrets",
      "(secretKeyRef, allowed by Knative without a feature flag); nothing secret is written here.",
    ].join("\n"),
    comments,
  };
}

/** The RabbitmqBrokerConfig (eventing-rabbitmq): which RabbitMQ cluster, and the queue type. */
export interface RabbitmqBrokerConfig {
  apiVersion: typeof RABBITMQ_BROKER_CONFIG_API;
  kind: "RabbitmqBrokerConfig";
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    rabbitmqClusterReference: { name?: string; namespace?: string; connectionSecret?: { name: string } };
    queueType?: "quorum" | "classic";
  };
}

export function rabbitmqBrokerConfig(): RabbitmqBrokerConfig {
  return {
    apiVersion: RABBITMQ_BROKER_CONFIG_API,
    kind: "RabbitmqBrokerConfig",
    metadata: { name: PLATFORM.brokerConfig, labels: labels(COMPONENTS.eventing) },
    spec: { rabbitmqClusterReference: { name: PLATFORM.rabbitmqCluster }, queueType: "quorum" },
  };
}

export interface PlatformBroker {
  apiVersion: typeof EVENTING_API;
  kind: "Broker";
  metadata: { name: string; labels?: Record<string, string>; annotations: Record<string, string> };
  spec: { config: KReference; delivery: DeliverySpec };
}

export interface PlatformTrigger {
  apiVersion: typeof EVENTING_API;
  kind: "Trigger";
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { broker: string; filter: { attributes: Record<string, string> }; subscriber: Destination; delivery: DeliverySpec };
}

const asyncServiceRef = (): KReference => ({ apiVersion: SERVING_API, kind: "Service", name: PLATFORM.service });
/** The results collector: POST /api/v1/results on the cluster-local results Service (uri relative to the ref). */
export const collector = (): Destination => ({ ref: { apiVersion: SERVING_API, kind: "Service", name: PLATFORM.resultsService }, uri: ASYNC_PATHS.results });

export function platformBroker(): PlatformBroker {
  return {
    apiVersion: EVENTING_API,
    kind: "Broker",
    metadata: { name: PLATFORM.broker, labels: labels(COMPONENTS.eventing), annotations: { [BROKER_CLASS_ANNOTATION]: RABBITMQ_BROKER_CLASS } },
    spec: {
      config: { apiVersion: RABBITMQ_BROKER_CONFIG_API, kind: "RabbitmqBrokerConfig", name: PLATFORM.brokerConfig },
      delivery: { ...SINK_DELIVERY, deadLetterSink: collector() },
    },
  };
}

export function platformRequestTrigger(): PlatformTrigger {
  return {
    apiVersion: EVENTING_API,
    kind: "Trigger",
    metadata: { name: PLATFORM.requestTrigger, labels: labels(COMPONENTS.eventing), annotations: { [PARALLELISM_ANNOTATION]: String(REQUEST_PARALLELISM) } },
    spec: {
      broker: PLATFORM.broker,
      filter: { attributes: { type: REQUEST_EVENT_TYPE } },
      subscriber: { ref: asyncServiceRef() },
      delivery: { ...REQUEST_DELIVERY, deadLetterSink: collector() },
    },
  };
}

export function platformResultTrigger(): PlatformTrigger {
  return {
    apiVersion: EVENTING_API,
    kind: "Trigger",
    metadata: { name: PLATFORM.resultTrigger, labels: labels(COMPONENTS.eventing), annotations: { [PARALLELISM_ANNOTATION]: String(RESULT_PARALLELISM) } },
    spec: {
      broker: PLATFORM.broker,
      filter: { attributes: { type: RESPONSE_EVENT_TYPE } },
      subscriber: collector(),
      delivery: { ...RESULT_DELIVERY, deadLetterSink: collector() },
    },
  };
}

export function migrationJob(): V1Job {
  const jobLabels = { ...labels(COMPONENTS.migration), "app.kubernetes.io/version": VERSION };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: PLATFORM.migrationJob, labels: jobLabels },
    spec: {
      backoffLimit: 4,
      activeDeadlineSeconds: 600,
      ttlSecondsAfterFinished: 86_400,
      template: {
        metadata: { labels: jobLabels },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          containers: [
            {
              name: "migrate",
              image: IMAGE_CPU,
              command: ["node", `${IMAGE_WORKDIR}/${MIGRATE_BIN}`],
              env: [secretEnv(ENV.databaseUrl, SECRETS.database.name, SECRETS.database.key)],
              resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
              securityContext: containerSecurityContext(),
            },
          ],
        },
      },
    },
  };
}

export function migrationJobManifest(): Commented<V1Job> {
  return {
    object: migrationJob(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Applies the SQL migrations this release ships (runtime/migrations/) to the database of DATABASE_URL,",
      "then exits: node /app/bin/migrate.js, from the runtime's own image. Run it before the runtime (it is",
      "part of kubectl apply -k knative/platform; wait for it with",
      `kubectl wait --for=condition=complete job/${PLATFORM.migrationJob} --timeout=10m).`,
      "The runtime also migrates at start, under the same database lock, so the order is not critical;",
      "the Job makes a failed migration visible in one place instead of in crash-looping pods.",
    ].join("\n"),
    comments: [
      [["metadata", "name"], "Versioned: a Job's pod template is immutable, so a new release (new image) gets a new Job\ninstead of an apply error. Migrations are idempotent: a rerun applies nothing."],
      [["spec", "backoffLimit"], "Up to 4 retries (a new pod each, with back-off): the database may still be starting.\nThe CLI itself waits up to 60 s for an unreachable server (MIGRATE_RETRY_MS)."],
      [["spec", "ttlSecondsAfterFinished"], "Deleted a day after it finishes (logs readable until then). A later kubectl apply -k\nre-creates it, and the rerun finds nothing to apply."],
      [["spec", "template", "spec", "restartPolicy"], "Never: each attempt is a pod of its own, whose log stays readable (kubectl logs job/...)."],
      [["spec", "template", "spec", "containers", 0, "env"], `DATABASE_URL from the Secret ${SECRETS.database.name} (key ${SECRETS.database.key}), as the runtime reads it.`],
      [["spec", "template", "spec", "containers", 0, "securityContext"], "The runtime container's: non-root (uid 65532), read-only root filesystem, no capabilities."],
    ],
  };
}

function brokerManifest(): Commented<PlatformBroker> {
  return {
    object: platformBroker(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The RabbitMQ-backed Broker: queued inference requests and their replies go through it. The",
      "RabbitMQ Broker class keeps events in durable RabbitMQ queues (one per Trigger), so a request",
      "published while every worker is scaled to zero, or restarting, waits in the queue.",
      "",
      "eventing-rabbitmq's webhook makes a RabbitMQ Broker's spec immutable: to change the delivery",
      "below, delete and re-create the Broker. Its Triggers then get new queues (a queue's name holds",
      "the Broker's UID): let the old ones drain first, or their messages stay behind.",
    ].join("\n"),
    comments: [
      [["metadata", "annotations"], "The Broker class of eventing-rabbitmq; without it the cluster's default class would take it."],
      [
        ["spec", "config"],
        [
          `The RabbitmqBrokerConfig (rabbitmq-broker-config.yaml). eventing-rabbitmq also accepts a RabbitmqCluster`,
          "here directly, but then uses classic queues; the config object selects quorum queues. namespace is left",
          "out: Knative's defaulting webhook sets it to the Broker's own.",
        ].join("\n"),
      ],
      [
        ["spec", "delivery"],
        [
          "Default for Triggers without their own delivery: retry with exponential backoff, then the dead-letter",
          "sink. Both Triggers here set their own.",
        ].join("\n"),
      ],
      [["spec", "delivery", "deadLetterSink"], `The results collector (POST ${ASYNC_PATHS.results} on ${PLATFORM.service}), which marks a dead-lettered\nrequest failed.`],
    ],
  };
}

function rabbitmqBrokerConfigManifest(): Commented<RabbitmqBrokerConfig> {
  return {
    object: rabbitmqBrokerConfig(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Which RabbitMQ cluster the Broker uses, and with which queue type (eventing-rabbitmq's",
      "RabbitmqBrokerConfig, eventing.knative.dev/v1alpha1). Its spec is immutable once created.",
    ].join("\n"),
    comments: [
      [
        ["spec", "rabbitmqClusterReference"],
        [
          `The RabbitmqCluster ${PLATFORM.rabbitmqCluster} of the RabbitMQ Cluster Operator, in this namespace (add namespace: to`,
          "use one elsewhere). For a RabbitMQ not run by the operator, replace name with",
          "connectionSecret: {name: ...}, a Secret with the keys uri, username and password (one or the",
          "other, never both).",
        ].join("\n"),
      ],
      [["spec", "queueType"], "Quorum queues: replicated across the cluster's nodes (3 in rabbitmq/), so a queued request\nsurvives the loss of a node."],
    ],
  };
}

function triggersManifest(): Commented[] {
  const parallelismComment = (what: string) => ["Concurrent deliveries by the Trigger's dispatcher (eventing-rabbitmq's default is 1: one at a time, in order).", what].join("\n");
  return [
    {
      object: platformRequestTrigger(),
      header: [
        GENERATED_HEADER(SOURCE),
        "",
        "Queued requests to the worker; the worker's replies to the results collector. Both subscribers are",
        `the async Service ${PLATFORM.service}. The runtime publishes ${REQUEST_EVENT_TYPE} (id = request id) and`,
        `answers it with ${RESPONSE_EVENT_TYPE} (correlationid = request id), which the dispatcher puts back into`,
        "the Broker. Neither Trigger can match the other's events: the type filters differ.",
        "eventing-rabbitmq refuses changes to a Trigger's filter: delete and re-create the Trigger instead.",
      ].join("\n"),
      comments: [
        [
          ["metadata", "annotations", PARALLELISM_ANNOTATION],
          parallelismComment(
            `${REQUEST_PARALLELISM} = containerConcurrency ${CONCURRENCY.containerConcurrency} x max-scale ${ASYNC.maxScale}: as many requests in flight as ${ASYNC.maxScale} pods take, so a deep\nqueue scales the worker out to max-scale and no further. Order does not matter here.`,
          ),
        ],
        [["spec", "subscriber"], "The worker: POST / on the async Service (marks the request running, infers, replies)."],
        [
          ["spec", "delivery"],
          [
            `Retries with exponential backoff (${REQUEST_DELIVERY.backoffDelay} doubling, ${REQUEST_DELIVERY.retry} retries) ride out a revision that is starting`,
            "(the activator holds requests while the Service scales from zero). 400 answers (an invalid",
            "request) are not retried. Then the dead-letter sink, the collector, marks the request failed",
            "with the HTTP status the dispatcher reports in knativeerrorcode.",
          ].join("\n"),
        ],
      ],
    },
    {
      object: platformResultTrigger(),
      comments: [
        [["metadata", "annotations", PARALLELISM_ANNOTATION], parallelismComment("One pod's worth: each result is a single database write.")],
        [["spec", "subscriber"], `The results collector: POST ${ASYNC_PATHS.results} on the async Service (uri is relative to the ref).`],
        [["spec", "delivery"], `Patient retries (${RESULT_DELIVERY.backoffDelay} doubling, ${RESULT_DELIVERY.retry} retries, about 17 minutes): a result must not be lost while\nthe collector or its database is briefly away.`],
      ],
    },
  ];
}

export function platformBaseKustomization(): Commented {
  return {
    object: {
      ...KUSTOMIZE_API,
      bases: ["../../base"],
      resources: ["rabbitmq-broker-config.yaml", "broker.yaml", "triggers.yaml", "migration-job.yaml", "service-results.yaml"],
      patchesJson6902: [{ target: { group: "serving.knative.dev", version: "v1", kind: "Service", name: APP_NAME }, path: "service-async-patch.yaml" }],
    },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The asynchronous-inference platform's objects (knative/platform/kustomization.yaml and",
      "knative/platform/keda/ build on this directory).",
      "",
      `The async Service is knative/base's Service patched into ${PLATFORM.service} (service-async-patch.yaml):`,
      `knative/base's PersistentVolumeClaim and ConfigMap render here too, under the same names, so the`,
      `async Service shares the REST Service's model store and configuration. As with overlays/grpc,`,
      `remove it with kubectl delete ksvc ${PLATFORM.service}, not kubectl delete -k (the claim is shared).`,
      "",
      "No Secret is rendered here: create them first (knative/platform/secrets/).",
    ].join("\n"),
  };
}

export function platformKustomization(): Commented {
  return {
    object: { ...KUSTOMIZE_API, bases: ["base"] },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Asynchronous inference on a RabbitMQ Broker (see knative/README.md, \"Asynchronous inference platform\"):",
      "",
      "  1. RabbitMQ Cluster Operator, Messaging Topology Operator and eventing-rabbitmq installed;",
      `     a RabbitmqCluster named ${PLATFORM.rabbitmqCluster} (kubectl apply -n NS -k knative/platform/rabbitmq if you have none)`,
      "  2. the Secrets (knative/platform/secrets/*.yaml say how: kubectl create secret generic ...)",
      "  3. kubectl apply -n NS -k knative/platform",
      `     (the migration Job runs; kubectl wait -n NS --for=condition=complete job/${PLATFORM.migrationJob})`,
      "",
      "kubectl apply -n NS -k knative/platform/keda  instead of 3: the worker as a Deployment that KEDA",
      "                                               scales on the RabbitMQ queue's length",
      "",
      "The objects live in base/ because kustomize refuses an overlay inside its base's directory.",
    ].join("\n"),
  };
}

/** KEDA variant: the worker Deployment's pod labels (also its Service's selector). */
export const workerLabels = (): Record<string, string> => ({ "app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/component": COMPONENTS.worker });

export function workerContainer(): V1Container {
  const server = serverContainer(IMAGE_CPU);
  return {
    ...server,
    env: [...serverEnv(), ...asyncEnv(), { name: ENV.resultsCollector, value: "false" }],
  };
}

export function workerDeployment(): V1Deployment {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: PLATFORM.worker, labels: { ...labels(COMPONENTS.worker) } },
    spec: {
      selector: { matchLabels: workerLabels() },
      template: {
        metadata: { labels: { ...labels(COMPONENTS.worker), "app.kubernetes.io/version": VERSION } },
        spec: {
          automountServiceAccountToken: false,
          securityContext: podSecurityContext(),
          initContainers: [pullerContainer(IMAGE_CPU)],
          containers: [workerContainer()],
          volumes: [modelVolume()],
        },
      },
    },
  };
}

export const WORKER_PORT_NAME = "http";

export function workerService(): V1Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: PLATFORM.worker, labels: labels(COMPONENTS.worker) },
    spec: {
      type: "ClusterIP",
      selector: workerLabels(),
      ports: [{ name: WORKER_PORT_NAME, port: 80, targetPort: "http1", protocol: "TCP" }],
    },
  };
}

/**
 * The RabbitMQ queue of the request Trigger, as KEDA must find it: eventing-rabbitmq names a Trigger's
 * queue <namespace>.<trigger>.<broker UID> (pkg/rabbitmqnaming, CreateTriggerQueueRabbitName), which
 * holds the Broker's UID, known only once it exists: so a regular expression (KEDA's useRegex, which
 * needs the management API, protocol http). Namespaces are DNS labels (no dots), UIDs are UUIDs.
 */
export const REQUEST_QUEUE_PATTERN = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.${PLATFORM.requestTrigger.replace(/[.]/g, "\\.")}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`;

export const KEDA = {
  pollingInterval: 5,
  /** Scale to zero after 5 idle minutes, as the Knative variant's scale-to-zero-pod-retention-period. */
  cooldownPeriod: 300,
  minReplicaCount: 0,
  /** Messages (ready + unacknowledged) per replica: containerConcurrency, what one pod works on at once. */
  value: CONCURRENCY.containerConcurrency,
} as const;

export interface ScaledObject {
  apiVersion: typeof KEDA_API;
  kind: "ScaledObject";
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    scaleTargetRef: { apiVersion?: string; kind?: string; name: string };
    pollingInterval?: number;
    cooldownPeriod?: number;
    minReplicaCount?: number;
    maxReplicaCount?: number;
    triggers: { type: string; metadata: Record<string, string>; authenticationRef?: { name: string; kind?: string } }[];
  };
}

export interface TriggerAuthentication {
  apiVersion: typeof KEDA_API;
  kind: "TriggerAuthentication";
  metadata: { name: string; labels?: Record<string, string> };
  spec: { secretTargetRef: { parameter: string; name: string; key: string }[] };
}

export function triggerAuthentication(): TriggerAuthentication {
  return {
    apiVersion: KEDA_API,
    kind: "TriggerAuthentication",
    metadata: { name: PLATFORM.triggerAuthentication, labels: labels(COMPONENTS.worker) },
    spec: { secretTargetRef: Object.keys(SECRETS.keda.keys).map((key) => ({ parameter: key, name: SECRETS.keda.name, key })) },
  };
}

export function scaledObject(): ScaledObject {
  return {
    apiVersion: KEDA_API,
    kind: "ScaledObject",
    metadata: { name: PLATFORM.worker, labels: labels(COMPONENTS.worker) },
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: PLATFORM.worker },
      pollingInterval: KEDA.pollingInterval,
      cooldownPeriod: KEDA.cooldownPeriod,
      minReplicaCount: KEDA.minReplicaCount,
      maxReplicaCount: ASYNC.maxScale,
      triggers: [
        {
          type: "rabbitmq",
          metadata: { protocol: "http", mode: "QueueLength", value: String(KEDA.value), queueName: REQUEST_QUEUE_PATTERN, useRegex: "true", operation: "sum" },
          authenticationRef: { name: PLATFORM.triggerAuthentication },
        },
      ],
    },
  };
}

/** KEDA variant: the request Trigger delivers to the worker Deployment's Service, with patient retries. */
export function kedaTriggerPatch(): JsonPatchOp[] {
  return [
    { op: "replace", path: "/spec/subscriber", value: { ref: { apiVersion: "v1", kind: "Service", name: PLATFORM.worker } } },
    { op: "replace", path: "/spec/delivery/retry", value: KEDA_REQUEST_DELIVERY.retry },
    { op: "replace", path: "/spec/delivery/backoffDelay", value: KEDA_REQUEST_DELIVERY.backoffDelay },
  ];
}

function workerManifest(): Commented[] {
  return [
    {
      object: workerDeployment(),
      header: [
        GENERATED_HEADER(SOURCE),
        "",
        "KEDA variant: the worker as a plain Deployment. KEDA scales Deployments (anything with a /scale",
        "subresource) through an HPA; a Knative Service has no /scale, and the Deployment behind a Knative",
        "revision belongs to Knative's own autoscaler, which would fight an HPA over it. So the worker that",
        `consumes the queue is this Deployment, and ${PLATFORM.service} (the Knative Service) keeps the async API and`,
        "the results collector.",
      ].join("\n"),
      comments: [
        [["spec", "selector"], "No spec.replicas: KEDA (through its HPA) owns the replica count; re-applying leaves it alone."],
        [["spec", "template", "spec", "initContainers", 0], "The model puller, as in the Knative Service: the same PersistentVolumeClaim and ConfigMap."],
        [["spec", "template", "spec", "containers", 0, "env"], `The async Service's environment (platform/base/service-async-patch.yaml), and ${ENV.resultsCollector}=false:\nresults go to the Knative Service's collector, not here.`],
      ],
    },
    {
      object: workerService(),
      comments: [[["spec", "ports", 0], "The request Trigger's subscriber (http://<name>.<namespace>.svc.cluster.local/, POST /)."]],
    },
  ];
}

function scalingManifest(): Commented[] {
  return [
    {
      object: triggerAuthentication(),
      header: [
        GENERATED_HEADER(SOURCE),
        "",
        "KEDA scales the worker Deployment on the length of the request Trigger's RabbitMQ queue.",
      ].join("\n"),
      comments: [
        [
          ["spec", "secretTargetRef"],
          `The management API's URL and credentials, from the Secret ${SECRETS.keda.name} (secrets/rabbitmq-keda.yaml\nsays how to fill it from the RabbitmqCluster's default-user Secret).`,
        ],
      ],
    },
    {
      object: scaledObject(),
      comments: [
        [["spec", "minReplicaCount"], "Scale to zero when the queue is empty; KEDA itself activates the Deployment again on the first message."],
        [["spec", "maxReplicaCount"], `The Knative variant's max-scale; the request Trigger dispatches ${REQUEST_PARALLELISM} at once, ${KEDA.value} per pod.`],
        [
          ["spec", "triggers", 0, "metadata", "protocol"],
          "The management API (port 15672): needed for useRegex, and it counts unacknowledged messages too.",
        ],
        [
          ["spec", "triggers", 0, "metadata", "value"],
          `Target messages (ready + unacknowledged, i.e. queued + in delivery) per replica: containerConcurrency.`,
        ],
        [
          ["spec", "triggers", 0, "metadata", "queueName"],
          [
            "eventing-rabbitmq names the Trigger's queue <namespace>.<trigger>.<broker UID>; the UID is only known once",
            "the Broker exists, hence a regular expression (useRegex; its dead-letter queue, t.<ns>.<trigger>.dlq.<uid>, does",
            "not match). In a RabbitMQ shared by several namespaces, put your namespace first instead of the",
            "generic label pattern. Check the name: kubectl exec <cluster>-server-0 -- rabbitmqctl list_queues name.",
          ].join("\n"),
        ],
      ],
    },
  ];
}

function kedaTriggerPatchManifest(): Commented<JsonPatchOp[]> {
  return {
    object: kedaTriggerPatch(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      `KEDA variant: the request Trigger delivers to the worker Deployment's Service instead of ${PLATFORM.service}.`,
    ].join("\n"),
    comments: [
      [[1], "A Deployment at zero replicas has no endpoints (no activator holds the request as Knative's does) until KEDA\nscales it up and the pod loads its model: retry for about 4 minutes (1 s doubling) before dead-lettering."],
    ],
  };
}

export function kedaKustomization(): Commented {
  return {
    object: {
      ...KUSTOMIZE_API,
      bases: ["../base"],
      resources: ["worker.yaml", "scaling.yaml"],
      patchesJson6902: [{ target: { group: "eventing.knative.dev", version: "v1", kind: "Trigger", name: PLATFORM.requestTrigger }, path: "trigger-keda-patch.yaml" }],
    },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The KEDA alternative: kubectl apply -n NS -k knative/platform/keda (instead of knative/platform).",
      "Needs KEDA 2.x and the Secret of secrets/rabbitmq-keda.yaml, besides what knative/platform needs.",
      "Everything of knative/platform, plus a worker Deployment and Service that the request Trigger",
      "delivers to, and a ScaledObject that scales it on the queue's length.",
    ].join("\n"),
  };
}

/** The example RabbitmqCluster (RabbitMQ Cluster Operator). */
export interface RabbitmqCluster {
  apiVersion: typeof RABBITMQ_CLUSTER_API;
  kind: "RabbitmqCluster";
  metadata: { name: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

export function rabbitmqCluster(): RabbitmqCluster {
  return {
    apiVersion: RABBITMQ_CLUSTER_API,
    kind: "RabbitmqCluster",
    metadata: { name: PLATFORM.rabbitmqCluster, labels: labels(COMPONENTS.queue) },
    spec: {
      replicas: 3,
      resources: { requests: { cpu: "1", memory: "2Gi" }, limits: { cpu: "1", memory: "2Gi" } },
      persistence: { storage: "20Gi" },
      rabbitmq: { additionalConfig: "cluster_partition_handling = pause_minority\n" },
    },
  };
}

function rabbitmqClusterManifest(): Commented<RabbitmqCluster> {
  return {
    object: rabbitmqCluster(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "An example RabbitMQ cluster for the Broker, run by the RabbitMQ Cluster Operator. Apply it only if",
      "you have no RabbitMQ yet; otherwise point rabbitmq-broker-config.yaml at yours. It is not part of",
      "knative/platform on purpose: a RabbitMQ cluster holds data, is often shared and managed on its own,",
      "and deleting the platform must not delete it.",
    ].join("\n"),
    comments: [
      [["spec", "replicas"], "Three nodes: quorum queues stay available with one node down (an odd count avoids split votes)."],
      [["spec", "persistence"], "Each node's PersistentVolumeClaim: queued messages survive restarts. Set storageClassName as needed."],
      [["spec", "rabbitmq", "additionalConfig"], "On a network partition, the minority side pauses rather than diverging."],
    ],
  };
}

function rabbitmqKustomization(): Commented {
  return {
    object: { ...KUSTOMIZE_API, resources: ["rabbitmq-cluster.yaml"] },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Optional: kubectl apply -n NS -k knative/platform/rabbitmq creates the RabbitmqCluster the Broker",
      "uses (needs the RabbitMQ Cluster Operator). Skip it when you have a RabbitMQ already.",
    ].join("\n"),
  };
}

/** A Secret template: placeholder values, never applied by any kustomization here. */
export function secretTemplate(name: string, data: Record<string, string>, component: string): V1Secret {
  return { apiVersion: "v1", kind: "Secret", metadata: { name, labels: labels(component) }, type: "Opaque", stringData: data };
}

function secretHeader(what: string, command: string[]): string {
  return [
    GENERATED_HEADER(SOURCE),
    "",
    `TEMPLATE: ${what}.`,
    "The values below are placeholders. Do not apply this file as it is, and do not commit real",
    "credentials: create the Secret from the command line instead (no kustomization here includes it,",
    "so kubectl apply -k never overwrites a real Secret):",
    "",
    ...command.map((l) => `  ${l}`),
    "",
    "or apply a copy of this file with real values, kept out of version control (or rendered by your",
    "secret manager: External Secrets, Sealed Secrets, Vault...).",
  ].join("\n");
}

export function secretTemplates(): { path: string; doc: Commented<V1Secret> }[] {
  return [
    {
      path: "knative/platform/secrets/database.yaml",
      doc: {
        object: secretTemplate(SECRETS.database.name, { [SECRETS.database.key]: SECRETS.database.placeholder }, COMPONENTS.service),
        header: secretHeader(SECRETS.database.what, [
          `kubectl create secret generic ${SECRETS.database.name} -n NS \\`,
          `  --from-literal=${SECRETS.database.key}='postgresql://inference:...@db.example.internal:5432/inference?sslmode=require'`,
        ]),
        comments: [[["stringData", SECRETS.database.key], "postgres:// or postgresql:// (libpq's form); sslmode=require (or verify-full) outside a trusted network."]],
      },
    },
    {
      path: "knative/platform/secrets/redis.yaml",
      doc: {
        object: secretTemplate(SECRETS.redis.name, { [SECRETS.redis.key]: SECRETS.redis.placeholder }, COMPONENTS.service),
        header: secretHeader(SECRETS.redis.what, [
          `kubectl create secret generic ${SECRETS.redis.name} -n NS \\`,
          `  --from-literal=${SECRETS.redis.key}='rediss://:...@redis.example.internal:6379/0'`,
        ]),
        comments: [[["stringData", SECRETS.redis.key], "redis:// or rediss:// (TLS)."]],
      },
    },
    {
      path: "knative/platform/secrets/results-token.yaml",
      doc: {
        object: secretTemplate(SECRETS.results.name, { [SECRETS.results.key]: SECRETS.results.placeholder }, COMPONENTS.results),
        header: secretHeader(SECRETS.results.what, [
          `kubectl create secret generic ${SECRETS.results.name} -n NS \\`,
          `  --from-literal=${SECRETS.results.key}="$(openssl rand -hex 32)"`,
        ]),
        comments: [[["stringData", SECRETS.results.key], "At least 16 printable ASCII characters, no spaces (it travels as a ce-resultstoken header).\nRotate it by updating the Secret and restarting the runtimes (new revisions) together."]],
      },
    },
    {
      path: "knative/platform/secrets/rabbitmq-keda.yaml",
      doc: {
        object: secretTemplate(SECRETS.keda.name, SECRETS.keda.keys, COMPONENTS.worker),
        header: secretHeader(SECRETS.keda.what, [
          `U=$(kubectl get secret -n NS ${PLATFORM.rabbitmqCluster}-default-user -o jsonpath='{.data.username}' | base64 -d)`,
          `P=$(kubectl get secret -n NS ${PLATFORM.rabbitmqCluster}-default-user -o jsonpath='{.data.password}' | base64 -d)`,
          `kubectl create secret generic ${SECRETS.keda.name} -n NS \\`,
          `  --from-literal=host=http://${PLATFORM.rabbitmqCluster}.NS.svc:15672/ --from-literal=username="$U" --from-literal=password="$P"`,
        ]),
        comments: [
          [["stringData", "host"], "The management API, with the namespace written out: KEDA's operator runs in its own namespace.\nThe trailing / is the default vhost."],
          [["stringData", "username"], "A user that may read queue lengths: the operator's default user, or a monitoring-tagged one."],
        ],
      },
    },
  ];
}

/** knative/platform/**: path relative to the repository root -> content. */
export function platformFiles(): Map<string, string> {
  return new Map([
    ["knative/platform/kustomization.yaml", renderDocument(platformKustomization())],
    ["knative/platform/base/kustomization.yaml", renderDocument(platformBaseKustomization())],
    ["knative/platform/base/rabbitmq-broker-config.yaml", renderDocument(rabbitmqBrokerConfigManifest())],
    ["knative/platform/base/broker.yaml", renderDocument(brokerManifest())],
    ["knative/platform/base/triggers.yaml", renderDocuments(triggersManifest())],
    ["knative/platform/base/migration-job.yaml", renderDocument(migrationJobManifest())],
    ["knative/platform/base/service-async-patch.yaml", renderDocument(asyncPatchManifest())],
    ["knative/platform/base/service-results.yaml", renderDocument(resultsServiceManifest())],
    ["knative/platform/keda/kustomization.yaml", renderDocument(kedaKustomization())],
    ["knative/platform/keda/worker.yaml", renderDocuments(workerManifest())],
    ["knative/platform/keda/scaling.yaml", renderDocuments(scalingManifest())],
    ["knative/platform/keda/trigger-keda-patch.yaml", renderDocument(kedaTriggerPatchManifest())],
    ["knative/platform/rabbitmq/kustomization.yaml", renderDocument(rabbitmqKustomization())],
    ["knative/platform/rabbitmq/rabbitmq-cluster.yaml", renderDocument(rabbitmqClusterManifest())],
    ...secretTemplates().map(({ path, doc }): [string, string] => [path, renderDocument(doc)]),
  ]);
}

