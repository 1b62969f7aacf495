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
import type { Reservation } from "../admission/budget.js";
import { InferenceError, invalidInput } from "../dataplane/errors.js";
import { truncate } from "../tensor/datatypes.js";

declare module "hono" {
  interface ContextVariableMap {
    /** This request's share of the buffered-bytes budget (set by the app, released when the request finishes). */
    bodyReservation: Reservation;
  }
}

/** The 503 for a body the budget of buffered request bytes cannot hold now. */
export function budgetExceeded(reservation: Reservation, bytes: number, what = "request body"): InferenceError {
  return new InferenceError(
    503,
    `the server is holding ${reservation.budget.used} bytes of request bodies, and a ${what} of ${bytes} bytes does not fit its budget of ${reservation.budget.limit} bytes (MAX_BUFFERED_REQUEST_BYTES); retry shortly`,
    { "retry-after": "1" },
  );
}

/** The declared Content-Length, when the request has one that is a number. */
export function declaredLength(c: Context): number | undefined {
  const header = c.req.header("content-length");
  if (header === undefined) return undefined;
  const n = Number(header);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * Reserves a declared body length in the budget before any byte is read: a 503 at once
 * when it does not fit. Idempotent; bodies without a Content-Length reserve as they arrive.
 */
export function reserveDeclaredBody(c: Context): void {
  const reservation = c.get("bodyReservation");
  if (!reservation || reservation.declared) return;
  const length = declaredLength(c);
  if (length === undefined) return;
  if (!reservation.add(length)) throw budgetExceeded(reservation, length);
  reservation.declared = true;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

type Decompress = (buf: Uint8Array, options: ZlibOptions) => Promise<Buffer>;
const DECOMPRESSORS: Record<string, Decompress> = {
  gzip: promisify(gunzip) as Decompress,
  "x-gzip": promisify(gunzip) as Decompress,
  deflate: promisify(inflate) as Decompress,
  br: promisify(brotliDecompress) as Decompress,
};

/**
 * The body straight from Node's request stream: no web Request, no ReadableStream, one copy at most.
 * Bytes beyond what was reserved up front (a chunked body) are reserved as they arrive.
 */
function readIncoming(incoming: IncomingMessage, maxBytes: number, reservation: Reservation | undefined, onChunk?: (chunk: Uint8Array) => void): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: Error) => {
      cleanup();
      incoming.resume(); // let the rest drain (or the connection close); the error answer goes out meanwhile
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > maxBytes) {
        fail(new InferenceError(413, `request body exceeds the limit of ${maxBytes} bytes`));
        return;
      }
      if (reservation && size > reservation.held && !reservation.add(size - reservation.held)) {
        fail(budgetExceeded(reservation, size, "chunked request body grown"));
        return;
      }
      if (!onChunk) {
        chunks.push(chunk);
        return;
      }
      try {
        onChunk(chunk);
      } catch (err) {
        fail(err as Error);
      }
    };
    const onEnd = () => {
      cleanup();
      if (onChunk) return resolve(new Uint8Array(0));
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      resolve(new Uint8Array(all.buffer, all.byteOffset, all.byteLength));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    // The client went away (or Node's request timeout closed the connection) before the end. The
    // socket's own close too: once a response has been sent (a 504), Node no longer ends the request.
    const socket = incoming.socket;
    const onClose = () => {
      cleanup();
      reject(new InferenceError(400, `the request body ended after ${size} bytes: the connection closed before it was complete`));
    };
    const cleanup = () => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
      incoming.off("close", onClose);
      socket?.off("close", onClose);
    };
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onError);
    incoming.on("close", onClose);
    if (socket?.destroyed) onClose();
    else socket?.on("close", onClose);
  });
}

/** The body bytes, decompressed per Content-Encoding, never more than `maxBytes` once inflated. */
export async function readBody(c: Context, maxBytes: number): Promise<Uint8Array> {
  // @hono/node-server passes Node's request as c.env.incoming; read it directly unless something
  // (a middleware) already started reading the body through the web Request.
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const reservation = c.get("bodyReservation");
  reserveDeclaredBody(c);
  const raw = incoming && !incoming.readableDidRead && !incoming.readableEnded
    ? await readIncoming(incoming, maxBytes, reservation)
    : new Uint8Array(await c.req.arrayBuffer());
  const encoding = c.req.header("content-encoding")?.trim().toLowerCase();
  if (!encoding || encoding === "identity") return raw;
  const decompress = DECOMPRESSORS[encoding];
  if (!decompress) throw new InferenceError(415, `unsupported Content-Encoding "${truncate(encoding, 40)}"; use gzip, deflate or br`);
  // The inflated body is held beside the compressed one while it is made: it may grow to what the budget has left.
  const room = reservation ? Math.max(0, reservation.budget.limit - reservation.budget.used) : Infinity;
  const limit = Math.min(maxBytes, room);
  let inflated: Buffer;
  try {
    inflated = await decompress(raw, { maxOutputLength: Math.max(1, limit) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" || err instanceof RangeError) {
      if (limit < maxBytes && reservation) throw budgetExceeded(reservation, limit + 1, "decompressed request body (at least)");
      throw new InferenceError(413, `request body exceeds the limit of ${maxBytes} bytes once decompressed`);
    }
    throw invalidInput(`the request body is not valid ${encoding} data: ${truncate((err as Error).message, 100)}`);
  }
  if (reservation) {
    if (!reservation.add(inflated.byteLength)) throw budgetExceeded(reservation, inflated.byteLength, "decompressed request body");
    // The compressed bytes are dropped once this returns.
    reservation.shrink(raw.byteLength);
  }
  return new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
}

/**
 * Hands the body to `onChunk` chunk by chunk as it arrives, without keeping it: for a
 * streaming decoder, whose work per chunk is bounded, so a large body costs the event loop
 * many short turns instead of one long one, and a bad one is refused at its first bad byte
 * (the rest is never read). Only for bodies without Content-Encoding read straight from Node's
 * stream; false when that is not the case (the caller reads the body with readBody instead).
 */
export async function streamBody(c: Context, maxBytes: number, onChunk: (chunk: Uint8Array) => void): Promise<boolean> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const encoding = c.req.header("content-encoding")?.trim().toLowerCase();
  if ((encoding && encoding !== "identity") || !incoming || incoming.readableDidRead || incoming.readableEnded) return false;
  reserveDeclaredBody(c);
  await readIncoming(incoming, maxBytes, c.get("bodyReservation"), onChunk);
  return true;
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
