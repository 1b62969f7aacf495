/**
 * Helpers for the puller's tests: a loopback HTTP server with fault injection,
 * tar and zip writers that can produce hostile archives, a bundled CLI to run as
 * a child process, and temp directories. Not part of the shipped bundle.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { makeConfig, type PullerConfig } from "./config.js";
import { createLogger, memoryTerminal, type Logger } from "./log.js";
import { pull, type PullOutcome } from "./pull.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Deterministic pseudo-random bytes (fast; not crypto). */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function tempDir(prefix = "puller-test-"): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------
// HTTP server with fault injection

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>;

export class TestServer {
  readonly requests: RecordedRequest[] = [];
  private readonly routes = new Map<string, Handler>();
  private readonly counts = new Map<string, number>();
  private readonly server: http.Server;
  private readonly sockets = new Set<import("node:net").Socket>();
  port = 0;

  constructor() {
    this.server = http.createServer((req, res) => {
      this.requests.push({ method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers });
      const path = (req.url ?? "/").split("?")[0]!;
      const handler = this.routes.get(path) ?? this.routes.get("*");
      const n = (this.counts.get(path) ?? 0) + 1;
      this.counts.set(path, n);
      if (!handler) {
        res.statusCode = 404;
        res.end("not found");
        return;
      }
      Promise.resolve(handler(req, res, n)).catch((err: unknown) => {
        res.destroy(err as Error);
      });
    });
    this.server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  route(path: string, handler: Handler): this {
    this.routes.set(path, handler);
    return this;
  }

  /** Requests made to `path` (query ignored). */
  hits(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.url.split("?")[0] === path);
  }

  async start(): Promise<this> {
    await new Promise<void>((res) => this.server.listen(0, "127.0.0.1", res));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}

export interface ServeOptions {
  etag?: string;
  /** Ignore Range headers (always 200 with the whole body). */
  ignoreRange?: boolean;
  /** Close the connection after sending this many body bytes (Content-Length still announces all). */
  dropAfter?: number;
  /** Send no Content-Length (chunked). */
  chunked?: boolean;
  /** Bytes per write and pause between writes (a slow server). */
  slow?: { chunk: number; delayMs: number };
  /** Stop sending (but keep the connection open) after this many bytes. */
  stallAfter?: number;
  contentDisposition?: string;
  /** A Content-Encoding header (`data` is then the encoded body, as an object store keeps it). */
  contentEncoding?: string;
}

/** Serves `data` with Range support and the requested faults. */
export function serveBytes(req: IncomingMessage, res: ServerResponse, data: Buffer, o: ServeOptions = {}): void {
  const etag = o.etag ?? `"${sha256(data).slice(0, 16)}"`;
  let start = 0;
  let status = 200;
  const range = req.headers.range;
  const ifRange = req.headers["if-range"];
  if (range && !o.ignoreRange && (!ifRange || ifRange === etag)) {
    const m = /^bytes=(\d+)-$/.exec(range);
    if (m) {
      start = Number(m[1]);
      if (start >= data.length) {
        res.writeHead(416, { "content-range": `bytes */${data.length}` });
        res.end();
        return;
      }
      status = 206;
    }
  }
  const body = data.subarray(start);
  const headers: Record<string, string> = { etag, "accept-ranges": "bytes", "content-type": "application/octet-stream" };
  if (!o.chunked) headers["content-length"] = String(body.length);
  if (status === 206) headers["content-range"] = `bytes ${start}-${data.length - 1}/${data.length}`;
  if (o.contentDisposition) headers["content-disposition"] = o.contentDisposition;
  if (o.contentEncoding) headers["content-encoding"] = o.contentEncoding;
  res.writeHead(status, headers);
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  if (o.dropAfter !== undefined) {
    res.write(body.subarray(0, o.dropAfter), () => res.socket?.destroy());
    return;
  }
  if (o.stallAfter !== undefined) {
    res.write(body.subarray(0, o.stallAfter)); // and never more
    return;
  }
  if (o.slow) {
    const { chunk, delayMs } = o.slow;
    let pos = 0;
    const tick = () => {
      if (res.destroyed) return;
      if (pos >= body.length) {
        res.end();
        return;
      }
      res.write(body.subarray(pos, pos + chunk));
      pos += chunk;
      setTimeout(tick, delayMs);
    };
    tick();
    return;
  }
  res.end(body);
}

// ---------------------------------------------------------------------------
// Archives

export interface TarEntrySpec {
  path: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "fifo" | "chardev";
  data?: Buffer | string;
  linkpath?: string;
  mode?: number;
}

function tarHeader(e: TarEntrySpec, size: number): Buffer {
  const h = Buffer.alloc(512);
  const typeflag = { file: "0", hardlink: "1", symlink: "2", chardev: "3", dir: "5", fifo: "6" }[e.type ?? "file"];
  let name = e.path;
  let prefix = "";
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", 154);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  const put = (s: string, off: number, len: number) => h.write(s, off, Math.min(len, Buffer.byteLength(s)), "utf8");
  const oct = (n: number, len: number) => `${n.toString(8).padStart(len - 1, "0")}\0`;
  put(name, 0, 100);
  put(oct(e.mode ?? (e.type === "dir" ? 0o755 : 0o644), 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(size, 12), 124, 12);
  put(oct(1_700_000_000, 12), 136, 12);
  put("        ", 148, 8);
  put(typeflag!, 156, 1);
  put(e.linkpath ?? "", 157, 100);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  return h;
}

/** A ustar archive, written by hand so that it can hold entries real tools refuse to write. */
export function buildTar(entries: TarEntrySpec[], gzip = false): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === undefined || e.type === "file" ? Buffer.from(e.data ?? "") : Buffer.alloc(0);
    parts.push(tarHeader(e, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  const tar = Buffer.concat(parts);
  return gzip ? zlib.gzipSync(tar) : tar;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface ZipEntrySpec {
  path: string;
  data?: Buffer | string;
  /** Unix mode including the file type bits (0o120777 for a symlink whose data is the target). */
  unixMode?: number;
  deflate?: boolean;
  /** Store a wrong CRC-32 (a corrupt archive). */
  badCrc?: boolean;
}

/** A zip archive (stored or deflated entries, Unix modes), written by hand. */
export function buildZip(entries: ZipEntrySpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const raw = Buffer.from(e.data ?? "");
    const body = e.deflate ? zlib.deflateRawSync(raw) : raw;
    const name = Buffer.from(e.path, "utf8");
    const crc = e.badCrc ? (crc32(raw) ^ 1) >>> 0 : crc32(raw);
    const method = e.deflate ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, body);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(name.length, 28);
    const mode = e.unixMode ?? (e.path.endsWith("/") ? 0o040755 : 0o100644);
    central.writeUInt32LE((((mode << 16) >>> 0) | (e.path.endsWith("/") ? 0x10 : 0)) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

// ---------------------------------------------------------------------------
// Running the puller

export async function quietLogger(level = "debug"): Promise<{ log: Logger; lines: string[]; messages: () => Array<Record<string, unknown>> }> {
  const terminal = memoryTerminal();
  const log = await createLogger({ terminal, level, pretty: false });
  return {
    log,
    lines: terminal.lines,
    messages: () => terminal.lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Runs pull() in-process with a memory logger; returns the outcome or the error. */
export async function runPull(
  partial: Partial<PullerConfig> & { source: string; dest: string },
  env: NodeJS.ProcessEnv = {},
): Promise<{ outcome?: PullOutcome; error?: Error & { code?: string }; messages: Array<Record<string, unknown>>; lines: string[] }> {
  const { log, lines, messages } = await quietLogger();
  const config = await makeConfig({ progress: "none", retries: 3, ...partial });
  try {
    const outcome = await pull(config, { log, env: { ...env } });
    return { outcome, messages: messages(), lines };
  } catch (err) {
    return { error: err as Error & { code?: string }, messages: messages(), lines };
  }
}

let builtCli: Promise<string> | undefined;

/** Bundles cli.ts the way scripts/build.mjs does, into node_modules/.cache (so packages resolve). */
export function buildCli(): Promise<string> {
  builtCli ??= (async () => {
    const { build } = await import("esbuild");
    const dir = join(REPO_ROOT, "node_modules", ".cache", "model-puller-test");
    mkdirSync(dir, { recursive: true });
    const outfile = join(dir, `cli-${process.pid}-${randomBytes(3).toString("hex")}.mjs`);
    await build({
      entryPoints: [join(REPO_ROOT, "runtime/src/puller/cli.ts")],
      outfile,
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      packages: "external",
      logLevel: "warning",
    });
    return outfile;
  })();
  return builtCli;
}

/** Removes the bundle buildCli() wrote (call in afterAll). */
export async function removeBuiltCli(): Promise<void> {
  if (!builtCli) return;
  const file = await builtCli.catch(() => undefined);
  builtCli = undefined;
  if (file) rmSync(file, { force: true });
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stderr lines parsed as JSON (non-JSON lines skipped). */
  logs: Array<Record<string, unknown>>;
}

export function parseLogs(stderr: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // partial line
    }
  }
  return out;
}

/** Starts the bundled CLI; `done` resolves when it exits. */
export async function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; done: Promise<CliRun>; stderrSoFar: () => string }> {
  const cli = await buildCli();
  const child = spawn(process.execPath, [cli, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<CliRun>((res) => {
    child.on("close", (code, signal) => res({ code, signal, stdout, stderr, logs: parseLogs(stderr) }));
  });
  return { child, done, stderrSoFar: () => stderr };
}

export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return (await startCli(args, env)).done;
}

/** Polls `cond` every 20 ms until it is true (bounded by the test timeout). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
