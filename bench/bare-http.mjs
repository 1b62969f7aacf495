// The HTTP limit for `npm run bench`: a bare node:http server that reads the
// request body, parses it as JSON (as the inference server must) and answers a
// fixed reply of the same size as the served `simple` response. No framework,
// no validation, no model. PORT and BARE_REPLY come from the environment.
import { createServer } from "node:http";

const reply = process.env.BARE_REPLY ?? "{}";
const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    JSON.parse(Buffer.concat(chunks).toString("utf8"));
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(reply) });
    res.end(reply);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
