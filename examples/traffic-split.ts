/**
 * What `kn service update --tag ... --traffic ...` does, through @kubernetes/client-node:
 * a JSON merge patch of the Knative Service's spec.traffic, then waiting until
 * the Service is Ready again (its route serves the new split).
 *
 *   npx tsx examples/traffic-split.ts --service inference-runtime \
 *     --tag inference-runtime-00001=cpu --tag @latest=gpu \
 *     --traffic cpu=90 --traffic gpu=10 [--namespace default] [--timeout 300]
 *
 * same as
 *
 *   kn service update inference-runtime \
 *     --tag inference-runtime-00001=cpu --tag @latest=gpu --traffic cpu=90 --traffic gpu=10
 *
 * `--tag REVISION=TAG` names a revision (or @latest, the latest ready revision, which
 * follows new revisions) and gives it its own URL, http://TAG-<service>.<namespace>...;
 * `--traffic TARGET=PERCENT` takes a tag, a revision name or @latest. Percents must sum
 * to 100; a tagged target without --traffic gets 0% (reachable only at its tag URL).
 * Unlike kn, the patch replaces the whole traffic list: targets not named are dropped.
 */
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

/** One entry of a Knative Service's spec.traffic. */
export interface TrafficTarget {
  tag?: string;
  revisionName?: string;
  latestRevision: boolean;
  percent: number;
}

export interface TrafficPatch {
  spec: { traffic: TrafficTarget[] };
}

export const LATEST = "@latest";
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const REVISION_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export class TrafficError extends Error {}

function splitPair(arg: string, flag: string): [string, string] {
  const i = arg.lastIndexOf("=");
  if (i <= 0 || i === arg.length - 1) throw new TrafficError(`${flag} ${arg}: expected NAME=VALUE`);
  return [arg.slice(0, i), arg.slice(i + 1)];
}

/**
 * The merge-patch body for spec.traffic, from kn-style `--tag REVISION=TAG` and
 * `--traffic TARGET=PERCENT` arguments. Throws TrafficError on anything the
 * Knative webhook would refuse (percents not summing to 100, bad tags, ...).
 */
export function buildTrafficPatch(tagArgs: string[], trafficArgs: string[]): TrafficPatch {
  const targets = new Map<string, TrafficTarget>(); // by revision name or @latest
  const byTag = new Map<string, string>();
  const target = (revision: string): TrafficTarget => {
    if (revision !== LATEST && !REVISION_NAME.test(revision)) throw new TrafficError(`"${revision}" is not a revision name (or ${LATEST})`);
    let t = targets.get(revision);
    if (!t) {
      t = revision === LATEST ? { latestRevision: true, percent: 0 } : { revisionName: revision, latestRevision: false, percent: 0 };
      targets.set(revision, t);
    }
    return t;
  };
  for (const arg of tagArgs) {
    const [revision, tag] = splitPair(arg, "--tag");
    if (!DNS_LABEL.test(tag) || tag.length > 63) throw new TrafficError(`tag "${tag}" must be a DNS label: lower-case letters, digits and '-'`);
    if (byTag.has(tag)) throw new TrafficError(`tag "${tag}" is given twice`);
    const t = target(revision);
    if (t.tag) throw new TrafficError(`${revision} already has the tag ${t.tag} (one tag per target here)`);
    t.tag = tag;
    byTag.set(tag, revision);
  }
  const assigned = new Set<string>();
  for (const arg of trafficArgs) {
    const [name, value] = splitPair(arg, "--traffic");
    if (!/^\d+$/.test(value) || Number(value) > 100) throw new TrafficError(`--traffic ${arg}: the percent must be an integer from 0 to 100`);
    const revision = byTag.get(name) ?? name;
    if (assigned.has(revision)) throw new TrafficError(`--traffic for ${name} is given twice`);
    assigned.add(revision);
    target(revision).percent = Number(value);
  }
  if (trafficArgs.length === 0) throw new TrafficError("give at least one --traffic TARGET=PERCENT");
  const traffic = [...targets.values()];
  const sum = traffic.reduce((a, t) => a + t.percent, 0);
  if (sum !== 100) throw new TrafficError(`traffic percents must sum to 100, not ${sum}`);
  return { spec: { traffic: traffic.map((t) => ({ ...(t.tag ? { tag: t.tag } : {}), ...(t.revisionName ? { revisionName: t.revisionName } : {}), latestRevision: t.latestRevision, percent: t.percent })) } };
}

interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
}

export interface ServiceState {
  metadata?: { generation?: number };
  status?: { observedGeneration?: number; conditions?: Condition[]; traffic?: { tag?: string; revisionName?: string; percent?: number; url?: string }[]; url?: string };
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/**
 * Polls `get` until the Service has seen its latest generation and is Ready.
 * Throws when Ready turns False for that generation (with Knative's reason and
 * message) or when the timeout passes.
 */
export async function waitForReady(get: () => Promise<ServiceState>, options: WaitOptions): Promise<ServiceState> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = options.now ?? Date.now;
  const deadline = now() + options.timeoutMs;
  let last = "no status yet";
  for (;;) {
    const svc = await get();
    const observed = (svc.status?.observedGeneration ?? 0) >= (svc.metadata?.generation ?? 0);
    const ready = svc.status?.conditions?.find((c) => c.type === "Ready");
    if (observed && ready?.status === "True") return svc;
    if (observed && ready?.status === "False") throw new Error(`service is not ready: ${ready.reason ?? "?"}: ${ready.message ?? ""}`.trim());
    last = observed ? `Ready=${ready?.status ?? "missing"}${ready?.reason ? ` (${ready.reason})` : ""}` : `generation ${svc.metadata?.generation} not yet observed`;
    if (now() >= deadline) throw new Error(`timed out after ${options.timeoutMs / 1000}s waiting for the service to be Ready (${last})`);
    await sleep(Math.min(options.intervalMs ?? 2000, Math.max(0, deadline - now())));
  }
}

/** The two calls the CLI makes, so that tests can stand in for a cluster. */
export interface ServiceApi {
  patch(body: TrafficPatch): Promise<unknown>;
  get(): Promise<ServiceState>;
}

export async function applyTrafficSplit(api: ServiceApi, body: TrafficPatch, wait: WaitOptions): Promise<ServiceState> {
  await api.patch(body);
  return waitForReady(() => api.get(), wait);
}

/** What to do when there is no cluster to talk to. */
const NO_CLUSTER_HINT =
  "point KUBECONFIG at your cluster's kubeconfig (kind, minikube and the clouds' CLIs write ~/.kube/config; `kubectl config current-context` shows the one in use), or add --dry-run to print the patch without a cluster";

/**
 * Whether loadFromDefault found no configuration at all: no KUBECONFIG, no ~/.kube/config, not in a
 * pod. It then falls back to http://localhost:8080, which fails with "HTTP protocol is not allowed
 * when skipTLSVerify is not set or false": say what is actually missing instead.
 */
export function isFallbackConfig(cluster: { name: string; server: string } | null, user: { name: string } | null, env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.KUBECONFIG && cluster?.name === "cluster" && cluster.server === "http://localhost:8080" && user?.name === "user";
}

/** A Kubernetes API failure in words: which cluster, what went wrong, what to do. */
export function explainApiError(err: unknown, where: { server: string; context: string; namespace: string; name: string }): Error {
  const e = err as { code?: unknown; body?: unknown; message?: string; cause?: { code?: string } };
  const at = `the Kubernetes API at ${where.server} (context ${where.context})`;
  if (typeof e.code === "number") {
    let reason = "";
    try {
      reason = (JSON.parse(String(e.body)) as { message?: string }).message ?? "";
    } catch {
      reason = typeof e.body === "string" ? e.body.slice(0, 200) : "";
    }
    if (e.code === 404 && /could not find the requested resource/.test(reason)) {
      return new Error(`${at} has no serving.knative.dev/v1 services: is Knative Serving installed there? (knative/README.md)`);
    }
    if (e.code === 404) return new Error(`no Knative Service ${where.namespace}/${where.name} (${reason || "not found"}): \`kn service list -n ${where.namespace}\` lists them; --namespace picks another namespace`);
    if (e.code === 401 || e.code === 403) return new Error(`${at} refused: ${reason || `HTTP ${e.code}`}; your kubeconfig's user needs get and patch on services.serving.knative.dev in ${where.namespace}`);
    return new Error(`${at} answered HTTP ${e.code}: ${reason}`);
  }
  const code = e.cause?.code ?? /\b(E[A-Z]{3,})\b/.exec(e.message ?? "")?.[1];
  if (code) return new Error(`cannot reach ${at}: ${code}; is the cluster running, and is that the right context? (\`kubectl config use-context NAME\`)`);
  return err instanceof Error ? err : new Error(String(err));
}

async function kubernetesApi(namespace: string | undefined, name: string): Promise<{ api: ServiceApi; namespace: string }> {
  const k8s = await import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (err) {
    throw new TrafficError(`cannot read the kubeconfig (KUBECONFIG=${process.env.KUBECONFIG ?? "~/.kube/config"}): ${(err as Error).message}; ${NO_CLUSTER_HINT}`);
  }
  const cluster = kc.getCurrentCluster();
  if (isFallbackConfig(cluster, kc.getCurrentUser())) throw new TrafficError(`no Kubernetes configuration found (KUBECONFIG is not set, there is no ~/.kube/config, and this is not a pod): ${NO_CLUSTER_HINT}`);
  if (!cluster) throw new TrafficError(`the kubeconfig has no current context (or its cluster is missing): \`kubectl config use-context NAME\` picks one; ${NO_CLUSTER_HINT}`);
  const ns = namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default";
  const client = kc.makeApiClient(k8s.CustomObjectsApi);
  const ref = { group: "serving.knative.dev", version: "v1", namespace: ns, plural: "services", name };
  const where = { server: cluster.server, context: kc.getCurrentContext(), namespace: ns, name };
  const explained = <T>(p: Promise<T>): Promise<T> => p.catch((err: unknown) => Promise.reject(explainApiError(err, where)));
  return {
    namespace: ns,
    api: {
      patch: (body) => explained(client.patchNamespacedCustomObject({ ...ref, body }, k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch))),
      get: () => explained(client.getNamespacedCustomObject(ref) as Promise<ServiceState>),
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      service: { type: "string" },
      namespace: { type: "string", short: "n" },
      tag: { type: "string", multiple: true, default: [] },
      traffic: { type: "string", multiple: true, default: [] },
      timeout: { type: "string", default: "300" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  if (!values.service) throw new TrafficError("--service NAME is required");
  const body = buildTrafficPatch(values.tag, values.traffic);
  if (values["dry-run"]) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return;
  }
  const { api, namespace } = await kubernetesApi(values.namespace, values.service);
  process.stdout.write(`patching ${namespace}/${values.service} spec.traffic (merge patch)\n`);
  const svc = await applyTrafficSplit(api, body, { timeoutMs: Number(values.timeout) * 1000 });
  for (const t of svc.status?.traffic ?? []) process.stdout.write(`  ${String(t.percent ?? 0).padStart(3)}%  ${t.revisionName ?? "?"}${t.tag ? `  tag ${t.tag}: ${t.url ?? ""}` : ""}\n`);
  process.stdout.write(`service ${values.service} is Ready at ${svc.status?.url ?? "?"}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`traffic-split: ${(err as Error).message}\n`);
    process.exit(err instanceof TrafficError ? 2 : 1);
  });
}
