/**
 * s3://bucket/key and s3://bucket/prefix/ against AWS S3 or any S3-compatible
 * store (MinIO, Ceph RGW, ...): GetObject, HeadObject and ListObjectsV2, signed
 * with SigV4 (or anonymous when no credentials are set).
 *
 * Environment (AWS SDK names, plus the ones KServe's storage initializer uses):
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   AWS_REGION | AWS_DEFAULT_REGION                        (default us-east-1)
 *   AWS_ENDPOINT_URL_S3 | AWS_ENDPOINT_URL | S3_ENDPOINT   custom endpoint; S3_ENDPOINT may omit
 *                                                          the scheme, then S3_USE_HTTPS (default 1) decides
 *   S3_FORCE_PATH_STYLE | AWS_S3_FORCE_PATH_STYLE          path-style addressing (default: on for a
 *   S3_USER_VIRTUAL_BUCKET (KServe; true = virtual-host)   custom endpoint, off for AWS)
 *   S3_VERIFY_SSL=0                                        accept any certificate
 *   AWS_CA_BUNDLE                                          PEM file of extra trusted CAs
 *   AWS_NO_SIGN_REQUEST=true                               never sign (public buckets)
 */
import { readFileSync } from "node:fs";
import { download, fetchText, request, statusError, withRetries, type RequestSpec, type TlsOptions } from "../http-client.js";
import { PullerError, UsageError } from "../errors.js";
import { checkRelPath } from "../paths.js";
import { signRequest, uriEncode, type Credentials } from "../sigv4.js";
import type { PullContext, RemoteFile, ResolvedSource, Source } from "./types.js";

export interface S3Config {
  /** Custom endpoint (scheme://host[:port][/base]); undefined for AWS. */
  endpoint?: URL;
  region: string;
  pathStyle: boolean;
  credentials?: Credentials;
  tls: TlsOptions;
}

function envBool(v: string | undefined): boolean | undefined {
  if (v === undefined || v === "") return undefined;
  return ["1", "true", "yes", "on"].includes(v.trim().toLowerCase());
}

export function s3ConfigFromEnv(env: NodeJS.ProcessEnv, bucket: string): S3Config {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1";
  const https = envBool(env.S3_USE_HTTPS) ?? true;
  let raw = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || env.S3_ENDPOINT || "";
  let endpoint: URL | undefined;
  if (raw) {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) raw = `${https ? "https" : "http"}://${raw}`;
    try {
      endpoint = new URL(raw);
    } catch {
      throw new UsageError(`invalid S3 endpoint ${JSON.stringify(raw)}`);
    }
  }
  const forcePath = envBool(env.S3_FORCE_PATH_STYLE) ?? envBool(env.AWS_S3_FORCE_PATH_STYLE);
  const virtual = envBool(env.S3_USER_VIRTUAL_BUCKET);
  const dnsSafe = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
  const pathStyle = forcePath ?? (virtual !== undefined ? !virtual : endpoint ? true : !dnsSafe);

  const anonymous = envBool(env.AWS_NO_SIGN_REQUEST) === true;
  const credentials =
    !anonymous && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN || undefined }
      : undefined;

  const tls: TlsOptions = {};
  if (envBool(env.S3_VERIFY_SSL) === false) tls.rejectUnauthorized = false;
  if (env.AWS_CA_BUNDLE) {
    try {
      tls.ca = readFileSync(env.AWS_CA_BUNDLE);
    } catch (err) {
      throw new UsageError(`AWS_CA_BUNDLE: cannot read ${env.AWS_CA_BUNDLE}: ${(err as Error).message}`);
    }
  }
  return { endpoint, region, pathStyle, credentials, tls };
}

export interface ListedObject {
  key: string;
  size: number;
  etag?: string;
}

function xmlText(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|lt|gt|amp|quot|apos);/gi, (_, e: string) => {
    const l = e.toLowerCase();
    if (l === "lt") return "<";
    if (l === "gt") return ">";
    if (l === "amp") return "&";
    if (l === "quot") return '"';
    if (l === "apos") return "'";
    return String.fromCodePoint(l.startsWith("#x") ? parseInt(l.slice(2), 16) : parseInt(l.slice(1), 10));
  });
}

/** Parses a ListObjectsV2 response. */
export function parseListObjectsV2(xml: string): { objects: ListedObject[]; truncated: boolean; nextToken?: string } {
  const objects: ListedObject[] = [];
  for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
    const body = m[1]!;
    const key = /<Key>([\s\S]*?)<\/Key>/.exec(body)?.[1];
    const size = /<Size>(\d+)<\/Size>/.exec(body)?.[1];
    const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(body)?.[1];
    if (key === undefined || size === undefined) continue;
    objects.push({ key: xmlText(key), size: Number(size), etag: etag === undefined ? undefined : xmlText(etag) });
  }
  const truncated = /<IsTruncated>\s*true\s*<\/IsTruncated>/i.test(xml);
  const tok = /<NextContinuationToken>([\s\S]*?)<\/NextContinuationToken>/.exec(xml)?.[1];
  return { objects, truncated, nextToken: tok === undefined ? undefined : xmlText(tok) };
}

export class S3Client {
  constructor(
    readonly bucket: string,
    public config: S3Config,
  ) {}

  /** URL of an object (key "" = the bucket itself), with a query. */
  url(key: string, query: Record<string, string> = {}): URL {
    const c = this.config;
    const base = c.endpoint ?? new URL(`https://s3.${c.region}.amazonaws.com`);
    const basePath = base.pathname.replace(/\/+$/, "");
    const keyPath = key ? `/${uriEncode(key, false)}` : "";
    const u = c.pathStyle
      ? new URL(`${base.protocol}//${base.host}${basePath}/${uriEncode(this.bucket)}${keyPath}`)
      : new URL(`${base.protocol}//${this.bucket}.${base.host}${basePath}${keyPath || "/"}`);
    // Encoded here exactly as SigV4 canonicalizes it (URLSearchParams would write spaces as '+').
    const q = Object.entries(query).map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`);
    if (q.length) u.search = `?${q.join("&")}`;
    return u;
  }

  /** A request spec for method+url, signed when there are credentials (called per attempt: fresh x-amz-date). */
  spec(method: "GET" | "HEAD", url: URL): RequestSpec {
    const c = this.config;
    if (!c.credentials) return { url: url.href, method, tls: c.tls, maxRedirects: 0 };
    const signed = signRequest({ method, url, region: c.region, credentials: c.credentials });
    const { authorization, ...headers } = signed.headers;
    delete headers.host;
    return { url: url.href, method, headers, authHeaders: { authorization: authorization! }, tls: c.tls, maxRedirects: 0 };
  }

  /**
   * When S3 says the bucket lives in another region (x-amz-bucket-region on a
   * 301/400), switch to it for the following requests. Returns true if it did.
   */
  adoptRegion(headers: Record<string, string | string[] | undefined>): boolean {
    const r = headers["x-amz-bucket-region"];
    if (typeof r === "string" && r && r !== this.config.region) {
      this.config = { ...this.config, region: r };
      return true;
    }
    return false;
  }

  async head(key: string, ctx: PullContext): Promise<{ size: number; etag?: string } | undefined> {
    const label = `HEAD s3://${this.bucket}/${key}`;
    return withRetries(
      async () => {
        for (let redirects = 0; ; redirects++) {
          const r = await request(this.spec("HEAD", this.url(key)), { signal: ctx.signal, idleTimeoutMs: ctx.idleTimeoutMs });
          r.res.resume();
          if ((r.status === 301 || r.status === 400) && redirects === 0 && this.adoptRegion(r.headers)) continue;
          if (r.status === 404) return undefined;
          if (r.status >= 200 && r.status < 300) {
            const len = Number(r.headers["content-length"] ?? NaN);
            return { size: Number.isFinite(len) ? len : NaN, etag: r.headers.etag };
          }
          throw await statusError(r, label, ctx.signal);
        }
      },
      { retries: ctx.retries, backoff: ctx.backoff, signal: ctx.signal, log: ctx.log, label },
    );
  }

  async list(prefix: string, ctx: PullContext, maxKeys = 1000): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let token: string | undefined;
    for (let page = 0; ; page++) {
      const query: Record<string, string> = { "list-type": "2", "max-keys": String(maxKeys) };
      if (prefix) query.prefix = prefix;
      if (token) query["continuation-token"] = token;
      const label = `list s3://${this.bucket}/${prefix}`;
      let body = "";
      for (let redirects = 0; ; redirects++) {
        try {
          body = (await fetchText(this.spec("GET", this.url("", query)), { signal: ctx.signal, idleTimeoutMs: ctx.idleTimeoutMs, retries: ctx.retries, backoff: ctx.backoff, log: ctx.log, label })).body;
          break;
        } catch (err) {
          const status = err instanceof PullerError ? (err.details.status as number | undefined) : undefined;
          if ((status === 301 || status === 400) && redirects === 0 && (await this.probeRegion(ctx))) continue;
          throw err;
        }
      }
      const parsed = parseListObjectsV2(body);
      out.push(...parsed.objects);
      if (!parsed.truncated) return out;
      if (!parsed.nextToken) throw new PullerError("SOURCE", `${label}: truncated listing without a continuation token`);
      token = parsed.nextToken;
    }
  }

  /** HEAD the bucket to learn its region after a wrong-region answer. */
  private async probeRegion(ctx: PullContext): Promise<boolean> {
    const r = await request(this.spec("HEAD", this.url("")), { signal: ctx.signal, idleTimeoutMs: ctx.idleTimeoutMs });
    r.res.resume();
    return this.adoptRegion(r.headers);
  }

  file(key: string, relPath: string, size: number | undefined): RemoteFile {
    const label = `s3://${this.bucket}/${key}`;
    return {
      path: relPath,
      size,
      fetch: (file, ctx) =>
        download({
          file,
          label,
          expectedSize: size,
          makeRequest: () => this.spec("GET", this.url(key)),
          budget: ctx.budget,
          onBytes: (n) => ctx.progress.add(n),
          signal: ctx.signal,
          retries: ctx.retries,
          backoff: ctx.backoff,
          idleTimeoutMs: ctx.idleTimeoutMs,
          log: ctx.log,
        }),
    };
  }
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/?#]+)\/?([^?#]*)$/i.exec(uri);
  if (!m) throw new UsageError(`invalid S3 URI ${JSON.stringify(uri)} (expected s3://bucket/key or s3://bucket/prefix/)`);
  let key = m[2]!;
  try {
    key = decodeURIComponent(key);
  } catch {
    // keep literal
  }
  return { bucket: m[1]!, key };
}

export class S3Source implements Source {
  readonly kind = "s3" as const;
  readonly id: string;
  readonly bucket: string;
  readonly key: string;
  /** Page size of ListObjectsV2 (tests lower it to exercise continuation). */
  maxKeys = 1000;

  constructor(uri: string) {
    const { bucket, key } = parseS3Uri(uri);
    this.bucket = bucket;
    this.key = key;
    this.id = `s3://${bucket}/${key}`;
  }

  async resolve(ctx: PullContext): Promise<ResolvedSource> {
    const client = new S3Client(this.bucket, s3ConfigFromEnv(ctx.env, this.bucket));
    const key = this.key;
    if (key !== "" && !key.endsWith("/")) {
      const head = await client.head(key, ctx);
      if (head) {
        const name = key.split("/").pop()!;
        return { single: true, files: [client.file(key, name, Number.isFinite(head.size) ? head.size : undefined)] };
      }
      ctx.log.info({ source: this.id }, `no object s3://${this.bucket}/${key}; trying the prefix ${key}/`);
    }
    const prefix = key === "" || key.endsWith("/") ? key : `${key}/`;
    const objects = await client.list(prefix, ctx, this.maxKeys);
    const files: RemoteFile[] = [];
    for (const o of objects) {
      const rel = o.key.slice(prefix.length);
      if (rel === "" || (rel.endsWith("/") && o.size === 0)) continue; // "directory" placeholders
      const c = checkRelPath(rel);
      if (!c.ok) throw new PullerError("SOURCE", `refusing object key ${JSON.stringify(o.key)}: the path ${c.reason}`);
      files.push(client.file(o.key, c.path, o.size));
    }
    if (files.length === 0) {
      throw new PullerError("NOT_FOUND", `no objects at s3://${this.bucket}/${prefix}${key && !key.endsWith("/") ? ` (nor an object s3://${this.bucket}/${key})` : ""}`);
    }
    return { single: false, files };
  }
}
