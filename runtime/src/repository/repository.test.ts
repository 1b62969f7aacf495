import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSimple } from "../../../models/build/simple.js";
import { removeRepository, writeRepository } from "../testing/fixtures.js";
import { ModelRepository, SingleModelDirectory } from "./repository.js";

let root: string;
let elsewhere: string;

beforeAll(async () => {
  elsewhere = await writeRepository({ "published/v-abc123/1/model.onnx": buildSimple(), "published/version-target/model.onnx": buildSimple() });
  root = await writeRepository({
    "triton/1/model.onnx": buildSimple(),
    "triton/3/model.onnx": buildSimple(),
    "triton/notaversion/model.onnx": buildSimple(),
    "flat/model.onnx": buildSimple(),
    "custom/2/weights.onnx": buildSimple(),
    "custom/model-settings.json": JSON.stringify({ default_model_filename: "weights.onnx" }),
    "scripts/build.ts": "// not a model",
    ".hidden/1/model.onnx": buildSimple(),
    "bad name!/1/model.onnx": buildSimple(),
  });
  await symlink(join(elsewhere, "published/v-abc123"), join(root, "linked"));
  await mkdir(join(root, "linkedversion"));
  await symlink(join(elsewhere, "published/version-target"), join(root, "linkedversion", "4"));
});
afterAll(async () => {
  await removeRepository(root);
  await removeRepository(elsewhere);
});

describe("model repository discovery", () => {
  it("finds Triton, flat, custom-file and symlinked layouts, and passes over everything else", async () => {
    const { models, skipped } = await new ModelRepository(root).discover();
    const summary = Object.fromEntries(models.map((m) => [m.name, m.versions.map((v) => `${v.version}:${v.file ? v.file.slice(v.file.lastIndexOf("/") + 1) : "-"}`)]));
    expect(summary).toEqual({
      custom: ["2:weights.onnx"],
      flat: ["1:model.onnx"],
      linked: ["1:model.onnx"],
      linkedversion: ["4:model.onnx"],
      triton: ["1:model.onnx", "3:model.onnx"],
    });
    expect(skipped.sort()).toEqual(["bad name!", "scripts"]);
  });

  it("describes one model by name, refusing names that are not plain", async () => {
    const repo = new ModelRepository(root);
    expect((await repo.describe("linked"))?.versions).toHaveLength(1);
    expect(await repo.describe("../etc")).toBeUndefined();
    expect(await repo.describe("missing")).toBeUndefined();
  });

  it("fails clearly when the repository is missing", async () => {
    await expect(new ModelRepository(join(root, "nope")).discover()).rejects.toThrow(/does not exist or is not a directory/);
  });

  it("serves KServe's single model directory under the given name, whatever the file is called", async () => {
    const single = await writeRepository({ "simple.onnx": buildSimple() });
    try {
      const { models } = await new SingleModelDirectory("iris", single).discover();
      expect(models.map((m) => [m.name, m.versions[0]!.file!.endsWith("simple.onnx")])).toEqual([["iris", true]]);
      expect(await new SingleModelDirectory("iris", single).describe("other")).toBeUndefined();
    } finally {
      await removeRepository(single);
    }
  });
});

describe("a version directory whose model file has another name", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await writeRepository({
      "mine/1/my-classifier.onnx": buildSimple(),
      "two/1/a.onnx": buildSimple(),
      "two/1/b.onnx": buildSimple(),
      "named/1/other.onnx": buildSimple(),
      "named/model-settings.json": JSON.stringify({ default_model_filename: "weights.onnx" }),
    });
  });
  afterAll(() => removeRepository(dir));

  it("takes the only .onnx file of the version directory when model.onnx is absent", async () => {
    const mine = await new ModelRepository(dir).describe("mine");
    expect(mine?.versions).toEqual([{ version: "1", file: join(dir, "mine", "1", "my-classifier.onnx") }]);
  });

  it("takes none when there are several, or when the settings name the file themselves (the version is then UNAVAILABLE with the reason)", async () => {
    const repository = new ModelRepository(dir);
    expect((await repository.describe("two"))?.versions).toEqual([{ version: "1", file: undefined }]);
    expect((await repository.describe("named"))?.versions).toEqual([{ version: "1", file: undefined }]);
    const { models } = await repository.discover();
    expect(models.map((m) => m.name)).toEqual(["mine", "named", "two"]);
  });
});
