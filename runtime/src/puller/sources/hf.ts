/**
 * hf://[datasets/|spaces/]org/repo[:revision][/path] — files from the Hugging
 * Face Hub (or any server speaking its API: HF_ENDPOINT).
 *
 * The revision (default `main`) is resolved once to a commit, and every file is
 * downloaded from that commit (`/resolve/<commit>/<path>`), so a branch moving
 * during the pull cannot mix two commits. Sizes and, for LFS files, sha256
 * digests come from the API (`?blobs=true`) and are checked after download.
 * HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) is sent to the Hub only, never to the CDN
 * it redirects to.
 */
import { download, fetchText } from "../http-client.js";
import { PullerError, UsageError } from "../errors.js";
import { checkRelPath } from "../paths.js";
import type { PullContext, RemoteFile, ResolvedSource, Source } from "./types.js";

export interface HfRef {
  type: "models" | "datasets" | "spaces";
  repo: string;
  revision: string;
  path: string;
}

export function parseHfUri(uri: string): HfRef {
  const m = /^hf:\/\/(.*)$/i.exec(uri);
  if (!m) throw new UsageError(`invalid hf URI ${JSON.stringify(uri)}`);
  const parts = m[1]!.split("/").filter(Boolean);
  let type: HfRef["type"] = "models";
  if (parts[0] === "datasets" || parts[0] === "spaces" || parts[0] === "models") type = parts.shift() as HfRef["type"];
  const org = parts.shift();
  let name = parts.shift();
  if (!org || !name) throw new UsageError(`invalid hf URI ${JSON.stringify(uri)} (expected hf://org/repo[:revision][/path])`);
  let revision = "main";
  const colon = name.indexOf(":");
  if (colon >= 0) {
    revision = decodeURIComponent(name.slice(colon + 1));
    name = name.slice(0, colon);
    if (!revision) throw new UsageError(`invalid hf URI ${JSON.stringify(uri)}: empty revision`);
  }
  if (!/^[\w.-]+$/.test(org) || !/^[\w.-]+$/.test(name)) throw new UsageError(`invalid hf repository ${org}/${name}`);
  const path = parts.filter(Boolean).join("/");
  if (path) {
    const c = checkRelPath(path);
    if (!c.ok) throw new UsageError(`invalid path in hf URI: it ${c.reason}`);
  }
  return { type, repo: `${org}/${name}`, revision, path };
}

interface Sibling {
  rfilename: string;
  size?: number;
  lfs?: { sha256?: string; oid?: string; size?: number };
}

const encodePath = (p: string) => p.split("/").map(encodeURIComponent).join("/");

export class HfSource implements Source {
  readonly kind = "hf" as const;
  readonly id: string;
  readonly ref: HfRef;

  constructor(uri: string) {
    this.ref = parseHfUri(uri);
    const r = this.ref;
    this.id = `hf://${r.type === "models" ? "" : `${r.type}/`}${r.repo}:${r.revision}${r.path ? `/${r.path}` : ""}`;
  }

  async resolve(ctx: PullContext): Promise<ResolvedSource> {
    const endpoint = (ctx.env.HF_ENDPOINT || "https://huggingface.co").replace(/\/+$/, "");
    const token = ctx.env.HF_TOKEN || ctx.env.HUGGING_FACE_HUB_TOKEN;
    const authHeaders: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const r = this.ref;
    const apiUrl = `${endpoint}/api/${r.type}/${r.repo}/revision/${encodeURIComponent(r.revision)}?blobs=true`;
    let info: { sha?: string; siblings?: Sibling[] };
    try {
      const { body } = await fetchText(
        { url: apiUrl, authHeaders, headers: { accept: "application/json" } },
        { signal: ctx.signal, idleTimeoutMs: ctx.idleTimeoutMs, retries: ctx.retries, backoff: ctx.backoff, log: ctx.log, label: `Hugging Face API ${r.repo}@${r.revision}` },
      );
      info = JSON.parse(body) as typeof info;
    } catch (err) {
      if (err instanceof PullerError && (err.details.status === 401 || err.details.status === 403) && !token) {
        throw new PullerError(err.code, `${err.message}; the repository may be private or gated: set HF_TOKEN`, { cause: err, details: err.details });
      }
      if (err instanceof SyntaxError) throw new PullerError("SOURCE", `Hugging Face API ${r.repo}: invalid JSON`);
      throw err;
    }
    const commit = info.sha;
    if (!commit || !Array.isArray(info.siblings)) throw new PullerError("SOURCE", `Hugging Face API ${r.repo}@${r.revision}: unexpected answer`);

    const siblings = info.siblings.filter((s) => typeof s.rfilename === "string");
    const exact = r.path ? siblings.find((s) => s.rfilename === r.path) : undefined;
    const selected: Array<{ s: Sibling; rel: string }> = exact
      ? [{ s: exact, rel: r.path.split("/").pop()! }]
      : siblings
          .filter((s) => !r.path || s.rfilename.startsWith(`${r.path}/`))
          .map((s) => ({ s, rel: r.path ? s.rfilename.slice(r.path.length + 1) : s.rfilename }));
    if (selected.length === 0) {
      throw new PullerError("NOT_FOUND", `${this.id}: no such file or directory in ${r.repo} at ${commit.slice(0, 12)}`);
    }

    const repoPrefix = r.type === "models" ? "" : `${r.type}/`;
    const files: RemoteFile[] = selected.map(({ s, rel }) => {
      const c = checkRelPath(rel);
      if (!c.ok) throw new PullerError("SOURCE", `refusing Hub file ${JSON.stringify(s.rfilename)}: the path ${c.reason}`);
      const url = `${endpoint}/${repoPrefix}${r.repo}/resolve/${commit}/${encodePath(s.rfilename)}`;
      const size = s.lfs?.size ?? s.size;
      const label = `hf://${repoPrefix}${r.repo}@${commit.slice(0, 12)}/${s.rfilename}`;
      return {
        path: c.path,
        size,
        sha256: s.lfs?.sha256 ?? (s.lfs?.oid && /^[0-9a-f]{64}$/.test(s.lfs.oid) ? s.lfs.oid : undefined),
        fetch: (file, ctx2: PullContext) =>
          download({
            file,
            label,
            expectedSize: size,
            makeRequest: () => ({ url, authHeaders }),
            budget: ctx2.budget,
            onBytes: (n) => ctx2.progress.add(n),
            signal: ctx2.signal,
            retries: ctx2.retries,
            backoff: ctx2.backoff,
            idleTimeoutMs: ctx2.idleTimeoutMs,
            log: ctx2.log,
          }),
      };
    });
    return { single: Boolean(exact), files, resolved: { revision: commit } };
  }
}
