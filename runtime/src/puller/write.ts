/**
 * Copies a stream of chunks into a new file (never over an existing one), with
 * backpressure and cancellation; `onChunk` counts each chunk (budget, hash,
 * progress) before it is written. A failure leaves no open descriptor behind.
 */
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { throwIfAborted } from "./errors.js";

export interface WriteOptions {
  mode?: number;
  highWaterMark: number;
  signal?: AbortSignal;
  onChunk?: (chunk: Buffer) => void;
}

/** Resolves with the number of bytes written once the file is closed. */
export async function writeNewFile(path: string, chunks: AsyncIterable<Buffer>, options: WriteOptions): Promise<number> {
  const out = createWriteStream(path, { flags: "wx", mode: options.mode, highWaterMark: options.highWaterMark });
  let size = 0;
  try {
    await once(out, "open");
    for await (const chunk of chunks) {
      throwIfAborted(options.signal);
      size += chunk.length;
      options.onChunk?.(chunk);
      if (!out.write(chunk)) await once(out, "drain");
    }
    out.end();
    await once(out, "close");
  } catch (err) {
    out.destroy();
    throw err;
  }
  return size;
}
