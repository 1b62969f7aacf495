/**
 * Keeping secrets out of logs and out of the marker file.
 *
 * Two layers:
 *  - structural: `redactUrl` removes user-info (`https://user:pass@host`) and the
 *    values of query parameters that carry credentials or signatures (presigned
 *    S3/GCS/Azure/CloudFront URLs, `?token=`, `?access_token=` ...);
 *  - by value: every secret the process knows (credentials from the environment,
 *    passwords and signatures seen in URLs) is registered in a `SecretRegistry`,
 *    and `scrub` replaces any occurrence in text. The logger passes every line it
 *    writes through both, so a secret that slips into an error message is still
 *    caught.
 */

export const REDACTED = "REDACTED";

/** Query parameter names whose values are secrets (compared lower-case). */
const SECRET_PARAMS = new Set([
  "sig",
  "signature",
  "token",
  "access_token",
  "id_token",
  "refresh_token",
  "auth",
  "authorization",
  "api_key",
  "apikey",
  "api-key",
  "key",
  "password",
  "passwd",
  "pwd",
  "secret",
  "client_secret",
  "credential",
  "credentials",
  "code",
  "session",
  "policy",
  "key-pair-id",
  "expires",
  // Azure SAS
  "se",
  "st",
  "sp",
  "sv",
  "sr",
  "spr",
  "skoid",
  "sktid",
  "skt",
  "ske",
  "sks",
  "skv",
]);

function isSecretParam(name: string): boolean {
  const n = name.toLowerCase();
  return SECRET_PARAMS.has(n) || n.startsWith("x-amz-") || n.startsWith("x-goog-") || n.endsWith("token") || n.endsWith("secret");
}

/** Secret values found in a URL (user-info password, secret query values). */
export function secretsInUrl(raw: string): string[] {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return [];
  }
  const out: string[] = [];
  if (u.password) out.push(safeDecode(u.password));
  if (u.username && u.password === "") out.push(safeDecode(u.username)); // https://TOKEN@host
  for (const [k, v] of u.searchParams) {
    if (isSecretParam(k) && v !== "") out.push(v);
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The URL with user-info replaced by `***` and secret query values by REDACTED.
 * Works on any scheme; text that does not parse as a URL is returned with a
 * best-effort user-info strip.
 */
export function redactUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@");
  }
  if (!u.search && !u.username && !u.password) return raw;
  let out = `${u.protocol}//`;
  if (u.username || u.password) out += "***@";
  out += u.host + u.pathname;
  if (u.search) {
    const parts: string[] = [];
    for (const [k, v] of u.searchParams) {
      parts.push(`${encodeURIComponent(k)}=${isSecretParam(k) ? REDACTED : encodeURIComponent(v)}`);
    }
    out += `?${parts.join("&")}`;
  }
  return out + u.hash;
}

const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

/** Redacts every URL found in free text. */
export function redactUrlsInText(text: string): string {
  return text.replace(URL_IN_TEXT, (m) => {
    // Sentence punctuation after a URL is not part of it.
    const tail = /[.,:;!?)\]}]+$/.exec(m)?.[0] ?? "";
    return redactUrl(m.slice(0, m.length - tail.length)) + tail;
  });
}

/** Values shorter than this are not scrubbed by value (they would mangle ordinary text). */
const MIN_SECRET_LENGTH = 4;

export class SecretRegistry {
  private readonly values = new Set<string>();
  private pattern: RegExp | undefined;

  add(value: string | undefined | null): void {
    if (!value || value.length < MIN_SECRET_LENGTH) return;
    const forms = [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1)];
    for (const f of forms) {
      if (f.length >= MIN_SECRET_LENGTH && !this.values.has(f)) {
        this.values.add(f);
        this.pattern = undefined;
      }
    }
  }

  addUrl(raw: string): void {
    for (const s of secretsInUrl(raw)) this.add(s);
  }

  get size(): number {
    return this.values.size;
  }

  /** Replaces every registered secret in the text. */
  scrub(text: string): string {
    if (this.values.size === 0) return text;
    if (!this.pattern) {
      const alts = [...this.values].sort((a, b) => b.length - a.length).map(escapeRegExp);
      this.pattern = new RegExp(alts.join("|"), "g");
    }
    return text.replace(this.pattern, REDACTED);
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Environment variables whose values are always secrets. */
export const SECRET_ENV_VARS = [
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "HF_TOKEN",
  "HUGGING_FACE_HUB_TOKEN",
  "PULLER_HTTP_AUTHORIZATION",
  "PULLER_HTTP_BEARER_TOKEN",
] as const;

/** The process-wide registry the logger scrubs with. */
export const secrets = new SecretRegistry();

/** Registers the secrets found in the environment (and in the URL-valued variables). */
export function registerEnvSecrets(env: NodeJS.ProcessEnv, registry: SecretRegistry = secrets): void {
  for (const name of SECRET_ENV_VARS) {
    const v = env[name];
    if (!v) continue;
    registry.add(v);
    // "Bearer abc": the token part alone may appear elsewhere.
    const m = /^\s*\S+\s+(\S+)\s*$/.exec(v);
    if (name === "PULLER_HTTP_AUTHORIZATION" && m) registry.add(m[1]);
  }
  for (const name of ["STORAGE_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "S3_ENDPOINT", "HF_ENDPOINT"]) {
    const v = env[name];
    if (v) registry.addUrl(v);
  }
}

/** Full redaction of a piece of text: known secrets, then URLs. */
export function redactText(text: string, registry: SecretRegistry = secrets): string {
  return redactUrlsInText(registry.scrub(text));
}
