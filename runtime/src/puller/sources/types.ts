import type { ByteBudget } from "../budget.js";
import type { ReceivedEncoding } from "../http-client.js";
import type { Logger } from "../log.js";
import type { Progress } from "../progress.js";
import type { BackoffOptions } from "../retry.js";

/** What every source needs while it runs. */
export interface PullContext {
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  log: Logger;
  retries: number;
  backoff?: BackoffOptions;
  idleTimeoutMs: number;
  budget: ByteBudget;
  progress: Progress;
  concurrency: number;
}

export interface FetchResult {
  size: number;
  sha256: string;
  /** File name the server suggested (Content-Disposition). */
  dispositionName?: string;
  /** True when the file was hard-linked rather than copied. */
  linked?: boolean;
  /** The body came with a Content-Encoding that was decoded (http-client.ts): the bytes received. */
  encoding?: ReceivedEncoding;
}

export interface RemoteFile {
  /** Relative POSIX path inside the model, already validated by `safeRelPath`. */
  path: string;
  /** Size announced by the source (listing, API), when known. */
  size?: number;
  /** Digest the source itself vouches for (Hugging Face LFS), checked after the download. */
  sha256?: string;
  /** Fetches the file into `file` (which must not exist yet), hashing it on the way. */
  fetch(file: string, ctx: PullContext): Promise<FetchResult>;
}

export interface ResolvedSource {
  files: RemoteFile[];
  /** The source names exactly one file: --filename and archive extraction apply. */
  single: boolean;
  /** Extra identity for the marker, e.g. the commit a Hugging Face branch resolved to. */
  resolved?: Record<string, string>;
}

export type SourceKind = "http" | "s3" | "hf" | "file";

export interface Source {
  kind: SourceKind;
  /** Redacted, canonical form: what logs show and the marker records. */
  id: string;
  /** Lists the files (network access for remote sources). */
  resolve(ctx: PullContext): Promise<ResolvedSource>;
}
