/**
 * The cloudevents SDK, loaded on first use. Loading it (uuid, json-bigint,
 * ajv formats) takes about 30 ms, which a pod that never sees an event should
 * not pay on every cold start: the routes and the logger await loadSdk()
 * before their first use of sdk().
 */
type Sdk = typeof import("cloudevents");

let loaded: Sdk | undefined;
let loading: Promise<Sdk> | undefined;

export function loadSdk(): Promise<Sdk> {
  return (loading ??= import("cloudevents").then((m) => (loaded = m)));
}

/** The SDK once loadSdk() has resolved. */
export function sdk(): Sdk {
  if (!loaded) throw new Error("the cloudevents SDK is not loaded yet: await loadSdk() first");
  return loaded;
}
