/**
 * The results path's shared secret (RESULTS_TOKEN). The platform's request
 * events (BrokerQueue) and the worker's reply events carry it as the CloudEvent
 * extension `resultstoken`, which a Knative Broker forwards with the event (an
 * arbitrary HTTP header it would not); the results collector accepts a result
 * only with it, and the worker answers a request event as the platform's only
 * when it carries it (so a client that posts an event to POST / never gets a
 * reply holding the token).
 */
import { createHash, timingSafeEqual } from "node:crypto";

export type TokenCheck = "ok" | "no_token" | "invalid_token";

const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest();

/** Compares in constant time (over fixed-length digests, so the length does not leak either). */
export function checkResultsToken(expected: string | undefined, presented: unknown): TokenCheck {
  if (typeof presented !== "string" || presented === "") return "no_token";
  if (expected === undefined) return "invalid_token";
  return timingSafeEqual(digest(expected), digest(presented)) ? "ok" : "invalid_token";
}
