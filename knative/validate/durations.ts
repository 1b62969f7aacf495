/** Go's time.ParseDuration, as Knative's webhook uses it for annotation values: milliseconds, or undefined. */
export function parseGoDuration(text: string): number | undefined {
  if (text === "0" || text === "+0" || text === "-0") return 0;
  const m = /^([+-]?)((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(text);
  if (!m) return undefined;
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const part of m[2]!.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(part[1]) * unitMs[part[2]!]!;
  return m[1] === "-" ? -total : total;
}

/** Prometheus durations as in `for:` and range selectors: 5m, 1h30m, 500ms. */
export function isPrometheusDuration(text: string): boolean {
  return /^((\d+)(ms|s|m|h|d|w|y))+$/.test(text) || text === "0";
}
