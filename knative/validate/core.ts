/**
 * Core Kubernetes types (ConfigMap, PersistentVolumeClaim, Secret, Service,
 * Deployment, Job, PodSpec parts), prometheus-operator's PodMonitor/PrometheusRule
 * and KEDA's ScaledObject/TriggerAuthentication.
 *
 * Two sources, because neither covers everything:
 * - `kubernetes-models` (and `@kubernetes-models/prometheus-operator`) ship
 *   validators compiled from the Kubernetes OpenAPI schema and from
 *   prometheus-operator's CRDs: types, required fields, enums, formats such as
 *   resource quantities. Their schemas accept unknown fields.
 * - `@kubernetes/client-node`'s models list every field of every core type
 *   (attributeTypeMap), which gives Strict field validation: an unknown or
 *   misspelt field is an error, as with `kubectl apply`.
 * - `@kubernetes-models/keda`: validators compiled from KEDA's CRDs (types,
 *   required fields); unknown fields are checked in platform.ts.
 */
import * as k8s from "@kubernetes/client-node";
import { PodMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Job } from "kubernetes-models/batch/v1/Job";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { PodSpec } from "kubernetes-models/v1/PodSpec";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { describe, isRecord, joinPath, type K8sObject, type Problem } from "./problems.js";

interface Attribute {
  name: string;
  baseName: string;
  type: string;
}
type ModelClass = { attributeTypeMap: Attribute[] };

const models = k8s as unknown as Record<string, ModelClass | undefined>;

function primitiveOk(type: string, value: unknown): boolean {
  switch (type) {
    case "string":
    case "Date":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "boolean":
      return typeof value === "boolean";
    case "IntOrString":
      return typeof value === "string" || typeof value === "number";
    default:
      return true;
  }
}

/**
 * Unknown fields and wrong primitive types in `value`, read as the client-node
 * model `type` (e.g. "V1PodSpec", "Array<V1Container>", "{ [key: string]: string; }").
 */
export function checkFields(value: unknown, type: string, path: (string | number)[] = []): { path: string; message: string }[] {
  if (value === undefined || value === null) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return [{ path: joinPath(path), message: `expected a list` }];
    return value.flatMap((v, i) => checkFields(v, array[1]!, [...path, i]));
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (!isRecord(value)) return [{ path: joinPath(path), message: `expected a map` }];
    return Object.entries(value).flatMap(([k, v]) => checkFields(v, map[1]!, [...path, k]));
  }
  const model = models[type];
  if (!model?.attributeTypeMap) {
    return primitiveOk(type, value) ? [] : [{ path: joinPath(path), message: `expected ${type === "IntOrString" ? "an integer or a string" : `a ${type}`}, got ${JSON.stringify(value)}` }];
  }
  if (!isRecord(value)) return [{ path: joinPath(path), message: `expected an object (${type})` }];
  const byName = new Map(model.attributeTypeMap.map((a) => [a.baseName, a]));
  const out: { path: string; message: string }[] = [];
  for (const [key, v] of Object.entries(value)) {
    const attr = byName.get(key);
    if (!attr) out.push({ path: joinPath([...path, key]), message: `unknown field "${key}" (not in ${type.replace(/^V1/, "")})` });
    else out.push(...checkFields(v, attr.type, [...path, key]));
  }
  return out;
}

interface Validatable {
  validate(): void;
}
type ModelCtor = new (data: never) => Validatable;

/** Runs a kubernetes-models validator; returns its messages (ajv-style, "data/spec/... must ..."). */
export function modelErrors(Model: ModelCtor, data: unknown): string[] {
  try {
    new Model(data as never).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: { instancePath?: string; message?: string }[] }).errors;
    if (errors?.length) return errors.map((e) => `${(e.instancePath ?? "").replace(/^\//, "").replace(/\//g, ".") || "(root)"} ${e.message ?? ""}`.trim());
    return [(err as Error).message];
  }
}

const CORE: Record<string, { model: ModelCtor; fields?: string }> = {
  "v1/ConfigMap": { model: ConfigMap as unknown as ModelCtor, fields: "V1ConfigMap" },
  "v1/PersistentVolumeClaim": { model: PersistentVolumeClaim as unknown as ModelCtor, fields: "V1PersistentVolumeClaim" },
  "v1/Secret": { model: Secret as unknown as ModelCtor, fields: "V1Secret" },
  "v1/ServiceAccount": { model: ServiceAccount as unknown as ModelCtor, fields: "V1ServiceAccount" },
  "v1/Service": { model: Service as unknown as ModelCtor, fields: "V1Service" },
  "apps/v1/Deployment": { model: Deployment as unknown as ModelCtor, fields: "V1Deployment" },
  "batch/v1/Job": { model: Job as unknown as ModelCtor, fields: "V1Job" },
  "keda.sh/v1alpha1/ScaledObject": { model: ScaledObject as unknown as ModelCtor },
  "keda.sh/v1alpha1/TriggerAuthentication": { model: TriggerAuthentication as unknown as ModelCtor },
  "monitoring.coreos.com/v1/PodMonitor": { model: PodMonitor as unknown as ModelCtor },
  "monitoring.coreos.com/v1/PrometheusRule": { model: PrometheusRule as unknown as ModelCtor },
};

/** Problems of a core (or prometheus-operator) object; undefined when the kind is not one of those known here. */
export function validateCore(obj: K8sObject): Problem[] | undefined {
  const entry = CORE[`${obj.apiVersion}/${obj.kind}`];
  if (!entry) return undefined;
  const problems: Problem[] = modelErrors(entry.model, obj).map((m) => ({ object: describe(obj), path: "", message: m, rule: "schema" }));
  if (entry.fields) {
    for (const f of checkFields(obj, entry.fields)) problems.push({ object: describe(obj), path: f.path, message: f.message, rule: "fields" });
  } else {
    problems.push(...checkMetadata(obj));
  }
  return problems;
}

/** ObjectMeta of any object: known fields, valid types, a name. */
export function checkMetadata(obj: K8sObject): Problem[] {
  const problems: Problem[] = [];
  if (!obj.metadata?.name) problems.push({ object: describe(obj), path: "metadata.name", message: "missing name", rule: "schema" });
  for (const f of checkFields(obj.metadata, "V1ObjectMeta", ["metadata"])) problems.push({ object: describe(obj), path: f.path, message: f.message, rule: "fields" });
  return problems;
}

/** A core PodSpec (with Knative's or KServe's extra revision fields removed by the caller). */
export function validatePodSpec(spec: unknown, pathPrefix: string): { path: string; message: string }[] {
  const schema = modelErrors(PodSpec as unknown as ModelCtor, spec).map((m) => ({ path: pathPrefix, message: `PodSpec: ${m}` }));
  const fields = checkFields(spec, "V1PodSpec").map((f) => ({ path: f.path ? `${pathPrefix}.${f.path}` : pathPrefix, message: f.message }));
  return [...schema, ...fields];
}

export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
