/**
 * PromQL in the PrometheusRule and the Grafana dashboard: parsed with the
 * Prometheus project's own grammar (@prometheus-io/lezer-promql), and checked
 * to name only series the runtime serves (runtime/src/constants.ts METRICS)
 * or that the alerts deliberately take from kube-state-metrics, with only the
 * labels those series carry.
 */
import { parser } from "@prometheus-io/lezer-promql";
import { TARGET_LABELS, knownSeries } from "../build/monitoring.js";

const GRAFANA_VARS: [RegExp, string][] = [
  [/\$__rate_interval|\$__interval|\$__range/g, "5m"],
  [/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, "x"],
];

/** Problems of one expression: syntax errors, unknown series, labels those series do not have. */
export function checkQuery(expr: string, options: { grafana?: boolean } = {}): string[] {
  let text = expr;
  if (options.grafana) for (const [re, value] of GRAFANA_VARS) text = text.replace(re, value);
  const problems: string[] = [];
  const tree = parser.parse(text);
  const series = knownSeries();
  const targetLabels = new Set<string>([...TARGET_LABELS, "__name__"]);
  const allLabels = new Set<string>([...targetLabels, ...[...series.values()].flatMap((l) => [...l])]);
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        problems.push(`syntax error at ${node.from}: ...${text.slice(Math.max(0, node.from - 20), node.from)}>>${text.slice(node.from, node.from + 20)}`);
        return false;
      }
      if (node.name === "VectorSelector") {
        const id = node.node.getChild("Identifier");
        const name = id ? text.slice(id.from, id.to) : undefined;
        const labels = name ? series.get(name) : undefined;
        if (name && !labels) problems.push(`unknown series ${name} (not registered by runtime/src/metrics.ts, nor an allowed external series)`);
        const matchers = node.node.getChild("LabelMatchers");
        for (let c = matchers?.firstChild; c; c = c.nextSibling) {
          const ln = c.getChild("LabelName");
          const label = ln ? text.slice(ln.from, ln.to) : undefined;
          if (label && labels && !labels.has(label) && !targetLabels.has(label)) problems.push(`${name} has no label ${label} (it has ${[...labels].join(", ") || "none"})`);
        }
        return false;
      }
      if (node.name === "LabelName") {
        const name = text.slice(node.from, node.to);
        if (!allLabels.has(name)) problems.push(`label ${name} is on no known series and is not a scrape target label`);
      }
      return undefined;
    },
  });
  return problems;
}
