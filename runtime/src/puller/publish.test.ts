import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readMarker } from "./marker.js";
import { isMountPoint, resolveTarget } from "./publish.js";
import { bytes, runPull, serveBytes, tempDir, TestServer } from "./test-support.js";

let tmp: ReturnType<typeof tempDir>;
let server: TestServer;
const V1 = bytes(20_000, 1);
const V2 = bytes(30_000, 2);

beforeEach(async () => {
  tmp = tempDir("puller-publish-");
  server = await new TestServer().start();
  server.route("/v1.onnx", (req, res) => serveBytes(req, res, V1));
  server.route("/v2.onnx", (req, res) => serveBytes(req, res, V2));
});
afterEach(async () => {
  await server.close();
  tmp.cleanup();
});

describe("layout", () => {
  it("chooses link for a new or empty dest-dir and in-place for a mount point or a non-empty directory", async () => {
    expect((await resolveTarget(join(tmp.path, "new"), "auto")).layout).toBe("link");
    mkdirSync(join(tmp.path, "empty"));
    expect((await resolveTarget(join(tmp.path, "empty"), "auto")).layout).toBe("link");
    mkdirSync(join(tmp.path, "full"));
    writeFileSync(join(tmp.path, "full", "README"), "not ours");
    const full = await resolveTarget(join(tmp.path, "full"), "auto");
    expect(full).toMatchObject({ layout: "in-place", stateDir: join(tmp.path, "full", ".model-puller") });
    await expect(resolveTarget(join(tmp.path, "full"), "link")).rejects.toThrow(/non-empty directory/);
    writeFileSync(join(tmp.path, "file"), "x");
    await expect(resolveTarget(join(tmp.path, "file"), "auto")).rejects.toThrow(/not a directory/);
    expect(await isMountPoint("/")).toBe(true);
    if (existsSync("/proc/self")) expect(await isMountPoint("/proc")).toBe(true);
    expect(await isMountPoint(tmp.path)).toBe(false);
  });

  it("publishes into an empty directory by replacing it with a symlink", async () => {
    const dest = join(tmp.path, "models");
    mkdirSync(dest);
    const r = await runPull({ source: server.url("/v1.onnx"), dest });
    expect(r.error).toBeUndefined();
    expect(lstatSync(dest).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dest, "model.onnx")).equals(V1)).toBe(true);
  });

  it("publishes in place, leaving foreign entries alone and removing the old model's entries", async () => {
    const dest = join(tmp.path, "mnt-models");
    mkdirSync(join(dest, "lost+found"), { recursive: true });
    writeFileSync(join(dest, "NOTES.txt"), "operator notes");

    const a = await runPull({ source: server.url("/v1.onnx"), dest, layout: "in-place" });
    expect(a.error).toBeUndefined();
    expect(lstatSync(dest).isDirectory()).toBe(true);
    expect(readFileSync(join(dest, "model.onnx")).equals(V1)).toBe(true);
    expect((await readMarker(dest))).toMatchObject({ layout: "in-place", entries: ["model.onnx"] });

    // The next model is a directory tree with another layout.
    const tree = join(tmp.path, "tree");
    mkdirSync(join(tree, "1"), { recursive: true });
    writeFileSync(join(tree, "1", "model.onnx"), V2);
    const b = await runPull({ source: tree, dest });
    expect(b.error).toBeUndefined();
    expect(readFileSync(join(dest, "1", "model.onnx")).equals(V2)).toBe(true);
    expect(existsSync(join(dest, "model.onnx"))).toBe(false);
    expect(readFileSync(join(dest, "NOTES.txt"), "utf8")).toBe("operator notes");
    expect(existsSync(join(dest, "lost+found"))).toBe(true);
    expect(readdirSync(join(dest, ".model-puller")).filter((n) => n !== "lock")).toEqual([]);
    expect(existsSync(join(dest, ".model-puller", "lock"))).toBe(false);
  });

  it("follows a user's symlink to the real directory", async () => {
    mkdirSync(join(tmp.path, "data", "models"), { recursive: true });
    writeFileSync(join(tmp.path, "data", "models", "keep"), "x");
    const { symlinkSync } = await import("node:fs");
    symlinkSync(join(tmp.path, "data", "models"), join(tmp.path, "models"));
    const r = await runPull({ source: server.url("/v1.onnx"), dest: join(tmp.path, "models") });
    expect(r.error).toBeUndefined();
    expect(r.outcome?.layout).toBe("in-place");
    expect(readFileSync(join(tmp.path, "data", "models", "model.onnx")).equals(V1)).toBe(true);
  });
});

describe("warm start and recovery", () => {
  it("answers from the marker without the network or the lock when the model is present", async () => {
    const dest = join(tmp.path, "m");
    expect((await runPull({ source: server.url("/v1.onnx"), dest })).outcome?.status).toBe("pulled");
    const requests = server.requests.length;
    const r = await runPull({ source: server.url("/v1.onnx"), dest });
    expect(r.outcome?.status).toBe("present");
    expect(server.requests.length).toBe(requests);
    expect(readdirSync(join(tmp.path, ".m.model-puller")).filter((n) => !n.startsWith("v-"))).toEqual([]);
    // A different --sha256 is another request (here a wrong one: it fails, and the model stays).
    const wrong = await runPull({ source: server.url("/v1.onnx"), dest, sha256: "0".repeat(64) });
    expect(wrong.error).toMatchObject({ code: "CHECKSUM_MISMATCH" });
    expect(readFileSync(join(dest, "model.onnx")).equals(V1)).toBe(true);
    // --force downloads again; so does a different --extract.
    expect((await runPull({ source: server.url("/v1.onnx"), dest, force: true })).outcome?.status).toBe("pulled");
    expect((await runPull({ source: server.url("/v1.onnx"), dest, extract: "none" })).outcome?.status).toBe("pulled");
  });

  it("pulls again when a published file was changed behind its back", async () => {
    const dest = join(tmp.path, "m");
    await runPull({ source: server.url("/v1.onnx"), dest });
    writeFileSync(join(dest, "model.onnx"), "truncated");
    const r = await runPull({ source: server.url("/v1.onnx"), dest });
    expect(r.outcome?.status).toBe("pulled");
    expect(r.messages.find((m) => m.msg === "dest-dir holds another model; pulling")?.reason).toMatch(/model.onnx has 9 bytes, expected 20000/);
    expect(readFileSync(join(dest, "model.onnx")).equals(V1)).toBe(true);
  });

  it("cleans up what a crashed run left: staging, scratch, trash, temp links", async () => {
    const dest = join(tmp.path, "m");
    const state = join(tmp.path, ".m.model-puller");
    mkdirSync(join(state, "tmp-20260101T000000Z-dead"), { recursive: true });
    writeFileSync(join(state, "tmp-20260101T000000Z-dead", "model.onnx"), "half a mod");
    mkdirSync(join(state, "dl-20260101T000000Z-dead"));
    mkdirSync(join(state, "trash-20260101T000000Z-dead"));
    const r = await runPull({ source: server.url("/v1.onnx"), dest });
    expect(r.error).toBeUndefined();
    expect(readdirSync(state).filter((n) => !n.startsWith("v-"))).toEqual([]);
    expect(r.messages.filter((m) => m.msg === "removing leftover of an interrupted run")).toHaveLength(3);
  });

  it("publishes a complete version left unpublished by a crash, without downloading again", async () => {
    const dest = join(tmp.path, "m");
    await runPull({ source: server.url("/v1.onnx"), dest });
    const state = join(tmp.path, ".m.model-puller");
    const [version] = readdirSync(state).filter((n) => n.startsWith("v-"));
    // Simulate a crash between sealing the version and swapping the link: the link was never made.
    cpSync(join(state, version!), join(state, "v-20300101T000000Z-cafe"), { recursive: true });
    rmSync(join(state, version!), { recursive: true });
    rmSync(dest);
    await server.close();
    const r = await runPull({ source: `http://127.0.0.1:${server.port}/v1.onnx`, dest });
    expect(r.error).toBeUndefined();
    expect(r.outcome?.status).toBe("recovered");
    expect(readFileSync(join(dest, "model.onnx")).equals(V1)).toBe(true);
    server = await new TestServer().start(); // for afterEach
  });

  it("repairs an in-place publish interrupted between its renames", async () => {
    const dest = join(tmp.path, "mnt");
    mkdirSync(dest);
    writeFileSync(join(dest, "foreign.txt"), "keep me");
    const tree = join(tmp.path, "tree");
    mkdirSync(join(tree, "old-dir"), { recursive: true });
    writeFileSync(join(tree, "old-dir", "x"), "old");
    writeFileSync(join(tree, "old.onnx"), "old");
    expect((await runPull({ source: tree, dest, layout: "in-place" })).error).toBeUndefined();
    // Crash in the middle of publishing v2: marker removed, journal written, half the entries moved.
    const state = join(dest, ".model-puller");
    writeFileSync(join(state, "journal.json"), JSON.stringify({ id: "x", old: ["old-dir", "old.onnx"], new: ["model.onnx"] }));
    rmSync(join(dest, ".model-puller.json"));
    renameSync(join(dest, "old-dir"), join(tmp.path, "moved-away"));
    mkdirSync(join(state, "trash-x"));
    renameSync(join(tmp.path, "moved-away"), join(state, "trash-x", "old-dir"));
    const r = await runPull({ source: server.url("/v2.onnx"), dest });
    expect(r.error).toBeUndefined();
    expect(readdirSync(dest).sort()).toEqual([".model-puller", ".model-puller.json", "foreign.txt", "model.onnx"]);
    expect(readFileSync(join(dest, "model.onnx")).equals(V2)).toBe(true);
    expect(readdirSync(state)).toEqual([]);
  });
});
