import type { Context } from "hono";
import { invalidInput } from "../dataplane/errors.js";
import { truncate } from "../tensor/datatypes.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The request body as JSON, whatever Content-Type the client sent: Triton's
 * clients send none and `curl -d` sends form encoding or text/plain.
 */
export async function readJsonBody(c: Context): Promise<unknown> {
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength === 0) throw invalidInput("the request body is empty; expected a JSON inference request");
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw invalidInput("the request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidInput(`malformed JSON in the request body: ${truncate((err as Error).message, 160)}`);
  }
}
