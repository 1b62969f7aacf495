/**
 * Validates Kubernetes manifests the way a cluster with Knative Serving, KServe
 * and prometheus-operator would, before anything is applied:
 *
 * 1. custom resources against their real CRD schemas (crds.ts), core kinds
 *    against Kubernetes' schemas and field lists (core.ts);
 * 2. Knative's admission-webhook rules (knative.ts) given the feature flags of
 *    config-features, KServe's (kserve.ts);
 * 3. the PromQL of alerts and dashboards (promql.ts);
 * 4. for the asynchronous-inference platform (platform.ts): structural checks of
 *    the kinds with no schema here (RabbitmqBrokerConfig, RabbitmqCluster),
 *    eventing-rabbitmq's webhook rules, KEDA's scaler metadata, and the
 *    references between the objects (with the Secret templates given as input).
 *
 * `npx tsx knative/validate/validate.ts [--features knative/config-features.yaml] FILE...`
 * validates files from the command line ("-" reads stdin, e.g. from `kubectl kustomize`).
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseAllDocuments } from "yaml";
import { PATHS } from "../../runtime/src/constants.js";
import { checkMetadata, validateCore } from "./core.js";
import { validateAgainstCrd } from "./crds.js";
import { isPrometheusDuration } from "./durations.js";
import { KNATIVE_SERVICE_API, validateKnativeService, type Features } from "./knative.js";
import { isKserve, validateKserve } from "./kserve.js";
import { BROKER_CLASS_ANNOTATION, RABBITMQ_BROKER_CLASS } from "../build/platform.js";
import { validateKeda, validatePlatformReferences, validateRabbitmqEventing, validateStructural } from "./platform.js";
import { describe, formatProblems, isRecord, type K8sObject, type Problem } from "./problems.js";
import { checkQuery } from "./promql.js";

export type { Problem } from "./problems.js";
export { formatProblems } from "./problems.js";

/** Every document of a YAML stream (empty documents skipped). Throws on YAML syntax errors. */
export function parseManifests(text: string, source = "input"): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    if (!isRecord(value)) throw new Error(`${source}: a document is not a mapping`);
    out.push(value as K8sObject);
  }
  return out;
}

/** The feature flags a config-features ConfigMap sets. */
export function featuresFrom(objects: K8sObject[]): Features {
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata?.name === "config-features");
  return (cm?.data as Features | undefined) ?? {};
}

function checkPrometheusRule(obj: K8sObject): Problem[] {
  const problems: Problem[] = [];
  const add = (path: string, message: string, rule = "promql") => problems.push({ object: describe(obj), path, message, rule });
  const groups = ((obj.spec as { groups?: unknown[] } | undefined)?.groups ?? []) as { name?: string; rules?: Record<string, any>[] }[];
  for (const [gi, g] of groups.entries()) {
    for (const [ri, r] of (g.rules ?? []).entries()) {
      const at = `spec.groups[${gi}].rules[${ri}]`;
      if (!r.alert === !r.record) add(at, "a rule has exactly one of alert and record", "schema");
      for (const m of checkQuery(String(r.expr ?? ""))) add(`${at}.expr`, m);
      if (r.for !== undefined && !isPrometheusDuration(String(r.for))) add(`${at}.for`, `not a Prometheus duration: "${r.for}"`);
      if (r.alert) {
        if (!["warning", "critical", "info"].includes(r.labels?.severity)) add(`${at}.labels.severity`, "alerts need a severity label (info, warning or critical)", "policy");
        if (!r.annotations?.summary || !r.annotations?.description) add(`${at}.annotations`, "alerts need summary and description annotations", "policy");
      }
    }
  }
  return problems;
}

function checkPodMonitor(obj: K8sObject): Problem[] {
  const problems: Problem[] = [];
  const endpoints = ((obj.spec as { podMetricsEndpoints?: Record<string, unknown>[] } | undefined)?.podMetricsEndpoints ?? []);
  for (const [i, e] of endpoints.entries()) {
    if (e.path !== PATHS.metrics) problems.push({ object: describe(obj), path: `spec.podMetricsEndpoints[${i}].path`, message: `the server serves metrics at ${PATHS.metrics}`, rule: "policy" });
    if (e.port !== "user-port") problems.push({ object: describe(obj), path: `spec.podMetricsEndpoints[${i}].port`, message: "Knative names the serving container's port user-port in its pods", rule: "policy" });
  }
  return problems;
}

/** Validates a set of objects applied together (ConfigMaps among them are used for envFrom checks). */
export function validateObjects(objects: K8sObject[], options: { features?: Features } = {}): Problem[] {
  const features = options.features ?? featuresFrom(objects);
  const configMaps = new Map<string, Record<string, string>>();
  for (const o of objects) if (o.kind === "ConfigMap" && o.metadata?.name && isRecord(o.data)) configMaps.set(o.metadata.name, o.data as Record<string, string>);
  const problems: Problem[] = [];
  for (const obj of objects) {
    if (!obj.apiVersion || !obj.kind) {
      problems.push({ object: describe(obj), path: "", message: "missing apiVersion or kind", rule: "schema" });
      continue;
    }
    const crd = validateAgainstCrd(obj);
    if (crd) {
      problems.push(...crd, ...checkMetadata(obj));
    } else {
      const core = validateCore(obj) ?? validateStructural(obj);
      if (!core) {
        problems.push({ object: describe(obj), path: "", message: `no schema known for ${obj.apiVersion} ${obj.kind}`, rule: "schema" });
        continue;
      }
      problems.push(...core);
    }
    if (obj.apiVersion === "eventing.knative.dev/v1" && (obj.kind === "Broker" || obj.kind === "Trigger")) problems.push(...validateRabbitmqEventing(obj));
    if (obj.apiVersion === "keda.sh/v1alpha1") problems.push(...validateKeda(obj));
    if (obj.apiVersion === KNATIVE_SERVICE_API && obj.kind === "Service") problems.push(...validateKnativeService(obj, features, configMaps));
    if (isKserve(obj)) problems.push(...validateKserve(obj, objects));
    if (obj.kind === "PrometheusRule") problems.push(...checkPrometheusRule(obj));
    if (obj.kind === "PodMonitor") problems.push(...checkPodMonitor(obj));
  }
  return problems;
}

/** The Grafana dashboard: every target's and template variable's PromQL. */
export function validateDashboard(dashboard: unknown): Problem[] {
  const problems: Problem[] = [];
  const d = dashboard as { title?: string; uid?: string; panels?: { title?: string; targets?: { expr?: string }[] }[]; templating?: { list?: { name: string; query?: unknown }[] } };
  const object = `Dashboard/${d.uid ?? "?"}`;
  if (!d.title || !d.uid) problems.push({ object, path: "", message: "a dashboard needs a title and a uid", rule: "schema" });
  for (const [pi, p] of (d.panels ?? []).entries()) {
    if (!p.targets?.length) problems.push({ object, path: `panels[${pi}]`, message: "panel without queries", rule: "schema" });
    for (const [ti, t] of (p.targets ?? []).entries()) {
      for (const m of checkQuery(t.expr ?? "", { grafana: true })) problems.push({ object, path: `panels[${pi}].targets[${ti}].expr`, message: m, rule: "promql" });
    }
  }
  for (const [vi, v] of (d.templating?.list ?? []).entries()) {
    const q = isRecord(v.query) ? (v.query.query as string | undefined) : undefined;
    const m = q ? /^label_values\((.+),\s*\w+\)$/.exec(q) : null;
    if (q && !m) problems.push({ object, path: `templating.list[${vi}]`, message: `unexpected variable query ${q}`, rule: "promql" });
    if (m) for (const msg of checkQuery(m[1]!, { grafana: true })) problems.push({ object, path: `templating.list[${vi}].query`, message: msg, rule: "promql" });
  }
  return problems;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let features: Features | undefined;
  const fi = args.indexOf("--features");
  if (fi >= 0) {
    features = featuresFrom(parseManifests(readFileSync(args[fi + 1]!, "utf8"), args[fi + 1]));
    args.splice(fi, 2);
  }
  const objects = args.flatMap((f) => parseManifests(readFileSync(f === "-" ? 0 : f, "utf8"), f));
  const problems = validateObjects(objects, { features });
  // The platform's references, when its RabbitMQ Broker is among the inputs; Secrets given as input count as the templates.
  if (objects.some((o) => o.kind === "Broker" && o.metadata?.annotations?.[BROKER_CLASS_ANNOTATION] === RABBITMQ_BROKER_CLASS)) {
    const secrets = objects.filter((o) => o.kind === "Secret");
    problems.push(...validatePlatformReferences(objects.filter((o) => o.kind !== "Secret"), secrets));
  }
  if (problems.length > 0) {
    process.stderr.write(`${formatProblems(problems)}\n`);
    process.exit(1);
  }
  process.stdout.write(`${objects.length} objects valid\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`validate: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
