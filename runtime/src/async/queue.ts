/**
 * Where queued requests go. In a Knative deployment: a CloudEvent of type
 * io.kserve.inference.request (id = request id) POSTed to the Broker (K_SINK or
 * ASYNC_SINK), whose Trigger delivers it to a runtime's POST / (the worker) and
 * routes the reply to POST /api/v1/results (the collector). Without a broker
 * (`npm start`): an in-process queue that runs the same worker and collector
 * code, so local use behaves the same but for durability.
 */
import type { Logger } from "pino";
import { REQUEST_EVENT_TYPE } from "../cloudevents/constants.js";
import { httpMessage, loadSdk, sdk } from "../cloudevents/sdk.js";
import { redactUrl } from "../logging.js";

/** Extensions on request events (CloudEvents extension names: a-z0-9, at most 20 characters). */
export const ASYNC_EXTENSIONS = { userId: "userid", correlationId: "correlationid", model: "model", modelVersion: "modelversion" } as const;

export interface QueuedRequest {
  id: string;
  userId: string;
  model: string;
  modelVersion?: string;
  /** The V2 inference request (JSON). */
  request: unknown;
}

export interface RequestQueue {
  readonly kind: "broker" | "in-process";
  /** Resolves once the queue has the request (the Broker answered 2xx); rejects when it could not take it. */
  publish(request: QueuedRequest): Promise<void>;
  /** Waits (at most `timeoutMs`) for work in progress: in-process deliveries. */
  close(timeoutMs: number): Promise<void>;
}

const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Publishes request events to a Knative Broker (or any CloudEvents sink) in binary mode. */
export class BrokerQueue implements RequestQueue {
  readonly kind = "broker";
  /** The sink without credentials: fetch refuses a URL that has them (and its error would show them). */
  private readonly target: string;
  /** Credentials in the sink URL, sent as HTTP Basic authorization instead. */
  private readonly authorization?: string;

  constructor(
    private readonly sink: string,
    private readonly source: string,
    private readonly logger: Logger,
    private readonly options: { attempts: number; timeoutMs: number } = { attempts: 4, timeoutMs: 5_000 },
    /** Extensions every request event carries besides its own: the results token (RESULTS_TOKEN). */
    private readonly extensions: Record<string, string> = {},
  ) {
    const url = new URL(sink);
    if (url.username || url.password) {
      this.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`, "utf8").toString("base64")}`;
      url.username = "";
      url.password = "";
    }
    this.target = url.toString();
  }

  async publish(request: QueuedRequest): Promise<void> {
    await loadSdk();
    const { CloudEvent } = sdk();
    const attributes: Record<string, unknown> = {
      ...this.extensions,
      specversion: "1.0",
      id: request.id,
      source: this.source,
      type: REQUEST_EVENT_TYPE,
      subject: request.model,
      datacontenttype: "application/json",
      [ASYNC_EXTENSIONS.model]: request.model,
      [ASYNC_EXTENSIONS.userId]: request.userId,
      [ASYNC_EXTENSIONS.correlationId]: request.id,
    };
    if (request.modelVersion !== undefined) attributes[ASYNC_EXTENSIONS.modelVersion] = request.modelVersion;
    const message = httpMessage(new CloudEvent<unknown>({ ...attributes, data: JSON.stringify(request.request) }), "binary");
    const headers = message.headers;
    if (this.authorization) headers.authorization = this.authorization;
    let last = "";
    for (let attempt = 1; attempt <= this.options.attempts; attempt++) {
      try {
        const res = await fetch(this.target, { method: "POST", headers, body: message.body, signal: AbortSignal.timeout(this.options.timeoutMs) });
        await res.arrayBuffer();
        if (res.ok) return;
        last = `the broker answered ${res.status}`;
        if (!RETRYABLE.has(res.status)) break;
      } catch (err) {
        last = (err as Error).message;
      }
      if (attempt < this.options.attempts) {
        this.logger.warn({ request_id: request.id, attempt, reason: last }, "publishing a queued request failed; retrying");
        await sleep(100 * 2 ** attempt * (0.5 + Math.random()));
      }
    }
    throw new Error(`could not publish the request to ${redactUrl(this.target)}: ${last}`);
  }

  async close(): Promise<void> {}
}

/**
 * The queue without a broker: each request runs on a later turn of the event
 * loop through `deliver` (the worker and then the collector). A delivery that
 * fails with a retryable error is tried again, as the Broker would; the final
 * failure goes to `deadLetter`, as the Broker's dead-letter sink would.
 */
export class InProcessQueue implements RequestQueue {
  readonly kind = "in-process";
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly deliver: (request: QueuedRequest) => Promise<void>,
    private readonly deadLetter: (request: QueuedRequest, reason: string) => Promise<void>,
    private readonly logger: Logger,
    private readonly attempts = 3,
  ) {}

  async publish(request: QueuedRequest): Promise<void> {
    const run = (async () => {
      await new Promise((r) => setImmediate(r));
      let reason = "";
      for (let attempt = 1; attempt <= this.attempts; attempt++) {
        try {
          await this.deliver(request);
          return;
        } catch (err) {
          reason = (err as Error).message;
          this.logger.warn({ request_id: request.id, attempt, reason }, "in-process delivery failed");
          if (attempt < this.attempts) await sleep(200 * attempt);
        }
      }
      await this.deadLetter(request, reason).catch((err: unknown) => this.logger.error({ err, request_id: request.id }, "recording a dead-lettered request failed"));
    })();
    this.pending.add(run);
    void run.finally(() => this.pending.delete(run));
  }

  async close(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}
