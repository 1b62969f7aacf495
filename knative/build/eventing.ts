/**
 * Knative Eventing around the inference Service (knative/eventing/): a Broker,
 * a Trigger that delivers inference requests to the Service, a Trigger that
 * routes its replies to a results sink, retries with exponential backoff and a
 * dead-letter sink, and a SinkBinding that points the runtime's inference
 * logger at a log sink (it injects K_SINK). Event types and attribute names
 * come from runtime/src/cloudevents/constants.ts, which the server uses.
 *
 * `npx tsx knative/build/eventing.ts` writes these files on its own;
 * `npm run manifests` writes them with everything else once files.ts lists
 * eventingFiles().
 */
import type { V1Container, V1ObjectMeta } from "@kubernetes/client-node";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { LOGGER_REQUEST_TYPE, LOGGER_RESPONSE_TYPE, REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "../../runtime/src/cloudevents/constants.js";
import { containerSecurityContext, labels, type KnativeService } from "./knative.js";
import { APP_NAME } from "./settings.js";
import { GENERATED_HEADER, renderDocument, renderDocuments, type Commented, type Path } from "./yaml.js";

const SOURCE = "knative/build/eventing.ts";
const SERVING_API = "serving.knative.dev/v1";
const EVENTING_API = "eventing.knative.dev/v1";
export const SINK_BINDING_API = "sources.knative.dev/v1";

export const BROKER_NAME = APP_NAME;
export const NAMES = {
  broker: BROKER_NAME,
  requestTrigger: `${APP_NAME}-requests`,
  replyTrigger: `${APP_NAME}-replies`,
  sinkBinding: `${APP_NAME}-logger`,
  /** The example sinks (event_display): replace them with your collectors. */
  resultsSink: `${APP_NAME}-results`,
  deadLetterSink: `${APP_NAME}-dead-letters`,
  logSink: `${APP_NAME}-logs`,
} as const;

/**
 * Knative's event_display, which logs every event it receives: a stand-in for
 * a results collector, a dead-letter store and a log store. Pinned by digest
 * (the one knative/func's tests pin), as Knative publishes it without version tags.
 */
export const EVENT_DISPLAY_IMAGE =
  "gcr.io/knative-releases/knative.dev/eventing/cmd/event_display@sha256:610234e4319b767b187398085971d881956da660a4e0fab65a763e0f81881d82";

/** Delivery of inference requests: first retry after 0.5 s, then doubling (0.5, 1, 2, 4, 8 s; about 15 s in all). */
export const REQUEST_DELIVERY = { retry: 5, backoffPolicy: "exponential", backoffDelay: "PT0.5S" } as const;
/** Delivery to the sinks (the Broker's default for every Trigger). */
export const SINK_DELIVERY = { retry: 3, backoffPolicy: "exponential", backoffDelay: "PT0.2S" } as const;

/** A reference to an Addressable (duckv1.KReference). */
export interface KReference {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** duckv1.Destination. */
export interface Destination {
  ref?: KReference;
  uri?: string;
}

/** eventingduckv1.DeliverySpec (the fields these manifests use). */
export interface DeliverySpec {
  retry?: number;
  backoffPolicy?: "linear" | "exponential";
  /** ISO 8601 duration. */
  backoffDelay?: string;
  deadLetterSink?: Destination;
}

export interface Broker {
  apiVersion: typeof EVENTING_API;
  kind: "Broker";
  metadata: V1ObjectMeta;
  spec: { config?: KReference; delivery?: DeliverySpec };
}

export interface Trigger {
  apiVersion: typeof EVENTING_API;
  kind: "Trigger";
  metadata: V1ObjectMeta;
  spec: {
    broker: string;
    filter?: { attributes: Record<string, string> };
    subscriber: Destination;
    delivery?: DeliverySpec;
  };
}

export interface SinkBinding {
  apiVersion: typeof SINK_BINDING_API;
  kind: "SinkBinding";
  metadata: V1ObjectMeta;
  spec: {
    subject: { apiVersion: string; kind: string; name?: string; namespace?: string; selector?: { matchLabels?: Record<string, string> } };
    sink: Destination;
  };
}

const serviceRef = (name: string): KReference => ({ apiVersion: SERVING_API, kind: "Service", name });
const deadLetters = (): Destination => ({ ref: serviceRef(NAMES.deadLetterSink) });

export function broker(): Broker {
  return {
    apiVersion: EVENTING_API,
    kind: "Broker",
    metadata: { name: NAMES.broker, labels: labels("eventing") },
    spec: { delivery: { ...SINK_DELIVERY, deadLetterSink: deadLetters() } },
  };
}

export function requestTrigger(): Trigger {
  return {
    apiVersion: EVENTING_API,
    kind: "Trigger",
    metadata: { name: NAMES.requestTrigger, labels: labels("eventing") },
    spec: {
      broker: NAMES.broker,
      filter: { attributes: { type: REQUEST_EVENT_TYPE } },
      subscriber: { ref: serviceRef(APP_NAME) },
      delivery: { ...REQUEST_DELIVERY, deadLetterSink: deadLetters() },
    },
  };
}

export function replyTrigger(): Trigger {
  return {
    apiVersion: EVENTING_API,
    kind: "Trigger",
    metadata: { name: NAMES.replyTrigger, labels: labels("eventing") },
    spec: {
      broker: NAMES.broker,
      filter: { attributes: { type: RESPONSE_EVENT_TYPE } },
      subscriber: { ref: serviceRef(NAMES.resultsSink) },
      delivery: { ...SINK_DELIVERY, deadLetterSink: deadLetters() },
    },
  };
}

export function sinkBinding(): SinkBinding {
  return {
    apiVersion: SINK_BINDING_API,
    kind: "SinkBinding",
    metadata: { name: NAMES.sinkBinding, labels: labels("eventing") },
    spec: {
      subject: { apiVersion: SERVING_API, kind: "Service", name: APP_NAME },
      sink: { ref: serviceRef(NAMES.logSink) },
    },
  };
}

function eventDisplayContainer(): V1Container {
  return {
    name: "event-display",
    image: EVENT_DISPLAY_IMAGE,
    ports: [{ name: "http1", containerPort: 8080, protocol: "TCP" }],
    resources: { requests: { cpu: "50m", memory: "32Mi" }, limits: { cpu: "200m", memory: "64Mi" } },
    securityContext: containerSecurityContext(),
  };
}

/** One of the example sinks: a scale-to-zero Knative Service that logs the events it gets. */
export function sinkService(name: string, role: string): KnativeService {
  return {
    apiVersion: SERVING_API,
    kind: "Service",
    metadata: { name, labels: labels(role) },
    spec: {
      template: {
        metadata: { labels: labels(role) },
        spec: { automountServiceAccountToken: false, containers: [eventDisplayContainer()] },
      },
    },
  };
}

export const sinkServices = (): KnativeService[] => [
  sinkService(NAMES.resultsSink, "results-sink"),
  sinkService(NAMES.deadLetterSink, "dead-letter-sink"),
  sinkService(NAMES.logSink, "log-sink"),
];

const DELIVERY_COMMENTS = (base: Path, what: string): [Path, string][] => [
  [
    [...base, "delivery"],
    [
      what,
      "Knative retries a delivery that failed (no answer, 404, 408, 409, 429 or 5xx, such as the",
      "runtime's 503 while its model is not ready), waiting backoffDelay x 2^n before retry n",
      "(exponential); after the last retry the event goes to the dead-letter sink. Other statuses",
      "(the runtime's 400 for an invalid event or inference request) send it there at once.",
    ].join("\n"),
  ],
  [[...base, "delivery", "deadLetterSink"], "Events that could not be delivered, with the ce-knativeerror* extensions saying why."],
];

export function brokerManifest(): Commented<Broker> {
  return {
    object: broker(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "The Broker that inference requests are sent to and replies come back through.",
      "Producers POST CloudEvents of type io.kserve.inference.request to its address",
      `(kubectl get broker ${NAMES.broker} -o jsonpath='{.status.address.url}').`,
      "The cluster's default Broker class is used (MTChannelBasedBroker unless configured otherwise):",
      "set the annotation eventing.knative.dev/broker.class to choose another (e.g. Kafka).",
    ].join("\n"),
    comments: DELIVERY_COMMENTS(["spec"], "The default for every Trigger of this Broker (a Trigger's own delivery overrides it)."),
  };
}

export function triggersManifest(): Commented[] {
  return [
    {
      object: requestTrigger(),
      header: [
        GENERATED_HEADER(SOURCE),
        "",
        "Two Triggers on the Broker: inference requests to the inference Service, and its replies to",
        "the results sink.",
        "",
        "Avoiding loops: the runtime answers a request event with a reply event that the Broker routes",
        `like any other. Replies have type ${RESPONSE_EVENT_TYPE} (CE_TYPE), never the request type, so the`,
        "request Trigger below cannot match them; the runtime also refuses events of its own reply type",
        `(400), and POST / takes only ${REQUEST_EVENT_TYPE}. Keep a type filter on any Trigger that`,
        "points at the inference Service.",
      ].join("\n"),
      comments: [
        [["spec", "filter"], `Only inference requests. Exact match on the type attribute; the Broker drops the rest for this Trigger.`],
        [
          ["spec", "subscriber"],
          [
            "The inference Service (knative/base/service.yaml). Events arrive at POST /, where the model is",
            "the event's `model` extension, else its subject, else the only model loaded (this deployment",
            "serves one). The reply (200, a CloudEvent) goes back to the Broker. To pin a model, add",
            "uri: /v2/models/<name>/infer (any event type is accepted there).",
          ].join("\n"),
        ],
        ...DELIVERY_COMMENTS(["spec"], "Requests: five retries, doubling from 0.5 s (about 15 s in all), ride out a model that is still\nloading (503) or a revision that is starting (404)."),
      ],
    },
    {
      object: replyTrigger(),
      comments: [
        [["spec", "filter"], `The runtime's replies (${RESPONSE_EVENT_TYPE}, or CE_TYPE if you set one: change it here too).`],
        [["spec", "subscriber"], "The results collector: here Knative's event_display (sinks.yaml); point it at yours."],
        ...DELIVERY_COMMENTS(["spec"], "Replies: the Broker's default policy, spelled out."),
      ],
    },
  ];
}

export function sinkBindingManifest(): Commented<SinkBinding> {
  return {
    object: sinkBinding(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Turns the inference logger on: Knative injects K_SINK (the sink's URL) into the inference",
      "Service's pods, and the runtime sends every inference there as binary-mode CloudEvents,",
      `${LOGGER_REQUEST_TYPE} then ${LOGGER_RESPONSE_TYPE} (KServe's`,
      "logger format; see runtime/src/cloudevents/README.md). LOGGER_MODE (all, request, response) and",
      "LOGGER_QUEUE_SIZE tune it. A sink that is slow or down never slows an inference: events are",
      "queued, retried, and counted in inference_server_logger_events_total{outcome}.",
      "",
      "SinkBinding needs Knative Eventing's sources (installed with eventing-core). If the cluster runs",
      "SinkBinding in inclusion mode, label the namespace: bindings.knative.dev/include=true.",
    ].join("\n"),
    comments: [
      [["spec", "subject"], "The inference Service; the binding adds K_SINK to its revision template (a new revision)."],
      [["spec", "sink"], "Where inference logs go: here Knative's event_display (sinks.yaml). A Broker works too (a Trigger\nper logger type then routes them)."],
    ],
  };
}

export function sinksManifest(): Commented[] {
  const [results, deadLetter, logs] = sinkServices();
  const header = [
    GENERATED_HEADER(SOURCE),
    "",
    "Example sinks: Knative's event_display, which logs each event it receives (kubectl logs -l",
    "app.kubernetes.io/component=results-sink -c event-display). They scale to zero when idle.",
    "Replace them with your results collector, dead-letter store and log store.",
  ].join("\n");
  return [
    { object: results!, header, comments: [[["metadata", "name"], "Receives the inference replies (the results Trigger)."]] },
    { object: deadLetter!, comments: [[["metadata", "name"], "Receives events whose delivery failed after the retries (dead-letter sink)."]] },
    { object: logs!, comments: [[["metadata", "name"], "Receives the inference logger's events (the SinkBinding)."]] },
  ];
}

export function eventingKustomization(): Commented {
  return {
    object: {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      resources: ["broker.yaml", "triggers.yaml", "sinkbinding.yaml", "sinks.yaml"],
    },
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Knative Eventing for the inference Service: kubectl apply -k knative/eventing",
      "(after `kubectl apply -k knative/`; needs Knative Eventing with a Broker implementation).",
      "",
      "Send a request through the Broker (from inside the cluster):",
      `  curl -X POST http://broker-ingress.knative-eventing.svc.cluster.local/<namespace>/${NAMES.broker} \\`,
      `    -H 'ce-specversion: 1.0' -H 'ce-id: 1' -H 'ce-source: /me' -H 'ce-type: ${REQUEST_EVENT_TYPE}' \\`,
      "    -H 'content-type: application/json' -d '{\"text\": \"What a great film.\"}'",
      `and watch the reply arrive: kubectl logs -l app.kubernetes.io/component=results-sink -c event-display`,
    ].join("\n"),
  };
}

/** knative/eventing/*: path relative to the repository root -> content. */
export function eventingFiles(): Map<string, string> {
  return new Map([
    ["knative/eventing/kustomization.yaml", renderDocument(eventingKustomization())],
    ["knative/eventing/broker.yaml", renderDocument(brokerManifest())],
    ["knative/eventing/triggers.yaml", renderDocuments(triggersManifest())],
    ["knative/eventing/sinkbinding.yaml", renderDocument(sinkBindingManifest())],
    ["knative/eventing/sinks.yaml", renderDocuments(sinksManifest())],
  ]);
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Writes knative/eventing/* (the same files `npm run manifests` writes). */
async function main(): Promise<void> {
  for (const [path, content] of eventingFiles()) {
    const target = join(REPO_ROOT, path);
    await mkdir(dirname(target), { recursive: true });
    if ((await readFile(target, "utf8").catch(() => undefined)) === content) continue;
    await writeFile(target, content);
    process.stdout.write(`wrote ${path}\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`eventing: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
