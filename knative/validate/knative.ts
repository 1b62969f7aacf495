/**
 * The rules Knative Serving's admission webhook (validation.webhook.serving.knative.dev)
 * enforces on a Service that its CRD schema cannot express, after
 * knative/serving's pkg/apis/serving (k8s_validation.go, metadata_validation.go)
 * and pkg/apis/autoscaling (annotation_validation.go), with Knative's default
 * configuration (container-concurrency-max-limit 1000, max-revision-timeout-seconds
 * 600), plus a few policy checks of this project (marked rule "policy"), among
 * them whether the server's container is set up for gRPC consistently (PROTOCOL,
 * the h2c port name and grpc probes go together).
 *
 * Feature-flagged fields are read from the CRD itself: Knative's schema describes
 * each one as "This is accessible behind a feature flag - kubernetes.podspec-...".
 */
import { Ajv, type ValidateFunction } from "ajv";
import { ENV, GRPC_PORT_NAME, PROTOCOLS } from "../../runtime/src/constants.js";
import { IMAGE_REPOSITORY, SERVER_CONTAINER } from "../build/settings.js";
import { crdSchema, strictSchema } from "./crds.js";
import { DNS1035_LABEL, DNS1123_LABEL, checkFields, validatePodSpec } from "./core.js";
import { parseGoDuration } from "./durations.js";
import { describe, isRecord, joinPath, type K8sObject, type Problem } from "./problems.js";

export const KNATIVE_SERVICE_API = "serving.knative.dev/v1";
export const RESERVED_ENV_VARS = ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"] as const;
export const RESERVED_PORTS = [8012, 8013, 8022, 9090, 9091, 8008] as const;
export const VALID_PORT_NAMES = ["http1", "h2c", ""] as const;
/** The name the webhook gives an unnamed serving port when it matches named probe ports against it. */
export const DEFAULT_PORT_NAME = "http";
export const RESERVED_MOUNT_PATHS = ["/", "/dev", "/dev/log", "/tmp", "/var", "/var/log"] as const;
export const CONTAINER_CONCURRENCY_MAX = 1000;
export const MAX_REVISION_TIMEOUT_SECONDS = 600;
export const PVC_WRITE_FLAG = "kubernetes.podspec-persistent-volume-write";
/** Flags that are on unless config-features turns them off. */
export const DEFAULT_ENABLED_FLAGS = ["kubernetes.podspec-volumes-emptydir", "multi-container"] as const;

export type Features = Record<string, string>;

export function flagEnabled(features: Features, flag: string): boolean {
  const value = features[flag];
  if (value === undefined) return (DEFAULT_ENABLED_FLAGS as readonly string[]).includes(flag);
  return ["enabled", "allowed"].includes(value.toLowerCase());
}

const GROUP = "autoscaling.knative.dev/";
type AnnotationCheck = (value: string, all: Record<string, string>) => string | undefined;

const intGE = (min: number): AnnotationCheck => (v) => {
  if (!/^[+-]?\d+$/.test(v)) return `must be an integer, got "${v}"`;
  const n = Number(v);
  if (n < min || n > 2 ** 31 - 1) return `must be between ${min} and ${2 ** 31 - 1}, got ${v}`;
  return undefined;
};
const floatIn = (min: number, max: number, extra?: number): AnnotationCheck => (v) => {
  const n = Number(v);
  if (v.trim() === "" || Number.isNaN(n)) return `must be a number, got "${v}"`;
  if (extra !== undefined && n === extra) return undefined;
  if (n < min || n > max) return `must be between ${min} and ${max}, got ${v}`;
  return undefined;
};
const durationIn = (minMs: number, maxMs: number, wholeSeconds: boolean): AnnotationCheck => (v) => {
  const ms = parseGoDuration(v);
  if (ms === undefined) return `must be a duration such as 30s or 5m, got "${v}"`;
  if (ms < minMs || ms > maxMs) return `must be between ${minMs / 1000}s and ${maxMs / 1000}s, got ${v}`;
  if (wholeSeconds && ms % 1000 !== 0) return `must be specified with at most second precision, got ${v}`;
  return undefined;
};
const HOUR = 3_600_000;
const KPA = "kpa.autoscaling.knative.dev";
const HPA = "hpa.autoscaling.knative.dev";

/** The autoscaling annotations Knative knows, their camelCase aliases, and their ranges. */
export const AUTOSCALING_ANNOTATIONS: Record<string, { aliases?: string[]; check: AnnotationCheck }> = {
  class: {
    check: (v) => (v.endsWith(".knative.dev") && v !== KPA && v !== HPA ? `must be ${KPA} or ${HPA}, got "${v}"` : undefined),
  },
  metric: {
    check: (v, all) => {
      const cls = all[`${GROUP}class`] ?? KPA;
      if (cls === KPA && !["concurrency", "rps"].includes(v)) return `the KPA scales on concurrency or rps only, got "${v}"`;
      if (cls === HPA && !["cpu", "memory"].includes(v)) return `the HPA class scales on cpu or memory, got "${v}"`;
      return undefined;
    },
  },
  target: { check: (v) => (Number.isNaN(Number(v)) || v.trim() === "" || Number(v) < 0.01 ? `target ${v} should be at least 0.01` : undefined) },
  "target-utilization-percentage": { aliases: ["targetUtilizationPercentage"], check: floatIn(1, 100) },
  "target-burst-capacity": { aliases: ["targetBurstCapacity"], check: floatIn(0, Number.MAX_VALUE, -1) },
  "min-scale": { aliases: ["minScale"], check: intGE(0) },
  "max-scale": { aliases: ["maxScale"], check: intGE(0) },
  "initial-scale": { aliases: ["initialScale"], check: intGE(1) },
  "activation-scale": { check: intGE(1) },
  window: { check: durationIn(6_000, HOUR, true) },
  "panic-window-percentage": { aliases: ["panicWindowPercentage"], check: floatIn(1, 100) },
  "panic-threshold-percentage": { aliases: ["panicThresholdPercentage"], check: floatIn(110, 1000) },
  "scale-to-zero-pod-retention-period": { aliases: ["scaleToZeroPodRetentionPeriod"], check: durationIn(0, HOUR, false) },
  "scale-down-delay": { aliases: ["scaleDownDelay"], check: durationIn(0, HOUR, true) },
  "metric-aggregation-algorithm": { check: (v) => (["linear", "weightedExponential", "weighted-exponential"].includes(v) ? undefined : `unknown algorithm "${v}"`) },
};

interface Ctx {
  obj: K8sObject;
  problems: Problem[];
}
const add = (c: Ctx, path: (string | number)[] | string, message: string, rule = "knative-webhook") =>
  c.problems.push({ object: describe(c.obj), path: typeof path === "string" ? path : joinPath(path), message, rule });

function checkAutoscalingAnnotations(c: Ctx, annotations: Record<string, string>, base: (string | number)[]): void {
  const canonical = new Map<string, string>();
  for (const [name, spec] of Object.entries(AUTOSCALING_ANNOTATIONS)) {
    canonical.set(name, name);
    for (const a of spec.aliases ?? []) canonical.set(a, name);
  }
  const normalized: Record<string, string> = {};
  const seen = new Map<string, string>();
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(GROUP)) continue;
    const short = key.slice(GROUP.length);
    const name = canonical.get(short);
    if (!name) {
      add(c, [...base, key], `unknown autoscaling annotation (known: ${Object.keys(AUTOSCALING_ANNOTATIONS).join(", ")}); a typo is silently ignored by Knative`, "policy");
      continue;
    }
    if (seen.has(name)) add(c, [...base, key], `set twice, as ${seen.get(name)} and ${key}`);
    seen.set(name, key);
    normalized[`${GROUP}${name}`] = value;
  }
  for (const [key, value] of Object.entries(normalized)) {
    const problem = AUTOSCALING_ANNOTATIONS[key.slice(GROUP.length)]!.check(value, normalized);
    if (problem) add(c, [...base, seen.get(key.slice(GROUP.length)) ?? key], problem);
  }
  const min = normalized[`${GROUP}min-scale`];
  const max = normalized[`${GROUP}max-scale`];
  if (min !== undefined && max !== undefined && Number(max) !== 0 && Number(max) < Number(min)) {
    add(c, [...base, `${GROUP}max-scale`], `max-scale=${max} is less than min-scale=${min}`);
  }
  const deadline = annotations["serving.knative.dev/progress-deadline"];
  if (deadline !== undefined) {
    const ms = parseGoDuration(deadline);
    if (ms === undefined || ms <= 0 || ms % 1000 !== 0) add(c, [...base, "serving.knative.dev/progress-deadline"], `must be a positive duration in whole seconds, got "${deadline}"`);
  }
}

interface FlagGate {
  path: string[];
  flag: string;
}

let gates: FlagGate[] | undefined;

/** Paths of the Service schema that Knative gates behind a feature flag ("*" = any list item). */
export function flagGates(): FlagGate[] {
  if (gates) return gates;
  const found: FlagGate[] = [];
  const walk = (node: unknown, path: string[]) => {
    if (!isRecord(node)) return;
    const m = typeof node.description === "string" ? /behind a feature flag - (\S+)/.exec(node.description) : null;
    if (m) {
      if (!found.some((g) => g.flag === m[1] && g.path.join(".") === path.slice(0, g.path.length).join("."))) found.push({ path, flag: m[1]! });
    }
    if (isRecord(node.properties)) for (const [k, v] of Object.entries(node.properties)) walk(v, [...path, k]);
    if (node.items) walk(node.items, [...path, "*"]);
  };
  walk(crdSchema(KNATIVE_SERVICE_API, "Service"), []);
  // Init containers are one open object in the schema; the container-level gates apply to them too.
  const containers = ["spec", "template", "spec", "containers"];
  for (const g of [...found]) {
    if (g.path.slice(0, 4).join(".") === containers.join(".")) found.push({ path: ["spec", "template", "spec", "initContainers", ...g.path.slice(4)], flag: g.flag });
  }
  gates = found;
  return found;
}

function present(value: unknown, path: string[], at: (string | number)[] = []): (string | number)[][] {
  if (value === undefined || value === null) return [];
  if (path.length === 0) return [at];
  const [head, ...rest] = path;
  if (head === "*") return Array.isArray(value) ? value.flatMap((v, i) => present(v, rest, [...at, i])) : [];
  return isRecord(value) ? present(value[head!], rest, [...at, head!]) : [];
}

let containerValidator: ValidateFunction | undefined;

/** Knative's container schema (the mask of allowed fields), for init containers, which the CRD leaves open. */
function validateContainerSchema(container: unknown): string[] {
  if (!containerValidator) {
    const schema = crdSchema(KNATIVE_SERVICE_API, "Service") as Record<string, any>;
    const item = schema.properties.spec.properties.template.properties.spec.properties.containers.items;
    containerValidator = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(strictSchema(item) as object);
  }
  if (containerValidator(container)) return [];
  return (containerValidator.errors ?? []).map((e) =>
    e.keyword === "additionalProperties"
      ? `${e.instancePath || "(container)"}: field "${String((e.params as { additionalProperty: string }).additionalProperty)}" is not allowed in a Knative container`
      : `${e.instancePath || "(container)"}: ${e.message}`,
  );
}

type Container = Record<string, any>;

const IMAGE_REFERENCE =
  /^(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

function checkImage(c: Ctx, image: unknown, path: (string | number)[]): void {
  if (typeof image !== "string" || image === "") {
    add(c, path, "missing image");
    return;
  }
  const ref = image.split("@")[0]!;
  const lastSlash = ref.lastIndexOf("/");
  const tag = ref.lastIndexOf(":") > lastSlash ? ref.slice(ref.lastIndexOf(":") + 1) : undefined;
  if (!IMAGE_REFERENCE.test(image)) add(c, path, `"${image}" is not a valid image reference`);
  if (!image.includes("@") && (tag === undefined || tag === "latest")) add(c, path, `image "${image}" must be pinned to a version tag or digest, not ${tag ?? "untagged (latest)"}`, "policy");
}

function checkEnv(c: Ctx, container: Container, path: (string | number)[], configMaps: Map<string, Record<string, string>>): void {
  for (const [i, env] of ((container.env as { name?: string }[] | undefined) ?? []).entries()) {
    if (env.name && (RESERVED_ENV_VARS as readonly string[]).includes(env.name)) add(c, [...path, "env", i, "name"], `"${env.name}" is a reserved environment variable`);
  }
  for (const [i, from] of ((container.envFrom as { configMapRef?: { name?: string }; secretRef?: unknown; prefix?: string }[] | undefined) ?? []).entries()) {
    if (!from.configMapRef === !from.secretRef) add(c, [...path, "envFrom", i], "expected exactly one of configMapRef, secretRef");
    const data = from.configMapRef?.name ? configMaps.get(from.configMapRef.name) : undefined;
    for (const key of Object.keys(data ?? {})) {
      const name = `${from.prefix ?? ""}${key}`;
      if ((RESERVED_ENV_VARS as readonly string[]).includes(name)) {
        add(c, [...path, "envFrom", i, "configMapRef"], `ConfigMap ${from.configMapRef!.name} sets "${name}", a reserved environment variable (Knative sets it)`);
      }
    }
  }
}

interface ServingPort {
  containerPort?: number;
  name?: string;
}

function checkProbe(c: Ctx, probe: Record<string, any> | undefined, path: (string | number)[], port: ServingPort | undefined, readiness: boolean): void {
  if (!probe) return;
  const handlers = ["httpGet", "tcpSocket", "exec", "grpc"].filter((h) => probe[h] !== undefined);
  if (handlers.length !== 1) add(c, path, `expected exactly one handler of httpGet, tcpSocket, exec, grpc; got ${handlers.length}`);
  const handler = handlers[0] ?? "httpGet";
  const probePort = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
  if (typeof probePort === "number" && port?.containerPort !== undefined && probePort !== 0 && probePort !== port.containerPort) {
    add(c, [...path, handler, "port"], `may only probe the container port ${port.containerPort}, got ${probePort}`);
  }
  // A named probe port (httpGet and tcpSocket take names; grpc only numbers, which the CRD schema
  // enforces) must be the serving port's name, or "http" when that port is unnamed.
  if (typeof probePort === "string" && handler !== "grpc" && port !== undefined) {
    const name = port.name || DEFAULT_PORT_NAME;
    if (probePort !== name) add(c, [...path, handler, "port"], `probe port "${probePort}" must match the container port, named "${name}"`);
  }
  for (const f of ["periodSeconds", "initialDelaySeconds"]) if (typeof probe[f] === "number" && probe[f] < 0) add(c, [...path, f], `must be >= 0`);
  for (const f of ["timeoutSeconds", "successThreshold", "failureThreshold"]) if (typeof probe[f] === "number" && probe[f] < 1) add(c, [...path, f], `must be >= 1`);
  if (readiness && probe.periodSeconds === 0) {
    for (const f of ["failureThreshold", "timeoutSeconds"]) if (probe[f] !== undefined) add(c, [...path, f], `${f} is disallowed when periodSeconds is zero`);
  }
}

function checkVolumes(c: Ctx, spec: Record<string, any>, base: (string | number)[], features: Features): void {
  const volumes = new Map<string, Record<string, any>>();
  for (const [i, v] of ((spec.volumes as Record<string, any>[] | undefined) ?? []).entries()) {
    if (!v.name || !DNS1123_LABEL.test(v.name)) add(c, [...base, "volumes", i, "name"], `volume name must be a DNS-1123 label, got "${v.name ?? ""}"`);
    if (volumes.has(v.name)) add(c, [...base, "volumes", i, "name"], `duplicate volume name "${v.name}"`);
    volumes.set(v.name, v);
    const sources = ["secret", "configMap", "projected", "emptyDir", "persistentVolumeClaim", "hostPath", "csi", "ephemeral", "image"].filter((s) => v[s] !== undefined);
    if (sources.length !== 1) add(c, [...base, "volumes", i], `expected exactly one volume source, got ${sources.length ? sources.join(", ") : "none"}`);
    if (v.persistentVolumeClaim) {
      for (const f of checkFields(v.persistentVolumeClaim, "V1PersistentVolumeClaimVolumeSource", [...base, "volumes", i, "persistentVolumeClaim"])) add(c, f.path, f.message, "fields");
      if (!v.persistentVolumeClaim.claimName) add(c, [...base, "volumes", i, "persistentVolumeClaim", "claimName"], "missing claimName");
      if (!v.persistentVolumeClaim.readOnly && !flagEnabled(features, PVC_WRITE_FLAG)) {
        add(c, [...base, "volumes", i, "persistentVolumeClaim"], `Persistent volume write support is disabled, but found persistent volume claim ${v.persistentVolumeClaim.claimName} that is not read-only (enable ${PVC_WRITE_FLAG} or set readOnly: true)`);
      }
    }
  }
  const mounted = new Set<string>();
  for (const list of ["initContainers", "containers"] as const) {
    for (const [ci, container] of ((spec[list] as Container[] | undefined) ?? []).entries()) {
      const paths = new Set<string>();
      for (const [mi, m] of ((container.volumeMounts as Record<string, any>[] | undefined) ?? []).entries()) {
        const at = [...base, list, ci, "volumeMounts", mi];
        mounted.add(m.name);
        const volume = volumes.get(m.name);
        if (!volume) add(c, [...at, "name"], `volumeMount "${m.name}" has no matching volume`);
        const mountPath = typeof m.mountPath === "string" ? m.mountPath.replace(/\/+/g, "/").replace(/(.)\/$/, "$1") : "";
        if (!mountPath.startsWith("/")) add(c, [...at, "mountPath"], `mountPath must be absolute, got "${m.mountPath ?? ""}"`);
        else if ((RESERVED_MOUNT_PATHS as readonly string[]).includes(mountPath)) add(c, [...at, "mountPath"], `mountPath "${mountPath}" is a reserved path`);
        if (paths.has(mountPath)) add(c, [...at, "mountPath"], `"${mountPath}" is mounted twice`);
        paths.add(mountPath);
        if (volume && !m.readOnly) {
          const writable = volume.emptyDir !== undefined || (volume.persistentVolumeClaim !== undefined && flagEnabled(features, PVC_WRITE_FLAG));
          if (!writable) {
            add(
              c,
              [...at, "readOnly"],
              volume.persistentVolumeClaim ? `a persistent volume claim mount must be readOnly unless ${PVC_WRITE_FLAG} is enabled` : "volume mount should be readOnly for this type of volume",
            );
          }
        }
      }
    }
  }
  for (const [i, v] of ((spec.volumes as Record<string, any>[] | undefined) ?? []).entries()) {
    if (v.name && !mounted.has(v.name)) add(c, [...base, "volumes", i, "name"], `volume with name "${v.name}" not mounted`);
  }
}

function checkContainerCommon(c: Ctx, container: Container, at: (string | number)[], configMaps: Map<string, Record<string, string>>): void {
  if (container.name === "queue-proxy") add(c, [...at, "name"], `"queue-proxy" is a reserved container name`);
  if (container.name !== undefined && !DNS1123_LABEL.test(container.name)) add(c, [...at, "name"], `container name must be a DNS-1123 label, got "${container.name}"`);
  checkImage(c, container.image, [...at, "image"]);
  checkEnv(c, container, at, configMaps);
  const sc = container.securityContext as Record<string, any> | undefined;
  for (const f of ["runAsUser", "runAsGroup"]) if (typeof sc?.[f] === "number" && (sc[f] < 0 || sc[f] > 2 ** 31 - 1)) add(c, [...at, "securityContext", f], `must be between 0 and ${2 ** 31 - 1}`);
}

/** This project's server, by container name or image: the container whose PROTOCOL means what checkServerProtocol assumes. */
function isServerContainer(container: Container): boolean {
  return container.name === SERVER_CONTAINER || (typeof container.image === "string" && container.image.startsWith(`${IMAGE_REPOSITORY}:`));
}

/**
 * The value an environment variable takes in a container: env wins over envFrom, and among
 * envFrom sources the last one holding the key wins, as the kubelet resolves them. Undefined
 * when unset; null when it comes from somewhere this check cannot see (valueFrom, a Secret).
 */
export function envValue(container: Container, name: string, configMaps: Map<string, Record<string, string>>): string | null | undefined {
  let value: string | null | undefined;
  for (const from of (container.envFrom as { configMapRef?: { name?: string }; secretRef?: unknown; prefix?: string }[] | undefined) ?? []) {
    const prefix = from.prefix ?? "";
    if (!name.startsWith(prefix)) continue;
    if (from.secretRef) {
      value = value ?? null;
      continue;
    }
    const data = from.configMapRef?.name ? configMaps.get(from.configMapRef.name) : undefined;
    const key = name.slice(prefix.length);
    if (data && Object.hasOwn(data, key)) value = data[key];
  }
  for (const env of (container.env as { name?: string; value?: string; valueFrom?: unknown }[] | undefined) ?? []) {
    if (env.name === name) value = env.valueFrom !== undefined ? null : (env.value ?? "");
  }
  return value;
}

const GRPC_PROTOCOL = "grpc" satisfies (typeof PROTOCOLS)[number];

/**
 * Policy: the server speaks gRPC only with PROTOCOL=grpc, and Knative carries gRPC (cleartext
 * HTTP/2) only to a port named h2c, so the two go together, and a grpc probe needs both. A
 * mismatch is accepted by the webhook and fails at the first call, or leaves the revision
 * never ready, so it is caught here.
 */
function checkServerProtocol(c: Ctx, container: Container, at: (string | number)[], port: Record<string, any> | undefined, configMaps: Map<string, Record<string, string>>): void {
  const protocol = envValue(container, ENV.protocol, configMaps);
  if (protocol === null) return;
  if (protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(protocol)) {
    const kserve = ["v1", "v2", "grpc-v1", "grpc-v2"].includes(protocol) ? ` (${protocol} is a KServe protocolVersion, not a value of this variable)` : "";
    add(c, [...at, "env"], `${ENV.protocol}=${protocol} is not a value the server accepts: ${PROTOCOLS.join(" or ")}${kserve}`, "policy");
    return;
  }
  const grpc = protocol === GRPC_PROTOCOL;
  const portName = (port?.name as string | undefined) ?? "";
  if (port && portName === GRPC_PORT_NAME && !grpc) {
    add(c, [...at, "ports", 0, "name"], `Knative sends cleartext HTTP/2 (h2c) to a port named ${GRPC_PORT_NAME}, which the server speaks only with ${ENV.protocol}=${GRPC_PROTOCOL} (${ENV.protocol} is ${protocol ?? "unset"})`, "policy");
  }
  if (port && grpc && portName !== GRPC_PORT_NAME) {
    add(c, [...at, "ports", 0, "name"], `${ENV.protocol}=${GRPC_PROTOCOL}, but the port is ${portName ? `named ${portName}` : "unnamed"}: Knative sends HTTP/1.1 to it, which cannot carry gRPC; name it ${GRPC_PORT_NAME}`, "policy");
  }
  for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
    if (container[probe]?.grpc !== undefined && !grpc) {
      add(c, [...at, probe, "grpc"], `a grpc probe needs ${ENV.protocol}=${GRPC_PROTOCOL}: without it the server does not serve grpc.health.v1 (${ENV.protocol} is ${protocol ?? "unset"})`, "policy");
    }
  }
}

/** The webhook's rules for one Knative Service. `configMaps` are ConfigMaps applied with it (name -> data), for envFrom checks. */
export function validateKnativeService(obj: K8sObject, features: Features, configMaps = new Map<string, Record<string, string>>()): Problem[] {
  const c: Ctx = { obj, problems: [] };
  const name = obj.metadata?.name ?? "";
  if (!DNS1035_LABEL.test(name) || name.length > 63) add(c, "metadata.name", `a Knative Service name must be a DNS-1035 label of at most 63 characters, got "${name}"`);
  for (const key of Object.keys(obj.metadata?.annotations ?? {})) {
    if (key.startsWith(GROUP)) add(c, ["metadata", "annotations", key], "autoscaling annotations must be put under `spec.template.metadata.annotations` to work");
  }
  const spec = isRecord(obj.spec) ? obj.spec : {};
  const template = isRecord(spec.template) ? spec.template : {};
  const tmeta = isRecord(template.metadata) ? (template.metadata as Record<string, any>) : {};
  checkAutoscalingAnnotations(c, (tmeta.annotations as Record<string, string> | undefined) ?? {}, ["spec", "template", "metadata", "annotations"]);
  if (typeof tmeta.name === "string" && !tmeta.name.startsWith(`${name}-`)) add(c, "spec.template.metadata.name", `a revision name must start with "${name}-"`);

  const ps = (isRecord(template.spec) ? template.spec : {}) as Record<string, any>;
  const base = ["spec", "template", "spec"];
  if (typeof ps.containerConcurrency === "number" && (ps.containerConcurrency < 0 || ps.containerConcurrency > CONTAINER_CONCURRENCY_MAX)) {
    add(c, [...base, "containerConcurrency"], `must be between 0 and ${CONTAINER_CONCURRENCY_MAX} (container-concurrency-max-limit), got ${ps.containerConcurrency}`);
  }
  if (typeof ps.timeoutSeconds === "number" && (ps.timeoutSeconds < 0 || ps.timeoutSeconds > MAX_REVISION_TIMEOUT_SECONDS)) {
    add(c, [...base, "timeoutSeconds"], `must be between 0 and ${MAX_REVISION_TIMEOUT_SECONDS} (max-revision-timeout-seconds), got ${ps.timeoutSeconds}`);
  }
  if (typeof ps.responseStartTimeoutSeconds === "number" && typeof ps.timeoutSeconds === "number" && ps.responseStartTimeoutSeconds > ps.timeoutSeconds) {
    add(c, [...base, "responseStartTimeoutSeconds"], "must not exceed timeoutSeconds");
  }

  // Feature-flagged fields.
  for (const gate of flagGates()) {
    if (flagEnabled(features, gate.flag)) continue;
    for (const at of present(obj, gate.path)) add(c, at, `this field needs the feature flag ${gate.flag} enabled in config-features`, "feature-flag");
  }

  // The PodSpec as a core Kubernetes PodSpec (types and fields of the flag-gated parts the CRD leaves open).
  const { containerConcurrency: _cc, timeoutSeconds: _ts, idleTimeoutSeconds: _its, responseStartTimeoutSeconds: _rsts, ...coreSpec } = ps;
  for (const p of validatePodSpec(coreSpec, joinPath(base))) add(c, p.path, p.message, "core-schema");

  // Containers.
  const containers = (ps.containers as Container[] | undefined) ?? [];
  const withPorts = containers.filter((x) => (x.ports?.length ?? 0) > 0);
  if (containers.length > 1 && !flagEnabled(features, "multi-container")) add(c, [...base, "containers"], `multi-container is off, but found ${containers.length} containers`);
  if (containers.length === 0) add(c, [...base, "containers"], "missing containers");
  const names = new Set<string>();
  let servingPort: ServingPort | undefined;
  for (const [i, container] of containers.entries()) {
    const at = [...base, "containers", i];
    checkContainerCommon(c, container, at, configMaps);
    if (container.name) {
      if (names.has(container.name)) add(c, [...at, "name"], `duplicate container name "${container.name}"`);
      names.add(container.name);
    }
    const ports = (container.ports as Record<string, any>[] | undefined) ?? [];
    const serving = containers.length === 1 || ports.length > 0;
    if (!serving) continue;
    if (ports.length !== 1) add(c, [...at, "ports"], `expected exactly one container port (the one Knative routes to), got ${ports.length}`);
    for (const [pi, port] of ports.entries()) {
      if (!(VALID_PORT_NAMES as readonly string[]).includes(port.name ?? "")) add(c, [...at, "ports", pi, "name"], `Port name ${port.name} is not allowed: must be empty, http1 or h2c`);
      if (port.protocol !== undefined && port.protocol !== "TCP") add(c, [...at, "ports", pi, "protocol"], `only TCP is allowed, got ${port.protocol}`);
      if ((RESERVED_PORTS as readonly number[]).includes(port.containerPort)) add(c, [...at, "ports", pi, "containerPort"], `${port.containerPort} is a reserved port, please use a different value`);
      if (typeof port.containerPort === "number" && (port.containerPort < 1 || port.containerPort > 65535)) add(c, [...at, "ports", pi, "containerPort"], `must be between 1 and 65535`);
      servingPort ??= { containerPort: port.containerPort, name: port.name };
    }
    checkProbe(c, container.readinessProbe, [...at, "readinessProbe"], servingPort, true);
    checkProbe(c, container.livenessProbe, [...at, "livenessProbe"], servingPort, false);
    checkProbe(c, container.startupProbe, [...at, "startupProbe"], servingPort, false);
    if (isServerContainer(container)) checkServerProtocol(c, container, at, ports[0], configMaps);
  }
  if (withPorts.length > 1) add(c, [...base, "containers"], "only one container may declare ports (the serving container)");

  // Init containers.
  for (const [i, container] of ((ps.initContainers as unknown[] | undefined) ?? []).entries()) {
    const at = [...base, "initContainers", i];
    if (!isRecord(container)) {
      add(c, at, "expected a container");
      continue;
    }
    const ic = container as Container;
    checkContainerCommon(c, ic, at, configMaps);
    if (ic.name) {
      if (names.has(ic.name)) add(c, [...at, "name"], `duplicate container name "${ic.name}"`);
      names.add(ic.name);
    }
    for (const f of ["livenessProbe", "readinessProbe", "startupProbe", "lifecycle"]) {
      if (ic[f] !== undefined) add(c, [...at, f], "field not allowed in an init container");
    }
    const { livenessProbe: _l, readinessProbe: _r, startupProbe: _s, lifecycle: _lc, ...rest } = ic;
    for (const m of validateContainerSchema(rest)) add(c, at, m);
  }

  checkVolumes(c, ps, base, features);
  if (Array.isArray(spec.traffic)) checkTraffic(c, spec.traffic as Record<string, any>[]);
  return c.problems;
}

/** Rules for spec.traffic (Knative's route validation). */
function checkTraffic(c: Ctx, traffic: Record<string, any>[]): void {
  let sum = 0;
  const tags = new Set<string>();
  for (const [i, t] of traffic.entries()) {
    const at = ["spec", "traffic", i];
    if (t.revisionName && t.latestRevision === true) add(c, [...at, "latestRevision"], "latestRevision must be false when revisionName is set");
    if (!t.revisionName && t.latestRevision === false) add(c, [...at, "latestRevision"], "latestRevision may not be false when revisionName is not set");
    if (t.configurationName) add(c, [...at, "configurationName"], "configurationName is not allowed in a Service's traffic (use latestRevision)");
    if (t.url !== undefined) add(c, [...at, "url"], "url is set by Knative in status; it is not allowed in spec");
    if (typeof t.percent === "number") {
      if (t.percent < 0 || t.percent > 100) add(c, [...at, "percent"], `must be between 0 and 100, got ${t.percent}`);
      sum += t.percent;
    }
    if (t.tag !== undefined) {
      if (!DNS1123_LABEL.test(t.tag)) add(c, [...at, "tag"], `tag must be a DNS-1123 label, got "${t.tag}"`);
      if (tags.has(t.tag)) add(c, [...at, "tag"], `tag "${t.tag}" used twice`);
      tags.add(t.tag);
    }
  }
  if (traffic.length > 0 && sum !== 100) add(c, "spec.traffic", `traffic percentages must sum to 100, got ${sum}`);
}
