/**
 * Logging: pino, to stderr. JSON lines when stderr is not a TTY (init containers,
 * CI), a compact human format on a TTY. Every line passes through `redactText`
 * (known secrets and URL credentials) before it is written, and on a TTY log lines
 * and the progress bar share the terminal without garbling each other.
 */
import type { Logger } from "pino";
import { levelFormatter } from "../log-format.js";
import { redactText, secrets, type SecretRegistry } from "./redact.js";

export type { Logger };

/** Where the puller writes human-facing output (stderr by default). */
export interface Terminal {
  readonly isTTY: boolean;
  /** Writes one complete line (adds the newline). */
  line(text: string): void;
  /** Sets (or with "" clears) the status line shown under the log on a TTY. */
  status(text: string): void;
}

export function stderrTerminal(stream: NodeJS.WriteStream = process.stderr): Terminal {
  const isTTY = Boolean(stream.isTTY);
  let current = "";
  return {
    isTTY,
    line(text) {
      if (isTTY && current) stream.write(`\r\x1b[K${text}\n${current}`);
      else stream.write(`${text}\n`);
    },
    status(text) {
      if (!isTTY) return;
      current = text;
      stream.write(`\r\x1b[K${text}`);
    },
  };
}

/** A terminal that collects lines in memory (tests). */
export function memoryTerminal(): Terminal & { lines: string[] } {
  const lines: string[] = [];
  return { isTTY: false, lines, line: (t) => void lines.push(t), status: () => {} };
}

const OMIT = new Set(["level", "time", "msg", "pid", "hostname", "name"]);

/** A JSON log line as written: unchanged, or in the human format for a TTY. */
export function formatLine(json: string, human: boolean): string {
  return human ? pretty(json) : json;
}

function pretty(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const t = typeof o.time === "string" ? o.time.slice(11, 19) : new Date().toISOString().slice(11, 19);
  const lvl = String(o.level).toUpperCase().padEnd(5);
  const extras = Object.entries(o)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return `${t} ${lvl} ${String(o.msg ?? "")}${extras.length ? `  ${extras.join(" ")}` : ""}`;
}

export interface LoggerOptions {
  level?: string;
  terminal?: Terminal;
  /** Human format instead of JSON lines; defaults to terminal.isTTY. */
  pretty?: boolean;
  registry?: SecretRegistry;
}

/** Creates the logger (pino is loaded on first use, off the warm-start path). */
export async function createLogger(opts: LoggerOptions = {}): Promise<Logger> {
  const { pino } = await import("pino");
  const terminal = opts.terminal ?? stderrTerminal();
  const human = opts.pretty ?? terminal.isTTY;
  const registry = opts.registry ?? secrets;
  const destination = {
    write(chunk: string): void {
      const clean = redactText(chunk, registry).trimEnd();
      terminal.line(human ? pretty(clean) : clean);
    },
  };
  return pino(
    {
      name: "model-puller",
      level: opts.level ?? "info",
      timestamp: pino.stdTimeFunctions.isoTime,
      // The server's level format ("level":"info"): one log query reads both programs.
      formatters: { level: levelFormatter },
      redact: { paths: ["headers.authorization", "headers.Authorization", "*.headers.authorization"], censor: "REDACTED" },
    },
    destination,
  );
}
