/** Starts the real server on an ephemeral loopback port, quietly, for tests. */
import { startServer, type RunningServer, type StartOptions } from "../server.js";
import type { ConfigInput } from "../config.js";
import type { LogLevel } from "../logging.js";

export type { RunningServer };

/**
 * With ASYNC_INFERENCE and the embedded store (which starts in the background), resolves once the
 * store is ready too, so that tests use the async API at once; unless a test gates the store itself.
 */
export async function startTestServer(modelRepository: string, config: ConfigInput = {}, options: StartOptions = {}): Promise<RunningServer> {
  const server = await startServer({ port: 0, host: "127.0.0.1", modelRepository, logLevel: (process.env.TEST_LOG_LEVEL as LogLevel | undefined) ?? "silent", ...config }, options);
  if (options.asyncStoreGate === undefined) await server.asyncStoreReady;
  return server;
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // leave as text: the assertion will show it
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}
