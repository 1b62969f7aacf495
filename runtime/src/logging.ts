/**
 * Structured logs: one JSON object per line on stdout (what log collectors on
 * Kubernetes expect), or a compact human format with LOG_FORMAT=pretty.
 * Secrets never reach a log line: known secret keys are redacted, and URLs lose
 * their credentials and query strings.
 */
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { levelFormatter } from "./log-format.js";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
export type LogFormat = "json" | "pretty";

const REDACT = ["repositoryApiToken", "*.repositoryApiToken", "resultsToken", "*.resultsToken", "authorization", "*.authorization", "headers.authorization"];

/** A secret's value never shows; a secret key present without a value (not configured) reads "unset". */
export const censorSecret = (value: unknown): string => (value === undefined || value === null ? "unset" : "[REDACTED]");

/** A URL without user:password and without its query string (signed URLs carry secrets there). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = "REDACTED";
      u.password = "";
    }
    if (u.search) u.search = "?REDACTED";
    return u.toString();
  } catch {
    return "[unparseable URL]";
  }
}

const LEVEL_NAMES: Record<string, string> = { trace: "TRACE", debug: "DEBUG", info: "INFO ", warn: "WARN ", error: "ERROR", fatal: "FATAL" };

/** LOG_FORMAT=pretty: `12:00:00.123 INFO  message key=value …`, for people at a terminal. */
function prettyStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line) continue;
        try {
          const { time, level, msg, service: _s, err, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
          const stack = err && typeof err === "object" && "stack" in err ? `\n${(err as { stack: string }).stack}` : "";
          out.write(`${String(time).slice(11, 23)} ${LEVEL_NAMES[String(level)] ?? level} ${msg ?? ""}${fields ? ` ${fields}` : ""}${stack}\n`);
        } catch {
          out.write(`${line}\n`);
        }
      }
      done();
    },
  });
}

export function createLogger(level: LogLevel, format: LogFormat = "json", destination: NodeJS.WritableStream = process.stdout): Logger {
  const options = {
    level,
    base: { service: "inference-server" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: levelFormatter },
    redact: { paths: REDACT, censor: censorSecret },
  };
  if (format === "pretty") return pino(options, prettyStream(destination));
  // Asynchronous writes keep logging off the request path; main.ts flushes before exit.
  return pino(options, destination === process.stdout ? pino.destination({ dest: 1, sync: false }) : destination);
}

/** The W3C traceparent's trace and span ids, for correlating log lines with traces. */
export function parseTraceparent(header: string | undefined): { trace_id: string; span_id: string } | undefined {
  const match = header ? /^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-[\da-f]{2}$/.exec(header.trim()) : null;
  if (!match || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return undefined;
  return { trace_id: match[1]!, span_id: match[2]! };
}
