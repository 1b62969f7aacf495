import { mkdtempSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { availableCpus } from "./cpu.js";

describe("CPUs available to the container", () => {
  const file = (content: string) => {
    const path = join(mkdtempSync(join(tmpdir(), "cgroup-")), "cpu.max");
    writeFileSync(path, content);
    return path;
  };

  it("follows a cgroup CPU limit, rounding up, never above the machine", () => {
    expect(availableCpus(file("150000 100000\n"))).toBe(Math.min(2, availableParallelism()));
    expect(availableCpus(file("50000 100000\n"))).toBe(1);
    expect(availableCpus(file("99900000 100000\n"))).toBe(availableParallelism());
  });

  it("uses the machine's count without a limit or without cgroup v2", () => {
    expect(availableCpus(file("max 100000\n"))).toBe(availableParallelism());
    expect(availableCpus("/nonexistent/cpu.max")).toBe(availableParallelism());
  });
});
