import { describe, expect, it } from "vitest";
import { parseCli } from "./config.js";
import { UsageError } from "./errors.js";
import { formatBytes, formatSeconds, parseDuration, parseSize } from "./units.js";

describe("units", () => {
  it("parses durations", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("10m")).toBe(600_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("1500")).toBe(1500);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("ten")).toBeUndefined();
    expect(parseDuration("5x")).toBeUndefined();
    expect(parseDuration("")).toBeUndefined();
  });

  it("parses sizes (SI, binary, Kubernetes style, bytes)", () => {
    expect(parseSize("500MB")).toBe(500_000_000);
    expect(parseSize("2GiB")).toBe(2 * 2 ** 30);
    expect(parseSize("2Gi")).toBe(2 * 2 ** 30);
    expect(parseSize("1.5 KB")).toBe(1500);
    expect(parseSize("1024")).toBe(1024);
    expect(parseSize("12 parsecs")).toBeUndefined();
    expect(parseSize("-1")).toBeUndefined();
  });

  it("formats bytes and durations", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(300 * 2 ** 20)).toBe("300 MiB");
    expect(formatSeconds(42)).toBe("42s");
    expect(formatSeconds(185)).toBe("3m05s");
    expect(formatSeconds(3720)).toBe("1h02m");
  });
});

describe("parseCli", () => {
  it("reads positionals and flags, with defaults", async () => {
    const r = await parseCli(["s3://b/k", "/mnt/models", "--sha256", `sha256:${"AB".repeat(32)}`, "--timeout", "10m", "--max-bytes", "2GiB"], {});
    expect(r.kind).toBe("run");
    if (r.kind !== "run") return;
    expect(r.config).toMatchObject({
      source: "s3://b/k",
      dest: "/mnt/models",
      sha256: "ab".repeat(32),
      timeout: 600_000,
      maxBytes: 2 ** 31,
      extract: "auto",
      retries: 5,
      layout: "auto",
      force: false,
      lockStale: 30_000,
    });
  });

  it("takes the source and destination from STORAGE_URI and MODEL_DIR, flags winning over env", async () => {
    const env = { STORAGE_URI: "hf://org/repo", MODEL_DIR: "/mnt/models", PULLER_EXTRACT: "none", PULLER_TIMEOUT: "30s", PULLER_FORCE: "true" };
    const r = await parseCli(["--timeout", "1m"], env);
    if (r.kind !== "run") throw new Error("expected a run");
    expect(r.config).toMatchObject({ source: "hf://org/repo", dest: "/mnt/models", extract: "none", timeout: 60_000, force: true });
  });

  it("reports usage errors as UsageError (exit code 2)", async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /missing <source-uri>/],
      [["s3://b/k"], /missing <dest-dir>/],
      [["a", "b", "c"], /too many arguments/],
      [["a", "b", "--sha256", "xyz"], /64 hex digits/],
      [["a", "b", "--extract", "maybe"], /--extract/],
      [["a", "b", "--timeout", "soon"], /not a duration/],
      [["a", "b", "--max-bytes", "lots"], /not a size/],
      [["a", "b", "--retries", "-3"], /--retries|argument/],
      [["a", "b", "--filename", "../x"], /--filename/],
      [["a", "b", "--bogus"], /Unknown option/],
    ];
    for (const [argv, re] of cases) {
      const err = await parseCli(argv, {}).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, argv.join(" ")).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(2);
      expect((err as Error).message, argv.join(" ")).toMatch(re);
    }
  });

  it("answers --help and --version without requiring arguments", async () => {
    expect(await parseCli(["--help"], {})).toEqual({ kind: "help" });
    expect(await parseCli(["-h"], {})).toEqual({ kind: "help" });
    expect(await parseCli(["--version"], {})).toEqual({ kind: "version" });
  });
});
