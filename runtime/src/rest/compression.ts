/**
 * Response compression negotiated by Accept-Encoding (Triton's clients offer
 * gzip and deflate). Tensors compress poorly, so the fastest level is used and
 * small bodies are sent as they are.
 */
import type { MiddlewareHandler } from "hono";
import { promisify } from "node:util";
import { constants, deflate, gzip } from "node:zlib";

const COMPRESSORS = {
  gzip: promisify(gzip),
  deflate: promisify(deflate),
} as const;
type Encoding = keyof typeof COMPRESSORS;

/** The client's preferred encoding we support (highest q; gzip on ties), or undefined. */
export function negotiateEncoding(acceptEncoding: string | undefined): Encoding | undefined {
  if (!acceptEncoding) return undefined;
  let best: Encoding | undefined;
  let bestQ = 0;
  for (const part of acceptEncoding.split(",")) {
    const [token, ...params] = part.trim().toLowerCase().split(";");
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (!(q > 0)) continue;
    const candidates: Encoding[] = token === "*" ? ["gzip"] : token === "gzip" || token === "deflate" ? [token] : [];
    for (const c of candidates) {
      if (q > bestQ || (q === bestQ && c === "gzip")) {
        best = c;
        bestQ = q;
      }
    }
  }
  return best;
}

export function compressResponses(thresholdBytes = 1024): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const encoding = negotiateEncoding(c.req.header("accept-encoding"));
    if (!encoding || c.req.method === "HEAD" || c.res.headers.has("content-encoding") || !c.res.body) return;
    // Most clients offer gzip on every request: small answers that say their length pass untouched.
    const declared = c.res.headers.get("content-length");
    if (declared !== null && Number(declared) < thresholdBytes) return;
    const body = new Uint8Array(await c.res.arrayBuffer());
    const headers = new Headers(c.res.headers);
    headers.append("vary", "Accept-Encoding");
    const status = c.res.status;
    // Clear first: Hono copies the old response's headers onto a replacement.
    c.res = undefined;
    if (body.byteLength < thresholdBytes) {
      c.res = new Response(body, { status, headers });
      return;
    }
    const compressed = await COMPRESSORS[encoding](body, { level: constants.Z_BEST_SPEED });
    headers.set("content-encoding", encoding);
    headers.delete("content-length");
    c.res = new Response(compressed, { status, headers });
  };
}
