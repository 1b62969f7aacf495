import { appendFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { download } from "./http-client.js";
import { InlineHasher, TailHasher, type Hasher } from "./hasher.js";
import { bytes, serveBytes, sha256, tempDir, TestServer } from "./test-support.js";

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir("puller-hasher-");
});
afterEach(() => tmp.cleanup());

describe("hashers", () => {
  for (const kind of ["inline", "tail"] as const) {
    it(`${kind}: hashes a file written in pieces, starting over after a reset`, async () => {
      const file = join(tmp.path, "f");
      writeFileSync(file, "");
      const h: Hasher = kind === "tail" ? new TailHasher(file) : new InlineHasher();
      try {
        const old = bytes(70_000, 1);
        h.received(old);
        appendFileSync(file, old);
        h.writtenUpTo(old.length);
        await new Promise((r) => setTimeout(r, 20));
        h.reset();
        truncateSync(file, 0);
        const data = bytes(3_000_000, 2);
        for (let i = 0; i < data.length; i += 500_000) {
          const piece = data.subarray(i, i + 500_000);
          h.received(piece);
          appendFileSync(file, piece);
          h.writtenUpTo(i + piece.length);
        }
        expect(await h.digest(data.length)).toBe(sha256(data));
      } finally {
        await h.close();
      }
    });
  }

  it("tail: fails instead of hanging when the file is shorter than announced", async () => {
    const file = join(tmp.path, "f");
    writeFileSync(file, "abc");
    const h = new TailHasher(file);
    try {
      h.writtenUpTo(10);
      await expect(h.digest(10)).rejects.toThrow(/shorter/);
    } finally {
      await h.close();
    }
  });
});

describe("download with the worker hasher", () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await new TestServer().start();
  });
  afterEach(async () => server.close());

  it("computes the digest across a resume and a restart from zero", async () => {
    const data = bytes(2_000_000, 5);
    server.route("/m", (req, res, n) =>
      serveBytes(req, res, data, n === 1 ? { dropAfter: 700_000 } : n === 2 ? { dropAfter: 300_000, ignoreRange: true } : {}),
    );
    const file = join(tmp.path, "m");
    const r = await download({ file, label: "m", makeRequest: () => ({ url: server.url("/m") }), retries: 3, idleTimeoutMs: 5000, backoff: { baseMs: 5 }, tailHashMinBytes: 0 });
    // 1: dropped at 700 kB; 2: asked to resume, answered 200 (restart from zero), dropped at 300 kB; 3: resumed.
    expect(r).toMatchObject({ size: data.length, sha256: sha256(data), attempts: 3 });
    const hits = server.hits("/m");
    expect(hits[1]!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(hits[2]!.headers.range).toBe("bytes=300000-");
  });
});
