/**
 * Node's HTTP server answers some requests itself, before the application sees
 * them: 408 when a request (its body included) did not arrive within
 * requestTimeout, 400 for what its parser cannot read, 431 for oversized
 * headers. Without a `clientError` listener those answers appear in no log and
 * no metric; this one logs and counts each, then answers as Node would (with a
 * JSON body, like every other error) and closes the connection.
 */
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { Metrics } from "../metrics.js";

/** What Node answers for each parser or timeout error code (node/lib/_http_server.js), else 400. */
const STATUS_BY_CODE: Record<string, [number, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout"],
  HPE_HEADER_OVERFLOW: [431, "Request Header Fields Too Large"],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, "Payload Too Large"],
};

/** Errors of a connection already gone: nothing to answer, and nothing worth a warning. */
const GONE = new Set(["ECONNRESET", "EPIPE", "ETIMEDOUT", "ERR_STREAM_DESTROYED"]);

export interface ClientErrorOptions {
  logger: Logger;
  metrics: Metrics;
  requestTimeoutMs: number;
}

export function clientErrorHandler(options: ClientErrorOptions): (err: Error & { code?: string }, socket: Duplex) => void {
  const { logger, metrics } = options;
  return (err, duplex) => {
    const socket = duplex as Socket & { _httpMessage?: { headersSent?: boolean } };
    const code = err.code ?? "unknown";
    const remote = socket.remoteAddress;
    // Answer only where nothing of a response has been written yet (as Node does).
    const canAnswer = socket.writable && !GONE.has(code) && !socket._httpMessage?.headersSent;
    if (!canAnswer) {
      metrics.clientErrors.inc({ status_code: "", code });
      logger.debug({ code, remote, error: err.message }, "client connection error");
      socket.destroy();
      return;
    }
    const [status, reason] = STATUS_BY_CODE[code] ?? [400, "Bad Request"];
    const message = status === 408
      ? `the request did not arrive within ${options.requestTimeoutMs} ms (REQUEST_TIMEOUT_MS); the connection is closed`
      : status === 400
        ? `the request could not be parsed as HTTP/1.1 (${code})`
        : `${reason.toLowerCase()} (${code})`;
    metrics.clientErrors.inc({ status_code: String(status), code });
    logger.warn({ status, code, remote, error: err.message }, "request refused by the HTTP server before it reached the application");
    const body = JSON.stringify({ error: message });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    // Closed once the answer is out; a client that never reads it does not hold the socket.
    socket.once("finish", () => socket.destroy());
    setTimeout(() => socket.destroy(), 1_000).unref();
  };
}
