import { describe, expect, it } from "vitest";
import { memoryTerminal } from "./log.js";
import { Progress, renderBar } from "./progress.js";
import { quietLogger } from "./test-support.js";

describe("progress", () => {
  it("computes percent, rate and ETA from an injected clock", () => {
    let now = 0;
    const p = new Progress({ mode: "none", now: () => now });
    p.setTotal(1000);
    now = 1000;
    p.add(250);
    const s = p.snapshot();
    expect(s).toMatchObject({ bytes: 250, total: 1000, percent: 25, rate: 250, eta: 3 });
    p.add(-250); // a restart
    now = 2000;
    expect(p.snapshot()).toMatchObject({ bytes: 0, percent: 0 });
  });

  it("renders a bar with bytes, percent, rate and ETA", () => {
    const line = renderBar({ bytes: 512 * 2 ** 20, total: 2 ** 30, percent: 50, rate: 100 * 2 ** 20, eta: 5.2, elapsedMs: 5000 }, "model", 100);
    expect(line).toContain(" 50.0%");
    expect(line).toContain("512 MiB / 1.00 GiB");
    expect(line).toContain("100 MiB/s");
    expect(line).toContain("ETA 5s");
    expect(line).toMatch(/\[=+>\s*\]/);
    const unknown = renderBar({ bytes: 10, total: undefined, percent: undefined, rate: 0, eta: undefined, elapsedMs: 300 });
    expect(unknown).not.toContain("%");
  });

  it("logs structured progress lines periodically when not on a TTY", async () => {
    const { log, messages } = await quietLogger("info");
    let now = 0;
    const p = new Progress({ mode: "log", log, terminal: memoryTerminal(), intervalMs: 20, now: () => now });
    p.setTotal(100);
    p.start();
    now = 1000;
    p.add(40);
    await new Promise((r) => setTimeout(r, 120));
    p.stop();
    const lines = messages().filter((m) => m.msg === "progress");
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatchObject({ bytes: 40, totalBytes: 100, percent: 40 });
    expect(lines[0]).toHaveProperty("bytesPerSecond");
    expect(lines[0]).toHaveProperty("etaSeconds");
  });
});
