/**
 * Asynchronous inference: the shapes the store, the quota counter and the API
 * share. A request is submitted (queued), picked up by the worker (running) and
 * finished by the results collector (succeeded | failed); every step is
 * idempotent on the request id, so a redelivered event never counts twice.
 */

export const REQUEST_STATUSES = ["queued", "running", "succeeded", "failed"] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

/** One asynchronous inference request as stored. */
export interface AsyncRequestRecord {
  id: string;
  userId: string;
  model: string;
  /** The version the client asked for; undefined: the server's choice. */
  modelVersion?: string;
  status: RequestStatus;
  /** Bytes of the request body as received. */
  inputBytes: number;
  /** Tokens of the request (runtime/src/async/tokens.ts). */
  tokens: number;
  /** Deliveries to the worker so far (redeliveries included). */
  attempts: number;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  /** The V2 inference request (JSON), kept so the worker can run it from the store. */
  request: unknown;
  /**
   * The V2 inference response (JSON) once succeeded: INT64/UINT64 values beyond 2^53
   * are BigInt (parseJsonExact), so write it with stringifyExact, never JSON.stringify.
   */
  response?: unknown;
  /** Why it failed, once failed. */
  error?: string;
}

export interface NewAsyncRequest {
  id: string;
  userId: string;
  model: string;
  modelVersion?: string;
  inputBytes: number;
  tokens: number;
  request: unknown;
}

/** A response may hold BigInt (parseJsonExact's integers beyond 2^53): the store writes them exactly. */
export type Completion = { status: "succeeded"; response: unknown } | { status: "failed"; error: string };

/**
 * Who holds a request, and for how long (runtime/migrations/002_request_leases.sql):
 * a per-process worker id and a lease the holder renews while it holds it.
 */
export interface Lease {
  worker: string;
  leaseSeconds: number;
}

/** What the sweeper may take over (RequestStore.sweep). */
export interface SweepOptions extends Lease {
  /** Runs (claims) a request may have before it is failed. */
  maxAttempts: number;
  /**
   * "lease": queued and running requests whose lease has expired (the in-process
   * queue: a queued request is held by the process that queued it).
   * "outbox": running requests whose lease has expired and queued requests never
   * confirmed published whose lease has expired (a Broker holds the published ones).
   * "all": every unfinished request not held by `worker`, whatever its lease (one
   * process per database, at its start: PGlite).
   */
  scope: "lease" | "outbox" | "all";
  /** At most this many requests per call (default 100). */
  limit?: number;
}

/** A claim that did not change the request (RequestStore.markRunning). */
export type ClaimRefusal = "finished" | "busy" | "exhausted";

/** Requests and tokens a user used in one quota window. */
export interface Usage {
  requests: number;
  tokens: number;
}

/**
 * PostgreSQL (or PGlite, Postgres in-process, for local use) behind one interface.
 * Every write is idempotent on the request id.
 */
export interface RequestStore {
  /** "postgres" or "pglite", for the start-up log. */
  readonly kind: string;
  /** Applies the versioned SQL migrations not yet applied (runtime/migrations/), under a lock. */
  migrate(): Promise<{ applied: string[] }>;
  /**
   * Records a queued request and adds it to its user's usage for `window` in one
   * transaction. The same id again changes nothing and returns the stored record
   * with created=false.
   */
  createRequest(request: NewAsyncRequest, window: Date, lease?: Lease): Promise<{ record: AsyncRequestRecord; created: boolean }>;
  /**
   * queued or running → running, attempts + 1, started_at set (first time). A
   * finished request is returned unchanged with changed=false; unknown: undefined.
   * With a claim: the request is claimed for `worker` under a lease, and only if it
   * is queued, or running under an expired lease or this worker's, and has had
   * fewer than maxAttempts runs; otherwise changed=false and `refused` says why.
   */
  markRunning(
    id: string,
    claim?: Lease & { maxAttempts: number },
  ): Promise<{ record: AsyncRequestRecord; changed: boolean; refused?: ClaimRefusal } | undefined>;
  /**
   * Sets the final state once; later completions change nothing (changed=false). Unknown: undefined.
   * refund: a failure of the platform (not of the request): the request's usage is taken back from
   * its window, once (refunded=true when this call did it). expected: only when the request is in
   * one of these states (and at this attempt), checked in the same statement as the write.
   */
  complete(
    id: string,
    completion: Completion,
    options?: { refund?: boolean; expected?: { states: readonly RequestStatus[]; attempt?: number } },
  ): Promise<{ record: AsyncRequestRecord; changed: boolean; refunded?: boolean } | undefined>;
  /** Extends the lease of every unfinished request `worker` holds (of `ids`, when given); how many. */
  renewLeases(lease: Lease & { ids?: readonly string[] }): Promise<number>;
  /** `worker` gives a running request back to the Broker for redelivery: held by no process, claimable at once, swept after a lease. */
  releaseLease(id: string, lease: Lease): Promise<void>;
  /** The outbox: the Broker took the request event (a queued request is then the Broker's to hold). */
  markPublished(id: string, worker: string): Promise<void>;
  /**
   * Takes over stranded requests (see SweepOptions.scope), each claimed by one
   * caller only (FOR UPDATE SKIP LOCKED): those with runs left are re-queued,
   * held by `worker` (to be queued again by the caller); the others are failed
   * with a reason, and their usage refunded when they never ran to the end.
   * `held`: requests the caller holds itself (in its in-process queue), never taken.
   */
  sweep(options: SweepOptions & { held?: readonly string[] }): Promise<{ requeued: AsyncRequestRecord[]; failed: Array<{ record: AsyncRequestRecord; refunded: boolean }> }>;
  getRequest(id: string): Promise<AsyncRequestRecord | undefined>;
  /** Adds synchronous requests' usage to a user's window (batched by the caller). */
  addUsage(userId: string, window: Date, usage: Usage): Promise<void>;
  /** A user's recorded usage in the window starting at `window` (zeros when none). */
  usage(userId: string, window: Date): Promise<Usage>;
  close(): Promise<void>;
}

/** Per-user limits for one window; undefined means unlimited. */
export interface QuotaLimits {
  requests?: number;
  tokens?: number;
}

export interface QuotaDecision {
  admitted: boolean;
  /** The user's counts in this window after the decision (unchanged when refused). */
  requests: number;
  tokens: number;
  limits: QuotaLimits;
  /** Which limit refused the request. */
  exceeded?: "requests" | "tokens";
  /** Start of the current window, and when the next one starts. */
  windowStart: Date;
  resetAt: Date;
}

/** The real-time quota counters: Redis in production, in-process for local use. */
export interface QuotaCounter {
  readonly kind: string;
  /**
   * Atomically admits one request of `tokens` tokens for `userId` in the window
   * containing `now` if neither limit would be exceeded, and counts it; otherwise
   * counts nothing. Rejects (throws) when the counter store cannot be reached.
   */
  admit(userId: string, tokens: number, limits: QuotaLimits, now?: Date): Promise<QuotaDecision>;
  /** Takes back one request of `tokens` counted in the window holding `at` (never below zero). */
  refund(userId: string, tokens: number, at: Date): Promise<void>;
  close(): Promise<void>;
}

/** Fixed windows aligned to the epoch: the start of the window holding `now`. */
export function windowStart(now: Date, windowSeconds: number): Date {
  const ms = windowSeconds * 1000;
  return new Date(Math.floor(now.getTime() / ms) * ms);
}
