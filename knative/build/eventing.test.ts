/**
 * knative/eventing: committed as generated; the Broker and Triggers valid
 * against the real CRDs (../shared/crds), the example sinks against the
 * Knative Service CRD and webhook rules, the SinkBinding (whose CRD is not in
 * ../shared/crds) against its API's structure; delivery settings Knative
 * accepts; event types that match the runtime's and cannot loop; every
 * reference resolvable.
 */
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from "../../runtime/src/cloudevents/constants.js";
import { ConfigSchema } from "../../runtime/src/config.js";
import { validateAgainstCrd } from "../validate/crds.js";
import type { K8sObject } from "../validate/problems.js";
import { formatProblems, parseManifests, validateObjects } from "../validate/validate.js";
import { broker, eventingFiles, NAMES, replyTrigger, requestTrigger, SINK_BINDING_API, sinkBinding, type Destination, type Trigger } from "./eventing.js";
import { service } from "./knative.js";
import { REPO_ROOT } from "./generate.js";

const committed = async (path: string) => parseManifests(await readFile(join(REPO_ROOT, path), "utf8"), path);
const clone = <T>(v: T): T => structuredClone(v);

/** ISO 8601 durations as Knative's DeliverySpec validation accepts them (period.Parse): PnYnMnDTnHnMnS, fractions allowed. */
const ISO_DURATION = /^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$/;

/** What Knative's webhook checks in a DeliverySpec (eventing pkg/apis/duck/v1/delivery_types.go), and our policy on top. */
function deliveryProblems(delivery: Record<string, unknown> | undefined, where: string): string[] {
  if (!delivery) return [`${where}: no delivery spec (retries and a dead-letter sink are required here)`];
  const out: string[] = [];
  const { retry, backoffPolicy, backoffDelay, deadLetterSink } = delivery as { retry?: unknown; backoffPolicy?: unknown; backoffDelay?: unknown; deadLetterSink?: Destination };
  if (!Number.isInteger(retry) || (retry as number) < 0) out.push(`${where}.retry: must be a non-negative integer`);
  if (backoffPolicy !== "linear" && backoffPolicy !== "exponential") out.push(`${where}.backoffPolicy: must be linear or exponential`);
  if (typeof backoffDelay !== "string" || !ISO_DURATION.test(backoffDelay)) out.push(`${where}.backoffDelay: not an ISO 8601 duration: ${String(backoffDelay)}`);
  if (!deadLetterSink || (!deadLetterSink.ref && !deadLetterSink.uri)) out.push(`${where}.deadLetterSink: needs a ref or a uri`);
  return out;
}

/** The SinkBinding's structure (sources.knative.dev/v1): no CRD for it in ../shared/crds. */
function sinkBindingProblems(obj: K8sObject): string[] {
  const out: string[] = [];
  if (obj.apiVersion !== SINK_BINDING_API || obj.kind !== "SinkBinding") out.push("not a sources.knative.dev/v1 SinkBinding");
  if (!obj.metadata?.name) out.push("metadata.name missing");
  const allowedTop = new Set(["apiVersion", "kind", "metadata", "spec"]);
  for (const k of Object.keys(obj)) if (!allowedTop.has(k)) out.push(`unknown field ${k}`);
  const spec = (obj.spec ?? {}) as Record<string, any>;
  for (const k of Object.keys(spec)) if (!["subject", "sink", "ceOverrides"].includes(k)) out.push(`spec: unknown field ${k}`);
  const subject = spec.subject ?? {};
  for (const k of Object.keys(subject)) if (!["apiVersion", "kind", "name", "namespace", "selector"].includes(k)) out.push(`spec.subject: unknown field ${k}`);
  if (!subject.apiVersion || !subject.kind) out.push("spec.subject needs apiVersion and kind");
  if (!subject.name === !subject.selector) out.push("spec.subject needs exactly one of name and selector");
  const sink = spec.sink ?? {};
  for (const k of Object.keys(sink)) if (!["ref", "uri", "CACerts", "audience"].includes(k)) out.push(`spec.sink: unknown field ${k}`);
  if (!sink.ref && !sink.uri) out.push("spec.sink needs a ref or a uri");
  if (sink.ref) for (const k of ["apiVersion", "kind", "name"]) if (!sink.ref[k]) out.push(`spec.sink.ref.${k} missing`);
  return out;
}

describe("knative/eventing", () => {
  it("is committed as generated (npx tsx knative/build/eventing.ts, or npm run manifests)", async () => {
    for (const [path, content] of eventingFiles()) {
      expect(await readFile(join(REPO_ROOT, path), "utf8").catch(() => "(missing)"), path).toBe(content);
    }
  });

  it("broker.yaml and triggers.yaml are valid against the Broker and Trigger CRDs, with the delivery Knative accepts", async () => {
    const objects = [...(await committed("knative/eventing/broker.yaml")), ...(await committed("knative/eventing/triggers.yaml"))];
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([`Broker/${NAMES.broker}`, `Trigger/${NAMES.requestTrigger}`, `Trigger/${NAMES.replyTrigger}`]);
    for (const obj of objects) {
      const problems = validateAgainstCrd(obj);
      expect(problems, `no CRD for ${obj.kind} in ../shared/crds`).toBeDefined();
      expect(formatProblems(problems!)).toBe("");
      expect(deliveryProblems((obj.spec as any).delivery, `${obj.kind}/${obj.metadata?.name}.spec.delivery`)).toEqual([]);
    }
    // validateObjects runs the CRD schemas plus the metadata checks.
    expect(formatProblems(validateObjects(objects))).toBe("");
  });

  it("sinks.yaml: the example sinks are valid Knative Services (CRD schema and webhook rules)", async () => {
    const sinks = await committed("knative/eventing/sinks.yaml");
    expect(sinks.map((s) => s.metadata?.name)).toEqual([NAMES.resultsSink, NAMES.deadLetterSink, NAMES.logSink]);
    expect(formatProblems(validateObjects(sinks))).toBe("");
  });

  it("sinkbinding.yaml has the SinkBinding's structure and binds the inference Service", async () => {
    const [binding, ...rest] = await committed("knative/eventing/sinkbinding.yaml");
    expect(rest).toEqual([]);
    expect(sinkBindingProblems(binding!)).toEqual([]);
    const subject = (binding!.spec as any).subject;
    expect(subject).toEqual({ apiVersion: service().apiVersion, kind: "Service", name: service().metadata.name });
  });

  it("the structural SinkBinding check catches mistakes", () => {
    const b = clone(sinkBinding()) as any;
    b.spec.sinks = b.spec.sink;
    delete b.spec.sink;
    b.spec.subject.selector = { matchLabels: { a: "b" } };
    expect(sinkBindingProblems(b)).toEqual(["spec: unknown field sinks", "spec.subject needs exactly one of name and selector", "spec.sink needs a ref or a uri"]);
  });

  it("the request Trigger filters the runtime's request type onto the inference Service; the reply Trigger its reply type", () => {
    const req = requestTrigger();
    expect(req.spec.broker).toBe(broker().metadata.name);
    expect(req.spec.filter?.attributes).toEqual({ type: REQUEST_EVENT_TYPE });
    expect(req.spec.subscriber.ref).toEqual({ apiVersion: service().apiVersion, kind: "Service", name: service().metadata.name });
    const reply = replyTrigger();
    expect(reply.spec.broker).toBe(broker().metadata.name);
    // The reply type is the server's default CE_TYPE.
    expect(reply.spec.filter?.attributes).toEqual({ type: ConfigSchema.parse({}).ceType });
    expect(RESPONSE_EVENT_TYPE).toBe(ConfigSchema.parse({}).ceType);
  });

  it("cannot loop: no Trigger delivers the reply type (or an unfiltered stream) to the inference Service", async () => {
    const triggers = (await committed("knative/eventing/triggers.yaml")) as unknown as Trigger[];
    const toInference = triggers.filter((t) => t.spec.subscriber.ref?.name === service().metadata.name);
    expect(toInference).toHaveLength(1);
    for (const t of toInference) {
      const type = t.spec.filter?.attributes.type;
      expect(type, `${t.metadata.name} must filter on type`).toBeDefined();
      expect(type).not.toBe(RESPONSE_EVENT_TYPE);
    }
  });

  it("every reference resolves: subscribers, dead-letter sinks and the log sink are Services defined here or the inference Service", async () => {
    const defined = new Set([service().metadata.name, ...(await committed("knative/eventing/sinks.yaml")).map((s) => s.metadata?.name)]);
    const objects = [
      ...(await committed("knative/eventing/broker.yaml")),
      ...(await committed("knative/eventing/triggers.yaml")),
      ...(await committed("knative/eventing/sinkbinding.yaml")),
    ];
    const refs: { where: string; ref: Destination["ref"] }[] = [];
    for (const o of objects) {
      const spec = o.spec as any;
      if (spec.subscriber) refs.push({ where: `${o.metadata?.name} subscriber`, ref: spec.subscriber.ref });
      if (spec.delivery?.deadLetterSink) refs.push({ where: `${o.metadata?.name} deadLetterSink`, ref: spec.delivery.deadLetterSink.ref });
      if (spec.sink) refs.push({ where: `${o.metadata?.name} sink`, ref: spec.sink.ref });
    }
    expect(refs).toHaveLength(6);
    for (const { where, ref } of refs) {
      expect(ref?.kind, where).toBe("Service");
      expect(ref?.apiVersion, where).toBe("serving.knative.dev/v1");
      expect(defined.has(ref!.name), `${where} -> ${ref!.name}`).toBe(true);
    }
  });

  it("the CRD validation catches mistakes in a Trigger and a Broker", () => {
    const t = clone(requestTrigger()) as any;
    t.spec.subscriber.reff = t.spec.subscriber.ref;
    t.spec.delivery.retry = "5";
    expect(formatProblems(validateAgainstCrd(t)!)).toMatch(/spec\.subscriber: unknown field "reff"/);
    expect(formatProblems(validateAgainstCrd(t)!)).toMatch(/spec\.delivery\.retry: must be integer/);
    const b = clone(broker()) as any;
    b.spec.delivery.deadLetterSink.ref.nmae = "x";
    expect(formatProblems(validateAgainstCrd(b)!)).toMatch(/unknown field "nmae"/);
    expect(deliveryProblems({ retry: -1, backoffPolicy: "exp", backoffDelay: "500ms" }, "d")).toEqual([
      "d.retry: must be a non-negative integer",
      "d.backoffPolicy: must be linear or exponential",
      "d.backoffDelay: not an ISO 8601 duration: 500ms",
      "d.deadLetterSink: needs a ref or a uri",
    ]);
  });

  it("kubectl kustomize knative/eventing renders the Broker, both Triggers, the SinkBinding and the sinks", () => {
    let rendered: string;
    try {
      rendered = execFileSync(process.env.KUBECTL ?? "kubectl", ["kustomize", join(REPO_ROOT, "knative/eventing")], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === "ENOENT") throw new Error("kubectl not found: the kustomize tests need kubectl (Debian: apt-get install kubernetes-client)");
      throw new Error(`kubectl kustomize knative/eventing failed: ${e.stderr ?? e.message}`);
    }
    const kinds = parseManifests(rendered, "knative/eventing").map((o) => o.kind).sort();
    expect(kinds).toEqual(["Broker", "Service", "Service", "Service", "SinkBinding", "Trigger", "Trigger"]);
  });
});
