/**
 * Download progress: bytes, percent, rate and ETA. On a TTY a bar redrawn ten
 * times a second; otherwise a structured log line every `intervalMs` (and none
 * for downloads that finish before the first interval).
 */
import type { Logger, Terminal } from "./log.js";
import { formatBytes, formatSeconds } from "./units.js";

export type ProgressMode = "bar" | "log" | "none";

export interface ProgressSnapshot {
  bytes: number;
  total: number | undefined;
  /** 0..100 with one decimal, when the total is known. */
  percent: number | undefined;
  /** Bytes per second over the last few seconds (whole run until then). */
  rate: number;
  /** Seconds left at the current rate, when the total is known. */
  eta: number | undefined;
  elapsedMs: number;
}

export interface ProgressOptions {
  mode: ProgressMode;
  log?: Logger;
  terminal?: Terminal;
  intervalMs?: number;
  now?: () => number;
  label?: string;
}

const WINDOW_MS = 5_000;

export class Progress {
  private bytes = 0;
  private total: number | undefined;
  private readonly started: number;
  private readonly samples: Array<[number, number]> = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: ProgressOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.started = this.now();
    this.samples.push([this.started, 0]);
  }

  setTotal(total: number | undefined): void {
    this.total = total;
  }

  /** Adds transferred bytes (negative when a download restarts from zero). */
  add(n: number): void {
    this.bytes += n;
  }

  get transferred(): number {
    return this.bytes;
  }

  start(): void {
    if (this.opts.mode === "none" || this.timer) return;
    const every = this.opts.mode === "bar" ? 100 : (this.opts.intervalMs ?? 10_000);
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
  }

  /** Stops the display; on a TTY the bar is replaced by nothing (the caller logs a summary). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.opts.mode === "bar") this.opts.terminal?.status("");
  }

  snapshot(): ProgressSnapshot {
    const t = this.now();
    this.samples.push([t, this.bytes]);
    while (this.samples.length > 2 && t - this.samples[1]![0] >= WINDOW_MS) this.samples.shift();
    const [t0, b0] = this.samples[0]!;
    const dt = (t - t0) / 1000;
    const rate = dt > 0 ? Math.max(0, (this.bytes - b0) / dt) : 0;
    const total = this.total;
    const percent = total ? Math.min(100, Math.round((this.bytes / total) * 1000) / 10) : total === 0 ? 100 : undefined;
    const eta = total !== undefined && rate > 0 ? Math.max(0, (total - this.bytes) / rate) : undefined;
    return { bytes: this.bytes, total, percent, rate, eta, elapsedMs: t - this.started };
  }

  private tick(): void {
    const s = this.snapshot();
    if (this.opts.mode === "bar") {
      this.opts.terminal?.status(renderBar(s, this.opts.label, process.stderr.columns));
    } else if (this.opts.mode === "log") {
      this.opts.log?.info(
        {
          bytes: s.bytes,
          totalBytes: s.total ?? null,
          percent: s.percent ?? null,
          bytesPerSecond: Math.round(s.rate),
          etaSeconds: s.eta === undefined ? null : Math.round(s.eta),
          rate: `${formatBytes(s.rate)}/s`,
        },
        "progress",
      );
    }
  }
}

/** "[=====>    ]  45.2%  1.2 GiB / 2.7 GiB  312 MiB/s  ETA 5s" */
export function renderBar(s: ProgressSnapshot, label = "", columns = 80): string {
  const right =
    (s.percent !== undefined ? `${s.percent.toFixed(1).padStart(5)}%  ` : "") +
    `${formatBytes(s.bytes)}${s.total !== undefined ? ` / ${formatBytes(s.total)}` : ""}  ` +
    `${formatBytes(s.rate)}/s` +
    (s.eta !== undefined ? `  ETA ${formatSeconds(s.eta)}` : "");
  const prefix = label ? `${label} ` : "";
  const width = Math.max(10, Math.min(40, (columns || 80) - right.length - prefix.length - 4));
  let bar: string;
  if (s.total) {
    const filled = Math.min(width, Math.floor((s.bytes / s.total) * width));
    bar = "=".repeat(filled) + (filled < width ? ">" + " ".repeat(width - filled - 1) : "");
  } else {
    const pos = Math.floor(s.elapsedMs / 100) % width;
    bar = " ".repeat(pos) + "<=>".slice(0, width - pos) + " ".repeat(Math.max(0, width - pos - 3));
  }
  return `${prefix}[${bar}] ${right}`;
}
