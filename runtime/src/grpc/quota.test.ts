/** Quotas apply to gRPC calls that name a user (USER_HEADER metadata), as to REST. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { grpcClient, grpcTarget, type GrpcTestClient } from "../testing/grpc-client.js";
import { postJson, startTestServer, type RunningServer } from "../testing/server.js";

let server: RunningServer;
let client: GrpcTestClient;
const models = join(import.meta.dirname, "../../../models");

beforeAll(async () => {
  server = await startTestServer(models, { protocol: "grpc", asyncInference: true, quotaRequests: 2 });
  client = grpcClient(grpcTarget(server.url));
});
afterAll(async () => {
  client?.close();
  await server?.close();
});

const simple = { model_name: "simple", inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1, 16], contents: { int_contents: Array(16).fill(1) } }, { name: "INPUT1", datatype: "INT32", shape: [1, 16], contents: { int_contents: Array(16).fill(2) } }] };

describe("gRPC quotas", () => {
  it("counts calls with the user metadata against the same quota as REST, and answers RESOURCE_EXHAUSTED with the REST message and retry-after", async () => {
    const bob = { metadata: { "x-user-id": "bob" } };
    await client.call("ModelInfer", simple, bob);
    const rest = await postJson(`${server.url}/v2/models/simple/infer`, { inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array(16).fill(1) }, { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: Array(16).fill(2) }] }, { "x-user-id": "bob" });
    expect(rest.status).toBe(200);
    const err = await client.call("ModelInfer", simple, bob).then(() => undefined, (e: { code: number; details: string; metadata: { get(k: string): unknown[] } }) => e);
    expect(err?.code).toBe(8); // RESOURCE_EXHAUSTED
    expect(err?.details).toMatch(/^quota exceeded for user 'bob': 2 requests per 3600 s window \(2 used\); retry after \d+ s$/);
    expect(Number(err?.metadata.get("retry-after")[0])).toBeGreaterThan(0);
    // Another user, and calls without the metadata, are not limited by bob's quota.
    await client.call("ModelInfer", simple, { metadata: { "x-user-id": "carol" } });
    await client.call("ModelInfer", simple);
    const bad = await client.call("ModelInfer", simple, { metadata: { "x-user-id": "not a user" } }).then(() => undefined, (e: { code: number; details: string }) => e);
    expect(bad?.code).toBe(3);
    expect(bad?.details).toMatch(/^the x-user-id metadata must be a user id/);
  });
});
