/**
 * Sends one inference request as a CloudEvent with the `cloudevents` SDK, in
 * binary and then in structured mode, and reads each reply (a CloudEvent in
 * the same mode) with the SDK. See runtime/src/cloudevents/README.md.
 *
 *   npx tsx examples/cloudevents.ts      # calls `sentiment` on $INFERENCE_URL (default http://localhost:8080)
 */
import { CloudEvent, HTTP, type Message } from "cloudevents";
import { fetchFrom, runMain } from "./explain.js";

const url = process.env.INFERENCE_URL ?? "http://localhost:8080";

/** POSTs an event and returns the reply event; a failure (never a 200) throws with the server's error, no server with what to do. */
async function send(message: Message): Promise<CloudEvent<any>> {
  const res = await fetchFrom(url, "/", { method: "POST", headers: message.headers as Record<string, string>, body: message.body as string });
  const body = await res.text();
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${body}`);
  return HTTP.toEvent({ headers: Object.fromEntries(res.headers), body }) as CloudEvent<any>;
}

// The type a Trigger filters on; the `model` extension picks the model on POST /.
const request = new CloudEvent({
  type: "io.kserve.inference.request",
  source: "/examples/cloudevents.ts",
  model: "sentiment",
  datacontenttype: "application/json",
  data: { text: ["Loved every minute of it.", "Awful service, never again."] },
});

runMain("cloudevents.ts", async () => {
  for (const [mode, message] of [["binary", HTTP.binary(request)], ["structured", HTTP.structured(request)]] as const) {
    const reply = await send(message);
    console.log(`${mode}: ${reply.type} from ${reply.source}, id ${reply.id}, in reply to ${reply.causationid}`);
    const predictions = reply.data.predictions as { label: string; probabilities: number[] }[];
    predictions.forEach((p, i) => console.log(`  ${JSON.stringify(request.data!.text[i])} -> ${p.label} (${Math.max(...p.probabilities).toFixed(3)})`));
  }
});
