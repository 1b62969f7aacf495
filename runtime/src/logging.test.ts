import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { levelFormatter } from "./log-format.js";
import { createLogger, parseTraceparent, redactUrl } from "./logging.js";
import { removeRepository, writeRepository } from "./testing/fixtures.js";
import { startTestServer } from "./testing/server.js";

function capture(): { stream: Writable; text: () => string } {
  let out = "";
  return {
    stream: new Writable({
      write(chunk: Buffer, _e, done) {
        out += chunk;
        done();
      },
    }),
    text: () => out,
  };
}

describe("logs", () => {
  it("redacts credentials and signed query strings from URLs", () => {
    expect(redactUrl("https://user:pass@sink.example/path?X-Amz-Signature=abc")).toBe("https://REDACTED@sink.example/path?REDACTED");
    expect(redactUrl("http://broker-ingress.knative-eventing.svc/default/default")).toBe("http://broker-ingress.knative-eventing.svc/default/default");
    expect(redactUrl("not a url")).toBe("[unparseable URL]");
  });

  it("reads trace and span ids from a valid W3C traceparent only", () => {
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toEqual({ trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" });
    expect(parseTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01")).toBeUndefined();
    expect(parseTraceparent("garbage")).toBeUndefined();
    expect(parseTraceparent(undefined)).toBeUndefined();
  });

  it("writes one JSON object per line, and a readable line with LOG_FORMAT=pretty", () => {
    const json = capture();
    createLogger("info", "json", json.stream).info({ model: "simple", load_ms: 3.2 }, "model loaded");
    const line = JSON.parse(json.text().trim());
    expect(line).toMatchObject({ level: "info", service: "inference-server", model: "simple", load_ms: 3.2, msg: "model loaded" });
    expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT/);

    const pretty = capture();
    createLogger("info", "pretty", pretty.stream).warn({ model: "simple" }, "slow");
    expect(pretty.text()).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN  slow model=simple\n$/);
  });

  it("logs the start-up configuration with secrets redacted", async () => {
    const repo = await writeRepository({});
    const out = capture();
    const server = await startTestServer(
      repo,
      { repositoryApiToken: "a-very-secret-token-123", resultsToken: "another-secret-token-456", loggerUrl: "https://user:pw@sink.example/x?sig=1" },
      { logger: createLogger("info", "json", out.stream) },
    );
    await server.close();
    await removeRepository(repo);
    const starting = out.text().split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg === "starting");
    expect(starting.config.repositoryApiToken).toBe("[REDACTED]");
    expect(starting.config.resultsToken).toBe("[REDACTED]");
    expect(starting.config.loggerUrl).toBe("https://REDACTED@sink.example/x?REDACTED");
    expect(out.text()).not.toContain("a-very-secret-token-123");
    expect(out.text()).not.toContain("another-secret-token-456");
  });

  it("logs secrets that are not configured as unset, not as [REDACTED]", async () => {
    const repo = await writeRepository({});
    const out = capture();
    const server = await startTestServer(repo, {}, { logger: createLogger("info", "json", out.stream) });
    await server.close();
    await removeRepository(repo);
    const starting = out.text().split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg === "starting");
    expect(starting.config).toMatchObject({ repositoryApiToken: "unset", resultsToken: "unset" });
  });

  it("writes the level by name, the format the model puller shares (log-format.ts)", () => {
    const json = capture();
    createLogger("debug", "json", json.stream).error({ authorization: "Bearer x" }, "failed");
    const line = JSON.parse(json.text().trim());
    expect(line).toMatchObject({ level: "error", authorization: "[REDACTED]", msg: "failed" });
    expect(levelFormatter("warn")).toEqual({ level: "warn" });
  });
});
