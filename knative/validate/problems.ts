/** A problem the validator found in one object. */
export interface Problem {
  /** Kind/name of the object, e.g. "Service/inference-runtime". */
  object: string;
  /** Dotted path inside the object, e.g. "spec.template.spec.containers[0].ports". */
  path: string;
  message: string;
  /** Which check found it: "schema", "fields", "knative-webhook", "kserve", "promql", "policy". */
  rule: string;
}

export type K8sObject = {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  [key: string]: unknown;
};

export function describe(obj: K8sObject): string {
  return `${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
}

/** Joins path segments the way kubectl prints them: a.b[0].c */
export function joinPath(parts: readonly (string | number)[]): string {
  return parts.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), "");
}

export function formatProblems(problems: Problem[]): string {
  return problems.map((p) => `${p.object} ${p.path || "(root)"}: ${p.message} [${p.rule}]`).join("\n");
}

export const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
