/**
 * Operations: a PodMonitor that scrapes the server's /metrics, a PrometheusRule
 * with the alerts, and a Grafana dashboard, all on the metric names of
 * runtime/src/constants.ts (METRICS). The validator parses every PromQL
 * expression and checks that it only names those metrics.
 */
import { Counter, Gauge, Histogram } from "prom-client";
import { METRICS, PATHS } from "../../runtime/src/constants.js";
import { Metrics } from "../../runtime/src/metrics.js";
import { labels } from "./knative.js";
import { APP_NAME, ASYNC_SERVICE_NAME, GRPC, LATENCY_P95_THRESHOLD_SECONDS, PULLER_CONTAINER, SERVER_CONTAINER } from "./settings.js";
import { GENERATED_HEADER, type Commented } from "./yaml.js";

const SOURCE = "knative/build/monitoring.ts";

/** Labels the scrape adds to every series (PodMonitor relabelings and Prometheus' own). */
export const TARGET_LABELS = ["namespace", "pod", "container", "job", "instance", "endpoint", "revision", "knative_service"] as const;

/** Series from outside the runtime that the alerts use (kube-state-metrics), with their labels. */
export const EXTERNAL_SERIES: Record<string, string[]> = {
  kube_pod_container_status_restarts_total: ["namespace", "pod", "container"],
  kube_pod_init_container_status_restarts_total: ["namespace", "pod", "container"],
};

/**
 * Every series a query may use, with the labels it carries: the runtime's own
 * metrics as runtime/src/metrics.ts registers them (histograms with
 * _bucket/_sum/_count, buckets with le), and EXTERNAL_SERIES.
 */
export function knownSeries(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [name, labels] of Object.entries(EXTERNAL_SERIES)) out.set(name, new Set(labels));
  const metrics = new Metrics();
  for (const metric of Object.values(metrics)) {
    if (!(metric instanceof Counter || metric instanceof Gauge || metric instanceof Histogram)) continue;
    const m = metric as unknown as { name: string; labelNames: readonly string[] };
    const labels = new Set(m.labelNames);
    if (metric instanceof Histogram) {
      out.set(`${m.name}_bucket`, new Set([...labels, "le"]));
      out.set(`${m.name}_sum`, labels);
      out.set(`${m.name}_count`, labels);
    } else {
      out.set(m.name, labels);
    }
  }
  return out;
}

/** Knative names the serving container's port `user-port` in the pods it creates. */
const KNATIVE_USER_PORT = "user-port";

export function podMonitor() {
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PodMonitor",
    metadata: { name: APP_NAME, labels: labels("monitoring") },
    spec: {
      selector: { matchExpressions: [{ key: "serving.knative.dev/service", operator: "In", values: [APP_NAME, GRPC.serviceName, ASYNC_SERVICE_NAME] }] },
      podMetricsEndpoints: [
        {
          port: KNATIVE_USER_PORT,
          path: PATHS.metrics,
          interval: "15s",
          relabelings: [
            { sourceLabels: ["__meta_kubernetes_pod_label_serving_knative_dev_revision"], targetLabel: "revision" },
            { sourceLabels: ["__meta_kubernetes_pod_label_serving_knative_dev_service"], targetLabel: "knative_service" },
          ],
        },
      ],
    },
  };
}

export function podMonitorManifest(): Commented {
  return {
    object: podMonitor(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Scrapes the server's /metrics in every pod of the Knative Services (prometheus-operator).",
      "Your Prometheus must select this PodMonitor: kube-prometheus-stack, for one, only picks",
      "those labelled release=<its release name> unless podMonitorSelectorNilUsesHelmValues=false.",
      "Pods scaled to zero are not scraped, so series disappear while the Service is idle.",
    ].join("\n"),
    comments: [
      [
        ["spec", "selector"],
        `Both Knative Services: ${APP_NAME} (REST) and ${GRPC.serviceName} (knative/overlays/grpc), told apart by the\nknative_service label. The gRPC one serves /metrics over HTTP/1.1 on the same port.`,
      ],
      [["spec", "podMetricsEndpoints", 0, "port"], "Knative renames the serving container's port to user-port in the pods it creates (h2c ones too)."],
      [["spec", "podMetricsEndpoints", 0, "relabelings"], "revision tells the CPU and GPU revisions apart during a traffic split."],
    ],
  };
}

const sel = (metric: string, matchers = "") => `${metric}${matchers ? `{${matchers}}` : ""}`;
const BY = "namespace, knative_service, model";

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: "warning" | "critical" };
  annotations: { summary: string; description: string };
}

export function alertRules(): AlertRule[] {
  const requests = METRICS.requests;
  return [
    {
      alert: "InferenceRuntimeHighErrorRate",
      expr: `(sum by (${BY}) (rate(${sel(requests, 'status_code=~"5.."')}[5m])) / sum by (${BY}) (rate(${requests}[5m]))) > 0.01`,
      for: "5m",
      labels: { severity: "warning" },
      annotations: {
        summary: "More than 1% of inference requests fail with 5xx",
        description: "{{ $labels.knative_service }}/{{ $labels.model }} in {{ $labels.namespace }}: {{ $value | humanizePercentage }} of requests answered 5xx over 5 minutes.",
      },
    },
    {
      alert: "InferenceRuntimeHighLatencyP95",
      expr: `histogram_quantile(0.95, sum by (${BY}, le) (rate(${METRICS.requestDuration}_bucket[5m]))) > ${LATENCY_P95_THRESHOLD_SECONDS}`,
      for: "10m",
      labels: { severity: "warning" },
      annotations: {
        summary: `p95 request latency above ${LATENCY_P95_THRESHOLD_SECONDS * 1000} ms`,
        description: "{{ $labels.knative_service }}/{{ $labels.model }} in {{ $labels.namespace }}: p95 latency {{ $value | humanizeDuration }} over 5 minutes. Check containerConcurrency and max-scale.",
      },
    },
    {
      alert: "InferenceRuntimeRestarts",
      expr: [
        `increase(${sel("kube_pod_container_status_restarts_total", `container="${SERVER_CONTAINER}", pod=~"${APP_NAME}-.*"`)}[15m]) > 0`,
        `increase(${sel("kube_pod_init_container_status_restarts_total", `container="${PULLER_CONTAINER}", pod=~"${APP_NAME}-.*"`)}[15m]) > 0`,
      ].join(" or "),
      for: "0m",
      labels: { severity: "warning" },
      annotations: {
        summary: "Inference server or model puller restarted",
        description: "{{ $labels.container }} in {{ $labels.namespace }}/{{ $labels.pod }} restarted {{ $value }} times in 15 minutes (OOMKilled, failed liveness probe, or a failing model pull).",
      },
    },
    {
      alert: "InferenceRuntimeModelNotReady",
      expr: `min by (namespace, pod, model, version) (${METRICS.modelReady}) == 0`,
      for: "5m",
      labels: { severity: "critical" },
      annotations: {
        summary: "A model has not been ready for 5 minutes",
        description: "{{ $labels.model }} version {{ $labels.version }} in {{ $labels.namespace }}/{{ $labels.pod }} is not ready: the pod gets no traffic. See the server's log for the load error.",
      },
    },
  ];
}

export function prometheusRule() {
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: APP_NAME, labels: labels("monitoring") },
    spec: { groups: [{ name: `${APP_NAME}.rules`, rules: alertRules() }] },
  };
}

export function prometheusRuleManifest(): Commented {
  return {
    object: prometheusRule(),
    header: [
      GENERATED_HEADER(SOURCE),
      "",
      "Alerts on the runtime's own metrics (and kube-state-metrics for restarts). Ratios over no",
      "traffic are empty, not zero, so a Service scaled to zero does not alert.",
    ].join("\n"),
    comments: [],
  };
}

interface Panel {
  type: "timeseries" | "stat";
  title: string;
  description: string;
  unit: string;
  targets: { expr: string; legendFormat: string }[];
}

const F = 'namespace="$namespace", knative_service="$service", model=~"$model"';

export function dashboardPanels(): Panel[] {
  const q = (fn: (m: string) => string, metric: string) => fn(`${metric}{${F}}`);
  const quantile = (p: number, metric: string, by = "revision") =>
    `histogram_quantile(${p}, sum by (${by}, le) (rate(${metric}_bucket{${F}}[$__rate_interval])))`;
  return [
    {
      type: "timeseries",
      title: "Requests per second",
      description: "By revision and HTTP status.",
      unit: "reqps",
      targets: [{ expr: q((s) => `sum by (revision, status_code) (rate(${s}[$__rate_interval]))`, METRICS.requests), legendFormat: "{{revision}} {{status_code}}" }],
    },
    {
      type: "timeseries",
      title: "Error ratio (5xx)",
      description: "Share of requests answered 5xx; the alert fires above 1%.",
      unit: "percentunit",
      targets: [
        {
          expr: `sum by (revision) (rate(${METRICS.requests}{${F}, status_code=~"5.."}[$__rate_interval])) / sum by (revision) (rate(${METRICS.requests}{${F}}[$__rate_interval]))`,
          legendFormat: "{{revision}}",
        },
      ],
    },
    {
      type: "timeseries",
      title: "Request latency",
      description: "p50/p95/p99 of the whole request, by revision (compare CPU and GPU during a traffic split).",
      unit: "s",
      targets: [0.5, 0.95, 0.99].map((p) => ({ expr: quantile(p, METRICS.requestDuration), legendFormat: `p${p * 100} {{revision}}` })),
    },
    {
      type: "timeseries",
      title: "Inference time (p95)",
      description: "Time in ONNX Runtime only.",
      unit: "s",
      targets: [{ expr: quantile(0.95, METRICS.inferenceDuration), legendFormat: "{{revision}}" }],
    },
    {
      type: "timeseries",
      title: "Queue time (p95)",
      description: "Time a request waited inside the pod before inference; growing queue time means containerConcurrency is above the pod's knee.",
      unit: "s",
      targets: [{ expr: quantile(0.95, METRICS.queueDuration), legendFormat: "{{revision}}" }],
    },
    {
      type: "timeseries",
      title: "In-flight requests per pod",
      description: "Compare with containerConcurrency and the autoscaling target.",
      unit: "short",
      targets: [{ expr: q((s) => `sum by (pod) (${s})`, METRICS.inFlight), legendFormat: "{{pod}}" }],
    },
    {
      type: "timeseries",
      title: "Pods with the model ready",
      description: "By revision; 0 while scaled to zero.",
      unit: "short",
      targets: [{ expr: `count by (revision) (${METRICS.modelReady}{${F}} == 1)`, legendFormat: "{{revision}}" }],
    },
    {
      type: "timeseries",
      title: "Batch size (mean)",
      description: "Mean first-dimension size of the requests.",
      unit: "short",
      targets: [
        {
          expr: `sum by (revision) (rate(${METRICS.batchSize}_sum{${F}}[$__rate_interval])) / sum by (revision) (rate(${METRICS.batchSize}_count{${F}}[$__rate_interval]))`,
          legendFormat: "{{revision}}",
        },
      ],
    },
    {
      type: "timeseries",
      title: "Request input size (p95)",
      description: "Bytes of tensor input per request.",
      unit: "bytes",
      targets: [{ expr: quantile(0.95, METRICS.inputBytes), legendFormat: "{{revision}}" }],
    },
    {
      type: "timeseries",
      title: "Model load time",
      description: "How long the last load took in each pod: part of every cold start, since scale from zero waits for it.",
      unit: "s",
      targets: [{ expr: `max by (revision, pod) (${METRICS.modelLoadDuration}{${F}})`, legendFormat: "{{revision}} {{pod}}" }],
    },
  ];
}

const DATASOURCE = { type: "prometheus", uid: "${datasource}" };

export function dashboard(): Record<string, unknown> {
  const templateVar = (name: string, label: string, query: string, multi: boolean) => ({
    name,
    label,
    type: "query",
    datasource: DATASOURCE,
    query: { query, refId: `${name}-var` },
    definition: query,
    refresh: 2,
    includeAll: multi,
    multi,
    allValue: multi ? ".*" : undefined,
    sort: 1,
  });
  return {
    title: "Inference runtime (Knative)",
    uid: "inference-runtime-knative",
    description: `Serving metrics of the inference runtime (${PATHS.metrics}), by Knative revision.`,
    tags: ["inference", "knative", "onnx"],
    editable: true,
    schemaVersion: 39,
    version: 1,
    time: { from: "now-6h", to: "now" },
    refresh: "30s",
    templating: {
      list: [
        { name: "datasource", label: "Data source", type: "datasource", query: "prometheus" },
        templateVar("namespace", "Namespace", `label_values(${METRICS.modelReady}, namespace)`, false),
        templateVar("service", "Knative Service", `label_values(${METRICS.modelReady}{namespace="$namespace"}, knative_service)`, false),
        templateVar("model", "Model", `label_values(${METRICS.modelReady}{namespace="$namespace", knative_service="$service"}, model)`, true),
      ],
    },
    panels: dashboardPanels().map((p, i) => ({
      id: i + 1,
      type: p.type,
      title: p.title,
      description: p.description,
      datasource: DATASOURCE,
      gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
      fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
      options: { legend: { displayMode: "list", placement: "bottom" }, tooltip: { mode: "multi" } },
      targets: p.targets.map((t, j) => ({ refId: String.fromCharCode(65 + j), datasource: DATASOURCE, expr: t.expr, legendFormat: t.legendFormat })),
    })),
  };
}

/** Every PromQL expression in the monitoring artefacts, for the validator. */
export function allQueries(): { where: string; expr: string; grafana: boolean }[] {
  return [
    ...alertRules().map((r) => ({ where: `PrometheusRule ${r.alert}`, expr: r.expr, grafana: false })),
    ...dashboardPanels().flatMap((p) => p.targets.map((t) => ({ where: `dashboard panel "${p.title}"`, expr: t.expr, grafana: true }))),
  ];
}
