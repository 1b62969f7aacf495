/** Test fixtures: the generated objects, and a way to break one of them. */
import { configFeatures, configMap, grpcPatch, pvc, service, type JsonPatchOp } from "../build/knative.js";
import { asyncPatch } from "../build/platform.js";
import type { K8sObject } from "./problems.js";
import { featuresFrom } from "./validate.js";

export const clone = <T>(v: T): T => structuredClone(v);

/** RFC 6902 add/replace/remove ("-" appends), enough to apply the overlays' patches without kustomize. */
export function applyPatch<T>(doc: T, ops: JsonPatchOp[]): T {
  const out = clone(doc) as Record<string, unknown>;
  for (const op of ops) {
    const segs = op.path.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = segs.pop()!;
    let parent: any = out;
    for (const s of segs) parent = parent[s];
    if (op.op === "remove") {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else if (Array.isArray(parent) && last === "-") parent.push(clone(op.value));
    else if (Array.isArray(parent) && op.op === "add") parent.splice(Number(last), 0, clone(op.value));
    else parent[last] = clone(op.value);
  }
  return out as T;
}

/** The base deployment as kustomize renders it (ConfigMap name without the hash). */
export function baseObjects(): K8sObject[] {
  return [configMap() as K8sObject, pvc() as K8sObject, service() as unknown as K8sObject];
}

/** The gRPC Service, as knative/overlays/grpc renders it. */
export const grpcService = (): K8sObject => applyPatch(service(), grpcPatch()) as unknown as K8sObject;

/** The async Service, as knative/platform/base renders it. */
export const asyncService = (): K8sObject => applyPatch(service(), asyncPatch()) as unknown as K8sObject;

export const features = () => featuresFrom([configFeatures() as K8sObject]);

/** The generated Service with one change made by `edit`. */
export function brokenService(edit: (svc: any) => void, base: () => unknown = service): K8sObject {
  const svc = clone(base()) as any;
  edit(svc);
  return svc as K8sObject;
}
