/** examples/cloudevents.sh (curl) and examples/cloudevents.ts (the SDK) against a real server on the shipped models. */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type RunningServer } from "../../runtime/src/testing/server.js";

const root = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);
let server: RunningServer;

beforeAll(async () => {
  server = await startTestServer(join(root, "models"));
});
afterAll(() => server?.close());

// Asynchronous child processes: the server runs in this process and must keep answering.
describe("CloudEvents examples", () => {
  it("examples/cloudevents.sh shows binary and structured replies and a 400", async () => {
    const { stdout } = await run("bash", [join(root, "examples", "cloudevents.sh")], { env: { ...process.env, INFERENCE_URL: server.url } });
    const sections = stdout.split(/^--- /m).slice(1);
    expect(sections.map((s) => s.split("\n")[0])).toEqual(["binary mode", "structured mode", "binary mode on /v2/models/sentiment/infer", "an invalid event"]);
    const [binary, structured, byPath, invalid] = sections as [string, string, string, string];
    expect(binary).toMatch(/^HTTP\/1\.1 200/m);
    expect(binary).toMatch(/^ce-type: io\.kserve\.inference\.response\r?$/m);
    expect(binary).toMatch(/^ce-causationid: example-binary-1\r?$/m);
    expect(binary).toContain('"label":"positive"');
    expect(structured).toMatch(/^content-type: application\/cloudevents\+json/m);
    expect(structured).toContain('"causationid":"example-structured-1"');
    expect(structured).toContain('"id":"batch-1"');
    expect(structured).toContain('"data":["positive","negative"]');
    expect(byPath).toMatch(/^ce-source: io\.kserve\.inference\.sentiment\r?$/m);
    expect(byPath).toContain('"data":["negative"]');
    expect(invalid).toMatch(/^HTTP\/1\.1 400/m);
    expect(invalid).toContain("CloudEvent is missing required attribute 'source'");
  });

  it("examples/cloudevents.ts sends with the SDK in both modes and reads the replies", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", join(root, "examples", "cloudevents.ts")], { env: { ...process.env, INFERENCE_URL: server.url } });
    expect(stdout).toMatch(/^binary: io\.kserve\.inference\.response from io\.kserve\.inference\.sentiment, id [0-9a-f-]{36}, in reply to [0-9a-f-]{36}$/m);
    expect(stdout).toMatch(/^structured: io\.kserve\.inference\.response/m);
    expect(stdout).toContain('"Loved every minute of it." -> positive');
    expect(stdout).toContain('"Awful service, never again." -> negative');
  });
});
