/**
 * What the TypeScript examples say when they cannot do their job: one line naming what
 * is wrong and what to do (start the server, set INFERENCE_URL), not "fetch failed" and
 * a stack. Not an example itself; client.ts, sentiment.ts, cloudevents.ts and grpc.ts use it.
 */

/** A failure the example explains in full: its message is all the user needs. */
export class ExampleError extends Error {}

export const START = "npm start";

/** Why fetch could not reach a server at all (ECONNREFUSED, ENOTFOUND, ...), or undefined for any other error. */
export function connectionFailure(err: unknown): string | undefined {
  if (!(err instanceof TypeError) || err.message !== "fetch failed") return undefined;
  const cause = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
  return cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? "connection failed";
}

/** "no server at URL; start one with `npm start`", with how to point the example elsewhere. */
export function noServer(url: string, why: string, start = START, variable = "INFERENCE_URL"): ExampleError {
  return new ExampleError(`no server at ${url} (${why}); start one with \`${start}\`, or set ${variable} to where one runs`);
}

/** fetch, with a connection failure explained (the server's base URL `base` named). */
export async function fetchFrom(base: string, path: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(`${base}${path}`, init);
  } catch (err) {
    const why = connectionFailure(err);
    throw why ? noServer(base, why) : err;
  }
}

/** A response's JSON body; a body that is not JSON says which server answered what. */
export async function jsonBody<T>(res: Response, base: string): Promise<T> {
  const text = await res.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    const type = res.headers.get("content-type") ?? "no content type";
    throw new ExampleError(`${base} answered ${res.url.slice(base.length) || "/"} with HTTP ${res.status} and a body that is not JSON (${type}): is ${base} this inference server? Set INFERENCE_URL to its URL`);
  }
}

/** Runs an example's main: on failure, `name: message` on stderr and exit 1. */
export function runMain(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
