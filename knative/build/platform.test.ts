/**
 * knative/platform (asynchronous inference): committed as generated; what `kubectl kustomize`
 * renders from each entry point is valid (Broker and Triggers against the real CRDs, the async
 * Service against the Knative CRD and webhook rules, Job/Deployment/Service/Secret against core
 * schemas, ScaledObject/TriggerAuthentication against KEDA's, RabbitmqBrokerConfig and
 * RabbitmqCluster structurally) and its references resolve; the runtime accepts the environment
 * it is given; and every structural and reference rule rejects a manifest that breaks it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "../../runtime/src/cloudevents/constants.js";
import { loadConfig } from "../../runtime/src/config.js";
import { ASYNC_PATHS, ENV } from "../../runtime/src/constants.js";
import { validateAgainstCrd } from "../validate/crds.js";
import { validateKnativeService } from "../validate/knative.js";
import { triggerDeadLetterQueueName, triggerQueueName, validatePlatformReferences } from "../validate/platform.js";
import type { K8sObject } from "../validate/problems.js";
import { featuresFrom, formatProblems, parseManifests, validateObjects } from "../validate/validate.js";
import { REPO_ROOT } from "./generate.js";
import { containerSecurityContext } from "./knative.js";
import {
  ASYNC,
  ASYNC_SINK_VALUE,
  MIGRATE_BIN,
  PARALLELISM_ANNOTATION,
  PLATFORM,
  REQUEST_PARALLELISM,
  REQUEST_QUEUE_PATTERN,
  SECRETS,
  platformFiles,
  rabbitmqBrokerConfig,
  rabbitmqCluster,
} from "./platform.js";
import { CONCURRENCY, IMAGE_CPU, IMAGE_UID } from "./settings.js";

const KUBECTL = process.env.KUBECTL ?? "kubectl";
const clone = <T>(v: T): T => structuredClone(v);
const file = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");

function kustomize(dir: string): K8sObject[] {
  try {
    return parseManifests(execFileSync(KUBECTL, ["kustomize", join(REPO_ROOT, dir)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }), dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error(`${KUBECTL} not found: the kustomize tests need kubectl (Debian: apt-get install kubernetes-client)`);
    throw new Error(`${KUBECTL} kustomize ${dir} failed: ${e.stderr ?? e.message}`);
  }
}

const SECRET_FILES = ["knative/platform/secrets/database.yaml", "knative/platform/secrets/redis.yaml", "knative/platform/secrets/results-token.yaml", "knative/platform/secrets/rabbitmq-keda.yaml"];
const secrets = () => SECRET_FILES.flatMap((p) => parseManifests(file(p), p));
const features = () => featuresFrom(parseManifests(file("knative/config-features.yaml")));

const byKind = (objects: K8sObject[], kind: string, name?: string, apiVersion?: string) =>
  objects.find((o) => o.kind === kind && (name === undefined || o.metadata?.name === name) && (apiVersion === undefined || o.apiVersion === apiVersion)) as any;
const asyncService = (objects: K8sObject[]) => byKind(objects, "Service", PLATFORM.service, "serving.knative.dev/v1");
const server = (podSpec: any) => podSpec.containers[0];

/** A container's environment as the kubelet would give it: ConfigMap, env, Secret values from the templates, $(VAR) expanded. */
function resolvedEnv(container: any, objects: K8sObject[], namespace = "inference"): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) Object.assign(env, (byKind(objects, "ConfigMap", from.configMapRef.name)?.data as Record<string, string>) ?? {});
  const templates = secrets();
  for (const e of container.env ?? []) {
    if (e.valueFrom?.fieldRef) env[e.name] = e.valueFrom.fieldRef.fieldPath === "metadata.namespace" ? namespace : "?";
    else if (e.valueFrom?.secretKeyRef) env[e.name] = (byKind(templates, "Secret", e.valueFrom.secretKeyRef.name) as any).stringData[e.valueFrom.secretKeyRef.key];
    else env[e.name] = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_m, v: string) => env[v] ?? `$(${v})`);
  }
  return env;
}

describe("knative/platform", () => {
  let base: K8sObject[];
  let keda: K8sObject[];
  beforeAll(() => {
    base = kustomize("knative/platform");
    keda = kustomize("knative/platform/keda");
  });

  it("is committed as generated (npm run manifests)", () => {
    for (const [path, content] of platformFiles()) expect(existsSync(join(REPO_ROOT, path)) ? file(path) : "(missing)", path).toBe(content);
  });

  it("kubectl kustomize knative/platform renders the RabbitMQ Broker, its config, both Triggers, the async Service, the migration Job: valid, references resolved", () => {
    expect(base.map((o) => `${o.kind}/${o.metadata?.name}`.replace(/-[a-z0-9]{10}$/, "-<hash>")).sort()).toEqual([
      "Broker/inference-async",
      "ConfigMap/inference-runtime-config-<hash>",
      `Job/${PLATFORM.migrationJob}`,
      "PersistentVolumeClaim/inference-runtime-models",
      `RabbitmqBrokerConfig/${PLATFORM.brokerConfig}`,
      `Service/${PLATFORM.service}`,
      `Service/${PLATFORM.resultsService}`,
      `Trigger/${PLATFORM.requestTrigger}`,
      `Trigger/${PLATFORM.resultTrigger}`,
    ]);
    expect(formatProblems(validateObjects(base, { features: features() }))).toBe("");
    expect(formatProblems(validatePlatformReferences(base, secrets()))).toBe("");
  });

  it("kubectl kustomize knative/platform/keda adds the worker Deployment, its Service, the ScaledObject and TriggerAuthentication, and retargets the request Trigger", () => {
    const kinds = keda.map((o) => o.kind).sort();
    expect(kinds).toEqual(["Broker", "ConfigMap", "Deployment", "Job", "PersistentVolumeClaim", "RabbitmqBrokerConfig", "ScaledObject", "Service", "Service", "Service", "Trigger", "Trigger", "TriggerAuthentication"]);
    expect(formatProblems(validateObjects(keda, { features: features() }))).toBe("");
    expect(formatProblems(validatePlatformReferences(keda, secrets()))).toBe("");
    const trigger = byKind(keda, "Trigger", PLATFORM.requestTrigger);
    expect(trigger.spec.subscriber).toEqual({ ref: { apiVersion: "v1", kind: "Service", name: PLATFORM.worker } });
    // Its dead letters still go to the cluster-local collector.
    expect(trigger.spec.delivery.deadLetterSink).toEqual({ ref: { apiVersion: "serving.knative.dev/v1", kind: "Service", name: PLATFORM.resultsService }, uri: ASYNC_PATHS.results });
    // The Deployment reads the same hash-suffixed ConfigMap as the Knative Service.
    const cm = byKind(keda, "ConfigMap");
    const worker = byKind(keda, "Deployment", PLATFORM.worker);
    expect(server(worker.spec.template.spec).envFrom[0].configMapRef.name).toBe(cm.metadata.name);
    expect(worker.spec.template.spec.initContainers[0].envFrom[0].configMapRef.name).toBe(cm.metadata.name);
    expect(worker.spec.replicas).toBeUndefined();
  });

  it("kubectl kustomize knative/platform/rabbitmq renders the example RabbitmqCluster the RabbitmqBrokerConfig names", () => {
    const objects = kustomize("knative/platform/rabbitmq");
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([`RabbitmqCluster/${PLATFORM.rabbitmqCluster}`]);
    expect(formatProblems(validateObjects(objects))).toBe("");
    expect((byKind(base, "RabbitmqBrokerConfig") as any).spec.rabbitmqClusterReference.name).toBe(objects[0]!.metadata!.name);
    expect((objects[0]!.spec as any).replicas).toBe(3);
  });

  it("no entry point renders a Secret: the templates are created by hand, never overwritten by kubectl apply -k", () => {
    for (const objects of [base, keda]) expect(objects.filter((o) => o.kind === "Secret")).toEqual([]);
    for (const [path, content] of platformFiles()) {
      if (!path.endsWith("kustomization.yaml")) continue;
      const k = parse(content) as Record<string, unknown>;
      expect(k.secretGenerator, path).toBeUndefined();
      for (const entry of [...((k.resources as string[]) ?? []), ...((k.bases as string[]) ?? [])]) expect(entry, path).not.toMatch(/secret/);
    }
  });

  it("the Secret templates are valid Secrets with obvious placeholders, in the format the runtime checks", () => {
    const templates = secrets();
    expect(formatProblems(validateObjects(templates))).toBe("");
    expect(templates.map((s) => s.metadata?.name)).toEqual([SECRETS.database.name, SECRETS.redis.name, SECRETS.results.name, SECRETS.keda.name]);
    for (const [path, content] of [...platformFiles()].filter(([p]) => p.includes("/secrets/"))) {
      expect(content, path).toMatch(/TEMPLATE:/);
      expect(content, path).toMatch(/kubectl create secret generic/);
    }
    for (const s of templates) for (const v of Object.values((s as any).stringData as Record<string, string>)) expect(v).toMatch(/USER|PASSWORD|HOST|REPLACE/);
    // The placeholders have the shape the runtime's configuration accepts (a real value is a drop-in).
    const { config } = loadConfig([], { [ENV.databaseUrl]: SECRETS.database.placeholder, [ENV.redisUrl]: SECRETS.redis.placeholder, [ENV.resultsToken]: SECRETS.results.placeholder });
    expect(config.resultsToken).toBe(SECRETS.results.placeholder);
    expect(config.databaseUrl).toBe(SECRETS.database.placeholder);
    expect(config.redisUrl).toBe(SECRETS.redis.placeholder);
  });

  it("the runtime accepts the async Service's environment: async on, Secrets for the stores, the RabbitMQ Broker's own ingress as ASYNC_SINK", () => {
    const container = server(asyncService(base).spec.template.spec);
    const { config } = loadConfig([], resolvedEnv(container, base));
    expect(config.asyncInference).toBe(true);
    expect(config.databaseUrl).toBe(SECRETS.database.placeholder);
    expect(config.redisUrl).toBe(SECRETS.redis.placeholder);
    expect(config.asyncSink).toBe(`http://${PLATFORM.broker}-broker-ingress.inference.svc.cluster.local`);
    expect(config.userHeader).toBe(ASYNC.userHeader);
    expect(config.quotaRequests).toBe(ASYNC.quota.requests);
    expect(config.quotaUsers).toEqual(ASYNC.quotaUsers);
    // The public async Service never collects results; the cluster-local results Service does, with the same token.
    expect(config.resultsCollector).toBe(false);
    expect(config.resultsToken).toBe(SECRETS.results.placeholder);
    expect(container.env.find((e: any) => e.name === ENV.resultsToken).valueFrom.secretKeyRef).toEqual({ name: SECRETS.results.name, key: SECRETS.results.key });
    const results = server(byKind(base, "Service", PLATFORM.resultsService, "serving.knative.dev/v1").spec.template.spec);
    const r = loadConfig([], resolvedEnv(results, base)).config;
    expect(r).toMatchObject({ asyncInference: true, resultsCollector: true, resultsToken: SECRETS.results.placeholder, databaseUrl: SECRETS.database.placeholder });
    expect(byKind(base, "Service", PLATFORM.resultsService, "serving.knative.dev/v1").metadata.labels["networking.knative.dev/visibility"]).toBe("cluster-local");
    // Never a literal connection string; POD_NAMESPACE defined before ASYNC_SINK expands it.
    const names = container.env.map((e: any) => e.name);
    expect(container.env.find((e: any) => e.name === ENV.databaseUrl).valueFrom.secretKeyRef).toEqual({ name: SECRETS.database.name, key: SECRETS.database.key });
    expect(container.env.find((e: any) => e.name === ENV.redisUrl).valueFrom.secretKeyRef).toEqual({ name: SECRETS.redis.name, key: SECRETS.redis.key });
    expect(names.indexOf(ENV.namespace)).toBeLessThan(names.indexOf(ENV.asyncSink));
    expect(container.env.find((e: any) => e.name === ENV.asyncSink).value).toBe(ASYNC_SINK_VALUE);
    // The KEDA worker: the same, without the collector.
    const worker = server(byKind(keda, "Deployment", PLATFORM.worker).spec.template.spec);
    const w = loadConfig([], resolvedEnv(worker, keda)).config;
    expect(w.asyncInference).toBe(true);
    expect(w.resultsCollector).toBe(false);
  });

  it("the async Service needs no Knative feature flag beyond config-features.yaml (secretKeyRef is ungated)", () => {
    const svc = asyncService(base);
    const enabled = new Set(Object.keys(features()));
    for (const p of validateKnativeService(svc, {})) {
      const m = /feature flag (\S+)|enable (kubernetes\.podspec-persistent-volume-write)/.exec(p.message);
      if (m) expect(enabled.has(m[1] ?? m[2]!), p.message).toBe(true);
    }
    const envWithoutFieldRef = clone(svc);
    server(envWithoutFieldRef.spec.template.spec).env = server(svc.spec.template.spec).env.filter((e: any) => !e.valueFrom?.fieldRef);
    expect(formatProblems(validateKnativeService(envWithoutFieldRef, {})).match(/secretKeyRef/)).toBeNull();
  });

  it("Broker: the RabbitMQ class, configured by the RabbitmqBrokerConfig (quorum queues), with a default delivery; Broker and Triggers valid against the CRDs", () => {
    const broker = byKind(base, "Broker");
    expect(broker.metadata.annotations["eventing.knative.dev/broker.class"]).toBe("RabbitMQBroker");
    expect(broker.spec.config).toEqual({ apiVersion: "eventing.knative.dev/v1alpha1", kind: "RabbitmqBrokerConfig", name: PLATFORM.brokerConfig });
    expect(rabbitmqBrokerConfig().spec).toEqual({ rabbitmqClusterReference: { name: rabbitmqCluster().metadata.name }, queueType: "quorum" });
    expect(broker.spec.delivery).toMatchObject({ retry: expect.any(Number), backoffPolicy: "exponential", deadLetterSink: { uri: ASYNC_PATHS.results } });
    for (const o of [broker, ...keda.filter((x) => x.kind === "Trigger")]) {
      const problems = validateAgainstCrd(o);
      expect(problems, `${o.kind} CRD`).toBeDefined();
      expect(formatProblems(problems!)).toBe("");
    }
  });

  it("Triggers: requests to the worker (POST /) with retries and the collector as dead-letter sink; replies to the collector; parallelism matches the worker's capacity", () => {
    const req = byKind(base, "Trigger", PLATFORM.requestTrigger);
    expect(req.spec.filter).toEqual({ attributes: { type: REQUEST_EVENT_TYPE } });
    expect(req.spec.subscriber).toEqual({ ref: { apiVersion: "serving.knative.dev/v1", kind: "Service", name: PLATFORM.service } });
    expect(req.spec.delivery).toMatchObject({ retry: expect.any(Number), backoffPolicy: "exponential", backoffDelay: expect.stringMatching(/^PT/) });
    expect(req.spec.delivery.deadLetterSink).toEqual({ ref: { apiVersion: "serving.knative.dev/v1", kind: "Service", name: PLATFORM.resultsService }, uri: ASYNC_PATHS.results });
    const res = byKind(base, "Trigger", PLATFORM.resultTrigger);
    expect(res.spec.filter).toEqual({ attributes: { type: RESPONSE_EVENT_TYPE } });
    // The collector is the cluster-local results Service, never the public async Service.
    expect(res.spec.subscriber).toEqual({ ref: { apiVersion: "serving.knative.dev/v1", kind: "Service", name: PLATFORM.resultsService }, uri: ASYNC_PATHS.results });
    // containerConcurrency x max-scale in flight: exactly what the worker's pods take at their limit.
    const annotations = asyncService(base).spec.template.metadata.annotations;
    expect(Number(req.metadata.annotations[PARALLELISM_ANNOTATION])).toBe(REQUEST_PARALLELISM);
    expect(REQUEST_PARALLELISM).toBe(asyncService(base).spec.template.spec.containerConcurrency * Number(annotations["autoscaling.knative.dev/max-scale"]));
    expect(byKind(keda, "ScaledObject").spec.maxReplicaCount).toBe(Number(annotations["autoscaling.knative.dev/max-scale"]));
  });

  it("the migration Job runs node /app/bin/migrate.js from the runtime's image, with the runtime's DATABASE_URL Secret and security context", () => {
    const job = byKind(base, "Job");
    const pod = job.spec.template.spec;
    const c = pod.containers[0];
    expect(c.image).toBe(IMAGE_CPU);
    expect(c.image).toBe(server(asyncService(base).spec.template.spec).image);
    expect(c.command).toEqual(["node", "/app/bin/migrate.js"]);
    expect(existsSync(join(REPO_ROOT, MIGRATE_BIN))).toBe(true);
    // Both images ship the entry point and the SQL files it applies (it finds them beside dist/).
    for (const dockerfile of ["Dockerfile", "Dockerfile.gpu"]) {
      const text = file(dockerfile);
      expect(text, dockerfile).toMatch(/^COPY bin\/ bin\/$/m);
      expect(text, dockerfile).toMatch(/^COPY runtime\/migrations\/ runtime\/migrations\/$/m);
    }
    expect(c.env).toEqual([{ name: ENV.databaseUrl, valueFrom: { secretKeyRef: { name: SECRETS.database.name, key: SECRETS.database.key } } }]);
    expect(["Never", "OnFailure"]).toContain(pod.restartPolicy);
    expect(job.spec.backoffLimit).toBeGreaterThan(0);
    expect(job.spec.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(c.securityContext).toEqual(containerSecurityContext());
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: IMAGE_UID, readOnlyRootFilesystem: true });
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it("KEDA watches the request Trigger's queue as eventing-rabbitmq names it, not its dead-letter queue nor the results' queue", () => {
    const so = byKind(keda, "ScaledObject");
    const meta = so.spec.triggers[0].metadata;
    expect(meta).toMatchObject({ protocol: "http", mode: "QueueLength", useRegex: "true", queueName: REQUEST_QUEUE_PATTERN, value: String(CONCURRENCY.containerConcurrency) });
    const re = new RegExp(REQUEST_QUEUE_PATTERN);
    const uid = "0b8e7c2a-1d3f-4e5a-8b6c-7d8e9f0a1b2c";
    expect(re.test(triggerQueueName("inference", PLATFORM.requestTrigger, uid))).toBe(true);
    expect(re.test(triggerQueueName("team-a", PLATFORM.requestTrigger, uid))).toBe(true);
    expect(re.test(triggerDeadLetterQueueName("inference", PLATFORM.requestTrigger, uid))).toBe(false);
    expect(re.test(triggerQueueName("inference", PLATFORM.resultTrigger, uid))).toBe(false);
    expect(so.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: PLATFORM.worker });
    expect(so.spec.minReplicaCount).toBe(0);
  });
});

describe("the platform checks reject broken manifests", () => {
  let base: K8sObject[];
  let keda: K8sObject[];
  beforeAll(() => {
    base = kustomize("knative/platform");
    keda = kustomize("knative/platform/keda");
  });

  /** Problems (validateObjects + references) of the rendered set after `edit`. */
  function problems(objects: K8sObject[], edit: (objects: any[]) => void, templates = secrets()): string {
    const copy = clone(objects) as any[];
    edit(copy);
    return formatProblems([...validateObjects(copy, { features: features() }), ...validatePlatformReferences(copy, templates)]);
  }
  const find = (objects: any[], kind: string, name?: string) => objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  const svc = (objects: any[]) => objects.find((o) => o.kind === "Service" && o.apiVersion === "serving.knative.dev/v1");
  const env = (objects: any[]) => svc(objects).spec.template.spec.containers[0].env as any[];
  const resultsEnv = (objects: any[]) => find(objects, "Service", PLATFORM.resultsService).spec.template.spec.containers[0].env as any[];

  const cases: [string, "base" | "keda", (o: any[]) => void, RegExp][] = [
    // RabbitmqBrokerConfig (structure, eventing-rabbitmq's webhook)
    ["a RabbitmqBrokerConfig with both a cluster name and a connectionSecret", "base", (o) => (find(o, "RabbitmqBrokerConfig").spec.rabbitmqClusterReference.connectionSecret = { name: "x" }), /exactly one of name \(a RabbitmqCluster\) and connectionSecret/],
    ["a RabbitmqBrokerConfig without rabbitmqClusterReference", "base", (o) => delete find(o, "RabbitmqBrokerConfig").spec.rabbitmqClusterReference, /rabbitmqClusterReference: required/],
    ["a RabbitmqBrokerConfig with an unknown queue type", "base", (o) => (find(o, "RabbitmqBrokerConfig").spec.queueType = "stream"), /queueType: must be quorum or classic/],
    ["a misspelt RabbitmqBrokerConfig field", "base", (o) => (find(o, "RabbitmqBrokerConfig").spec.queuetype = "quorum"), /spec\.queuetype: unknown field "queuetype"/],
    // Broker and Trigger (eventing-rabbitmq's webhook)
    ["a RabbitMQ Broker without spec.config", "base", (o) => delete find(o, "Broker").spec.config, /Broker\/inference-async spec\.config: a RabbitMQBroker needs spec\.config/],
    ["a RabbitMQ Broker configured by a ConfigMap", "base", (o) => (find(o, "Broker").spec.config = { apiVersion: "v1", kind: "ConfigMap", name: "x" }), /must be a RabbitmqBrokerConfig .* or a RabbitmqCluster/],
    ["a parallelism annotation out of range", "base", (o) => (find(o, "Trigger", PLATFORM.requestTrigger).metadata.annotations[PARALLELISM_ANNOTATION] = "1001"), /parallelism: must be an integer from 1 to 1000/],
    ["a parallelism annotation that is no number", "base", (o) => (find(o, "Trigger", PLATFORM.resultTrigger).metadata.annotations[PARALLELISM_ANNOTATION] = "many"), /parallelism: must be an integer from 1 to 1000, got "many"/],
    // References: Broker, Triggers
    ["a Broker naming a RabbitmqBrokerConfig that is not applied", "base", (o) => (find(o, "Broker").spec.config.name = "other"), /spec\.config\.name: no RabbitmqBrokerConfig other/],
    ["a Trigger on a Broker that is not applied", "base", (o) => (find(o, "Trigger", PLATFORM.resultTrigger).spec.broker = "default"), /spec\.broker: no Broker default/],
    ["the request Trigger delivering to a Service that is not applied", "base", (o) => (find(o, "Trigger", PLATFORM.requestTrigger).spec.subscriber.ref.name = "inference-runtime"), /no Knative Service inference-runtime among the objects applied/],
    ["the request Trigger delivering to a path other than the worker's", "base", (o) => (find(o, "Trigger", PLATFORM.requestTrigger).spec.subscriber.uri = "/v2/models/sentiment/infer"), /the worker takes requests at POST \//],
    ["the request Trigger's dead letters going elsewhere than the collector", "base", (o) => (find(o, "Trigger", PLATFORM.requestTrigger).spec.delivery.deadLetterSink.uri = "/dead"), /request Trigger's dead-letter sink must be the results collector/],
    ["the request Trigger without a dead-letter sink", "base", (o) => delete find(o, "Trigger", PLATFORM.requestTrigger).spec.delivery.deadLetterSink, /request Trigger's dead-letter sink: missing/],
    ["the result Trigger delivering to the worker's root", "base", (o) => delete find(o, "Trigger", PLATFORM.resultTrigger).spec.subscriber.uri, /result Trigger's subscriber must be the results collector/],
    ["the collector turned off on the Service the results go to", "base", (o) => (resultsEnv(o).find((e: any) => e.name === ENV.resultsCollector).value = "false"), /does not run the results collector/],
    // The results path: cluster-local collector, RESULTS_TOKEN from one Secret
    ["the collector on the public async Service", "base", (o) => (env(o).find((e: any) => e.name === ENV.resultsCollector).value = "true"), /runs the results collector \(\/api\/v1\/results\) on a public URL/],
    ["the collector's Service made public", "base", (o) => delete find(o, "Service", PLATFORM.resultsService).metadata.labels["networking.knative.dev/visibility"], /inference-runtime-async-results is public; the results collector must run in a cluster-local Knative Service/],
    ["the result Trigger delivering to the public async Service", "base", (o) => (find(o, "Trigger", PLATFORM.resultTrigger).spec.subscriber.ref.name = PLATFORM.service), /does not run the results collector/],
    ["RESULTS_TOKEN written in the manifest", "base", (o) => { const e = env(o).find((x: any) => x.name === ENV.resultsToken); delete e.valueFrom; e.value = "0123456789abcdef0123"; }, /RESULTS_TOKEN is written in the manifest: take it from a Secret/],
    ["RESULTS_TOKEN unset on the worker", "base", (o) => { const e = env(o); e.splice(e.findIndex((x: any) => x.name === ENV.resultsToken), 1); }, /RESULTS_TOKEN is unset: with a Broker the runtime refuses to start/],
    ["RESULTS_TOKEN from another Secret key on the collector than on the worker", "base", (o) => (resultsEnv(o).find((e: any) => e.name === ENV.resultsToken).valueFrom.secretKeyRef.key = "OTHER"), /different Secret keys: the worker's token would not be the collector's/],
    ["a Trigger without a type filter", "base", (o) => delete find(o, "Trigger", PLATFORM.resultTrigger).spec.filter, /an unfiltered Trigger into the runtime would loop/],
    ["a worker without asynchronous inference", "base", (o) => (env(o).find((e: any) => e.name === ENV.asyncInference).value = "false"), /does not run the async worker/],
    // References: Secrets and environment
    ["DATABASE_URL from a Secret with no template", "base", (o) => (env(o).find((e: any) => e.name === ENV.databaseUrl).valueFrom.secretKeyRef.name = "db"), /DATABASE_URL: no Secret template db/],
    ["REDIS_URL from a key the Secret template lacks", "base", (o) => (env(o).find((e: any) => e.name === ENV.redisUrl).valueFrom.secretKeyRef.key = "url"), /the Secret template inference-async-redis has no key url/],
    ["DATABASE_URL written in the manifest", "base", (o) => (env(o).find((e: any) => e.name === ENV.databaseUrl) as any).value = "postgresql://u:p@db/x", /DATABASE_URL is written in the manifest: take it from a Secret/],
    ["an optional Secret reference", "base", (o) => (env(o).find((e: any) => e.name === ENV.redisUrl).valueFrom.secretKeyRef.optional = true), /REDIS_URL must not be optional/],
    ["ASYNC_SINK in the channel-based Broker's form for a RabbitMQ Broker", "base", (o) => (env(o).find((e: any) => e.name === ENV.asyncSink).value = "http://broker-ingress.knative-eventing.svc.cluster.local/$(POD_NAMESPACE)/inference-async"), /ASYNC_SINK=.* is not the address of a Broker applied here/],
    ["ASYNC_SINK expanding a variable defined after it", "base", (o) => { const e = env(o); const i = e.findIndex((x: any) => x.name === ENV.namespace); e.push(e.splice(i, 1)[0]); }, /\$\(POD_NAMESPACE\) is not defined before ASYNC_SINK/],
    ["a migration Job on another image than the runtime's", "base", (o) => (find(o, "Job").spec.template.spec.containers[0].image = "registry.example.com/inference-runtime:0.0.9"), /migrate with the release you run/],
    // KEDA
    ["a ScaledObject scaling a Deployment that is not applied", "keda", (o) => (find(o, "ScaledObject").spec.scaleTargetRef.name = "worker"), /no Deployment worker \(apps\/v1\)/],
    ["a ScaledObject scaling the Knative Service", "keda", (o) => (find(o, "ScaledObject").spec.scaleTargetRef = { apiVersion: "serving.knative.dev/v1", kind: "Service", name: PLATFORM.service }), /a Knative Service has no \/scale subresource/],
    ["a ScaledObject whose worker gets no events", "keda", (o) => (find(o, "Trigger", PLATFORM.requestTrigger).spec.subscriber = { ref: { apiVersion: "serving.knative.dev/v1", kind: "Service", name: PLATFORM.service } }), /no Trigger delivers to Deployment/],
    ["a ScaledObject naming a TriggerAuthentication that is not applied", "keda", (o) => (find(o, "ScaledObject").spec.triggers[0].authenticationRef.name = "auth"), /no TriggerAuthentication auth/],
    ["a TriggerAuthentication reading a key the Secret template lacks", "keda", (o) => (find(o, "TriggerAuthentication").spec.secretTargetRef[0].key = "url"), /the Secret template inference-async-rabbitmq-keda has no key url/],
    ["a queue pattern that misses the Trigger's queue", "keda", (o) => (find(o, "ScaledObject").spec.triggers[0].metadata.queueName = `^${PLATFORM.requestTrigger}$`), /does not match the queue eventing-rabbitmq makes/],
    ["a queue pattern that also counts the dead-letter queue", "keda", (o) => (find(o, "ScaledObject").spec.triggers[0].metadata.queueName = PLATFORM.requestTrigger), /also matches the Trigger's dead-letter queue/],
    ["useRegex over AMQP", "keda", (o) => (find(o, "ScaledObject").spec.triggers[0].metadata.protocol = "amqp"), /useRegex needs protocol http/],
    ["a rabbitmq trigger without queueName", "keda", (o) => delete find(o, "ScaledObject").spec.triggers[0].metadata.queueName, /queueName: required/],
    ["a misspelt scaler parameter", "keda", (o) => (find(o, "ScaledObject").spec.triggers[0].metadata.queuename = "x"), /metadata\.queuename: unknown field/],
    ["a non-numeric target value", "keda", (o) => (find(o, "ScaledObject").spec.triggers[0].metadata.value = "four"), /value: must be a number in a string/],
    ["maxReplicaCount below minReplicaCount", "keda", (o) => Object.assign(find(o, "ScaledObject").spec, { minReplicaCount: 3, maxReplicaCount: 2 }), /maxReplicaCount 2 is below minReplicaCount 3/],
    ["a ScaledObject field KEDA does not know", "keda", (o) => (find(o, "ScaledObject").spec.maxReplicas = 3), /spec\.maxReplicas: unknown field/],
    ["a ScaledObject without scaleTargetRef (KEDA's schema)", "keda", (o) => delete find(o, "ScaledObject").spec.scaleTargetRef, /must have required property scaleTargetRef/],
    ["a worker Service that selects no pods", "keda", (o) => (find(o, "Service", PLATFORM.worker).spec.selector = { app: "nothing" }), /Service\/inference-runtime-async-worker spec\.selector: selects no Deployment's pods/],
    ["a worker Service on a port the container lacks", "keda", (o) => (find(o, "Service", PLATFORM.worker).spec.ports[0].targetPort = "grpc"), /no container port "grpc"/],
    // Core schemas of the new kinds
    ["a Job with a misspelt field", "base", (o) => (find(o, "Job").spec.backofLimit = 4), /spec\.backofLimit: unknown field "backofLimit"/],
    ["a Deployment without a selector", "keda", (o) => delete find(o, "Deployment").spec.selector, /selector/],
  ];

  it.each(cases)("%s", (_name, which, edit, expected) => {
    expect(problems(which === "base" ? base : keda, edit)).toMatch(expected);
  });

  it("structure: a RabbitmqCluster with an unknown field, an even node count, a misspelt resources field", () => {
    const cluster = clone(rabbitmqCluster()) as any;
    cluster.spec.replica = 3;
    cluster.spec.replicas = 2;
    cluster.spec.resources.limit = { cpu: "1" };
    const out = formatProblems(validateObjects([cluster]));
    expect(out).toMatch(/spec\.replica: unknown field "replica"/);
    expect(out).toMatch(/spec\.replicas: an even node count/);
    expect(out).toMatch(/spec\.resources\.limit: unknown field "limit"/);
  });

  it("a Secret template that loses its key breaks the references that use it", () => {
    const templates = secrets().map((s) => clone(s) as any);
    templates[0].stringData = { URL: "postgresql://USER:PASSWORD@HOST/DB" };
    expect(formatProblems(validatePlatformReferences(base, templates))).toMatch(/DATABASE_URL: the Secret template inference-async-db has no key DATABASE_URL/);
    expect(formatProblems(validatePlatformReferences(base, []))).toMatch(/no Secret template inference-async-db/);
  });
});
