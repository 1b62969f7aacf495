/**
 * Checks for the asynchronous-inference platform (knative/platform/) that the
 * schemas cannot make.
 *
 * Schema-validated elsewhere: Broker and Trigger (../shared/crds, crds.ts), the
 * Knative Service (CRD + webhook rules, knative.ts), Job, Deployment, Service,
 * Secret (kubernetes-models + client-node field lists, core.ts), ScaledObject and
 * TriggerAuthentication (@kubernetes-models/keda, core.ts: types and required
 * fields only).
 *
 * Structural only (no CRD here): RabbitmqBrokerConfig (eventing-rabbitmq) and
 * RabbitmqCluster (RabbitMQ Cluster Operator): known fields, required fields,
 * types and enums, after their Go types and the eventing-rabbitmq webhook. Plus
 * KEDA's unknown fields and rabbitmq-trigger rules, eventing-rabbitmq's webhook
 * rules for Brokers of its class and for the Trigger parallelism annotation.
 *
 * validatePlatformReferences then checks that the objects applied together fit:
 * every name one object gives another resolves, to an object of the right kind
 * that does what the reference assumes (the worker, the collector, the Broker's
 * address, the Secrets' keys, the queue KEDA watches).
 */
import { REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "../../runtime/src/cloudevents/constants.js";
import { ASYNC_PATHS, ENV } from "../../runtime/src/constants.js";
import {
  BROKER_CLASS_ANNOTATION,
  CLUSTER_LOCAL,
  PARALLELISM_ANNOTATION,
  RABBITMQ_BROKER_CLASS,
  RABBITMQ_BROKER_CONFIG_API,
  RABBITMQ_CLUSTER_API,
  VISIBILITY_LABEL,
} from "../build/platform.js";
import { checkFields, checkMetadata } from "./core.js";
import { describe, isRecord, joinPath, type K8sObject, type Problem } from "./problems.js";

type Rec = Record<string, any>;
/** isRecord, keeping `any` values (these objects are read loosely, then checked). */
const isRec = (v: unknown): v is Rec => isRecord(v);
const STRUCTURE = "structure";
const REFERENCE = "reference";
const RABBITMQ_WEBHOOK = "rabbitmq-webhook";

class Collector {
  readonly problems: Problem[] = [];
  constructor(private readonly obj: K8sObject) {}
  add(path: (string | number)[] | string, message: string, rule = STRUCTURE): void {
    this.problems.push({ object: describe(this.obj), path: typeof path === "string" ? path : joinPath(path), message, rule });
  }
  /** Fields of `value` (at `path`) not in `known`. */
  known(value: unknown, path: (string | number)[], known: readonly string[]): void {
    if (value === undefined) return;
    if (!isRec(value)) {
      this.add(path, "expected an object");
      return;
    }
    for (const key of Object.keys(value)) if (!known.includes(key)) this.add([...path, key], `unknown field "${key}" (known: ${known.join(", ")})`);
  }
  string(value: unknown, path: (string | number)[], required = false): void {
    if (value === undefined) {
      if (required) this.add(path, "required");
    } else if (typeof value !== "string" || value === "") this.add(path, `expected a non-empty string, got ${JSON.stringify(value)}`);
  }
}

const TOP = ["apiVersion", "kind", "metadata", "spec"] as const;

/** eventing-rabbitmq's RabbitmqBrokerConfig (eventing.knative.dev/v1alpha1). */
export function validateRabbitmqBrokerConfig(obj: K8sObject): Problem[] {
  const c = new Collector(obj);
  c.known(obj, [], TOP);
  const spec = obj.spec as Rec | undefined;
  if (!isRec(spec)) {
    c.add("spec", "required");
    return [...checkMetadata(obj), ...c.problems];
  }
  c.known(spec, ["spec"], ["rabbitmqClusterReference", "queueType"]);
  if (spec.queueType !== undefined && !["quorum", "classic"].includes(spec.queueType)) c.add("spec.queueType", `must be quorum or classic, got ${JSON.stringify(spec.queueType)}`);
  const ref = spec.rabbitmqClusterReference;
  if (!isRec(ref)) c.add("spec.rabbitmqClusterReference", "required (eventing-rabbitmq's webhook)", RABBITMQ_WEBHOOK);
  else {
    c.known(ref, ["spec", "rabbitmqClusterReference"], ["name", "namespace", "connectionSecret"]);
    c.string(ref.name, ["spec", "rabbitmqClusterReference", "name"]);
    c.string(ref.namespace, ["spec", "rabbitmqClusterReference", "namespace"]);
    if (ref.connectionSecret !== undefined) {
      c.known(ref.connectionSecret, ["spec", "rabbitmqClusterReference", "connectionSecret"], ["name"]);
      c.string(ref.connectionSecret?.name, ["spec", "rabbitmqClusterReference", "connectionSecret", "name"], true);
    }
    if ((ref.name === undefined) === (ref.connectionSecret === undefined)) {
      c.add("spec.rabbitmqClusterReference", "exactly one of name (a RabbitmqCluster) and connectionSecret (an external RabbitMQ)", RABBITMQ_WEBHOOK);
    }
  }
  return [...checkMetadata(obj), ...c.problems];
}

/** Fields of the RabbitMQ Cluster Operator's RabbitmqClusterSpec (api/v1beta1/rabbitmqcluster_types.go). */
export const RABBITMQ_CLUSTER_SPEC_FIELDS = [
  "replicas",
  "image",
  "imagePullSecrets",
  "service",
  "persistence",
  "resources",
  "affinity",
  "tolerations",
  "rabbitmq",
  "tls",
  "override",
  "skipPostDeploySteps",
  "terminationGracePeriodSeconds",
  "secretBackend",
  "delayStartSeconds",
] as const;

export function validateRabbitmqCluster(obj: K8sObject): Problem[] {
  const c = new Collector(obj);
  c.known(obj, [], TOP);
  const spec = (obj.spec ?? {}) as Rec;
  c.known(spec, ["spec"], RABBITMQ_CLUSTER_SPEC_FIELDS);
  if (spec.replicas !== undefined) {
    if (!Number.isInteger(spec.replicas) || spec.replicas < 0) c.add("spec.replicas", `must be an integer >= 0, got ${JSON.stringify(spec.replicas)}`);
    else if (spec.replicas % 2 === 0) c.add("spec.replicas", `an even node count (${spec.replicas}) cannot always form a majority: use 1, 3 or 5`, "policy");
  }
  c.known(spec.persistence, ["spec", "persistence"], ["storageClassName", "storage"]);
  c.known(spec.rabbitmq, ["spec", "rabbitmq"], ["additionalPlugins", "additionalConfig", "advancedConfig", "envConfig", "erlangInetConfig"]);
  for (const f of checkFields(spec.resources, "V1ResourceRequirements", ["spec", "resources"])) c.add(f.path, f.message, "fields");
  for (const f of checkFields(spec.tolerations, "Array<V1Toleration>", ["spec", "tolerations"])) c.add(f.path, f.message, "fields");
  for (const f of checkFields(spec.affinity, "V1Affinity", ["spec", "affinity"])) c.add(f.path, f.message, "fields");
  return [...checkMetadata(obj), ...c.problems];
}

const SCALED_OBJECT_SPEC = ["scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "advanced", "triggers", "fallback"] as const;
const SCALED_OBJECT_TRIGGER = ["type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"] as const;
/** The rabbitmq scaler's metadata keys (keda.sh/docs, scalers/rabbitmq-queue). */
export const RABBITMQ_SCALER_METADATA = [
  "host",
  "hostFromEnv",
  "usernameFromEnv",
  "passwordFromEnv",
  "protocol",
  "mode",
  "value",
  "activationValue",
  "queueName",
  "vhostName",
  "queueLength",
  "useRegex",
  "pageSize",
  "operation",
  "timeout",
  "excludeUnacknowledged",
  "unsafeSsl",
] as const;
const RABBITMQ_MODES = ["QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio", "ExpectedQueueConsumptionTime"];

function rabbitmqScalerProblems(c: Collector, meta: Rec, at: (string | number)[], hasAuth: boolean): void {
  c.known(meta, at, RABBITMQ_SCALER_METADATA);
  c.string(meta.queueName, [...at, "queueName"], true);
  if (meta.mode !== undefined && !RABBITMQ_MODES.includes(meta.mode)) c.add([...at, "mode"], `unknown mode ${JSON.stringify(meta.mode)} (${RABBITMQ_MODES.join(", ")})`);
  if (meta.mode !== undefined && meta.value === undefined) c.add([...at, "value"], "required with mode");
  for (const k of ["value", "activationValue"]) if (meta[k] !== undefined && !/^\d+(\.\d+)?$/.test(String(meta[k]))) c.add([...at, k], `must be a number in a string, got ${JSON.stringify(meta[k])}`);
  if (meta.protocol !== undefined && !["auto", "http", "amqp"].includes(meta.protocol)) c.add([...at, "protocol"], `must be auto, http or amqp, got ${JSON.stringify(meta.protocol)}`);
  const http = meta.protocol === "http" || (meta.protocol !== "amqp" && typeof meta.host === "string" && meta.host.startsWith("http"));
  if (meta.useRegex === "true") {
    if (!http) c.add([...at, "useRegex"], "useRegex needs protocol http (the management API)");
    try {
      new RegExp(String(meta.queueName));
    } catch (err) {
      c.add([...at, "queueName"], `not a regular expression: ${(err as Error).message}`);
    }
  } else if (meta.useRegex !== undefined && meta.useRegex !== "false") c.add([...at, "useRegex"], `must be "true" or "false"`);
  if (meta.mode !== undefined && meta.mode !== "QueueLength" && !http) c.add([...at, "mode"], `mode ${meta.mode} needs protocol http`);
  if (meta.operation !== undefined && !["sum", "max", "avg"].includes(meta.operation)) c.add([...at, "operation"], "must be sum, max or avg");
  if (meta.host === undefined && meta.hostFromEnv === undefined && !hasAuth) c.add(at, "no host: give host, hostFromEnv or an authenticationRef whose TriggerAuthentication sets host");
}

/** What KEDA's schema (core.ts) does not check: unknown fields, scaler metadata, replica bounds. */
export function validateKeda(obj: K8sObject): Problem[] {
  const c = new Collector(obj);
  c.known(obj, [], TOP);
  const spec = (obj.spec ?? {}) as Rec;
  if (obj.kind === "ScaledObject") {
    c.known(spec, ["spec"], SCALED_OBJECT_SPEC);
    c.known(spec.scaleTargetRef, ["spec", "scaleTargetRef"], ["apiVersion", "kind", "name", "envSourceContainerName"]);
    if (Number.isInteger(spec.minReplicaCount) && Number.isInteger(spec.maxReplicaCount) && spec.minReplicaCount > spec.maxReplicaCount) {
      c.add("spec.maxReplicaCount", `maxReplicaCount ${spec.maxReplicaCount} is below minReplicaCount ${spec.minReplicaCount}`);
    }
    for (const [i, t] of ((spec.triggers as Rec[] | undefined) ?? []).entries()) {
      c.known(t, ["spec", "triggers", i], SCALED_OBJECT_TRIGGER);
      c.known(t.authenticationRef, ["spec", "triggers", i, "authenticationRef"], ["name", "kind"]);
      if (t.type === "rabbitmq") rabbitmqScalerProblems(c, (t.metadata ?? {}) as Rec, ["spec", "triggers", i, "metadata"], t.authenticationRef !== undefined);
    }
  } else if (obj.kind === "TriggerAuthentication") {
    const known = ["secretTargetRef", "env", "configMapTargetRef", "hashiCorpVault", "azureKeyVault", "awsSecretManager", "gcpSecretManager", "podIdentity", "boundServiceAccountToken"];
    c.known(spec, ["spec"], known);
    for (const [i, r] of ((spec.secretTargetRef as Rec[] | undefined) ?? []).entries()) {
      c.known(r, ["spec", "secretTargetRef", i], ["parameter", "name", "key"]);
      for (const k of ["parameter", "name", "key"]) c.string(r[k], ["spec", "secretTargetRef", i, k], true);
    }
  }
  return c.problems;
}

/** eventing-rabbitmq's webhook on Brokers of its class (broker_validation.go) and on Triggers (trigger_validation.go). */
export function validateRabbitmqEventing(obj: K8sObject): Problem[] {
  const c = new Collector(obj);
  if (obj.kind === "Broker" && obj.metadata?.annotations?.[BROKER_CLASS_ANNOTATION] === RABBITMQ_BROKER_CLASS) {
    const config = (obj.spec as Rec | undefined)?.config as Rec | undefined;
    if (!isRec(config)) c.add("spec.config", "a RabbitMQBroker needs spec.config", RABBITMQ_WEBHOOK);
    else {
      for (const k of ["name", "kind", "apiVersion"]) if (!config[k]) c.add(["spec", "config", k], "required", RABBITMQ_WEBHOOK);
      const gvk = `${config.kind}.${config.apiVersion}`;
      const allowed = [`RabbitmqBrokerConfig.${RABBITMQ_BROKER_CONFIG_API}`, `RabbitmqCluster.${RABBITMQ_CLUSTER_API}`];
      if (config.kind && config.apiVersion && !allowed.includes(gvk)) c.add("spec.config", `must be a RabbitmqBrokerConfig (${RABBITMQ_BROKER_CONFIG_API}) or a RabbitmqCluster (${RABBITMQ_CLUSTER_API}), got ${config.kind} ${config.apiVersion}`, RABBITMQ_WEBHOOK);
    }
  }
  const parallelism = obj.metadata?.annotations?.[PARALLELISM_ANNOTATION];
  if (obj.kind === "Trigger" && parallelism !== undefined) {
    const n = /^\d+$/.test(parallelism) ? Number(parallelism) : NaN;
    if (!(n >= 1 && n <= 1000)) c.add(["metadata", "annotations", PARALLELISM_ANNOTATION], `must be an integer from 1 to 1000, got "${parallelism}"`, RABBITMQ_WEBHOOK);
  }
  return c.problems;
}

/** Structural checks of the kinds with no schema here; undefined for any other kind. */
export function validateStructural(obj: K8sObject): Problem[] | undefined {
  if (obj.apiVersion === RABBITMQ_BROKER_CONFIG_API && obj.kind === "RabbitmqBrokerConfig") return validateRabbitmqBrokerConfig(obj);
  if (obj.apiVersion === RABBITMQ_CLUSTER_API && obj.kind === "RabbitmqCluster") return validateRabbitmqCluster(obj);
  return undefined;
}

// ---------------------------------------------------------------------------
// References between the objects applied together.

interface PodTemplateOwner {
  obj: K8sObject;
  /** Path of the pod spec inside the object. */
  base: string[];
  spec: Rec;
}

function podSpecs(objects: K8sObject[]): PodTemplateOwner[] {
  const out: PodTemplateOwner[] = [];
  for (const obj of objects) {
    const spec = obj.spec as Rec | undefined;
    if (!isRec(spec?.template?.spec)) continue;
    if (["Service", "Deployment", "Job", "StatefulSet", "DaemonSet"].includes(obj.kind ?? "")) out.push({ obj, base: ["spec", "template", "spec"], spec: spec.template.spec });
  }
  return out;
}

const envOf = (container: Rec, name: string): Rec | undefined => ((container.env as Rec[] | undefined) ?? []).find((e) => e.name === name);
const envValue = (container: Rec, name: string): string | undefined => envOf(container, name)?.value as string | undefined;

/** The server container of a pod spec that runs asynchronous inference (ASYNC_INFERENCE=true), if any. */
function asyncContainer(spec: Rec): Rec | undefined {
  return ((spec.containers as Rec[] | undefined) ?? []).find((c) => envValue(c, ENV.asyncInference) === "true");
}

/** The collector is on unless RESULTS_COLLECTOR says otherwise (the runtime's default with ASYNC_INFERENCE). */
const collectsResults = (container: Rec): boolean => envValue(container, ENV.resultsCollector) !== "false";

/** A request Trigger's RabbitMQ queue name, as eventing-rabbitmq makes it: <namespace>.<trigger>.<broker UID>. */
export const triggerQueueName = (namespace: string, trigger: string, brokerUid: string): string => `${namespace}.${trigger}.${brokerUid}`;
/** Its dead-letter queue (a Trigger with a deadLetterSink): t.<namespace>.<trigger>.dlq.<trigger UID>. */
export const triggerDeadLetterQueueName = (namespace: string, trigger: string, triggerUid: string): string => `t.${namespace}.${trigger}.dlq.${triggerUid}`;

const SAMPLE_NAMESPACE = "inference";
const SAMPLE_UID = "5f0c8a8e-3b7e-4c59-9d6e-0a2b1c3d4e5f";

export interface SecretTemplate {
  name: string;
  keys: string[];
}

export function secretTemplatesOf(secrets: K8sObject[]): SecretTemplate[] {
  return secrets
    .filter((s) => s.kind === "Secret" && s.metadata?.name)
    .map((s) => ({ name: s.metadata!.name!, keys: [...Object.keys((s.stringData as Rec | undefined) ?? {}), ...Object.keys((s.data as Rec | undefined) ?? {})] }));
}

/**
 * Cross-object checks of the platform: `objects` as kustomize renders them, `secrets` the Secret
 * templates that the referenced Secrets are created from.
 */
export function validatePlatformReferences(objects: K8sObject[], secrets: K8sObject[]): Problem[] {
  const problems: Problem[] = [];
  const add = (obj: K8sObject, path: (string | number)[] | string, message: string, rule = REFERENCE) =>
    problems.push({ object: describe(obj), path: typeof path === "string" ? path : joinPath(path), message, rule });
  const find = (apiVersion: string, kind: string, name: string | undefined) => objects.find((o) => o.apiVersion === apiVersion && o.kind === kind && o.metadata?.name === name);
  const templates = secretTemplatesOf(secrets);
  const deployments = objects.filter((o) => o.apiVersion === "apps/v1" && o.kind === "Deployment");

  /** The pod spec a Destination's ref reaches: a Knative Service's revision, or the Deployment behind a core Service. */
  const podSpecBehind = (obj: K8sObject, at: (string | number)[], ref: Rec | undefined): Rec | undefined => {
    if (!isRec(ref)) return undefined;
    if (ref.apiVersion === "serving.knative.dev/v1" && ref.kind === "Service") {
      const svc = find("serving.knative.dev/v1", "Service", ref.name);
      if (!svc) add(obj, [...at, "ref", "name"], `no Knative Service ${ref.name} among the objects applied`);
      return (svc?.spec as Rec | undefined)?.template?.spec;
    }
    if (ref.apiVersion === "v1" && ref.kind === "Service") {
      const svc = find("v1", "Service", ref.name);
      if (!svc) {
        add(obj, [...at, "ref", "name"], `no Service ${ref.name} among the objects applied`);
        return undefined;
      }
      const selector = ((svc.spec as Rec | undefined)?.selector ?? {}) as Record<string, string>;
      const dep = deployments.find((d) => Object.entries(selector).every(([k, v]) => (d.spec as Rec)?.template?.metadata?.labels?.[k] === v));
      if (!dep || Object.keys(selector).length === 0) add(obj, [...at, "ref", "name"], `Service ${ref.name} selects no Deployment's pods`);
      return (dep?.spec as Rec | undefined)?.template?.spec;
    }
    add(obj, [...at, "ref"], `expected a Knative Service or a Service, got ${ref.apiVersion} ${ref.kind}`);
    return undefined;
  };

  const checkCollector = (obj: K8sObject, at: (string | number)[], dest: Rec | undefined, what: string) => {
    if (!isRec(dest)) {
      add(obj, at, `${what}: missing (it must be the results collector, ${ASYNC_PATHS.results})`);
      return;
    }
    if (dest.uri !== ASYNC_PATHS.results) add(obj, [...at, "uri"], `${what} must be the results collector: uri ${ASYNC_PATHS.results} relative to the async Service, got ${JSON.stringify(dest.uri)}`);
    const spec = podSpecBehind(obj, at, dest.ref);
    const server = spec ? asyncContainer(spec) : undefined;
    if (spec && (!server || !collectsResults(server))) add(obj, [...at, "ref"], `${what}: ${dest.ref?.name} does not run the results collector (${ENV.asyncInference}=true, ${ENV.resultsCollector} not false)`);
    const ksvc = isRec(dest.ref) && dest.ref.kind === "Service" && dest.ref.apiVersion === "serving.knative.dev/v1" ? find("serving.knative.dev/v1", "Service", dest.ref.name) : undefined;
    if (ksvc && ksvc.metadata?.labels?.[VISIBILITY_LABEL] !== CLUSTER_LOCAL) {
      add(obj, [...at, "ref"], `${what}: ${dest.ref.name} is public; the results collector must run in a cluster-local Knative Service (label ${VISIBILITY_LABEL}: ${CLUSTER_LOCAL})`, "policy");
    }
  };

  // The collector never on a public URL: a client could post results through the ingress.
  for (const ksvc of objects.filter((o) => o.apiVersion === "serving.knative.dev/v1" && o.kind === "Service")) {
    if (ksvc.metadata?.labels?.[VISIBILITY_LABEL] === CLUSTER_LOCAL) continue;
    const spec = (ksvc.spec as Rec | undefined)?.template?.spec;
    const server = isRec(spec) ? asyncContainer(spec) : undefined;
    if (server && collectsResults(server)) {
      add(ksvc, "spec.template.spec.containers", `runs the results collector (${ASYNC_PATHS.results}) on a public URL: set ${ENV.resultsCollector}=false here and run it in a cluster-local Service`, "policy");
    }
  }

  // RESULTS_TOKEN: from a Secret, one and the same in every async runtime (a shared secret).
  const tokenSources = new Map<string, K8sObject>();
  for (const { obj, base, spec } of podSpecs(objects)) {
    for (const [ci, container] of ((spec.containers as Rec[] | undefined) ?? []).entries()) {
      if (envValue(container, ENV.asyncInference) !== "true") continue;
      const e = envOf(container, ENV.resultsToken);
      const at = [...base, "containers", ci, "env"];
      if (!e) add(obj, at, `${ENV.resultsToken} is unset: with a Broker the runtime refuses to start (the results path's shared secret)`, "policy");
      else if (e.value !== undefined) add(obj, at, `${ENV.resultsToken} is written in the manifest: take it from a Secret (valueFrom.secretKeyRef)`, "policy");
      else if (e.valueFrom?.secretKeyRef) tokenSources.set(JSON.stringify({ name: e.valueFrom.secretKeyRef.name, key: e.valueFrom.secretKeyRef.key }), obj);
    }
  }
  if (tokenSources.size > 1) {
    for (const [source, obj] of tokenSources) add(obj, "spec.template.spec.containers", `${ENV.resultsToken} comes from ${source}, but the runtimes read it from ${tokenSources.size} different Secret keys: the worker's token would not be the collector's`, "policy");
  }

  // Brokers and their configuration.
  for (const broker of objects.filter((o) => o.apiVersion === "eventing.knative.dev/v1" && o.kind === "Broker")) {
    const config = (broker.spec as Rec | undefined)?.config as Rec | undefined;
    if (config?.kind === "RabbitmqBrokerConfig" && !find(RABBITMQ_BROKER_CONFIG_API, "RabbitmqBrokerConfig", config.name)) {
      add(broker, "spec.config.name", `no RabbitmqBrokerConfig ${config.name} among the objects applied`);
    }
    const dls = (broker.spec as Rec | undefined)?.delivery?.deadLetterSink;
    if (dls) checkCollector(broker, ["spec", "delivery", "deadLetterSink"], dls, "the Broker's dead-letter sink");
  }

  // Triggers: their Broker, their subscriber, their dead-letter sink.
  const triggers = objects.filter((o) => o.apiVersion === "eventing.knative.dev/v1" && o.kind === "Trigger");
  for (const t of triggers) {
    const spec = (t.spec ?? {}) as Rec;
    if (!find("eventing.knative.dev/v1", "Broker", spec.broker)) add(t, "spec.broker", `no Broker ${spec.broker} among the objects applied`);
    const type = spec.filter?.attributes?.type;
    if (type === REQUEST_EVENT_TYPE) {
      if (spec.subscriber?.uri !== undefined && spec.subscriber.uri !== "/") add(t, "spec.subscriber.uri", `the worker takes requests at POST /, got ${JSON.stringify(spec.subscriber.uri)}`);
      const pod = podSpecBehind(t, ["spec", "subscriber"], spec.subscriber?.ref);
      if (pod && !asyncContainer(pod)) add(t, "spec.subscriber.ref", `${spec.subscriber.ref.name} does not run the async worker (${ENV.asyncInference}=true)`);
      checkCollector(t, ["spec", "delivery", "deadLetterSink"], spec.delivery?.deadLetterSink, "the request Trigger's dead-letter sink");
    } else if (type === RESPONSE_EVENT_TYPE) {
      checkCollector(t, ["spec", "subscriber"], spec.subscriber, "the result Trigger's subscriber");
    } else {
      add(t, "spec.filter.attributes.type", `filter on ${REQUEST_EVENT_TYPE} or ${RESPONSE_EVENT_TYPE}: an unfiltered Trigger into the runtime would loop its replies back`);
    }
  }

  // Pod templates: Secrets they read, the Broker address they publish to.
  const brokers = objects.filter((o) => o.kind === "Broker");
  for (const { obj, base, spec } of podSpecs(objects)) {
    for (const list of ["initContainers", "containers"] as const) {
      for (const [ci, container] of ((spec[list] as Rec[] | undefined) ?? []).entries()) {
        const at = [...base, list, ci];
        const names: string[] = [];
        for (const [ei, e] of ((container.env as Rec[] | undefined) ?? []).entries()) {
          const ref = e.valueFrom?.secretKeyRef;
          if (ref) {
            const template = templates.find((s) => s.name === ref.name);
            if (!template) add(obj, [...at, "env", ei, "valueFrom", "secretKeyRef", "name"], `${e.name}: no Secret template ${ref.name} (knative/platform/secrets/)`);
            else if (!template.keys.includes(ref.key)) add(obj, [...at, "env", ei, "valueFrom", "secretKeyRef", "key"], `${e.name}: the Secret template ${ref.name} has no key ${ref.key} (it has ${template.keys.join(", ")})`);
            if (ref.optional === true) add(obj, [...at, "env", ei, "valueFrom", "secretKeyRef", "optional"], `${e.name} must not be optional: without it the runtime would silently fall back to an in-process store`, "policy");
          }
          for (const m of String(e.value ?? "").matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
            if (!names.includes(m[1]!)) add(obj, [...at, "env", ei, "value"], `$(${m[1]}) is not defined before ${e.name}: the kubelet leaves it unexpanded`);
          }
          names.push(e.name);
        }
        if (envValue(container, ENV.asyncInference) === "true") {
          for (const k of [ENV.databaseUrl, ENV.redisUrl]) {
            const e = envOf(container, k);
            if (!e) add(obj, [...at, "env"], `${k} is unset: the runtime would use an in-process store, lost with the pod`, "policy");
            else if (e.value !== undefined) add(obj, [...at, "env"], `${k} is written in the manifest: take it from a Secret (valueFrom.secretKeyRef)`, "policy");
          }
          const sink = envValue(container, ENV.asyncSink);
          const expected = brokers.map((b) =>
            b.metadata?.annotations?.[BROKER_CLASS_ANNOTATION] === RABBITMQ_BROKER_CLASS
              ? `http://${b.metadata?.name}-broker-ingress.$(${ENV.namespace}).svc.cluster.local`
              : `http://broker-ingress.knative-eventing.svc.cluster.local/$(${ENV.namespace})/${b.metadata?.name}`,
          );
          if (sink === undefined) add(obj, [...at, "env"], `${ENV.asyncSink} is unset: queued requests would stay in the pod (K_SINK aside)`);
          else if (!expected.includes(sink)) add(obj, [...at, "env"], `${ENV.asyncSink}=${sink} is not the address of a Broker applied here (${expected.join(" or ") || "none"})`);
        }
      }
    }
  }

  // The migration Job: same image and database as the runtime it migrates for.
  const asyncServers = podSpecs(objects).filter((p) => p.obj.kind !== "Job").map((p) => asyncContainer(p.spec)).filter((c): c is Rec => c !== undefined);
  for (const job of objects.filter((o) => o.apiVersion === "batch/v1" && o.kind === "Job")) {
    const container = ((job.spec as Rec)?.template?.spec?.containers ?? [])[0] as Rec | undefined;
    if (!container) continue;
    const db = envOf(container, ENV.databaseUrl)?.valueFrom?.secretKeyRef;
    for (const server of asyncServers) {
      if (container.image !== server.image) add(job, "spec.template.spec.containers[0].image", `runs ${container.image}, the runtime runs ${server.image}: migrate with the release you run`);
      const serverDb = envOf(server, ENV.databaseUrl)?.valueFrom?.secretKeyRef;
      if (JSON.stringify(db) !== JSON.stringify(serverDb)) add(job, "spec.template.spec.containers[0].env", `${ENV.databaseUrl} comes from ${JSON.stringify(db)}, the runtime's from ${JSON.stringify(serverDb)}`);
    }
  }

  // Services in front of Deployments.
  for (const svc of objects.filter((o) => o.apiVersion === "v1" && o.kind === "Service")) {
    const spec = (svc.spec ?? {}) as Rec;
    const selector = (spec.selector ?? {}) as Record<string, string>;
    const dep = deployments.find((d) => Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => (d.spec as Rec)?.template?.metadata?.labels?.[k] === v));
    if (!dep) {
      add(svc, "spec.selector", "selects no Deployment's pods");
      continue;
    }
    const ports = ((dep.spec as Rec).template.spec.containers as Rec[]).flatMap((c) => (c.ports as Rec[] | undefined) ?? []);
    for (const [i, p] of ((spec.ports as Rec[] | undefined) ?? []).entries()) {
      const target = p.targetPort ?? p.port;
      if (!ports.some((cp) => cp.name === target || cp.containerPort === target)) add(svc, ["spec", "ports", i, "targetPort"], `no container port ${JSON.stringify(target)} in Deployment ${dep.metadata?.name}`);
    }
  }

  // KEDA: the scale target, the authentication, its Secret, the queue.
  for (const so of objects.filter((o) => o.apiVersion === "keda.sh/v1alpha1" && o.kind === "ScaledObject")) {
    const spec = (so.spec ?? {}) as Rec;
    const target = spec.scaleTargetRef ?? {};
    const kind = target.kind ?? "Deployment";
    const apiVersion = target.apiVersion ?? "apps/v1";
    const dep = find(apiVersion, kind, target.name);
    if (!dep) add(so, "spec.scaleTargetRef", `no ${kind} ${target.name} (${apiVersion}) among the objects applied`);
    if (kind === "Service" && apiVersion === "serving.knative.dev/v1") add(so, "spec.scaleTargetRef", "a Knative Service has no /scale subresource: KEDA cannot scale it");
    // The request Trigger that delivers to the scaled Deployment.
    const fed = triggers.filter((t) => {
      const ref = (t.spec as Rec)?.subscriber?.ref;
      if (ref?.apiVersion !== "v1" || ref?.kind !== "Service") return false;
      const svc = find("v1", "Service", ref.name);
      const selector = ((svc?.spec as Rec | undefined)?.selector ?? {}) as Record<string, string>;
      return dep !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => (dep.spec as Rec)?.template?.metadata?.labels?.[k] === v);
    });
    if (dep && fed.length === 0) add(so, "spec.scaleTargetRef", `no Trigger delivers to ${kind} ${target.name}: KEDA would scale a worker that gets no events`);
    for (const [i, trig] of ((spec.triggers as Rec[] | undefined) ?? []).entries()) {
      const auth = trig.authenticationRef;
      if (auth) {
        const ta = find("keda.sh/v1alpha1", auth.kind ?? "TriggerAuthentication", auth.name);
        if (!ta) add(so, ["spec", "triggers", i, "authenticationRef"], `no ${auth.kind ?? "TriggerAuthentication"} ${auth.name} among the objects applied`);
        for (const [ri, r] of (((ta?.spec as Rec | undefined)?.secretTargetRef as Rec[] | undefined) ?? []).entries()) {
          const template = templates.find((s) => s.name === r.name);
          if (!template) add(ta!, ["spec", "secretTargetRef", ri, "name"], `no Secret template ${r.name} (knative/platform/secrets/)`);
          else if (!template.keys.includes(r.key)) add(ta!, ["spec", "secretTargetRef", ri, "key"], `the Secret template ${r.name} has no key ${r.key}`);
        }
      }
      if (trig.type !== "rabbitmq") continue;
      const meta = (trig.metadata ?? {}) as Rec;
      const matches = (name: string) => (meta.useRegex === "true" ? new RegExp(String(meta.queueName)).test(name) : meta.queueName === name);
      for (const t of fed) {
        const queue = triggerQueueName(SAMPLE_NAMESPACE, t.metadata!.name!, SAMPLE_UID);
        const safe = (f: () => boolean) => {
          try {
            return f();
          } catch {
            return false;
          }
        };
        if (!safe(() => matches(queue))) add(so, ["spec", "triggers", i, "metadata", "queueName"], `does not match the queue eventing-rabbitmq makes for Trigger ${t.metadata?.name} (e.g. ${queue})`);
        const dlq = triggerDeadLetterQueueName(SAMPLE_NAMESPACE, t.metadata!.name!, SAMPLE_UID);
        if (safe(() => matches(dlq))) add(so, ["spec", "triggers", i, "metadata", "queueName"], `also matches the Trigger's dead-letter queue (${dlq}): failed events would keep the worker up`);
      }
    }
  }
  return problems;
}
