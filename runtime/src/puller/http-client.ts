/**
 * The HTTP(S) client every network source uses: node:http/https with redirects,
 * idle timeouts, abort signals, retries with backoff, and a resumable download
 * that hashes (sha256) and counts the bytes on their way to disk.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import type { ByteBudget } from "./budget.js";
import { abortReason, errorMessage, isAbortError, PullerError } from "./errors.js";
import { effectiveCpus, InlineHasher, TailHasher, type Hasher } from "./hasher.js";
import type { Logger } from "./log.js";
import { redactUrl } from "./redact.js";
import { backoffDelay, retryAfterMs, sleep, type BackoffOptions } from "./retry.js";

export interface TlsOptions {
  rejectUnauthorized?: boolean;
  ca?: string | Buffer;
}

export interface RequestSpec {
  url: string;
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  /** Credentials: sent to the origin of `url` only, dropped when a redirect leaves it. */
  authHeaders?: Record<string, string>;
  tls?: TlsOptions;
  /** 0 disables redirects (signed S3 requests); default 10. */
  maxRedirects?: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Destroys the connection when it is silent this long (waiting for headers or body). */
  idleTimeoutMs?: number;
}

export interface Response {
  res: IncomingMessage;
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that answered, after redirects (not redacted). */
  url: string;
}

const RETRYABLE_NET = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "ENOTFOUND",
  "UND_ERR_SOCKET",
  "ERR_STREAM_PREMATURE_CLOSE",
  "HPE_INVALID_CHUNK_SIZE",
  "HPE_INVALID_CONSTANT",
  "HPE_UNEXPECTED_CONTENT_LENGTH",
]);

/** Wraps a low-level error into a PullerError that says whether to retry. */
export function networkError(err: unknown, what: string, signal?: AbortSignal): PullerError {
  if (err instanceof PullerError) return err;
  if (signal?.aborted) return abortReason(signal);
  if (isAbortError(err)) return new PullerError("ABORTED", `${what}: aborted`, { cause: err });
  const code = (err as { code?: string }).code ?? "";
  const msg = errorMessage(err);
  const tls = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(code);
  return new PullerError("NETWORK", `${what}: ${msg}${code && !msg.includes(code) ? ` (${code})` : ""}`, {
    retryable: !tls && (RETRYABLE_NET.has(code) || code === "" || code.startsWith("HPE_") || msg === "aborted"),
    cause: err,
  });
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

function requestOnce(url: URL, spec: RequestSpec, headers: Record<string, string>, opts: RequestOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const lib = url.protocol === "https:" ? https : http;
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      reject(new PullerError("SOURCE", `unsupported URL scheme ${url.protocol}`));
      return;
    }
    const req = lib.request(
      url,
      {
        method: spec.method ?? "GET",
        // identity: servers and CDNs that compress on the fly (and would then often
        // ignore Range) send the file as it is. Objects stored with a Content-Encoding
        // (S3 metadata) come encoded anyway: download() decodes them.
        headers: { "user-agent": "model-puller", "accept-encoding": "identity", ...headers },
        signal: opts.signal,
        ...(url.protocol === "https:" ? (spec.tls ?? {}) : {}),
      },
      (res) => {
        // The idle timeout keeps running on the socket while the body streams.
        resolve(res);
      },
    );
    if (opts.idleTimeoutMs && opts.idleTimeoutMs > 0) {
      req.setTimeout(opts.idleTimeoutMs, () => {
        req.destroy(
          new PullerError("NETWORK", `no data from ${url.host} for ${opts.idleTimeoutMs} ms`, { retryable: true, details: { idle: true } }),
        );
      });
    }
    req.on("error", (err) => reject(networkError(err, `${spec.method ?? "GET"} ${redactUrl(url.href)}`, opts.signal)));
    req.end();
  });
}

/** One HTTP request, following redirects. The caller consumes or destroys the body. */
export async function request(spec: RequestSpec, opts: RequestOptions = {}): Promise<Response> {
  let url = new URL(spec.url);
  const origin = url.origin;
  const maxRedirects = spec.maxRedirects ?? 10;
  for (let hop = 0; ; hop++) {
    const headers = { ...(spec.headers ?? {}), ...(url.origin === origin ? (spec.authHeaders ?? {}) : {}) };
    const res = await requestOnce(url, spec, headers, opts);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (isRedirect(status) && location && maxRedirects > 0) {
      res.resume();
      if (hop >= maxRedirects) {
        throw new PullerError("HTTP_STATUS", `too many redirects (> ${maxRedirects}) from ${redactUrl(spec.url)}`);
      }
      url = new URL(location, url);
      continue;
    }
    return { res, status, headers: res.headers, url: url.href };
  }
}

/** Reads a (small) body into a string, at most `limit` bytes. */
export async function readBody(res: IncomingMessage, limit = 16 * 1024 * 1024, signal?: AbortSignal): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        res.destroy();
        throw new PullerError("SOURCE", `response body larger than ${limit} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw networkError(err, "reading response", signal);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** A short human reason from an error body (S3 XML, JSON `error`/`message`, or text). */
export function errorBodySummary(body: string): string {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
  if (code || message) return [code, message].filter(Boolean).join(": ");
  try {
    const j = JSON.parse(body) as { error?: unknown; message?: unknown };
    const e = j.error ?? j.message;
    if (typeof e === "string") return e;
  } catch {
    // not JSON
  }
  return body.replace(/\s+/g, " ").trim().slice(0, 200);
}

/** Whether an HTTP status is worth retrying: 5xx, 408 and 429 (the last two honour Retry-After). */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** Turns a non-success response into a PullerError (consuming a little of its body). */
export async function statusError(r: Response, what: string, signal?: AbortSignal): Promise<PullerError> {
  let summary = "";
  try {
    summary = errorBodySummary(await readBody(r.res, 64 * 1024, signal));
  } catch {
    // the status is what matters
  }
  const code = r.status === 404 ? "NOT_FOUND" : "HTTP_STATUS";
  const hint =
    r.status === 401 || r.status === 403 ? " (check the credentials: see README, 'Sources')" : "";
  return new PullerError(code, `${what}: HTTP ${r.status}${summary ? ` ${summary}` : ""}${hint}`, {
    retryable: retryableStatus(r.status),
    details: { status: r.status, retryAfterMs: retryAfterMs(r.headers["retry-after"] as string | undefined) },
  });
}

export interface RetryOptions {
  retries: number;
  signal?: AbortSignal;
  log?: Logger;
  label: string;
  backoff?: BackoffOptions;
}

/** Runs `fn` until it succeeds, retrying retryable PullerErrors with backoff. */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const e = networkError(err, opts.label, opts.signal);
      if (!e.retryable || attempt > opts.retries || opts.signal?.aborted) throw e;
      const delay = Math.max(backoffDelay(attempt, opts.backoff), Math.min(60_000, (e.details.retryAfterMs as number | undefined) ?? 0));
      opts.log?.warn({ attempt, retries: opts.retries, delayMs: delay, err: e.message }, `retrying ${opts.label}`);
      await sleep(delay, opts.signal);
    }
  }
}

/** GET/HEAD with retries; resolves with the successful (2xx) response, body unread. */
export async function requestOk(spec: RequestSpec, opts: RequestOptions & RetryOptions): Promise<Response> {
  return withRetries(async () => {
    const r = await request(spec, opts);
    if (r.status >= 200 && r.status < 300) return r;
    throw await statusError(r, opts.label, opts.signal);
  }, opts);
}

/** GET with retries, returning the body as text. */
export async function fetchText(spec: RequestSpec, opts: RequestOptions & RetryOptions): Promise<{ body: string; response: Response }> {
  return withRetries(async () => {
    const r = await request(spec, opts);
    if (r.status < 200 || r.status >= 300) throw await statusError(r, opts.label, opts.signal);
    return { body: await readBody(r.res, undefined, opts.signal), response: r };
  }, opts);
}

// ---------------------------------------------------------------------------
// Resumable download

export interface DownloadOptions {
  /** Builds the request of each attempt (called again on every retry, so it may re-sign). */
  makeRequest: (range: { start: number; ifRange?: string } | undefined) => RequestSpec | Promise<RequestSpec>;
  /** Destination file; created or truncated. */
  file: string;
  /** Redacted name of what is downloaded, for messages. */
  label: string;
  /** Size known in advance (listing, API): a different size is an error. */
  expectedSize?: number;
  budget?: ByteBudget;
  onBytes?: (n: number) => void;
  /** Called when the server tells the size (progress of a single download). */
  onSize?: (total: number) => void;
  /**
   * Files this large (or of unknown size) are hashed by a worker thread when the
   * process may use two CPUs or more; default 32 MiB. Set, it forces the choice (tests).
   */
  tailHashMinBytes?: number;
  signal?: AbortSignal;
  retries: number;
  idleTimeoutMs: number;
  log?: Logger;
  backoff?: BackoffOptions;
}

export interface DownloadResult {
  size: number;
  sha256: string;
  /** Final URL after redirects, redacted. */
  url: string;
  /** Number of connections made (1 when nothing went wrong). */
  attempts: number;
  /** Content-Disposition file name, if the server sent one. */
  dispositionName?: string;
  /**
   * Set when the body came with a Content-Encoding (gzip, deflate, br), which was
   * decoded: `size` and `sha256` describe the decoded file (the one kept), these
   * the bytes received (what a listing's or Content-Length's size counts).
   */
  encoding?: ReceivedEncoding;
}

export interface ReceivedEncoding {
  /** The Content-Encoding header, normalized (`gzip`, `br`, `gzip, br`). */
  coding: string;
  size: number;
  sha256: string;
}

// ---------------------------------------------------------------------------
// Content-Encoding
//
// Choice: decode, do not refuse. A body sent with `Content-Encoding: gzip` is a
// gzip *encoding of the file* (RFC 9110 §8.4): browsers, `curl --compressed`,
// wget with --compression=auto and the object stores' own clients hand the user
// the decoded file, and an S3 object stored with `--content-encoding gzip` is
// meant to be decoded by whoever reads it. Storing the encoded bytes under the
// file's name (what happened before) publishes a model the server cannot load.
// We ask for `Accept-Encoding: identity`, so only servers that encode regardless
// (stored object metadata, misconfigured `AddEncoding x-gzip .gz`) get here.
//
// The encoded bytes are what travels, what Range addresses and what a listing's
// size counts, so the download (resume included) keeps them as received; they are
// decoded into the final file once complete, bounded by --max-bytes and by
// MAX_DECODE_RATIO (a compression bomb is refused). Both digests are computed:
// `sha256` is the decoded file's (what ends up in dest-dir, what `sha256sum` of
// the model and the Hub's LFS digests give), and a --sha256 given for the bytes
// as stored on the server (`sha256sum m.tar.gz` next to a server that labels .gz
// files as gzip-encoded, `curl -o` without --compressed) matches too: either
// identifies the same content. Codings other than gzip, deflate and br are refused.

type Decoder = () => Transform;
const DECODERS: Record<string, Decoder> = {
  gzip: () => zlib.createGunzip(),
  "x-gzip": () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

/** A decoded body may be at most this many times the bytes received (gzip itself tops out near 1032). */
export const MAX_DECODE_RATIO = 1000;
/** ... but small bodies may always expand to this many bytes. */
const DECODE_RATIO_FLOOR = 1 << 20;

/**
 * The content codings of a response, in the order they were applied (identity
 * dropped); `[]` for a plain body. Throws for a coding the puller cannot decode.
 */
export function contentCodings(header: string | string[] | undefined, label: string): string[] {
  const raw = Array.isArray(header) ? header.join(",") : (header ?? "");
  const codings = raw
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity");
  for (const c of codings) {
    if (!Object.hasOwn(DECODERS, c)) {
      throw new PullerError("SOURCE", `${label}: the server sent the body with Content-Encoding ${JSON.stringify(raw)}, which the puller cannot decode (gzip, deflate and br can be)`);
    }
  }
  return codings;
}

/**
 * Decodes the downloaded `file` (encoded with `codings`) in place: into a new file
 * beside it, renamed over it when complete. Counts the decoded bytes against the
 * budget (instead of the encoded ones) and refuses more than MAX_DECODE_RATIO times
 * the encoded size.
 */
async function decodeDownload(
  file: string,
  codings: string[],
  encodedSize: number,
  o: { label: string; budget?: ByteBudget; signal?: AbortSignal },
): Promise<{ size: number; sha256: string }> {
  const coding = codings.join(", ");
  const limit = Math.max(DECODE_RATIO_FLOOR, encodedSize * MAX_DECODE_RATIO);
  const tmp = `${file}.${randomBytes(6).toString("hex")}.decoding`;
  const hash = createHash("sha256");
  let size = 0;
  o.budget?.giveBack(encodedSize);
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        size += chunk.length;
        if (size > limit) {
          throw new PullerError(
            "TOO_LARGE",
            `${o.label}: its Content-Encoding ${coding} expands more than ${MAX_DECODE_RATIO} times (${encodedSize} bytes received, stopped after ${size} decoded): refused as a compression bomb`,
            { details: { limit, seen: size } },
          );
        }
        o.budget?.take(chunk.length, o.label);
        hash.update(chunk);
        cb(null, chunk);
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  try {
    await pipeline(
      [
        createReadStream(file, { highWaterMark: 1 << 20 }),
        ...[...codings].reverse().map((c) => DECODERS[c]!()),
        meter,
        createWriteStream(tmp, { flags: "wx", highWaterMark: WRITE_HWM }),
      ],
      { signal: o.signal },
    );
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    if (err instanceof PullerError) throw err;
    if (o.signal?.aborted) throw abortReason(o.signal);
    throw new PullerError("SOURCE", `${o.label}: cannot decode its Content-Encoding ${coding}: ${errorMessage(err)}`, { cause: err });
  }
  return { size, sha256: hash.digest("hex") };
}

const WRITE_HWM = 4 * 1024 * 1024;

/** Parses `Content-Range: bytes a-b/total` (or `bytes * /total`). */
export function parseContentRange(v: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  if (!v) return undefined;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(v.trim());
  if (!m) return undefined;
  return {
    start: m[1] === undefined ? undefined : Number(m[1]),
    end: m[2] === undefined ? undefined : Number(m[2]),
    total: m[3] === "*" ? undefined : Number(m[3]),
  };
}

export function dispositionFilename(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(v);
  if (star) {
    try {
      return decodeURIComponent(star[1]!.trim());
    } catch {
      // fall through
    }
  }
  const plain = /filename\s*=\s*(?:"([^"]*)"|([^;\s]+))/.exec(v);
  return plain?.[1] ?? plain?.[2];
}

/**
 * Downloads one URL into `file`, computing its sha256 on the way. A dropped
 * connection is resumed with `Range` (guarded by `If-Range` when the server gave
 * a strong validator); a server that answers 200 to a range request makes the
 * download restart from zero. Network errors, 5xx, 408 and 429 are retried with
 * exponential backoff and jitter; the retry counter resets whenever a retry gets
 * further than any attempt before it.
 *
 * Throughput: the body is written through one file descriptor with a 4 MiB
 * write-behind buffer; large files are hashed by a worker thread reading behind
 * the writer (hasher.ts), and written data is flushed to the device every
 * 64 MiB (fdatasync in the background) so that the final fsync does not have to
 * write the whole file after the network is done.
 */
export async function download(o: DownloadOptions): Promise<DownloadResult> {
  const fh = await open(o.file, "w");
  let offset = 0;
  let highWater = 0;
  let hasher: Hasher | undefined;
  let total: number | undefined = o.expectedSize;
  let validator: string | undefined;
  let failures = 0;
  let attempts = 0;
  let finalUrl = "";
  let dispositionName: string | undefined;
  /** Content codings of the body being received (the encoded bytes are what is resumed). */
  let codings: string[] = [];
  const flusher = new BackgroundFlush(fh, SYNC_EVERY);

  const restart = async (why: string) => {
    if (offset > 0) {
      o.log?.warn({ file: o.label, discarded: offset, reason: why }, "restarting download from the beginning");
      o.onBytes?.(-offset);
      o.budget?.giveBack(offset);
    }
    offset = 0;
    hasher?.reset();
    await flusher.idle();
    await fh.truncate(0);
  };

  try {
    for (;;) {
      attempts++;
      try {
        const range = offset > 0 ? { start: offset, ifRange: validator } : undefined;
        const spec = await o.makeRequest(range);
        const headers = { ...(spec.headers ?? {}) };
        if (range) {
          headers.range = `bytes=${range.start}-`;
          if (range.ifRange) headers["if-range"] = range.ifRange;
        }
        const r = await request({ ...spec, headers }, { signal: o.signal, idleTimeoutMs: o.idleTimeoutMs });
        finalUrl = r.url;

        if (r.status === 416 && offset > 0) {
          const cr = parseContentRange(r.headers["content-range"] as string | undefined);
          r.res.resume();
          // The drop happened right at the end (and the server agrees on the size).
          if (cr?.total !== undefined && cr.total === offset && (total === undefined || total === offset)) break;
          await restart("range not satisfiable");
          throw new PullerError("NETWORK", `${o.label}: range not satisfiable, restarting`, { retryable: true });
        }
        if (r.status !== 200 && r.status !== 206) throw await statusError(r, `GET ${o.label}`, o.signal);

        let bodyTotal: number | undefined;
        if (r.status === 206) {
          const cr = parseContentRange(r.headers["content-range"] as string | undefined);
          if (!range || cr?.start !== offset) {
            r.res.destroy();
            await restart("unexpected Content-Range");
            throw new PullerError("NETWORK", `${o.label}: unexpected partial response`, { retryable: true });
          }
          let now: string[];
          try {
            now = contentCodings(r.headers["content-encoding"], o.label);
          } catch (err) {
            r.res.destroy();
            throw err;
          }
          if (now.join() !== codings.join()) {
            // The rest of another representation cannot continue the bytes kept so far.
            r.res.destroy();
            await restart("Content-Encoding changed");
            throw new PullerError("NETWORK", `${o.label}: Content-Encoding changed while resuming`, { retryable: true });
          }
          bodyTotal = cr.total;
        } else {
          if (offset > 0) await restart("server ignored the range request or the file changed");
          try {
            codings = contentCodings(r.headers["content-encoding"], o.label);
          } catch (err) {
            r.res.destroy();
            throw err;
          }
          const len = r.headers["content-length"];
          bodyTotal = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
          const etag = r.headers.etag;
          validator = etag && !etag.startsWith("W/") ? etag : (r.headers["last-modified"] ?? undefined);
          dispositionName = dispositionFilename(r.headers["content-disposition"] as string | undefined) ?? dispositionName;
        }

        if (bodyTotal !== undefined) {
          if (o.expectedSize !== undefined && bodyTotal !== o.expectedSize) {
            r.res.destroy();
            throw new PullerError("SIZE_MISMATCH", `${o.label}: server reports ${bodyTotal} bytes, expected ${o.expectedSize}`);
          }
          if (total !== undefined && total !== bodyTotal && offset > 0) {
            r.res.destroy();
            await restart("size changed");
            throw new PullerError("NETWORK", `${o.label}: size changed while resuming`, { retryable: true });
          }
          if (total !== bodyTotal) o.onSize?.(bodyTotal);
          total = bodyTotal;
          try {
            o.budget?.check(total - offset, o.label);
          } catch (err) {
            r.res.destroy();
            throw err;
          }
        }

        const tail = (total ?? Infinity) >= (o.tailHashMinBytes ?? TAIL_HASH_MIN) && (o.tailHashMinBytes !== undefined || effectiveCpus() >= 2);
        const h = (hasher ??= tail ? new TailHasher(o.file) : new InlineHasher());
        const before = offset;
        try {
          await pump(
            r.res,
            fh,
            offset,
            (chunk) => {
              o.budget?.take(chunk.length, o.label);
              h.received(chunk);
              offset += chunk.length;
              o.onBytes?.(chunk.length);
            },
            (upTo) => {
              h.writtenUpTo(upTo);
              flusher.writtenUpTo(upTo);
            },
          );
        } finally {
          if (offset > highWater) {
            highWater = offset;
            if (offset > before) failures = 0;
          }
        }
        if (total !== undefined && offset < total) {
          throw new PullerError("NETWORK", `${o.label}: connection closed after ${offset} of ${total} bytes`, { retryable: true });
        }
        if (total !== undefined && offset > total) {
          throw new PullerError("SIZE_MISMATCH", `${o.label}: received ${offset} bytes, more than the announced ${total}`);
        }
        break;
      } catch (err) {
        const e = networkError(err, `GET ${o.label}`, o.signal);
        failures++;
        if (!e.retryable || failures > o.retries || o.signal?.aborted) {
          if (e.retryable && failures > o.retries) {
            throw new PullerError(e.code, `${e.message} (gave up after ${attempts} attempts)`, { cause: e, details: e.details });
          }
          throw e;
        }
        const delay = Math.max(backoffDelay(failures, o.backoff), Math.min(60_000, (e.details.retryAfterMs as number | undefined) ?? 0));
        o.log?.warn(
          { file: o.label, attempt: failures, retries: o.retries, resumeAt: offset, delayMs: delay, err: e.message },
          offset > 0 ? "download interrupted, resuming" : "download failed, retrying",
        );
        await sleep(delay, o.signal);
      }
    }
    const sha256 = await (hasher ?? new InlineHasher()).digest(offset);
    // The final fsync happens once for the whole staging tree, before publishing.
    const result: DownloadResult = { size: offset, sha256, url: redactUrl(finalUrl), attempts, dispositionName };
    if (codings.length === 0) return result;
    await hasher?.close();
    hasher = undefined;
    await flusher.idle();
    const decoded = await decodeDownload(o.file, codings, offset, o);
    o.log?.info({ file: o.label, contentEncoding: codings.join(", "), received: offset, decoded: decoded.size }, "decoded the Content-Encoding of the download");
    return { ...result, size: decoded.size, sha256: decoded.sha256, encoding: { coding: codings.join(", "), size: offset, sha256 } };
  } finally {
    await hasher?.close();
    await flusher.idle();
    await fh.close();
  }
}

/** Files at least this large are hashed by a worker thread (TailHasher). */
const TAIL_HASH_MIN = 32 * 1024 * 1024;
/** Written data is flushed to the device in the background every this many bytes. */
const SYNC_EVERY = 64 * 1024 * 1024;

/** fdatasync in the background every `every` bytes written, one at a time. */
class BackgroundFlush {
  private pending: Promise<void> | undefined;
  private last = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly every: number,
  ) {}

  writtenUpTo(n: number): void {
    if (n < this.last) this.last = 0; // truncated
    if (n - this.last < this.every || this.pending) return;
    this.last = n;
    this.pending = this.fh
      .datasync()
      .catch(() => {}) // durability is checked by the final fsync
      .finally(() => (this.pending = undefined));
  }

  async idle(): Promise<void> {
    await this.pending;
  }
}

/**
 * Streams a response body into the file at `position`, calling `onChunk` (count,
 * limit) for every chunk before it is written, and `onWritten(n)` from time to
 * time with the length of the file prefix known to be written. Resolves when the
 * body ended cleanly and every byte is written; rejects (after flushing what was
 * received, so the file holds exactly the bytes counted) otherwise.
 */
function pump(
  res: IncomingMessage,
  fh: FileHandle,
  position: number,
  onChunk: (chunk: Buffer) => void,
  onWritten: (upTo: number) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    // The numeric fd: a FileHandle passed to a stream is reference-counted and, with
    // autoClose off, its close() would wait forever.
    const ws = createWriteStream("", { fd: fh.fd, start: position, autoClose: false, highWaterMark: WRITE_HWM });
    let failed: unknown;
    let ended = false;

    const finish = () => {
      res.removeListener("data", onData);
      if (!ws.writableEnded) ws.end();
    };
    const fail = (err: unknown) => {
      if (failed !== undefined || ended) return;
      failed = err;
      res.destroy();
      finish();
    };
    const onData = (chunk: Buffer) => {
      if (failed !== undefined) return;
      try {
        onChunk(chunk);
      } catch (err) {
        fail(err);
        return;
      }
      // ws.bytesWritten counts completed writes: no callback per chunk needed.
      onWritten(position + ws.bytesWritten);
      if (!ws.write(chunk)) res.pause();
    };

    res.on("data", onData);
    ws.on("drain", () => {
      onWritten(position + ws.bytesWritten);
      if (failed === undefined) res.resume();
    });
    res.on("end", () => {
      if (failed !== undefined) return;
      if (!res.complete) {
        fail(new PullerError("NETWORK", "connection closed before the end of the body", { retryable: true }));
        return;
      }
      ended = true;
      finish();
    });
    res.on("error", (err) => fail(err));
    res.on("close", () => {
      if (!ended && failed === undefined) {
        fail(new PullerError("NETWORK", "connection closed before the end of the body", { retryable: true }));
      }
    });
    ws.on("error", (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      const e = new PullerError("DEST", `writing the download: ${err.message}`, { retryable: false, cause: err, details: { code } });
      if (failed === undefined && !ended) fail(e);
      else failed = e;
      reject(e);
    });
    ws.on("finish", () => {
      onWritten(position + ws.bytesWritten);
      if (failed !== undefined) reject(failed);
      else resolve();
    });
  });
}
