import { pino, type Logger } from "pino";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/** One JSON object per line on stdout, as log collectors on Kubernetes expect. */
export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    base: { service: "inference-server" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
