/**
 * A request store that is still opening: the embedded PGlite store takes a few
 * seconds to start (its WebAssembly, initdb, the migrations), which the server
 * does not wait for before listening and loading its models. Until the store is
 * open, what a client's request asks of it is a 503 with Retry-After (the async
 * API, the worker, the collector: CLIENT_CALLS); every other call (batched
 * usage, background work) waits for it. Once open, every call goes straight to
 * the store. A Proxy, so that it forwards whatever RequestStore offers.
 */
import { InferenceError } from "../dataplane/errors.js";
import type { RequestStore } from "./types.js";

/** Calls made on behalf of a waiting client: answered 503 + Retry-After while the store opens. */
const CLIENT_CALLS = new Set<string>(["createRequest", "markRunning", "complete", "getRequest", "usage"]);

export interface DeferredStore {
  store: RequestStore;
  /** Settles once the store is open; rejects with the reason it could not be. */
  ready: Promise<void>;
}

export function deferredStore(kind: string, opening: Promise<RequestStore>): DeferredStore {
  let open: RequestStore | undefined;
  let failed = false;
  const ready = opening.then(
    (store) => {
      open = store;
    },
    (err: unknown) => {
      failed = true;
      throw err;
    },
  );
  ready.catch(() => undefined);
  const unavailable = () =>
    new InferenceError(
      503,
      failed ? `the request store (${kind}) could not be started; see the server's log` : `the request store (${kind}) is starting; retry shortly`,
      { "retry-after": "1" },
    );
  const store = new Proxy({ kind } as RequestStore, {
    get(_target, name) {
      if (name === "kind") return kind;
      if (typeof name !== "string") return undefined;
      if (open) {
        const value = (open as unknown as Record<string, unknown>)[name];
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(open) : value;
      }
      if (name === "then") return undefined; // not a thenable
      if (name === "close") return async () => {
        await ready.catch(() => undefined);
        await open?.close();
      };
      if (CLIENT_CALLS.has(name)) return () => Promise.reject(unavailable());
      return async (...args: unknown[]) => {
        await ready;
        return (open as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args);
      };
    },
  });
  return { store, ready };
}
