import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { archiveKind, extractArchive } from "./archive.js";
import { ByteBudget } from "./budget.js";
import { buildTar, buildZip, tempDir, type TarEntrySpec, type ZipEntrySpec } from "./test-support.js";

let tmp: ReturnType<typeof tempDir>;
let n = 0;
beforeEach(() => {
  tmp = tempDir("puller-archive-");
});
afterEach(() => tmp.cleanup());

async function extractTar(entries: TarEntrySpec[], gzip = false, budget?: ByteBudget) {
  const file = join(tmp.path, `a${++n}.tar${gzip ? ".gz" : ""}`);
  writeFileSync(file, buildTar(entries, gzip));
  const out = join(tmp.path, `out${n}`);
  await mkdir(out);
  return { out, result: extractArchive("tar", file, out, { budget }) };
}

async function extractZip(entries: ZipEntrySpec[]) {
  const file = join(tmp.path, `a${++n}.zip`);
  writeFileSync(file, buildZip(entries));
  const out = join(tmp.path, `out${n}`);
  await mkdir(out);
  return { out, result: extractArchive("zip", file, out) };
}

describe("archiveKind", () => {
  it("recognizes archive names", () => {
    expect(archiveKind("m.tar")).toBe("tar");
    expect(archiveKind("m.TAR.GZ")).toBe("tar");
    expect(archiveKind("m.tgz")).toBe("tar");
    expect(archiveKind("m.zip")).toBe("zip");
    expect(archiveKind("model.onnx")).toBeUndefined();
    expect(archiveKind("m.tar.zst")).toBeUndefined();
  });
});

describe("tar extraction", () => {
  it("extracts files, directories, internal symlinks and hard links (plain and gzip)", async () => {
    for (const gzip of [false, true]) {
      const { out, result } = await extractTar(
        [
          { path: "./1/", type: "dir" },
          { path: "./1/model.onnx", data: "weights" },
          { path: "config.pbtxt", data: "name: m" },
          { path: "run.sh", data: "#!/bin/sh", mode: 0o755 },
          { path: "latest", type: "symlink", linkpath: "1" },
          { path: "copy.onnx", type: "hardlink", linkpath: "1/model.onnx" },
          { path: "deep/er/file.txt", data: "implicit parents" },
        ],
        gzip,
      );
      const files = await result;
      expect(files.map((f) => f.path)).toEqual(["1/model.onnx", "config.pbtxt", "copy.onnx", "deep/er/file.txt", "run.sh"]);
      expect(readFileSync(join(out, "1/model.onnx"), "utf8")).toBe("weights");
      expect(readFileSync(join(out, "latest/model.onnx"), "utf8")).toBe("weights");
      expect(readlinkSync(join(out, "latest"))).toBe("1");
      expect(statSync(join(out, "copy.onnx")).ino).toBe(statSync(join(out, "1/model.onnx")).ino);
      expect(statSync(join(out, "run.sh")).mode & 0o111).not.toBe(0);
    }
  });

  const hostile: Array<[string, TarEntrySpec[], RegExp]> = [
    ["a .. path", [{ path: "../escape.txt", data: "x" }], /'\.\.' segment/],
    ["a nested .. path", [{ path: "a/../../escape.txt", data: "x" }], /'\.\.' segment/],
    ["an absolute path", [{ path: "/tmp/escape.txt", data: "x" }], /absolute path/],
    ["a symlink to an absolute path", [{ path: "etc", type: "symlink", linkpath: "/etc" }], /absolute path/],
    ["a symlink climbing out", [{ path: "a/up", type: "symlink", linkpath: "../../outside" }], /points outside/],
    [
      "a symlink chain escaping (d -> ., e -> d/..)",
      [
        { path: "d", type: "symlink", linkpath: "." },
        { path: "e", type: "symlink", linkpath: "d/.." },
      ],
      /resolves outside|does not resolve/,
    ],
    [
      "a file written through a symlink",
      [
        { path: "sub/", type: "dir" },
        { path: "link", type: "symlink", linkpath: "sub" },
        { path: "link/file.txt", data: "through" },
      ],
      /through the symlink/,
    ],
    ["a hard link to a path outside", [{ path: "pw", type: "hardlink", linkpath: "../../etc/passwd" }], /'\.\.' segment/],
    ["a hard link to an absolute path", [{ path: "pw", type: "hardlink", linkpath: "/etc/passwd" }], /absolute path/],
    ["a hard link to an entry not extracted", [{ path: "pw", type: "hardlink", linkpath: "missing" }], /not a regular file/],
    [
      "a hard link through a symlink",
      [
        { path: "s", type: "symlink", linkpath: "." },
        { path: "f", data: "x" },
        { path: "h", type: "hardlink", linkpath: "s/f" },
      ],
      /not a regular file|non-directory/,
    ],
    ["a FIFO", [{ path: "fifo", type: "fifo" }], /unsupported entry type/],
    ["a character device", [{ path: "null", type: "chardev" }], /unsupported entry type/],
    ["a forged marker", [{ path: ".model-puller.json", data: "{}" }], /reserved name/],
    ["a regular file named .", [{ path: ".", data: "x" }], /is empty/],
    ["a symlink named .", [{ path: ".", type: "symlink", linkpath: "sub" }], /is empty/],
  ];

  for (const [name, entries, re] of hostile) {
    it(`rejects ${name}`, async () => {
      const { out, result } = await extractTar([{ path: "ok.txt", data: "fine" }, ...entries]);
      await expect(result).rejects.toThrow(re);
      await expect(result).rejects.toMatchObject({ code: "UNSAFE_ARCHIVE" });
      expect(existsSync(join(tmp.path, "escape.txt"))).toBe(false);
      expect(existsSync(join(tmp.path, "outside"))).toBe(false);
      void out;
    });
  }

  it("extracts what `tar czf m.tar.gz -C dir .` and `tar cf` write (a ./ root entry first)", async () => {
    const src = join(tmp.path, "src");
    mkdirSync(join(src, "1"), { recursive: true });
    writeFileSync(join(src, "1", "model.onnx"), "weights");
    writeFileSync(join(src, "config.pbtxt"), "name: m");
    for (const [name, flags] of [
      ["m.tar.gz", "czf"],
      ["m.tar", "cf"],
    ] as const) {
      const file = join(tmp.path, name);
      execFileSync("tar", [flags, file, "-C", src, "."]);
      // The archive really starts with the root entry this test is about.
      expect(execFileSync("tar", ["tf", file], { encoding: "utf8" }).split("\n")).toContain("./");
      const out = join(tmp.path, `out-${name}`);
      await mkdir(out);
      const files = await extractArchive("tar", file, out);
      expect(files.map((f) => f.path)).toEqual(["1/model.onnx", "config.pbtxt"]);
      expect(readFileSync(join(out, "1", "model.onnx"), "utf8")).toBe("weights");
      expect(readdirSync(out).sort()).toEqual(["1", "config.pbtxt"]);
    }
  });

  it("accepts hand-written root directory entries (., ./, ././) and nothing else at the root", async () => {
    const { out, result } = await extractTar([
      { path: ".", type: "dir" },
      { path: "./", type: "dir" },
      { path: "././", type: "dir" },
      { path: "./m.onnx", data: "w" },
    ]);
    expect((await result).map((f) => f.path)).toEqual(["m.onnx"]);
    expect(readdirSync(out)).toEqual(["m.onnx"]);
    const abs = await extractTar([{ path: "/", type: "dir" }]);
    await expect(abs.result).rejects.toMatchObject({ code: "UNSAFE_ARCHIVE" });
  });

  it("stops when the extracted size exceeds the budget", async () => {
    const { result } = await extractTar([{ path: "big.bin", data: Buffer.alloc(10_000) }], true, new ByteBudget(5_000));
    await expect(result).rejects.toMatchObject({ code: "TOO_LARGE" });
  });

  it("reports a truncated or garbage archive as BAD_ARCHIVE", async () => {
    const file = join(tmp.path, "bad.tar");
    writeFileSync(file, Buffer.from("this is not a tar archive at all, just text".repeat(30)));
    const out = join(tmp.path, "bad-out");
    await mkdir(out);
    await expect(extractArchive("tar", file, out)).rejects.toMatchObject({ code: "BAD_ARCHIVE" });
    const truncated = buildTar([{ path: "f.bin", data: Buffer.alloc(4096, 1) }], true);
    writeFileSync(file, truncated.subarray(0, truncated.length / 2));
    await expect(extractArchive("tar", file, out)).rejects.toBeDefined();
  });
});

describe("zip extraction", () => {
  it("extracts stored and deflated entries, directories and internal symlinks", async () => {
    const { out, result } = await extractZip([
      { path: "1/", data: "" },
      { path: "1/model.onnx", data: "weights".repeat(100), deflate: true },
      { path: "README.md", data: "hello" },
      { path: "latest", data: "1", unixMode: 0o120777 },
    ]);
    const files = await result;
    expect(files.map((f) => f.path)).toEqual(["1/model.onnx", "README.md"]);
    expect(readFileSync(join(out, "1/model.onnx"), "utf8")).toBe("weights".repeat(100));
    expect(lstatSync(join(out, "latest")).isSymbolicLink()).toBe(true);
    expect(readdirSync(join(out, "latest"))).toEqual(["model.onnx"]);
  });

  it("rejects path traversal", async () => {
    const { result } = await extractZip([{ path: "../evil.txt", data: "x" }]);
    await expect(result).rejects.toThrow();
    expect(existsSync(join(tmp.path, "evil.txt"))).toBe(false);
  });

  it("rejects absolute paths", async () => {
    const { result } = await extractZip([{ path: "/tmp/evil.txt", data: "x" }]);
    await expect(result).rejects.toThrow();
  });

  it("rejects a symlink pointing outside", async () => {
    const { result } = await extractZip([{ path: "passwd", data: "../../../../etc/passwd", unixMode: 0o120777 }]);
    await expect(result).rejects.toMatchObject({ code: "UNSAFE_ARCHIVE" });
  });

  it("rejects a symlink to an absolute path", async () => {
    const { result } = await extractZip([{ path: "etc", data: "/etc", unixMode: 0o120777 }]);
    await expect(result).rejects.toMatchObject({ code: "UNSAFE_ARCHIVE" });
  });

  it("rejects two entries with the same name (the last would win), publishing neither", async () => {
    const { out, result } = await extractZip([
      { path: "model.onnx", data: "vetted weights" },
      { path: "model.onnx", data: "other weights", deflate: true },
    ]);
    await expect(result).rejects.toMatchObject({ code: "UNSAFE_ARCHIVE" });
    await expect(result).rejects.toThrow(/"model.onnx".*appears twice/);
    void out;
    // The same name spelled differently ("./a" and "a", a directory and a file) is the same entry.
    const again = await extractZip([
      { path: "1/a.onnx", data: "x" },
      { path: "./1/a.onnx", data: "y" },
    ]);
    await expect(again.result).rejects.toThrow(/appears twice/);
    const dirFile = await extractZip([
      { path: "m/", data: "" },
      { path: "m", data: "y" },
    ]);
    await expect(dirFile.result).rejects.toThrow(/appears twice/);
  });

  it("rejects a duplicate name in a zip written by Python's zipfile", async () => {
    const file = join(tmp.path, "py.zip");
    const script = [
      "import sys, warnings, zipfile",
      "warnings.simplefilter('ignore')",
      "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:",
      "    z.writestr('model.onnx', b'first')",
      "    z.writestr('config.json', b'{}')",
      "    z.writestr('model.onnx', b'second')",
    ].join("\n");
    try {
      execFileSync("python3", ["-c", script, file], { stdio: "pipe" });
    } catch {
      writeFileSync(file, buildZip([{ path: "model.onnx", data: "first" }, { path: "config.json", data: "{}" }, { path: "model.onnx", data: "second" }]));
    }
    const out = join(tmp.path, "py-out");
    await mkdir(out);
    await expect(extractArchive("zip", file, out)).rejects.toMatchObject({ code: "UNSAFE_ARCHIVE" });
  });

  it("accepts a directory listed twice", async () => {
    const { out, result } = await extractZip([
      { path: "1/", data: "" },
      { path: "1/", data: "" },
      { path: "1/model.onnx", data: "w" },
    ]);
    expect((await result).map((f) => f.path)).toEqual(["1/model.onnx"]);
    expect(readFileSync(join(out, "1/model.onnx"), "utf8")).toBe("w");
  });

  it("detects a corrupt entry by its CRC-32", async () => {
    const { result } = await extractZip([{ path: "m.onnx", data: "weights", badCrc: true }]);
    await expect(result).rejects.toThrow(/CRC-32/);
  });
});
