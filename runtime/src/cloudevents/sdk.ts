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

/** An event as an HTTP request or response: the SDK's binary or structured message, headers as plain strings. */
export function httpMessage(event: import("cloudevents").CloudEvent<unknown>, mode: "binary" | "structured"): { headers: Record<string, string>; body: string } {
  const { HTTP } = sdk();
  const message = mode === "binary" ? HTTP.binary(event) : HTTP.structured(event);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  return { headers, body: message.body as string };
}
