/**
 * Error types of the model puller. Every failure that reaches the CLI is a
 * PullerError (or is wrapped into one) so that it maps to a documented exit code
 * and a one-line message without a stack trace.
 */

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** 128 + signal number, as shells report it. */
export const EXIT_SIGINT = 130;
export const EXIT_SIGTERM = 143;

export type ErrorCode =
  | "USAGE"
  | "NETWORK"
  | "HTTP_STATUS"
  | "NOT_FOUND"
  | "CHECKSUM_MISMATCH"
  | "SIZE_MISMATCH"
  | "TOO_LARGE"
  | "UNSAFE_ARCHIVE"
  | "BAD_ARCHIVE"
  | "TIMEOUT"
  | "ABORTED"
  | "LOCK_LOST"
  | "DEST"
  | "SOURCE";

export class PullerError extends Error {
  readonly code: ErrorCode;
  /** Whether retrying the same request may succeed (network errors, 5xx). */
  readonly retryable: boolean;
  readonly exitCode: number;
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { retryable?: boolean; exitCode?: number; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "PullerError";
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.exitCode = opts.exitCode ?? (code === "USAGE" ? EXIT_USAGE : EXIT_FAILURE);
    this.details = opts.details ?? {};
  }
}

export class UsageError extends PullerError {
  constructor(message: string) {
    super("USAGE", message, { exitCode: EXIT_USAGE });
    this.name = "UsageError";
  }
}

export class ChecksumMismatchError extends PullerError {
  constructor(what: string, expected: string, actual: string) {
    super("CHECKSUM_MISMATCH", `sha256 mismatch for ${what}: expected ${expected}, got ${actual}`, {
      details: { expected, actual },
    });
    this.name = "ChecksumMismatchError";
  }
}

export class TooLargeError extends PullerError {
  constructor(what: string, limit: number, seen: number, known: boolean) {
    super(
      "TOO_LARGE",
      known
        ? `${what} is ${seen} bytes, more than --max-bytes ${limit}`
        : `${what} exceeded --max-bytes ${limit} (stopped after ${seen} bytes)`,
      { details: { limit, seen } },
    );
    this.name = "TooLargeError";
  }
}

export class UnsafeArchiveError extends PullerError {
  constructor(entry: string, reason: string) {
    super("UNSAFE_ARCHIVE", `unsafe archive entry ${JSON.stringify(entry)}: ${reason}`, { details: { entry, reason } });
    this.name = "UnsafeArchiveError";
  }
}

/** Whether an error came from an AbortSignal (user interrupt or overall timeout). */
export function isAbortError(err: unknown): boolean {
  if (err instanceof PullerError) return err.code === "ABORTED" || err.code === "TIMEOUT";
  const e = err as { name?: string; code?: string } | null;
  return e?.name === "AbortError" || e?.code === "ABORT_ERR" || e?.name === "TimeoutError";
}

/** Converts the reason of an aborted signal into the PullerError the CLI reports. */
export function abortReason(signal: AbortSignal): PullerError {
  const reason: unknown = signal.reason;
  if (reason instanceof PullerError) return reason;
  const r = reason as { name?: string; message?: string } | undefined;
  if (r?.name === "TimeoutError") return new PullerError("TIMEOUT", "timed out", { cause: reason });
  return new PullerError("ABORTED", r?.message ? `aborted: ${r.message}` : "aborted", { cause: reason });
}

/** Throws the signal's reason (as a PullerError) when it is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** A short message for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
