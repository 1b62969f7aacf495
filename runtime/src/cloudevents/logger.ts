/**
 * The inference logger, compatible with KServe's: every inference is also sent
 * to a sink (LOGGER_URL, or K_SINK as a Knative SinkBinding injects it) as
 * binary-mode CloudEvents, `org.kubeflow.serving.inference.request` then
 * `org.kubeflow.serving.inference.response`, both with `ce-id` = the request
 * id and the extensions inferenceservicename, namespace, component, endpoint.
 *
 * It never delays or fails an inference. The data plane's listener only puts
 * the finished inference (references, no copying or encoding) on a bounded
 * queue; workers encode and send later. When the queue is full the inference's
 * events are dropped. Each event is retried with exponential backoff and
 * jitter, then given up on. Every event ends as exactly one of sent, failed or
 * dropped in `inference_server_logger_events_total{outcome}`, and failures and
 * drops are logged (rate-limited, with counts, so nothing is lost silently).
 * One worker sends both events of an inference, so the request event always
 * reaches the sink before the response event.
 */
import type { CloudEvent } from "cloudevents";
import { randomUUID } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Logger } from "pino";
import { encodeInferenceRequest, encodeInferenceResponse } from "../codecs/v2.js";
import type { Config } from "../config.js";
import type { InferenceListener } from "../dataplane/dataplane.js";
import { InferenceError } from "../dataplane/errors.js";
import type { InferenceRequest } from "../dataplane/types.js";
import { redactUrl } from "../logging.js";
import { Metrics } from "../metrics.js";
import { EXTENSIONS, JSON_MEDIA_TYPE, LOGGER_REQUEST_TYPE, LOGGER_RESPONSE_TYPE, responseEventSource } from "./constants.js";
import { httpMessage, loadSdk, sdk } from "./sdk.js";

export type LoggerMode = "all" | "request" | "response";
type Inference = Parameters<InferenceListener>[0];
type Outcome = "sent" | "failed" | "dropped";

export interface InferenceLoggerOptions {
  /** The sink: an http(s) URL. */
  url: string;
  mode: LoggerMode;
  /** Events (not inferences) the queue holds before new ones are dropped. */
  queueSize: number;
  metrics: Metrics;
  logger: Logger;
  /** `inferenceservicename` (K_SERVICE); the model name when unset. */
  serviceName?: string;
  /** `namespace` (POD_NAMESPACE); empty when unset. */
  namespace?: string;
  /** The events' source (CE_SOURCE); io.kserve.inference.<model> when unset, as for replies. */
  source?: string;
  /** `component` (KServe: predictor, transformer, explainer). Default "predictor". */
  component?: string;
  /** `endpoint` (KServe: default or canary). Default "". */
  endpoint?: string;
  /** Events sent at once (each to its own connection at most). Default 4. */
  concurrency?: number;
  /** Attempts per event, the first included. Default 5. */
  maxAttempts?: number;
  /** Backoff before the second attempt; doubles each time, up to maxDelayMs. Default 100. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** One attempt's limit, connection to response headers. Default 5000. */
  timeoutMs?: number;
  /** At most one warning per kind (dropped, failed) in this interval; the rest are counted into the next. Default 10000. */
  warnIntervalMs?: number;
}

export interface LoggerStats {
  sent: number;
  failed: number;
  dropped: number;
  /** Events waiting in the queue. */
  queued: number;
  /** Events taken by a worker and not yet sent, failed or dropped. */
  inFlight: number;
}

function errorData(error: unknown): string {
  return JSON.stringify({ error: error instanceof InferenceError ? error.message : "internal server error" });
}

class AbortedError extends Error {}

/** A FIFO with O(1) removal at the head (Array#shift copies, and the queue may be long). */
class Queue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  clear(): T[] {
    const rest = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return rest;
  }
}

interface Work {
  inference: Inference;
  /** When the inference finished, the events' `time`. */
  at: number;
}

export class InferenceLogger {
  private readonly url: URL;
  private readonly safeUrl: string;
  private readonly agent: HttpAgent;
  private readonly eventsPerInference: number;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly warnIntervalMs: number;
  private readonly queue = new Queue<Work>();
  private readonly counts = { sent: 0, failed: 0, dropped: 0 };
  private queuedEvents = 0;
  private inFlightEvents = 0;
  private workers = 0;
  private kickScheduled = false;
  private closing = false;
  private readonly stop = new AbortController();
  private readonly idleWaiters = new Set<() => void>();
  private readonly warnings = {
    dropped: { last: -Infinity, unreported: 0 },
    failed: { last: -Infinity, unreported: 0 },
  };

  /** Pass this to dataPlane.addListener: it only enqueues, and never throws. */
  readonly listener: InferenceListener = (inference) => {
    try {
      this.enqueue(inference);
    } catch {
      // Never let the logger fail an inference.
    }
  };

  constructor(private readonly options: InferenceLoggerOptions) {
    this.url = new URL(options.url);
    if (this.url.protocol !== "http:" && this.url.protocol !== "https:") throw new Error(`the inference logger sink must be an http(s) URL, not ${redactUrl(options.url)}`);
    this.safeUrl = redactUrl(options.url);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 5_000;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.warnIntervalMs = options.warnIntervalMs ?? 10_000;
    this.eventsPerInference = options.mode === "all" ? 2 : 1;
    const agentOptions = { keepAlive: true, maxSockets: this.concurrency };
    this.agent = this.url.protocol === "https:" ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  /** The logger the configuration asks for (LOGGER_URL, else K_SINK), or undefined when neither is set. */
  static fromConfig(config: Config, deps: { logger: Logger; metrics?: Metrics }): InferenceLogger | undefined {
    const url = config.loggerUrl ?? config.loggerSink;
    if (url === undefined) return undefined;
    const logger = new InferenceLogger({
      url,
      mode: config.loggerMode,
      queueSize: config.loggerQueueSize,
      metrics: deps.metrics ?? new Metrics(),
      logger: deps.logger,
      serviceName: config.serviceName,
      namespace: config.namespace,
      source: config.ceSource,
    });
    deps.logger.info({ sink: logger.safeUrl, mode: config.loggerMode, queue_size: config.loggerQueueSize }, "inference logger on");
    return logger;
  }

  stats(): LoggerStats {
    return { ...this.counts, queued: this.queuedEvents, inFlight: this.inFlightEvents };
  }

  private count(outcome: Outcome, n = 1): void {
    if (n <= 0) return;
    this.counts[outcome] += n;
    this.options.metrics.loggerEvents.inc({ outcome }, n);
  }

  /** An in-flight event's outcome: counted and no longer in flight in one step, so stats() always adds up. */
  private settle(outcome: Outcome, n = 1): void {
    this.inFlightEvents -= n;
    this.count(outcome, n);
  }

  /** Logs at most one warning per interval for each kind, with how many happened since the last one. */
  private warn(kind: "dropped" | "failed", n: number, fields: Record<string, unknown>, message: string): void {
    const state = this.warnings[kind];
    state.unreported += n;
    const now = performance.now();
    if (now - state.last < this.warnIntervalMs) return;
    this.options.logger.warn({ sink: this.safeUrl, events: state.unreported, ...fields }, message);
    state.last = now;
    state.unreported = 0;
  }

  private enqueue(inference: Inference): void {
    const n = this.eventsPerInference;
    if (this.closing) {
      this.count("dropped", n);
      this.warn("dropped", n, { reason: "shutting down" }, "inference logger events dropped");
      return;
    }
    if (this.queuedEvents + n > this.options.queueSize) {
      this.count("dropped", n);
      this.warn("dropped", n, { reason: "queue full", queue_size: this.options.queueSize }, "inference logger events dropped: the sink is not keeping up");
      return;
    }
    this.queue.push({ inference, at: Date.now() });
    this.queuedEvents += n;
    this.kick();
  }

  /** Starts workers on a later turn of the event loop, so no encoding or I/O happens inside the inference. */
  private kick(): void {
    if (this.kickScheduled || this.workers >= this.concurrency) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      // No more workers than there are inferences waiting; a busy worker takes the next one itself.
      const start = Math.min(this.concurrency - this.workers, this.queue.length);
      for (let i = 0; i < start; i++) {
        this.workers++;
        void this.work();
      }
      this.notifyIfIdle();
    });
  }

  private async work(): Promise<void> {
    try {
      try {
        await loadSdk();
      } catch (err) {
        // Cannot happen with the package installed; if it does, nothing can be sent: say so, count it.
        const lost = this.queue.clear().length * this.eventsPerInference;
        this.queuedEvents -= lost;
        this.count("failed", lost);
        this.options.logger.error({ err, events: lost }, "inference logger cannot load the cloudevents SDK");
        return;
      }
      for (let item = this.queue.shift(); item; item = this.queue.shift()) {
        this.queuedEvents -= this.eventsPerInference;
        this.inFlightEvents += this.eventsPerInference;
        let events: CloudEvent<string>[];
        try {
          events = this.events(item);
        } catch (err) {
          this.settle("failed", this.eventsPerInference);
          this.warn("failed", this.eventsPerInference, { error: (err as Error).message }, "inference logger could not encode an event");
          continue;
        }
        // In order: the response event is sent only once the request event is done with.
        for (const event of events) await this.deliver(event);
      }
    } finally {
      this.workers--;
      this.notifyIfIdle();
    }
  }

  /** The CloudEvents for one inference, per mode: request, then response. */
  private events({ inference, at }: Work): CloudEvent<string>[] {
    const { request, response, error, context, modelVersion } = inference;
    const attributes = {
      specversion: "1.0",
      id: context.requestId ?? randomUUID(),
      source: this.options.source ?? responseEventSource(request.modelName),
      time: new Date(at).toISOString(),
      datacontenttype: JSON_MEDIA_TYPE,
      [EXTENSIONS.inferenceService]: this.options.serviceName ?? request.modelName,
      [EXTENSIONS.namespace]: this.options.namespace ?? "",
      [EXTENSIONS.component]: this.options.component ?? "predictor",
      [EXTENSIONS.endpoint]: this.options.endpoint ?? "",
      [EXTENSIONS.model]: request.modelName,
      [EXTENSIONS.modelVersion]: modelVersion,
    };
    const { CloudEvent } = sdk();
    const events: CloudEvent<string>[] = [];
    if (this.options.mode !== "response") {
      events.push(new CloudEvent<string>({ ...attributes, type: LOGGER_REQUEST_TYPE, data: encodeInferenceRequest(request) }));
    }
    if (this.options.mode !== "request") {
      const data = response ? encodeInferenceResponse(response).json : errorData(error);
      events.push(new CloudEvent<string>({ ...attributes, type: LOGGER_RESPONSE_TYPE, data }));
    }
    return events;
  }

  /** Delay before attempt `attempt + 1`: exponential, capped, with half of it jittered. */
  private backoff(attempt: number): number {
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private async deliver(event: CloudEvent<string>): Promise<void> {
    const message = httpMessage(event, "binary");
    const headers = message.headers;
    const body = Buffer.from(message.body, "utf8");
    headers["content-length"] = String(body.byteLength);
    let last = "";
    let attempt = 1;
    for (; ; attempt++) {
      if (this.stop.signal.aborted) {
        last = "the server shut down before it was sent";
        break;
      }
      let retry: boolean;
      try {
        const status = await this.post(headers, body);
        if (status >= 200 && status < 300) {
          this.settle("sent");
          return;
        }
        last = `the sink answered ${status}`;
        // Knative's own delivery retries these (SelectiveRetry): a sink that is starting answers 404 or 503.
        retry = status >= 500 || status === 404 || status === 408 || status === 409 || status === 429;
      } catch (err) {
        last = err instanceof AbortedError ? "the server shut down while it was being sent" : (err as Error).message;
        retry = !(err instanceof AbortedError);
      }
      if (!retry || attempt >= this.maxAttempts) break;
      try {
        await sleep(this.backoff(attempt), this.stop.signal);
      } catch {
        last = "the server shut down before it could be retried";
        break;
      }
    }
    this.settle("failed");
    this.warn("failed", 1, { type: event.type, id: event.id, error: last, attempts: attempt }, "inference logger event not delivered");
  }

  /** One attempt: resolves with the status code, rejects on a network error or the timeout. */
  private post(headers: Record<string, string>, body: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const send = this.url.protocol === "https:" ? httpsRequest : httpRequest;
      const req = send(this.url, { method: "POST", headers, agent: this.agent });
      const onAbort = () => req.destroy(new AbortedError("aborted"));
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.stop.signal.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        this.stop.signal.removeEventListener("abort", onAbort);
      };
      req.once("response", (res: IncomingMessage) => {
        done();
        res.resume(); // drain the body so the connection can be reused
        resolve(res.statusCode ?? 0);
      });
      req.once("error", (err) => {
        done();
        reject(err);
      });
      req.end(body);
    });
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.workers === 0;
  }

  private notifyIfIdle(): void {
    if (!this.isIdle()) return;
    for (const resolve of this.idleWaiters) resolve();
    this.idleWaiters.clear();
  }

  /** Waits until every queued event has been sent or given up on, or `timeoutMs` has passed; true when drained. */
  flush(timeoutMs: number): Promise<boolean> {
    if (this.isIdle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.idleWaiters.delete(onIdle);
        resolve(false);
      }, Math.max(0, timeoutMs));
      this.idleWaiters.add(onIdle);
    });
  }

  /**
   * Shutdown: refuses new events, flushes for at most `timeoutMs`, then aborts
   * what is still being sent (counted failed) and drops what is still queued
   * (counted dropped), and logs the totals.
   */
  async close(timeoutMs: number): Promise<LoggerStats> {
    if (this.closing) {
      await this.flush(timeoutMs);
      return this.stats();
    }
    this.closing = true;
    const drained = await this.flush(timeoutMs);
    const left = this.queue.clear().length * this.eventsPerInference;
    this.queuedEvents = 0;
    this.count("dropped", left);
    this.stop.abort();
    await this.flush(1_000);
    this.agent.destroy();
    const stats = this.stats();
    const fields = { sink: this.safeUrl, sent: stats.sent, failed: stats.failed, dropped: stats.dropped, drained };
    if (!drained || stats.failed + stats.dropped > 0) this.options.logger.warn(fields, "inference logger stopped; some events were not delivered");
    else this.options.logger.info(fields, "inference logger stopped");
    return stats;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new AbortedError("aborted"));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError("aborted"));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
