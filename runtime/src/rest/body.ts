/**
 * Reading request bodies: decompression (Content-Encoding gzip, deflate, br)
 * bounded by the same limit as plain bodies, and JSON parsing whatever
 * Content-Type the client sent (Triton's clients send none, curl -d sends form
 * encoding).
 */
import type { Context } from "hono";
import type { IncomingMessage } from "node:http";
import { promisify } from "node:util";
import { brotliDecompress, gunzip, inflate, type ZlibOptions } from "node:zlib";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import { truncate } from "../tensor/datatypes.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

type Decompress = (buf: Uint8Array, options: ZlibOptions) => Promise<Buffer>;
const DECOMPRESSORS: Record<string, Decompress> = {
  gzip: promisify(gunzip) as Decompress,
  "x-gzip": promisify(gunzip) as Decompress,
  deflate: promisify(inflate) as Decompress,
  br: promisify(brotliDecompress) as Decompress,
};

/** The body straight from Node's request stream: no web Request, no ReadableStream, one copy at most. */
function readIncoming(incoming: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > maxBytes) {
        cleanup();
        incoming.resume(); // let the rest drain; the 413 goes out meanwhile
        reject(new InferenceError(413, `request body exceeds the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      resolve(new Uint8Array(all.buffer, all.byteOffset, all.byteLength));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
    };
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onError);
  });
}

/** The body bytes, decompressed per Content-Encoding, never more than `maxBytes` once inflated. */
export async function readBody(c: Context, maxBytes: number): Promise<Uint8Array> {
  // @hono/node-server passes Node's request as c.env.incoming; read it directly unless something
  // (a middleware) already started reading the body through the web Request.
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const raw = incoming && !incoming.readableDidRead && !incoming.readableEnded
    ? await readIncoming(incoming, maxBytes)
    : new Uint8Array(await c.req.arrayBuffer());
  const encoding = c.req.header("content-encoding")?.trim().toLowerCase();
  if (!encoding || encoding === "identity") return raw;
  const decompress = DECOMPRESSORS[encoding];
  if (!decompress) throw new InferenceError(415, `unsupported Content-Encoding "${truncate(encoding, 40)}"; use gzip, deflate or br`);
  try {
    const inflated = await decompress(raw, { maxOutputLength: maxBytes });
    return new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" || err instanceof RangeError) {
      throw new InferenceError(413, `request body exceeds the limit of ${maxBytes} bytes once decompressed`);
    }
    throw invalidInput(`the request body is not valid ${encoding} data: ${truncate((err as Error).message, 100)}`);
  }
}

export function parseJson(bytes: Uint8Array, what = "the request body"): unknown {
  if (bytes.byteLength === 0) throw invalidInput(`${what} is empty; expected a JSON inference request`);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw invalidInput(`${what} is not valid UTF-8`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidInput(`malformed JSON in ${what}: ${truncate((err as Error).message, 160)}`);
  }
}

/** Reads and parses a JSON body; an absent or empty body gives `empty` when one is allowed. */
export async function readJsonBody(c: Context, maxBytes: number, empty?: unknown): Promise<unknown> {
  const bytes = await readBody(c, maxBytes);
  if (bytes.byteLength === 0 && empty !== undefined) return empty;
  return parseJson(bytes);
}
