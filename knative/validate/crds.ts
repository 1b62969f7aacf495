/**
 * Validation against the real CRD schemas (../shared/crds: Knative Service,
 * Broker, Trigger; KServe InferenceService, ServingRuntime,
 * ClusterServingRuntime), with ajv.
 *
 * The API server validates a custom resource against its openAPIV3Schema, and
 * `kubectl apply` (field validation Strict, the default since Kubernetes 1.27)
 * also rejects fields the schema does not declare. ajv knows neither the
 * `x-kubernetes-*` keywords nor that rule, so the schema is adapted first:
 * every object schema that lists its properties and does not carry
 * `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`.
 * CEL rules (`x-kubernetes-validations`) are not evaluated.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import { parseAllDocuments } from "yaml";
import { describe, isRecord, type K8sObject, type Problem } from "./problems.js";

/** Where the CRDs are: $CRDS_DIR, or shared/crds beside the repository. */
export function crdsDir(): string {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
  return process.env.CRDS_DIR ?? resolve(repo, "../shared/crds");
}

type Schema = Record<string, unknown>;

interface CrdVersion {
  group: string;
  kind: string;
  version: string;
  scope: "Namespaced" | "Cluster";
  schema: Schema;
}

/** Adds additionalProperties: false where Strict field validation would reject unknown fields. */
export function strictSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strictSchema);
  if (!isRecord(node)) return node;
  const out: Schema = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "properties" && isRecord(v)) out[k] = Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, strictSchema(pv)]));
    else if (["items", "additionalProperties", "not"].includes(k) || ["allOf", "anyOf", "oneOf"].includes(k)) out[k] = strictSchema(v);
    else out[k] = v;
  }
  if (isRecord(out.properties) && out.additionalProperties === undefined && out["x-kubernetes-preserve-unknown-fields"] !== true) {
    out.additionalProperties = false;
  }
  return out;
}

let cache: { dir: string; versions: CrdVersion[] } | undefined;

/** Every served version of every CRD in the directory. Throws with the path when the directory is missing. */
export function loadCrds(dir = crdsDir()): CrdVersion[] {
  if (cache?.dir === dir) return cache.versions;
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"));
  } catch {
    throw new Error(`CRD directory ${dir} not found: the manifest tests need the real CRDs (shared/crds beside the repository, or set CRDS_DIR)`);
  }
  const versions: CrdVersion[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
      const crd = doc.toJS() as { kind?: string; spec?: { group: string; scope: "Namespaced" | "Cluster"; names: { kind: string }; versions: { name: string; served: boolean; schema?: { openAPIV3Schema: Schema } }[] } };
      if (crd?.kind !== "CustomResourceDefinition" || !crd.spec) continue;
      for (const v of crd.spec.versions) {
        if (!v.served || !v.schema) continue;
        versions.push({ group: crd.spec.group, kind: crd.spec.names.kind, version: v.name, scope: crd.spec.scope, schema: v.schema.openAPIV3Schema });
      }
    }
  }
  cache = { dir, versions };
  return versions;
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const compiled = new Map<string, ValidateFunction>();

export function findCrd(apiVersion: string | undefined, kind: string | undefined): CrdVersion | undefined {
  if (!apiVersion?.includes("/")) return undefined;
  const [group, version] = apiVersion.split("/");
  return loadCrds().find((c) => c.group === group && c.version === version && c.kind === kind);
}

/** The served schema of a CRD, e.g. the Knative Service's (for the feature-flag table). */
export function crdSchema(apiVersion: string, kind: string): Schema {
  const crd = findCrd(apiVersion, kind);
  if (!crd) throw new Error(`no CRD for ${apiVersion} ${kind} in ${crdsDir()}`);
  return crd.schema;
}

/** Problems of one custom resource against its CRD's schema; undefined when no CRD describes it. */
export function validateAgainstCrd(obj: K8sObject): Problem[] | undefined {
  const crd = findCrd(obj.apiVersion, obj.kind);
  if (!crd) return undefined;
  const key = `${crd.group}/${crd.version}/${crd.kind}`;
  let validate = compiled.get(key);
  if (!validate) {
    // Every object may carry apiVersion, kind and metadata, whether or not its schema lists them.
    const root = { ...crd.schema, properties: { apiVersion: { type: "string" }, kind: { type: "string" }, metadata: { type: "object" }, ...(crd.schema.properties as Schema) } };
    validate = ajv.compile(strictSchema(root) as Schema);
    compiled.set(key, validate);
  }
  const problems: Problem[] = [];
  if (!validate(obj)) {
    for (const e of validate.errors ?? []) {
      const path = e.instancePath.replace(/^\//, "").replace(/\/(\d+)(?=\/|$)/g, "[$1]").replace(/\//g, ".");
      const detail =
        e.keyword === "additionalProperties"
          ? `unknown field "${String((e.params as { additionalProperty: string }).additionalProperty)}"`
          : e.keyword === "enum"
            ? `${e.message}: ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`
            : (e.message ?? e.keyword);
      problems.push({ object: describe(obj), path, message: `${detail} (${crd.kind} CRD schema)`, rule: "schema" });
    }
  }
  if (crd.scope === "Cluster" && obj.metadata?.namespace) {
    problems.push({ object: describe(obj), path: "metadata.namespace", message: `${crd.kind} is cluster-scoped: no namespace`, rule: "schema" });
  }
  return problems;
}
