/**
 * A client that half-closes its connection after sending a request (a FIN right after
 * the body, as nc and some load tools do) still gets its answer, and then the server
 * closes the connection: Node's default would abort the request on that FIN, while its
 * body is still being read or its model is still running on an instance.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { removeRepository, slowInput, slowModel, writeRepository } from "../testing/fixtures.js";
import { startTestServer, type RunningServer } from "../testing/server.js";

let repo: string;
let server: RunningServer;

beforeAll(async () => {
  repo = await writeRepository({ "simple/1/model.onnx": buildSimple(), "slow/1/model.onnx": slowModel() });
  server = await startTestServer(repo);
});

afterAll(async () => {
  await server?.close();
  await removeRepository(repo);
});

/** Sends the whole request and a FIN at once; resolves with everything received until the server closes. */
function halfClose(head: string, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(server.port, "127.0.0.1");
    let received = "";
    socket.on("data", (d) => (received += d.toString("latin1")));
    socket.on("close", () => resolve(received));
    socket.end(Buffer.concat([Buffer.from(`${head}Content-Length: ${body.length}\r\n\r\n`), body]));
  });
}

it("answers a JSON inference whose client half-closed after sending it", async () => {
  const body = Buffer.from(JSON.stringify({ inputs: ["INPUT0", "INPUT1"].map((name) => ({ name, shape: [1, 16], datatype: "INT32", data: Array(16).fill(3) })) }));
  const received = await halfClose("POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\n", body);
  expect(received).toMatch(/^HTTP\/1\.1 200 /);
  expect(received).toContain('"data":[6,6,6');
});

it("answers a request whose model run is still going when the client's FIN arrives", async () => {
  const received = await halfClose("POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: 0\r\n", Buffer.from(slowInput(64)));
  expect(received).toMatch(/^HTTP\/1\.1 200 /);
});
