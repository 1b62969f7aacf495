import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readMarker, treeDigest } from "./marker.js";
import { parseHfUri } from "./sources/hf.js";
import { bytes, runPull, serveBytes, sha256, tempDir, TestServer } from "./test-support.js";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const TOKEN = "hf_test_token_0123456789";
const FILES: Record<string, Buffer> = {
  ".gitattributes": Buffer.from("*.onnx filter=lfs\n"),
  "config.json": Buffer.from('{"model_type": "bert"}'),
  "onnx/model.onnx": bytes(120_000, 5),
  "onnx/tokenizer.json": Buffer.from('{"version": "1.0"}'),
};
const LFS = new Set(["onnx/model.onnx"]);

let hub: TestServer;
let cdn: TestServer;
let tmp: ReturnType<typeof tempDir>;
/** Bytes the CDN serves instead of the real LFS object (a corrupted mirror). */
let corrupt: Buffer | undefined;
let privateRepo = true;

beforeEach(async () => {
  corrupt = undefined;
  privateRepo = true;
  hub = await new TestServer().start();
  cdn = await new TestServer().start();
  tmp = tempDir("puller-hf-");
  const authorized = (auth: string | undefined) => !privateRepo || auth === `Bearer ${TOKEN}`;

  hub.route("*", (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const api = /^\/api\/models\/acme\/tiny-bert\/revision\/([^/]+)$/.exec(url.pathname);
    if (!authorized(req.headers.authorization)) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "Invalid credentials in Authorization header" }));
      return;
    }
    if (api) {
      const rev = decodeURIComponent(api[1]!);
      if (!["main", "v1.0", "refs/pr/1", COMMIT].includes(rev)) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: `Invalid rev id: ${rev}` }));
        return;
      }
      const blobs = url.searchParams.get("blobs") === "true";
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id: "acme/tiny-bert",
          sha: COMMIT,
          siblings: Object.entries(FILES).map(([name, data]) => ({
            rfilename: name,
            ...(blobs ? { size: data.length } : {}),
            ...(blobs && LFS.has(name) ? { lfs: { sha256: sha256(data), size: data.length, pointerSize: 134 } } : {}),
          })),
        }),
      );
      return;
    }
    const resolve = /^\/acme\/tiny-bert\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) {
      const path = decodeURIComponent(resolve[2]!);
      const data = FILES[path];
      if (resolve[1] !== COMMIT || !data) {
        res.writeHead(404);
        res.end("Entry not found");
        return;
      }
      if (LFS.has(path)) {
        res.writeHead(302, { location: cdn.url(`/lfs/${sha256(data)}?X-Amz-Signature=cdnsig123456&Expires=1`) });
        res.end();
        return;
      }
      serveBytes(req, res, data);
      return;
    }
    res.writeHead(404);
    res.end();
  });
  cdn.route("*", (req, res) => {
    const oid = /^\/lfs\/([0-9a-f]{64})/.exec(req.url ?? "")?.[1];
    const data = Object.values(FILES).find((d) => sha256(d) === oid);
    if (!data) {
      res.writeHead(404);
      res.end();
      return;
    }
    serveBytes(req, res, corrupt ?? data);
  });
});
afterEach(async () => {
  await hub.close();
  await cdn.close();
  tmp.cleanup();
});

const env = () => ({ HF_ENDPOINT: hub.url(""), HF_TOKEN: TOKEN });

describe("hf source", () => {
  it("downloads one file pinned to the resolved commit, sending HF_TOKEN to the Hub only", async () => {
    const dest = join(tmp.path, "bert");
    const r = await runPull({ source: "hf://acme/tiny-bert/onnx/model.onnx", dest, retryDelay: 10 }, env());
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(FILES["onnx/model.onnx"]!)).toBe(true);
    const m = await readMarker(dest);
    expect(m).toMatchObject({ source: "hf://acme/tiny-bert:main/onnx/model.onnx", resolved: { revision: COMMIT }, sha256: sha256(FILES["onnx/model.onnx"]!) });
    const api = hub.requests.find((q) => q.url.startsWith("/api/"));
    expect(api?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(hub.requests.some((q) => q.url === `/acme/tiny-bert/resolve/${COMMIT}/onnx/model.onnx`)).toBe(true);
    expect(cdn.requests).toHaveLength(1);
    expect(cdn.requests[0]!.headers.authorization).toBeUndefined();
    expect(r.lines.join("\n")).not.toContain(TOKEN);
    expect(r.lines.join("\n")).not.toContain("cdnsig123456");
  });

  it("downloads a whole repository at a revision, with a tree digest", async () => {
    const dest = join(tmp.path, "bert");
    const digest = treeDigest(Object.entries(FILES).map(([path, d]) => ({ path, sha256: sha256(d) })));
    const r = await runPull({ source: "hf://acme/tiny-bert:v1.0", dest, sha256: digest, retryDelay: 10 }, env());
    expect(r.error).toBeUndefined();
    for (const [path, data] of Object.entries(FILES)) expect(readFileSync(join(dest, path)).equals(data)).toBe(true);
    expect(hub.requests.some((q) => q.url === "/api/models/acme/tiny-bert/revision/v1.0?blobs=true")).toBe(true);
    expect(await readMarker(dest)).toMatchObject({ digest: "tree", sha256: digest, resolved: { revision: COMMIT } });
  });

  it("downloads a directory of a repository, relative to it", async () => {
    const dest = join(tmp.path, "bert");
    const r = await runPull({ source: "hf://acme/tiny-bert:refs%2Fpr%2F1/onnx", dest, retryDelay: 10 }, env());
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(FILES["onnx/model.onnx"]!)).toBe(true);
    expect(readFileSync(join(dest, "tokenizer.json")).equals(FILES["onnx/tokenizer.json"]!)).toBe(true);
    expect(existsSync(join(dest, "config.json"))).toBe(false);
    expect(hub.requests.some((q) => q.url === "/api/models/acme/tiny-bert/revision/refs%2Fpr%2F1?blobs=true")).toBe(true);
  });

  it("checks LFS files against the sha256 the Hub publishes", async () => {
    corrupt = Buffer.from(FILES["onnx/model.onnx"]!);
    corrupt[1000] = corrupt[1000]! ^ 0xff;
    const dest = join(tmp.path, "bert");
    const r = await runPull({ source: "hf://acme/tiny-bert/onnx/model.onnx", dest, retryDelay: 10 }, env());
    expect(r.error).toMatchObject({ code: "CHECKSUM_MISMATCH" });
    expect(r.error?.message).toMatch(/digest published by the source/);
    expect(existsSync(dest)).toBe(false);
  });

  it("explains a 401 without HF_TOKEN, and does not retry it", async () => {
    const r = await runPull({ source: "hf://acme/tiny-bert", dest: join(tmp.path, "bert"), retryDelay: 10 }, { HF_ENDPOINT: hub.url("") });
    expect(r.error?.message).toMatch(/HTTP 401.*set HF_TOKEN/);
    expect(hub.requests).toHaveLength(1);
  });

  it("works without a token for a public repository", async () => {
    privateRepo = false;
    const r = await runPull({ source: "hf://acme/tiny-bert/config.json", dest: join(tmp.path, "bert"), retryDelay: 10 }, { HF_ENDPOINT: hub.url("") });
    expect(r.error).toBeUndefined();
    expect(hub.requests.every((q) => q.headers.authorization === undefined)).toBe(true);
  });

  it("reports a missing path or revision", async () => {
    const a = await runPull({ source: "hf://acme/tiny-bert/nope.onnx", dest: join(tmp.path, "a"), retryDelay: 10 }, env());
    expect(a.error).toMatchObject({ code: "NOT_FOUND" });
    const b = await runPull({ source: "hf://acme/tiny-bert:no-such-branch", dest: join(tmp.path, "b"), retryDelay: 10 }, env());
    expect(b.error?.message).toMatch(/HTTP 404 Invalid rev id/);
  });
});

describe("parseHfUri", () => {
  it("parses repository, revision and path", () => {
    expect(parseHfUri("hf://org/repo")).toEqual({ type: "models", repo: "org/repo", revision: "main", path: "" });
    expect(parseHfUri("hf://org/repo:abc123/onnx/model.onnx")).toEqual({ type: "models", repo: "org/repo", revision: "abc123", path: "onnx/model.onnx" });
    expect(parseHfUri("hf://datasets/org/data:v2/")).toEqual({ type: "datasets", repo: "org/data", revision: "v2", path: "" });
    expect(parseHfUri("hf://org/repo:refs%2Fpr%2F3").revision).toBe("refs/pr/3");
    expect(() => parseHfUri("hf://justrepo")).toThrow(/expected hf:\/\/org\/repo/);
    expect(() => parseHfUri("hf://org/repo/../x")).toThrow(/'\.\.'/);
  });
});
