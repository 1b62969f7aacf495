/** The sizes decided before a body is read: the default byte budget and the largest request a signature allows. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { TensorMetadata } from "../backends/backend.js";
import { ConfigError, loadConfig } from "../config.js";
import { ByteBudget } from "./budget.js";
import { containerMemoryLimit, defaultBufferedRequestBytes, FIXED_ALLOWANCE, largestRequestBytes } from "./limits.js";

describe("the container memory limit and the default budget", () => {
  it("reads cgroup v2, then v1, and treats 'max' and v1's huge number as no limit", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cgroup-"));
    try {
      const v2 = join(dir, "memory.max");
      const v1 = join(dir, "memory.limit_in_bytes");
      const missing = join(dir, "absent");
      await writeFile(v2, "536870912\n");
      expect(containerMemoryLimit({ v2, v1: missing })).toBe(512 * 1024 * 1024);
      await writeFile(v2, "max\n");
      expect(containerMemoryLimit({ v2, v1: missing })).toBeUndefined();
      await writeFile(v1, "268435456\n");
      expect(containerMemoryLimit({ v2: missing, v1 })).toBe(256 * 1024 * 1024);
      await writeFile(v1, "9223372036854771712\n");
      expect(containerMemoryLimit({ v2: missing, v1 })).toBeUndefined();
      expect(containerMemoryLimit({ v2: missing, v1: missing })).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("is an eighth of the limit, else an eighth of the machine capped at 1 GiB", () => {
    expect(defaultBufferedRequestBytes(512 * 1024 ** 2, 64 * 1024 ** 3).bytes).toBe(64 * 1024 ** 2);
    expect(defaultBufferedRequestBytes(undefined, 64 * 1024 ** 3)).toMatchObject({ bytes: 1024 ** 3, source: expect.stringMatching(/no container memory limit/) });
    expect(defaultBufferedRequestBytes(undefined, 2 * 1024 ** 3).bytes).toBe(256 * 1024 ** 2);
  });
});

describe("the byte budget", () => {
  it("reserves what fits, refuses what does not, and gives a reservation back once", () => {
    const changes: number[] = [];
    let refused = 0;
    const budget = new ByteBudget(100, { changed: (u) => changes.push(u), refused: () => refused++ });
    const a = budget.reservation();
    const b = budget.reservation();
    expect(a.add(60)).toBe(true);
    expect(b.add(50)).toBe(false);
    expect(refused).toBe(1);
    expect(b.add(40)).toBe(true);
    expect(budget.used).toBe(100);
    a.shrink(10);
    expect(a.held).toBe(50);
    a.release();
    a.release();
    expect(budget.used).toBe(40);
    b.release();
    expect(budget.used).toBe(0);
    expect(changes.at(-1)).toBe(0);
    expect(new ByteBudget(1).tryReserve(2)).toBe(false);
  });
});

const input = (name: string, datatype: TensorMetadata["datatype"], shape: number[]): TensorMetadata => ({ name, datatype, shape });

/** The most extreme legal value of each type, as JSON writes it (64-bit integers as strings). */
const EXTREME: Record<string, unknown> = {
  BOOL: false, UINT8: 255, INT8: -128, UINT16: 65535, INT16: -32768, UINT32: 4294967295, INT32: -2147483648,
  UINT64: "18446744073709551615", INT64: "-9223372036854775808", FP32: -1.1754943508222875e-38, FP64: -2.2250738585072014e-308,
};

function nested(shape: number[], value: unknown): unknown {
  if (shape.length === 0) return value;
  return Array.from({ length: shape[0]! }, () => nested(shape.slice(1), value));
}

describe("the largest request a model's signature allows", () => {
  it("is unbounded for BYTES inputs and dynamic dimensions other than a batch bounded by max_batch_size", () => {
    expect(largestRequestBytes([input("text", "BYTES", [1])], 0)).toBeUndefined();
    expect(largestRequestBytes([input("x", "FP32", [-1, 16])], 0)).toBeUndefined();
    expect(largestRequestBytes([input("x", "FP32", [-1, -1])], 8)).toBeUndefined();
    expect(largestRequestBytes([input("x", "FP32", [-1, 16])], 8)).toBeGreaterThan(FIXED_ALLOWANCE);
    expect(largestRequestBytes([], 0)).toBe(FIXED_ALLOWANCE);
  });

  it("holds the widest legal request, pretty-printed with the widest indent JSON.stringify makes, as flat or nested data", () => {
    for (const [datatype, value] of Object.entries(EXTREME)) {
      for (const shape of [[-1, 16], [-1, 3, 2, 2], [-1, 1, 1, 1], [-1, 1, 1, 1, 1, 1]]) {
        const inputs = [input("INPUT_WITH_A_LONGISH_NAME", datatype as TensorMetadata["datatype"], shape), input("INPUT1", datatype as TensorMetadata["datatype"], shape)];
        const maxBatch = 4;
        const bound = largestRequestBytes(inputs, maxBatch)!;
        const concrete = [maxBatch, ...shape.slice(1)];
        const count = concrete.reduce((a, b) => a * b, 1);
        for (const data of [Array(count).fill(value), nested(concrete, value)]) {
          const request = {
            id: "a-request-id-of-some-length-0123456789",
            parameters: { priority: 1, timeout: 1000 },
            inputs: inputs.map((i) => ({ name: i.name, datatype, shape: concrete, parameters: { binary_data: false }, data })),
            outputs: [{ name: "OUTPUT0", parameters: { binary_data: false } }, { name: "OUTPUT1" }],
          };
          expect(Buffer.byteLength(JSON.stringify(request, null, 10)), `${datatype} ${shape}`).toBeLessThanOrEqual(bound);
        }
      }
    }
  });

  it("is far below a large body for a small model", () => {
    // batched: simple's INT32 [-1,16] inputs with max_batch_size 4.
    const bound = largestRequestBytes([input("INPUT0", "INT32", [-1, 16]), input("INPUT1", "INT32", [-1, 16])], 4)!;
    expect(bound).toBeLessThan(256 * 1024);
  });
});

describe("MAX_BUFFERED_REQUEST_BYTES", () => {
  it("comes from the flag or the environment, unset by default (derived at start), and must be a positive number", () => {
    expect(loadConfig([], {}).config.maxBufferedRequestBytes).toBeUndefined();
    expect(loadConfig([], { MAX_BUFFERED_REQUEST_BYTES: "1" }).config.maxBufferedRequestBytes).toBe(1);
    expect(loadConfig(["--max-buffered-request-bytes", "4096"], { MAX_BUFFERED_REQUEST_BYTES: "1" }).config.maxBufferedRequestBytes).toBe(4096);
    expect(() => loadConfig([], { MAX_BUFFERED_REQUEST_BYTES: "0" })).toThrow(ConfigError);
    expect(() => loadConfig([], { MAX_BUFFERED_REQUEST_BYTES: "lots" })).toThrow(/MAX_BUFFERED_REQUEST_BYTES \(environment\): expected a number of bytes/);
  });
});
