import { existsSync, lstatSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import zlib from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readMarker } from "./marker.js";
import { buildTar, bytes, runPull, serveBytes, sha256, tempDir, TestServer } from "./test-support.js";

let server: TestServer;
let other: TestServer;
let tmp: ReturnType<typeof tempDir>;
let dest: string;

beforeEach(async () => {
  server = await new TestServer().start();
  other = await new TestServer().start();
  tmp = tempDir("puller-http-");
  dest = join(tmp.path, "models", "resnet");
});
afterEach(async () => {
  await server.close();
  await other.close();
  tmp.cleanup();
});

const DATA = bytes(300_000, 7);
const fast = { retryDelay: 10, idleTimeout: 5_000 };

/** No staging, scratch or trash directory survives a pull, successful or not. */
function leftovers(): string[] {
  const state = join(tmp.path, "models", ".resnet.model-puller");
  if (!existsSync(state)) return [];
  return readdirSync(state).filter((n) => /^(tmp|dl|trash|link|marker)-/.test(n));
}

describe("http source", () => {
  it("downloads, verifies, publishes model.onnx with a marker, sending Authorization from the env", async () => {
    server.route("/models/resnet50.onnx", (req, res) => serveBytes(req, res, DATA));
    const r = await runPull(
      { source: server.url("/models/resnet50.onnx"), dest, sha256: sha256(DATA), ...fast },
      { PULLER_HTTP_AUTHORIZATION: "Bearer s3cr3t-token" },
    );
    expect(r.error).toBeUndefined();
    expect(r.outcome?.status).toBe("pulled");
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
    expect(lstatSync(dest).isSymbolicLink()).toBe(true);
    const marker = await readMarker(dest);
    expect(marker).toMatchObject({
      source: server.url("/models/resnet50.onnx"),
      sha256: sha256(DATA),
      digest: "file",
      size: DATA.length,
      files: [{ path: "model.onnx", size: DATA.length, sha256: sha256(DATA) }],
      artifact: { name: "resnet50.onnx", archive: null },
      layout: "link",
    });
    expect(server.hits("/models/resnet50.onnx")[0]!.headers.authorization).toBe("Bearer s3cr3t-token");
    expect(leftovers()).toEqual([]);
  });

  it("follows redirects, and drops Authorization when a redirect leaves the origin", async () => {
    server.route("/start", (_req, res) => {
      res.writeHead(302, { location: "/moved" });
      res.end();
    });
    server.route("/moved", (_req, res) => {
      res.writeHead(307, { location: other.url("/cdn/blob?X-Amz-Signature=abcdef123456") });
      res.end();
    });
    other.route("/cdn/blob", (req, res) => serveBytes(req, res, DATA));
    const r = await runPull({ source: server.url("/start"), dest, filename: "model.onnx", ...fast }, { PULLER_HTTP_BEARER_TOKEN: "tok-123456" });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
    expect(server.hits("/start")[0]!.headers.authorization).toBe("Bearer tok-123456");
    expect(server.hits("/moved")[0]!.headers.authorization).toBe("Bearer tok-123456");
    expect(other.hits("/cdn/blob")[0]!.headers.authorization).toBeUndefined();
  });

  it("resumes with Range after the connection drops mid-body", async () => {
    server.route("/m.onnx", (req, res, n) => serveBytes(req, res, DATA, n === 1 ? { dropAfter: 120_000 } : {}));
    const r = await runPull({ source: server.url("/m.onnx"), dest, sha256: sha256(DATA), ...fast });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
    const hits = server.hits("/m.onnx");
    expect(hits).toHaveLength(2);
    expect(hits[0]!.headers.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(hits[1]!.headers.range ?? "")?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(120_000);
    expect(hits[1]!.headers["if-range"]).toBeDefined();
    expect(r.messages.some((m) => m.msg === "download interrupted, resuming")).toBe(true);
  });

  it("retries 500 with backoff, then succeeds", async () => {
    server.route("/m.onnx", (req, res, n) => {
      if (n <= 2) {
        res.statusCode = 500;
        res.end("boom");
        return;
      }
      serveBytes(req, res, DATA);
    });
    const r = await runPull({ source: server.url("/m.onnx"), dest, ...fast });
    expect(r.error).toBeUndefined();
    expect(server.hits("/m.onnx")).toHaveLength(3);
    expect(r.messages.filter((m) => m.msg === "download failed, retrying")).toHaveLength(2);
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
  });

  it("gives up after --retries on persistent 503", async () => {
    server.route("/m.onnx", (_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    const r = await runPull({ source: server.url("/m.onnx"), dest, ...fast, retries: 2 });
    expect(r.error?.message).toMatch(/HTTP 503.*gave up after 3 attempts/);
    expect(server.hits("/m.onnx")).toHaveLength(3);
    expect(existsSync(dest)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it("does not retry 4xx", async () => {
    server.route("/missing.onnx", (_req, res) => {
      res.statusCode = 404;
      res.end("no such model");
    });
    server.route("/forbidden.onnx", (_req, res) => {
      res.statusCode = 403;
      res.end(JSON.stringify({ error: "access denied" }));
    });
    const a = await runPull({ source: server.url("/missing.onnx"), dest, ...fast });
    expect(a.error).toMatchObject({ code: "NOT_FOUND" });
    expect(a.error?.message).toContain("HTTP 404 no such model");
    expect(server.hits("/missing.onnx")).toHaveLength(1);
    const b = await runPull({ source: server.url("/forbidden.onnx"), dest, ...fast });
    expect(b.error?.message).toMatch(/HTTP 403 access denied/);
    expect(server.hits("/forbidden.onnx")).toHaveLength(1);
    expect(existsSync(dest)).toBe(false);
  });

  it("restarts from zero when the server ignores Range", async () => {
    server.route("/m.onnx", (req, res, n) => serveBytes(req, res, DATA, n === 1 ? { dropAfter: 100_000 } : { ignoreRange: true }));
    const r = await runPull({ source: server.url("/m.onnx"), dest, sha256: sha256(DATA), ...fast });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
    expect(server.hits("/m.onnx")[1]!.headers.range).toBeDefined();
    expect(r.messages.some((m) => m.msg === "restarting download from the beginning")).toBe(true);
  });

  it("restarts from zero when the file changed between attempts (If-Range)", async () => {
    const v2 = bytes(DATA.length, 99);
    server.route("/m.onnx", (req, res, n) => serveBytes(req, res, n === 1 ? DATA : v2, n === 1 ? { dropAfter: 50_000, etag: '"v1"' } : { etag: '"v2"' }));
    const r = await runPull({ source: server.url("/m.onnx"), dest, ...fast });
    expect(r.error).toBeUndefined();
    expect(server.hits("/m.onnx")[1]!.headers["if-range"]).toBe('"v1"');
    expect(readFileSync(join(dest, "model.onnx")).equals(v2)).toBe(true);
    expect((await readMarker(dest))?.sha256).toBe(sha256(v2));
  });

  it("fails, publishing nothing, when the server keeps announcing more bytes than it sends (wrong length)", async () => {
    server.route("/m.onnx", (req, res) => {
      // Always claims 1000 bytes more than it has; a range request past the real end gets 416.
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
      if (range && Number(range[1]) >= DATA.length) {
        res.writeHead(416, { "content-range": `bytes */${DATA.length}` });
        res.end();
        return;
      }
      res.writeHead(200, { "content-length": String(DATA.length + 1000) });
      res.write(DATA, () => res.socket?.destroy());
    });
    const r = await runPull({ source: server.url("/m.onnx"), dest, ...fast, retries: 2 });
    expect(r.error?.message).toMatch(/gave up after/);
    expect(existsSync(dest)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it("retries a connection that stalls (--idle-timeout) and resumes", async () => {
    server.route("/m.onnx", (req, res, n) => serveBytes(req, res, DATA, n === 1 ? { stallAfter: 64_000 } : {}));
    const r = await runPull({ source: server.url("/m.onnx"), dest, ...fast, idleTimeout: 300 });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
    expect(server.hits("/m.onnx")[1]!.headers.range).toMatch(/^bytes=\d+-$/);
  });

  it("gives up at --timeout on a slow server, leaving nothing behind", async () => {
    server.route("/m.onnx", (req, res) => serveBytes(req, res, DATA, { slow: { chunk: 1000, delayMs: 50 } }));
    const r = await runPull({ source: server.url("/m.onnx"), dest, ...fast, timeout: 400 });
    expect(r.error).toMatchObject({ code: "TIMEOUT" });
    expect(r.error?.message).toMatch(/timed out after 400 ms/);
    expect(existsSync(dest)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it("fails on a sha256 mismatch with both digests, publishing nothing", async () => {
    server.route("/m.onnx", (req, res) => serveBytes(req, res, DATA));
    const wrong = "0".repeat(64);
    const r = await runPull({ source: server.url("/m.onnx"), dest, sha256: wrong, ...fast });
    expect(r.error).toMatchObject({ code: "CHECKSUM_MISMATCH" });
    expect(r.error?.message).toContain(`expected ${wrong}`);
    expect(r.error?.message).toContain(`got ${sha256(DATA)}`);
    expect(existsSync(dest)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it("enforces --max-bytes from Content-Length before reading, and while streaming without one", async () => {
    server.route("/m.onnx", (req, res) => serveBytes(req, res, DATA));
    server.route("/chunked.onnx", (req, res) => serveBytes(req, res, DATA, { chunked: true }));
    const a = await runPull({ source: server.url("/m.onnx"), dest, maxBytes: 100_000, ...fast });
    expect(a.error).toMatchObject({ code: "TOO_LARGE" });
    expect(a.error?.message).toMatch(/is 300000 bytes, more than --max-bytes 100000/);
    const b = await runPull({ source: server.url("/chunked.onnx"), dest, maxBytes: 100_000, ...fast });
    expect(b.error).toMatchObject({ code: "TOO_LARGE" });
    expect(b.error?.message).toMatch(/exceeded --max-bytes 100000/);
    expect(server.hits("/chunked.onnx")).toHaveLength(1);
    expect(existsSync(dest)).toBe(false);
  });

  it("extracts an archive named by Content-Disposition", async () => {
    const tgz = buildTar([{ path: "1/model.onnx", data: DATA }, { path: "config.pbtxt", data: "name: resnet" }], true);
    server.route("/download", (req, res) => serveBytes(req, res, tgz, { contentDisposition: 'attachment; filename="resnet.tar.gz"' }));
    const r = await runPull({ source: server.url("/download?id=3"), dest, sha256: sha256(tgz), ...fast });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "1", "model.onnx")).equals(DATA)).toBe(true);
    const m = await readMarker(dest);
    expect(m).toMatchObject({ sha256: sha256(tgz), artifact: { name: "resnet.tar.gz", archive: "tar" }, entries: ["1", "config.pbtxt"] });
    expect(m?.files.map((f) => f.path)).toEqual(["1/model.onnx", "config.pbtxt"]);
  });

  it("keeps --extract none archives as they are", async () => {
    const tgz = buildTar([{ path: "model.onnx", data: "x" }], true);
    server.route("/m.tgz", (req, res) => serveBytes(req, res, tgz));
    const r = await runPull({ source: server.url("/m.tgz"), dest, extract: "none", ...fast });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "m.tgz")).equals(tgz)).toBe(true);
  });

  it("rejects a hostile archive and publishes nothing, keeping the previous model", async () => {
    server.route("/good.onnx", (req, res) => serveBytes(req, res, DATA));
    expect((await runPull({ source: server.url("/good.onnx"), dest, ...fast })).error).toBeUndefined();
    const evil = buildTar([{ path: "model.onnx", data: "x" }, { path: "../../../../evil.sh", data: "rm -rf /" }]);
    server.route("/evil.tar", (req, res) => serveBytes(req, res, evil));
    const r = await runPull({ source: server.url("/evil.tar"), dest, ...fast });
    expect(r.error).toMatchObject({ code: "UNSAFE_ARCHIVE" });
    expect(readFileSync(join(dest, "model.onnx")).equals(DATA)).toBe(true);
    expect((await readMarker(dest))?.source).toBe(server.url("/good.onnx"));
    expect(leftovers()).toEqual([]);
  });

  it("replaces an older model atomically and removes the old version", async () => {
    const v2 = bytes(1000, 3);
    server.route("/v1.onnx", (req, res) => serveBytes(req, res, DATA));
    server.route("/v2.onnx", (req, res) => serveBytes(req, res, v2));
    expect((await runPull({ source: server.url("/v1.onnx"), dest, ...fast })).outcome?.status).toBe("pulled");
    const r = await runPull({ source: server.url("/v2.onnx"), dest, ...fast });
    expect(r.outcome?.status).toBe("pulled");
    expect(r.messages.some((m) => m.msg === "dest-dir holds another model; pulling")).toBe(true);
    expect(readFileSync(join(dest, "model.onnx")).equals(v2)).toBe(true);
    const versions = readdirSync(join(tmp.path, "models", ".resnet.model-puller")).filter((n) => n.startsWith("v-"));
    expect(versions).toHaveLength(1);
  });

  it("keeps credentials out of logs and out of the marker", async () => {
    server.route("/m.onnx", (_req, res) => {
      res.statusCode = 500;
      res.end("internal error");
    });
    const url = server.url("/m.onnx?token=url-secret-value").replace("http://", "http://alice:pa55word-xyz@");
    const r = await runPull({ source: url, dest, ...fast, retries: 1 }, { PULLER_HTTP_AUTHORIZATION: "Bearer header-secret-xyz" });
    expect(r.error).toBeDefined();
    const all = r.lines.join("\n") + (r.error?.message ?? "");
    expect(all.length).toBeGreaterThan(0);
    for (const secret of ["url-secret-value", "pa55word-xyz", "header-secret-xyz"]) expect(all).not.toContain(secret);
    expect(r.lines.some((l) => l.includes("REDACTED") || l.includes("***@"))).toBe(true);
    expect(server.hits("/m.onnx")[0]!.headers.authorization).toBe("Bearer header-secret-xyz");

    server.route("/ok.onnx", (req, res) => serveBytes(req, res, DATA));
    const ok = await runPull({ source: server.url("/ok.onnx?sig=sig-secret-999").replace("http://", "http://bob:hunter2-pw@"), dest, ...fast });
    expect(ok.error).toBeUndefined();
    expect(server.hits("/ok.onnx")[0]!.headers.authorization).toBe(`Basic ${Buffer.from("bob:hunter2-pw").toString("base64")}`);
    const markerText = readFileSync(join(dest, ".model-puller.json"), "utf8");
    expect(markerText).not.toContain("sig-secret-999");
    expect(markerText).not.toContain("hunter2-pw");
    expect(ok.lines.join("\n")).not.toMatch(/sig-secret-999|hunter2-pw/);
  });
});

describe("http source: bodies sent with a Content-Encoding", () => {
  const MODEL = Buffer.concat([Buffer.from("onnx-ish header "), Buffer.alloc(200_000, 0), bytes(100_000, 5)]);
  const GZ = zlib.gzipSync(MODEL);

  it("asks for identity, decodes a gzip-encoded body (an S3 object stored with Content-Encoding: gzip) and publishes the decoded file", async () => {
    server.route("/m.onnx", (req, res) => serveBytes(req, res, GZ, { contentEncoding: "gzip" }));
    const r = await runPull({ source: server.url("/m.onnx"), dest, sha256: sha256(MODEL), ...fast });
    expect(r.error).toBeUndefined();
    expect(server.hits("/m.onnx")[0]!.headers["accept-encoding"]).toBe("identity");
    expect(readFileSync(join(dest, "model.onnx")).equals(MODEL)).toBe(true);
    const marker = await readMarker(dest);
    expect(marker).toMatchObject({
      sha256: sha256(MODEL),
      size: MODEL.length,
      files: [{ path: "model.onnx", size: MODEL.length, sha256: sha256(MODEL) }],
      contentEncoding: { coding: "gzip", size: GZ.length, sha256: sha256(GZ) },
    });
    expect(r.messages.some((m) => m.msg === "decoded the Content-Encoding of the download")).toBe(true);
    expect(leftovers()).toEqual([]);
    expect(readdirSync(join(tmp.path, "models", ".resnet.model-puller")).filter((n) => n.includes("decoding"))).toEqual([]);
  });

  it("accepts a --sha256 of the bytes as stored on the server too, and a warm start with it is a no-op", async () => {
    server.route("/m.onnx", (req, res) => serveBytes(req, res, GZ, { contentEncoding: "gzip" }));
    const first = await runPull({ source: server.url("/m.onnx"), dest, sha256: sha256(GZ), ...fast });
    expect(first.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(MODEL)).toBe(true);
    const again = await runPull({ source: server.url("/m.onnx"), dest, sha256: sha256(GZ), ...fast });
    expect(again.outcome?.status).toBe("present");
    expect(server.hits("/m.onnx")).toHaveLength(1);
    const wrong = await runPull({ source: server.url("/m.onnx"), dest, sha256: "0".repeat(64), ...fast, force: true });
    expect(wrong.error).toMatchObject({ code: "CHECKSUM_MISMATCH" });
  });

  it("resumes a gzip-encoded body with Range over the encoded bytes", async () => {
    const big = bytes(400_000, 9);
    const gz = zlib.gzipSync(big);
    server.route("/m.onnx", (req, res, n) => serveBytes(req, res, gz, { contentEncoding: "gzip", ...(n === 1 ? { dropAfter: Math.floor(gz.length / 2) } : {}) }));
    const r = await runPull({ source: server.url("/m.onnx"), dest, sha256: sha256(big), ...fast });
    expect(r.error).toBeUndefined();
    expect(server.hits("/m.onnx")[1]!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(readFileSync(join(dest, "model.onnx")).equals(big)).toBe(true);
  });

  it("decodes deflate, br and stacked codings (gzip, br)", async () => {
    const cases: Array<[string, Buffer]> = [
      ["deflate", zlib.deflateSync(MODEL)],
      ["br", zlib.brotliCompressSync(MODEL)],
      ["gzip, br", zlib.brotliCompressSync(zlib.gzipSync(MODEL))],
      ["x-gzip", GZ],
    ];
    for (const [coding, body] of cases) {
      server.route("/m.onnx", (req, res) => serveBytes(req, res, body, { contentEncoding: coding }));
      const r = await runPull({ source: server.url("/m.onnx"), dest, sha256: sha256(MODEL), ...fast, force: true });
      expect(r.error, coding).toBeUndefined();
      expect(readFileSync(join(dest, "model.onnx")).equals(MODEL), coding).toBe(true);
    }
  });

  it("unpacks a .tar.gz that a server labels Content-Encoding: gzip, matching the digest of the .tar.gz", async () => {
    const tgz = buildTar([{ path: "./", type: "dir" }, { path: "./1/model.onnx", data: DATA }], true);
    server.route("/resnet.tar.gz", (req, res) => serveBytes(req, res, tgz, { contentEncoding: "gzip" }));
    const r = await runPull({ source: server.url("/resnet.tar.gz"), dest, sha256: sha256(tgz), ...fast });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "1", "model.onnx")).equals(DATA)).toBe(true);
  });

  it("refuses a gzip bomb: by --max-bytes, and by the expansion ratio without it", async () => {
    const zeros = zlib.gzipSync(Buffer.alloc(20 * 1024 * 1024));
    server.route("/bomb.onnx", (req, res) => serveBytes(req, res, zeros, { contentEncoding: "gzip" }));
    const a = await runPull({ source: server.url("/bomb.onnx"), dest, maxBytes: 1_000_000, ...fast });
    expect(a.error).toMatchObject({ code: "TOO_LARGE" });
    expect(a.error?.message).toMatch(/exceeded --max-bytes 1000000/);
    const b = await runPull({ source: server.url("/bomb.onnx"), dest, ...fast });
    expect(b.error).toMatchObject({ code: "TOO_LARGE" });
    expect(b.error?.message).toMatch(/expands more than 1000 times.*compression bomb/);
    const br = zlib.brotliCompressSync(Buffer.alloc(20 * 1024 * 1024));
    server.route("/bomb.br", (req, res) => serveBytes(req, res, br, { contentEncoding: "br" }));
    const c = await runPull({ source: server.url("/bomb.br"), dest, ...fast });
    expect(c.error).toMatchObject({ code: "TOO_LARGE" });
    expect(existsSync(dest)).toBe(false);
    expect(leftovers()).toEqual([]);
    expect(server.hits("/bomb.onnx")).toHaveLength(2); // not retried
  });

  it("refuses a coding it cannot decode, and a corrupt encoded body, publishing nothing", async () => {
    server.route("/z.onnx", (req, res) => serveBytes(req, res, MODEL, { contentEncoding: "zstd" }));
    const a = await runPull({ source: server.url("/z.onnx"), dest, ...fast });
    expect(a.error).toMatchObject({ code: "SOURCE" });
    expect(a.error?.message).toMatch(/Content-Encoding "zstd".*cannot decode/);
    expect(server.hits("/z.onnx")).toHaveLength(1);
    server.route("/bad.onnx", (req, res) => serveBytes(req, res, Buffer.concat([GZ.subarray(0, 100), Buffer.alloc(100, 7)]), { contentEncoding: "gzip" }));
    const b = await runPull({ source: server.url("/bad.onnx"), dest, ...fast });
    expect(b.error).toMatchObject({ code: "SOURCE" });
    expect(b.error?.message).toMatch(/cannot decode its Content-Encoding gzip/);
    expect(existsSync(dest)).toBe(false);
    expect(leftovers()).toEqual([]);
  });
});
