/** Test fixtures: the generated objects, and a way to break one of them. */
import { configFeatures, configMap, pvc, service } from "../build/knative.js";
import type { K8sObject } from "./problems.js";
import { featuresFrom } from "./validate.js";

export const clone = <T>(v: T): T => structuredClone(v);

/** The base deployment as kustomize renders it (ConfigMap name without the hash). */
export function baseObjects(): K8sObject[] {
  return [configMap() as K8sObject, pvc() as K8sObject, service() as unknown as K8sObject];
}

export const features = () => featuresFrom([configFeatures() as K8sObject]);

/** The generated Service with one change made by `edit`. */
export function brokenService(edit: (svc: any) => void): K8sObject {
  const svc = clone(service()) as any;
  edit(svc);
  return svc as K8sObject;
}
