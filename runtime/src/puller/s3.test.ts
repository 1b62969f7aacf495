import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from "vitest";
import { ByteBudget } from "./budget.js";
import { readMarker, treeDigest } from "./marker.js";
import { Progress } from "./progress.js";
import { parseListObjectsV2, S3Client, s3ConfigFromEnv } from "./sources/s3.js";
import type { PullContext } from "./sources/types.js";
import { bytes, quietLogger, REPO_ROOT, runPull, sha256, tempDir, TestServer } from "./test-support.js";

// A real S3-compatible server (s3rver) in its own process, behind a recording proxy
// that can also inject faults. s3rver 3.7 makes ListObjectsV2 continuation tokens with
// DES, which OpenSSL 3 (Node >= 17) only offers with --openssl-legacy-provider.
let s3: ChildProcess;
let s3Port = 0;
let s3Dir: string;
let proxy: TestServer;
/** Set by a test: called for each proxied request; may take the response over (return true). */
let fault: ((req: http.IncomingMessage, res: http.ServerResponse, upstream: http.IncomingMessage) => boolean) | undefined;

const OBJECTS: Record<string, Buffer> = {
  "resnet/model.onnx": bytes(200_000, 1),
  "bert/config.json": Buffer.from('{"hidden": 768}'),
  "bert/1/model.onnx": bytes(150_000, 2),
  "bert/tokenizer/vocab.txt": Buffer.from("[PAD]\n[UNK]\nhello\n"),
  "bert/dir marker/": Buffer.alloc(0),
  "weird/a b+c&d.onnx": bytes(1000, 3),
};

const S3RVER_MAIN = `
const S3rver = require(require.resolve("s3rver", { paths: [process.argv[1]] }));
const s = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: process.argv[2], configureBuckets: [{ name: "models" }] });
s.run().then(({ port }) => process.stdout.write(JSON.stringify({ port }) + "\\n"));
process.on("SIGTERM", () => s.close().then(() => process.exit(0)));
`;

beforeAll(async () => {
  s3Dir = mkdtempSync(join(tmpdir(), "puller-s3rver-"));
  s3 = spawn(process.execPath, ["--openssl-legacy-provider", "-e", S3RVER_MAIN, REPO_ROOT, s3Dir], { stdio: ["ignore", "pipe", "inherit"] });
  s3Port = await new Promise<number>((resolve, reject) => {
    let out = "";
    s3.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    s3.on("exit", (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
  for (const [key, data] of Object.entries(OBJECTS)) {
    const path = key.split("/").map(encodeURIComponent).join("/");
    const r = await fetch(`http://127.0.0.1:${s3Port}/models/${path}`, { method: "PUT", body: data });
    if (!r.ok) throw new Error(`seeding s3rver: ${r.status} ${await r.text()}`);
  }
  proxy = await new TestServer().start();
  proxy.route("*", (req, res) => {
    const up = http.request(
      { host: "127.0.0.1", port: s3Port, method: req.method, path: req.url, headers: req.headers },
      (upstream) => {
        if (fault?.(req, res, upstream)) return;
        res.writeHead(upstream.statusCode ?? 502, upstream.headers);
        upstream.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  if (s3 && s3.exitCode === null) {
    s3.kill("SIGTERM");
    await once(s3, "exit");
  }
  rmSync(s3Dir, { recursive: true, force: true });
});

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir("puller-s3-");
  fault = undefined;
  proxy.requests.length = 0;
});
afterEach(() => tmp.cleanup());

const creds = () => ({
  AWS_ENDPOINT_URL: proxy.url(""),
  AWS_ACCESS_KEY_ID: "S3RVER",
  AWS_SECRET_ACCESS_KEY: "S3RVER",
  AWS_REGION: "us-east-1",
});
const fast = { retryDelay: 10 };

describe("s3 source (s3rver)", () => {
  it("downloads one object with SigV4 credentials", async () => {
    const dest = join(tmp.path, "resnet");
    const data = OBJECTS["resnet/model.onnx"]!;
    const r = await runPull({ source: "s3://models/resnet/model.onnx", dest, sha256: sha256(data), ...fast }, creds());
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(data)).toBe(true);
    const get = proxy.requests.find((q) => q.method === "GET" && q.url === "/models/resnet/model.onnx");
    expect(get?.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=S3RVER\/\d{8}\/us-east-1\/s3\/aws4_request, ?SignedHeaders=host;x-amz-content-sha256;x-amz-date, ?Signature=[0-9a-f]{64}$/);
    expect(get?.headers["x-amz-date"]).toMatch(/^\d{8}T\d{6}Z$/);
    expect((await readMarker(dest))?.source).toBe("s3://models/resnet/model.onnx");
  });

  it("downloads a whole prefix, keeping the tree and skipping directory markers", async () => {
    const dest = join(tmp.path, "bert");
    const files = ["1/model.onnx", "config.json", "tokenizer/vocab.txt"];
    const digest = treeDigest(files.map((f) => ({ path: f, sha256: sha256(OBJECTS[`bert/${f}`]!) })));
    const r = await runPull({ source: "s3://models/bert/", dest, sha256: digest, ...fast }, creds());
    expect(r.error).toBeUndefined();
    for (const f of files) expect(readFileSync(join(dest, f)).equals(OBJECTS[`bert/${f}`]!)).toBe(true);
    const m = await readMarker(dest);
    expect(m).toMatchObject({ digest: "tree", sha256: digest, entries: ["1", "config.json", "tokenizer"] });
    expect(m?.files.map((f) => f.path)).toEqual(files);
    expect(existsSync(join(dest, "dir marker"))).toBe(false);
  });

  it("treats s3://bucket/key as the prefix key/ when no such object exists (KServe behaviour)", async () => {
    const dest = join(tmp.path, "bert");
    const r = await runPull({ source: "s3://models/bert", dest, ...fast }, creds());
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "1/model.onnx")).equals(OBJECTS["bert/1/model.onnx"]!)).toBe(true);
  });

  it("handles keys that need encoding", async () => {
    const dest = join(tmp.path, "weird");
    const r = await runPull({ source: "s3://models/weird/a b+c&d.onnx", dest, filename: "m.onnx", ...fast }, creds());
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "m.onnx")).equals(OBJECTS["weird/a b+c&d.onnx"]!)).toBe(true);
  });

  it("fails on a tree digest mismatch", async () => {
    const r = await runPull({ source: "s3://models/bert/", dest: join(tmp.path, "bert"), sha256: "f".repeat(64), ...fast }, creds());
    expect(r.error).toMatchObject({ code: "CHECKSUM_MISMATCH" });
    expect(r.error?.message).toMatch(/tree digest of 3 files/);
    expect(existsSync(join(tmp.path, "bert"))).toBe(false);
  });

  it("pages through ListObjectsV2 with continuation tokens", async () => {
    const { log } = await quietLogger();
    const ctx: PullContext = {
      env: {},
      signal: new AbortController().signal,
      log,
      retries: 0,
      idleTimeoutMs: 5000,
      budget: new ByteBudget(undefined),
      progress: new Progress({ mode: "none" }),
      concurrency: 1,
    };
    const client = new S3Client("models", s3ConfigFromEnv(creds(), "models"));
    const all = await client.list("", ctx, 2);
    expect(all.map((o) => o.key).sort()).toEqual(Object.keys(OBJECTS).sort());
    const lists = proxy.requests.filter((q) => q.url.includes("list-type=2"));
    expect(lists.length).toBe(Math.ceil(Object.keys(OBJECTS).length / 2));
    expect(lists.slice(1).every((q) => q.url.includes("continuation-token="))).toBe(true);
  });

  it("works anonymously against a public bucket", async () => {
    const dest = join(tmp.path, "resnet");
    const r = await runPull({ source: "s3://models/resnet/model.onnx", dest, ...fast }, { AWS_ENDPOINT_URL: proxy.url("") });
    expect(r.error).toBeUndefined();
    expect(proxy.requests.every((q) => q.headers.authorization === undefined)).toBe(true);
  });

  it("honours KServe's S3_ENDPOINT and S3_USE_HTTPS", async () => {
    const dest = join(tmp.path, "resnet");
    const env = { S3_ENDPOINT: `127.0.0.1:${proxy.port}`, S3_USE_HTTPS: "0", AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };
    const r = await runPull({ source: "s3://models/resnet/model.onnx", dest, ...fast }, env);
    expect(r.error).toBeUndefined();
  });

  it("does not retry an authorization error (4xx)", async () => {
    const r = await runPull(
      { source: "s3://models/resnet/model.onnx", dest: join(tmp.path, "x"), ...fast },
      { ...creds(), AWS_ACCESS_KEY_ID: "UNKNOWNKEY", AWS_SECRET_ACCESS_KEY: "nope-nope-nope" },
    );
    expect(r.error?.message).toMatch(/HTTP 403/);
    expect(proxy.requests).toHaveLength(1);
    expect(r.lines.join("\n")).not.toContain("nope-nope-nope");
  });

  it("reports a missing object and prefix", async () => {
    const r = await runPull({ source: "s3://models/nothing-here", dest: join(tmp.path, "x"), ...fast }, creds());
    expect(r.error).toMatchObject({ code: "NOT_FOUND" });
    expect(r.error?.message).toMatch(/no objects at s3:\/\/models\/nothing-here\//);
  });

  it("resumes a dropped GetObject with a freshly signed Range request", async () => {
    let dropped = false;
    fault = (req, res, upstream) => {
      if (dropped || req.method !== "GET" || !req.url?.startsWith("/models/resnet/model.onnx")) return false;
      dropped = true;
      res.writeHead(upstream.statusCode ?? 200, upstream.headers);
      let sent = 0;
      upstream.on("data", (c: Buffer) => {
        if (sent >= 50_000) return;
        sent += c.length;
        if (sent >= 50_000) res.write(c, () => res.socket?.destroy());
        else res.write(c);
      });
      return true;
    };
    const dest = join(tmp.path, "resnet");
    const data = OBJECTS["resnet/model.onnx"]!;
    const r = await runPull({ source: "s3://models/resnet/model.onnx", dest, sha256: sha256(data), ...fast }, creds());
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx")).equals(data)).toBe(true);
    const gets = proxy.requests.filter((q) => q.method === "GET");
    expect(gets).toHaveLength(2);
    expect(gets[1]!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(gets[1]!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 /);
  });
});

describe("s3 configuration", () => {
  it("chooses addressing style and endpoint", () => {
    const aws = new S3Client("my-bucket", s3ConfigFromEnv({ AWS_REGION: "eu-west-1" }, "my-bucket"));
    expect(aws.url("a/b.onnx").href).toBe("https://my-bucket.s3.eu-west-1.amazonaws.com/a/b.onnx");
    const dotted = new S3Client("my.bucket", s3ConfigFromEnv({}, "my.bucket"));
    expect(dotted.url("k").href).toBe("https://s3.us-east-1.amazonaws.com/my.bucket/k");
    const minio = new S3Client("b", s3ConfigFromEnv({ AWS_ENDPOINT_URL: "http://minio:9000" }, "b"));
    expect(minio.url("x y.onnx", { "list-type": "2", prefix: "a b/" }).href).toBe("http://minio:9000/b/x%20y.onnx?list-type=2&prefix=a%20b%2F");
    const virtual = new S3Client("b", s3ConfigFromEnv({ S3_ENDPOINT: "storage.example.com", S3_USER_VIRTUAL_BUCKET: "true" }, "b"));
    expect(virtual.url("k").href).toBe("https://b.storage.example.com/k");
    const forced = new S3Client("bucket", s3ConfigFromEnv({ S3_FORCE_PATH_STYLE: "true" }, "bucket"));
    expect(forced.url("k").href).toBe("https://s3.us-east-1.amazonaws.com/bucket/k");
    expect(s3ConfigFromEnv({ S3_VERIFY_SSL: "0" }, "b").tls.rejectUnauthorized).toBe(false);
    expect(s3ConfigFromEnv({ AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b", AWS_NO_SIGN_REQUEST: "true" }, "b").credentials).toBeUndefined();
  });

  it("parses ListObjectsV2 XML, entities included", () => {
    const xml = `<?xml version="1.0"?><ListBucketResult><IsTruncated>true</IsTruncated>
      <Contents><Key>a/x&amp;y&#39;z.onnx</Key><Size>12</Size><ETag>&quot;abc&quot;</ETag></Contents>
      <Contents><Key>a/b</Key><Size>0</Size></Contents>
      <NextContinuationToken>tok+/=</NextContinuationToken></ListBucketResult>`;
    expect(parseListObjectsV2(xml)).toEqual({
      objects: [
        { key: "a/x&y'z.onnx", size: 12, etag: '"abc"' },
        { key: "a/b", size: 0, etag: undefined },
      ],
      truncated: true,
      nextToken: "tok+/=",
    });
  });
});
