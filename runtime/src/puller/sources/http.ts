/** http:// and https:// sources: one file, with Authorization from the environment. */
import { posix } from "node:path";
import { download } from "../http-client.js";
import { redactUrl } from "../redact.js";
import type { PullContext, ResolvedSource, Source } from "./types.js";

/** Authorization for plain HTTP sources: PULLER_HTTP_AUTHORIZATION (whole value) or PULLER_HTTP_BEARER_TOKEN. */
export function httpAuthHeaders(env: NodeJS.ProcessEnv): Record<string, string> {
  if (env.PULLER_HTTP_AUTHORIZATION) return { authorization: env.PULLER_HTTP_AUTHORIZATION };
  if (env.PULLER_HTTP_BEARER_TOKEN) return { authorization: `Bearer ${env.PULLER_HTTP_BEARER_TOKEN}` };
  return {};
}

/** The last path segment of a URL, decoded; "artifact" when there is none. */
export function urlBasename(url: URL): string {
  let name = posix.basename(url.pathname);
  try {
    name = decodeURIComponent(name);
  } catch {
    // keep the raw segment
  }
  return name && name !== "/" && !name.includes("/") && name !== "." && name !== ".." ? name : "artifact";
}

export class HttpSource implements Source {
  readonly kind = "http" as const;
  readonly id: string;
  private readonly url: URL;

  constructor(uri: string) {
    this.url = new URL(uri);
    this.id = redactUrl(this.url.href);
  }

  async resolve(_ctx: PullContext): Promise<ResolvedSource> {
    const url = this.url;
    const label = this.id;
    return {
      single: true,
      files: [
        {
          path: urlBasename(url),
          fetch: (file, ctx) =>
            download({
              file,
              label,
              makeRequest: () => {
                // user:pass@ in the URL becomes Basic auth (Node would send it anyway; this keeps it origin-bound).
                const bare = new URL(url.href);
                const auth: Record<string, string> = { ...httpAuthHeaders(ctx.env) };
                if (bare.username || bare.password) {
                  if (!auth.authorization) {
                    const user = decodeURIComponent(bare.username);
                    const pass = decodeURIComponent(bare.password);
                    auth.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
                  }
                  bare.username = "";
                  bare.password = "";
                }
                return { url: bare.href, authHeaders: auth };
              },
              budget: ctx.budget,
              onBytes: (n) => ctx.progress.add(n),
              onSize: (n) => ctx.progress.setTotal(n),
              signal: ctx.signal,
              retries: ctx.retries,
              backoff: ctx.backoff,
              idleTimeoutMs: ctx.idleTimeoutMs,
              log: ctx.log,
            }),
        },
      ],
    };
  }
}
