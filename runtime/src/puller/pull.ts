/**
 * One pull, start to end: warm check, lock, recovery, download, verify,
 * extract, seal, publish. `pull()` is what the CLI runs; tests and the benchmark
 * call it in-process too.
 */
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { archiveKind, extractArchive, type ExtractedFile } from "./archive.js";
import { ByteBudget } from "./budget.js";
import type { PullerConfig } from "./config.js";
import { ChecksumMismatchError, PullerError, errorMessage } from "./errors.js";
import { acquireLock } from "./lock.js";
import type { Logger, Terminal } from "./log.js";
import { markerMatches, readMarker, treeDigest, verifyFiles, MARKER_SCHEMA, type Marker, type MarkerFile, type MarkerRequest } from "./marker.js";
import { checkRelPath, MARKER_NAME } from "./paths.js";
import { Progress, type ProgressMode } from "./progress.js";
import {
  createStaging,
  discardStaging,
  ensureStateDir,
  fsyncTree,
  publish,
  recover,
  resolveTarget,
  sealVersion,
  type Layout,
  type Staging,
  type Target,
} from "./publish.js";
import { parseSource, type PullContext, type RemoteFile, type ResolvedSource, type Source } from "./sources/index.js";
import type { FetchResult } from "./sources/types.js";
import { registerEnvSecrets, secrets } from "./redact.js";
import { formatBytes } from "./units.js";
import { VERSION } from "./version.js";

export interface PullDeps {
  env?: NodeJS.ProcessEnv;
  log: Logger;
  terminal?: Terminal;
  /** Aborts the pull (SIGTERM); the overall --timeout is added to it. */
  signal?: AbortSignal;
}

export type PullStatus =
  /** dest-dir already held the model (warm start, no lock, no network). */
  | "present"
  /** Another puller published it while this one waited for the lock. */
  | "published-by-other"
  /** A complete version left by an interrupted run was published without downloading. */
  | "recovered"
  /** Downloaded and published now. */
  | "pulled";

export interface PullOutcome {
  status: PullStatus;
  dest: string;
  layout?: Layout;
  marker: Marker;
  durationMs: number;
}

type Want = MarkerRequest & { sha256?: string };

async function checkPresent(dest: string, want: Want): Promise<{ ok: true; marker: Marker } | { ok: false; marker?: Marker; reason?: string }> {
  const marker = await readMarker(dest);
  if (!marker) return { ok: false };
  const match = markerMatches(marker, want);
  if (!match.ok) return { ok: false, marker, reason: match.reason };
  const files = await verifyFiles(dest, marker);
  if (!files.ok) return { ok: false, marker, reason: files.reason };
  return { ok: true, marker };
}

/** The name a single downloaded file gets in dest-dir by default. */
export function defaultFileName(name: string): string {
  return /\.onnx$/i.test(name) ? "model.onnx" : name;
}

function artifactName(file: RemoteFile, disposition: string | undefined): string {
  if (disposition && !/\.[A-Za-z0-9]{1,8}$/.test(file.path)) {
    const c = checkRelPath(disposition);
    if (c.ok && !c.path.includes("/")) return c.path;
  }
  return file.path;
}

async function runPool<T>(items: readonly T[], concurrency: number, signal: AbortSignal, fn: (item: T, signal: AbortSignal) => Promise<void>): Promise<void> {
  const ac = new AbortController();
  const sig = AbortSignal.any([signal, ac.signal]);
  let next = 0;
  let failure: unknown;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (failure === undefined && next < items.length) {
        const item = items[next++]!;
        try {
          await fn(item, sig);
        } catch (err) {
          if (failure === undefined) {
            failure = err;
            ac.abort(err);
          }
        }
      }
    }),
  );
  if (failure !== undefined) throw failure;
}

interface Fetched {
  files: MarkerFile[];
  sha256: string;
  digest: "file" | "tree";
  artifact?: Marker["artifact"];
  contentEncoding?: Marker["contentEncoding"];
}

/**
 * Whether a digest identifies a download: the file kept, or, for a body that came
 * with a Content-Encoding, also the bytes as received (see http-client.ts).
 */
function digestMatches(expected: string, r: FetchResult): boolean {
  return expected === r.sha256 || (r.encoding !== undefined && expected === r.encoding.sha256);
}

async function fetchSingle(
  source: Source,
  file: RemoteFile,
  staging: Staging,
  config: PullerConfig,
  ctx: PullContext,
): Promise<Fetched> {
  const tmp = join(staging.scratch, "artifact");
  const r = await file.fetch(tmp, ctx);
  // A listed size counts the bytes as stored, i.e. before any Content-Encoding is decoded.
  const received = r.encoding?.size ?? r.size;
  if (file.size !== undefined && received !== file.size) {
    throw new PullerError("SIZE_MISMATCH", `${source.id}: got ${received} bytes, the source announced ${file.size}`);
  }
  if (file.sha256 && !digestMatches(file.sha256, r)) throw new ChecksumMismatchError(`${source.id} (digest published by the source)`, file.sha256, r.sha256);
  if (config.sha256 && !digestMatches(config.sha256, r)) throw new ChecksumMismatchError(source.id, config.sha256, r.sha256);
  const contentEncoding = r.encoding ? { contentEncoding: r.encoding } : {};

  const name = artifactName(file, r.dispositionName);
  const kind = config.extract === "auto" ? archiveKind(name) : undefined;
  if (kind) {
    if (config.filename) ctx.log.warn({ filename: config.filename }, "--filename does not apply to an archive; ignored");
    ctx.log.info({ archive: name, kind }, "extracting");
    const extracted: ExtractedFile[] = await extractArchive(kind, tmp, staging.dir, {
      budget: new ByteBudget(config.maxBytes, "the extracted model"),
      signal: ctx.signal,
    });
    if (extracted.length === 0) throw new PullerError("BAD_ARCHIVE", `${name} holds no files`);
    await rm(tmp, { force: true });
    return { files: extracted, sha256: r.sha256, digest: "file", artifact: { name, size: r.size, archive: kind }, ...contentEncoding };
  }
  const finalName = config.filename ?? defaultFileName(name);
  const valid = checkRelPath(finalName);
  if (!valid.ok || finalName.includes("/")) {
    throw new PullerError("SOURCE", `cannot store the download as ${JSON.stringify(finalName)}: the name ${valid.ok ? "contains a slash" : valid.reason}; use --filename`);
  }
  await rename(tmp, join(staging.dir, finalName));
  return {
    files: [{ path: finalName, size: r.size, sha256: r.sha256 }],
    sha256: r.sha256,
    digest: "file",
    artifact: { name, size: r.size, archive: null },
    ...contentEncoding,
  };
}

async function fetchMany(source: Source, resolved: ResolvedSource, staging: Staging, config: PullerConfig, ctx: PullContext): Promise<Fetched> {
  if (config.filename) ctx.log.warn({ filename: config.filename }, "--filename applies to single-file sources only; ignored");
  const out: MarkerFile[] = [];
  await runPool(resolved.files, config.concurrency, ctx.signal, async (f, signal) => {
    const dest = join(staging.dir, ...f.path.split("/"));
    await mkdir(dirname(dest), { recursive: true });
    const r = await f.fetch(dest, { ...ctx, signal });
    const received = r.encoding?.size ?? r.size;
    if (f.size !== undefined && received !== f.size) {
      throw new PullerError("SIZE_MISMATCH", `${source.id}: ${f.path} has ${received} bytes, the source announced ${f.size}`);
    }
    if (f.sha256 && !digestMatches(f.sha256, r)) throw new ChecksumMismatchError(`${f.path} (digest published by the source)`, f.sha256, r.sha256);
    out.push({ path: f.path, size: r.size, sha256: r.sha256 });
  });
  out.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const digest = treeDigest(out as Array<{ path: string; sha256: string }>);
  if (config.sha256 && digest !== config.sha256) throw new ChecksumMismatchError(`${source.id} (tree digest of ${out.length} files)`, config.sha256, digest);
  return { files: out, sha256: digest, digest: "tree" };
}

function progressMode(config: PullerConfig, terminal: Terminal | undefined): ProgressMode {
  if (config.progress !== "auto") return config.progress;
  return terminal?.isTTY ? "bar" : "log";
}

async function download(
  source: Source,
  target: Target,
  staging: Staging,
  config: PullerConfig,
  want: Want,
  deps: PullDeps & { env: NodeJS.ProcessEnv },
  signal: AbortSignal,
  started: number,
): Promise<Marker> {
  const log = deps.log;
  const progress = new Progress({ mode: progressMode(config, deps.terminal), log, terminal: deps.terminal, intervalMs: config.progressInterval });
  const ctx: PullContext = {
    env: deps.env,
    signal,
    log,
    retries: config.retries,
    backoff: { baseMs: config.retryDelay },
    idleTimeoutMs: config.idleTimeout,
    budget: new ByteBudget(config.maxBytes),
    progress,
    concurrency: config.concurrency,
  };
  const resolved = await source.resolve(ctx);
  const sizes = resolved.files.map((f) => f.size);
  const total = sizes.every((s) => s !== undefined) ? sizes.reduce<number>((a, b) => a + (b ?? 0), 0) : undefined;
  if (total !== undefined) ctx.budget.check(total);
  progress.setTotal(total);
  log.info({ source: source.id, files: resolved.files.length, bytes: total ?? null, dest: target.dest, layout: target.layout, ...(resolved.resolved ?? {}) }, "pulling");
  progress.start();
  let fetched: Fetched;
  try {
    fetched = resolved.single
      ? await fetchSingle(source, resolved.files[0]!, staging, config, ctx)
      : await fetchMany(source, resolved, staging, config, ctx);
  } finally {
    progress.stop();
  }
  await fsyncTree(staging.dir);
  const entries = (await readdir(staging.dir)).filter((n) => n !== MARKER_NAME).sort();
  const size = fetched.files.reduce((a, f) => a + f.size, 0);
  const durationMs = Math.round(performance.now() - started);
  const transferred = progress.transferred;
  log.info(
    {
      source: source.id,
      sha256: fetched.sha256,
      files: fetched.files.length,
      bytes: size,
      seconds: Math.round(durationMs / 100) / 10,
      rate: `${formatBytes(transferred / Math.max(0.001, durationMs / 1000))}/s`,
    },
    "downloaded and verified",
  );
  return {
    schema: MARKER_SCHEMA,
    source: source.id,
    request: { source: want.source, extract: want.extract, filename: want.filename },
    ...(resolved.resolved ? { resolved: resolved.resolved } : {}),
    sha256: fetched.sha256,
    digest: fetched.digest,
    ...(fetched.artifact ? { artifact: fetched.artifact } : {}),
    ...(fetched.contentEncoding ? { contentEncoding: fetched.contentEncoding } : {}),
    size,
    files: fetched.files,
    entries,
    layout: target.layout,
    pulledAt: new Date().toISOString(),
    durationMs,
    puller: { version: VERSION, hostname: hostname() },
  };
}

/** Makes sure `config.dest` holds the requested model. Throws PullerError on failure. */
export async function pull(config: PullerConfig, depsIn: PullDeps): Promise<PullOutcome> {
  const started = performance.now();
  const deps = { ...depsIn, env: depsIn.env ?? process.env };
  const log = deps.log;
  registerEnvSecrets(deps.env);
  secrets.addUrl(config.source);
  const source = parseSource(config.source, deps.env);
  const want: Want = { source: source.id, extract: config.extract, filename: config.filename ?? null, sha256: config.sha256 };
  const dest = resolve(config.dest);
  const elapsed = () => Math.round(performance.now() - started);

  // Warm start: one small read, no lock, no network.
  if (!config.force) {
    const present = await checkPresent(dest, want);
    if (present.ok) {
      log.info({ dest, source: source.id, sha256: present.marker.sha256, pulledAt: present.marker.pulledAt }, "model already present");
      return { status: "present", dest, marker: present.marker, durationMs: elapsed() };
    }
    if (present.marker) log.info({ dest, reason: present.reason }, "dest-dir holds another model; pulling");
  }

  const lockLost = new AbortController();
  const signal = AbortSignal.any(
    [lockLost.signal, deps.signal, config.timeout ? AbortSignal.timeout(config.timeout) : undefined].filter((s): s is AbortSignal => s !== undefined),
  );

  try {
    const target = await resolveTarget(dest, config.layout);
    await ensureStateDir(target);
    const acquired = await acquireLock(target.lockPath, {
      staleMs: config.lockStale,
      signal,
      log,
      isDone: async () => !config.force && (await checkPresent(dest, want)).ok,
      onLost: (err) => lockLost.abort(err),
    });
    if ("done" in acquired) {
      const marker = (await readMarker(dest))!;
      log.info({ dest, source: source.id, sha256: marker.sha256 }, "model published by another puller");
      return { status: "published-by-other", dest, layout: target.layout, marker, durationMs: elapsed() };
    }
    const lock = acquired.lock;
    try {
      if (!config.force) {
        const present = await checkPresent(dest, want);
        if (present.ok) {
          log.info({ dest, source: source.id, sha256: present.marker.sha256 }, "model published by another puller");
          return { status: "published-by-other", dest, layout: target.layout, marker: present.marker, durationMs: elapsed() };
        }
      }
      const reusable = await recover(target, want, log);
      if (reusable && !config.force) {
        const marker = (await readMarker(reusable))!;
        await lock.assertHeld();
        await publish(target, reusable, log);
        log.info({ dest, source: source.id, sha256: marker.sha256, version: reusable }, "published a complete model left by an interrupted run");
        return { status: "recovered", dest, layout: target.layout, marker, durationMs: elapsed() };
      }

      const staging = await createStaging(target);
      let sealed = false;
      try {
        const marker = await download(source, target, staging, config, want, deps, signal, started);
        const version = await sealVersion(target, staging, marker);
        sealed = true;
        await lock.assertHeld();
        await publish(target, version, log);
        log.info({ dest, layout: target.layout, sha256: marker.sha256, files: marker.files.length, bytes: marker.size }, "model published");
        return { status: "pulled", dest, layout: target.layout, marker, durationMs: elapsed() };
      } finally {
        if (!sealed) await discardStaging(staging).catch((err) => log.warn({ err: errorMessage(err) }, "could not remove the staging directory"));
        else await rm(staging.scratch, { recursive: true, force: true }).catch(() => {});
      }
    } finally {
      await lock.release();
    }
  } catch (err) {
    if (!signal.aborted) throw err;
    // Whatever failed, the cause is the abort: report that.
    const reason = signal.reason as unknown;
    if (reason instanceof PullerError) throw reason;
    if ((reason as { name?: string } | undefined)?.name === "TimeoutError") {
      throw new PullerError("TIMEOUT", `timed out after ${config.timeout} ms (--timeout); nothing was published`, { cause: err });
    }
    throw new PullerError("ABORTED", `aborted: ${errorMessage(reason)}`, { cause: err });
  }
}
