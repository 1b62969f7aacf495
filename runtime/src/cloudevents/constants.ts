/**
 * Names shared by the CloudEvents transport, the inference logger, their tests,
 * the Knative Eventing manifests (knative/build/eventing.ts) and README.md here.
 * CloudEvents attribute names are lowercase a-z0-9, at most 20 characters.
 */

/** The request type a Trigger filters on, and the only type POST / accepts. */
export const REQUEST_EVENT_TYPE = "io.kserve.inference.request";
/** The reply's type unless CE_TYPE says otherwise (KServe's default). */
export const RESPONSE_EVENT_TYPE = "io.kserve.inference.response";
/** The reply's source unless CE_SOURCE says otherwise (KServe's default): `io.kserve.inference.<model>`. */
export const responseEventSource = (model: string): string => `io.kserve.inference.${model}`;

/** KServe's inference-logger event types (pkg/logger in KServe). */
export const LOGGER_REQUEST_TYPE = "org.kubeflow.serving.inference.request";
export const LOGGER_RESPONSE_TYPE = "org.kubeflow.serving.inference.response";

/** Extensions this server reads on requests and writes on replies and logger events. */
export const EXTENSIONS = {
  /** Request (POST /): the model to run. Reply and logger events: the model that ran. */
  model: "model",
  /** Request (POST /): the model version to run. Reply and logger events: the version that ran. */
  modelVersion: "modelversion",
  /** Reply: the id of the request event (CloudEvents "correlation" extension). */
  causationId: "causationid",
  /** Reply: the request's correlationid when it had one, else the request event's id (same extension). */
  correlationId: "correlationid",
  /**
   * Asynchronous inference (runtime/src/async): the shared secret (RESULTS_TOKEN) on the platform's
   * request events and on the worker's replies, which the results collector checks.
   */
  resultsToken: "resultstoken",
  /** Asynchronous inference: the worker's reply carries the attempt (the request's attempts when it ran). */
  attempt: "attempt",
  /** Logger events (KServe's names). */
  inferenceService: "inferenceservicename",
  namespace: "namespace",
  component: "component",
  endpoint: "endpoint",
} as const;

export const CE_JSON = "application/cloudevents+json";
export const CE_BATCH = "application/cloudevents-batch+json";
export const JSON_MEDIA_TYPE = "application/json";
