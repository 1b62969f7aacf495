import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readMarker, treeDigest } from "./marker.js";
import { localPath } from "./sources/file.js";
import { buildZip, bytes, runPull, sha256, tempDir } from "./test-support.js";

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir("puller-file-");
});
afterEach(() => tmp.cleanup());

describe("local sources", () => {
  it("hard-links a file on the same filesystem, still hashing it", async () => {
    const src = join(tmp.path, "src", "resnet.onnx");
    mkdirSync(join(tmp.path, "src"));
    const data = bytes(50_000, 9);
    writeFileSync(src, data);
    const dest = join(tmp.path, "models", "resnet");
    const r = await runPull({ source: `file://${src}`, dest, sha256: sha256(data) });
    expect(r.error).toBeUndefined();
    expect(statSync(join(dest, "model.onnx")).ino).toBe(statSync(src).ino);
    expect((await readMarker(dest))?.sha256).toBe(sha256(data));
  });

  it("copies a directory tree, following symlinks (cp -rL)", async () => {
    const src = join(tmp.path, "snapshot");
    mkdirSync(join(src, "1"), { recursive: true });
    mkdirSync(join(tmp.path, "blobs"));
    writeFileSync(join(tmp.path, "blobs", "abc"), "weights");
    symlinkSync("../../blobs/abc", join(src, "1", "model.onnx"));
    writeFileSync(join(src, "config.pbtxt"), "name: m");
    const dest = join(tmp.path, "models", "m");
    const r = await runPull({ source: src, dest });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "1", "model.onnx"), "utf8")).toBe("weights");
    const m = await readMarker(dest);
    expect(m?.digest).toBe("tree");
    expect(m?.sha256).toBe(treeDigest([
      { path: "1/model.onnx", sha256: sha256("weights") },
      { path: "config.pbtxt", sha256: sha256("name: m") },
    ]));
  });

  it("copies (not links) across filesystems", async () => {
    let shm: string;
    try {
      accessSync("/dev/shm", constants.W_OK);
      shm = mkdtempSync("/dev/shm/puller-");
    } catch {
      return; // no tmpfs here: nothing to compare
    }
    try {
      const src = join(shm, "m.onnx");
      writeFileSync(src, "cross-device");
      if (statSync(shm).dev === statSync(tmp.path).dev) return;
      const dest = join(tmp.path, "m");
      const r = await runPull({ source: src, dest });
      expect(r.error).toBeUndefined();
      expect(readFileSync(join(dest, "model.onnx"), "utf8")).toBe("cross-device");
      expect(statSync(join(dest, "model.onnx")).ino).not.toBe(statSync(src).ino);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });

  it("maps pvc://name/path to $PVC_MOUNT_PATH/path", async () => {
    expect(localPath("pvc://claim/models/x.onnx", {})).toBe("/mnt/pvc/models/x.onnx");
    mkdirSync(join(tmp.path, "pvc", "models"), { recursive: true });
    writeFileSync(join(tmp.path, "pvc", "models", "x.onnx"), "pvc");
    const dest = join(tmp.path, "out");
    const r = await runPull({ source: "pvc://claim/models/x.onnx", dest }, { PVC_MOUNT_PATH: join(tmp.path, "pvc") });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "model.onnx"), "utf8")).toBe("pvc");
    expect((await readMarker(dest))?.source).toBe("pvc://claim/models/x.onnx");
  });

  it("extracts a local zip archive", async () => {
    const src = join(tmp.path, "bundle.zip");
    writeFileSync(src, buildZip([{ path: "1/model.onnx", data: "w", deflate: true }]));
    const dest = join(tmp.path, "out");
    const r = await runPull({ source: src, dest });
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dest, "1", "model.onnx"), "utf8")).toBe("w");
  });

  it("reports a missing source", async () => {
    const r = await runPull({ source: join(tmp.path, "nope"), dest: join(tmp.path, "out") });
    expect(r.error).toMatchObject({ code: "NOT_FOUND" });
    expect(existsSync(join(tmp.path, "out"))).toBe(false);
  });
});
