import { spawnSync } from "node:child_process";
import { readFileSync, utimesSync, writeFileSync } from "node:fs";
import { readlink } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PullerError } from "./errors.js";
import { acquireLock, type Lock } from "./lock.js";
import { quietLogger, tempDir } from "./test-support.js";

let tmp: ReturnType<typeof tempDir>;
let lockPath: string;
beforeEach(() => {
  tmp = tempDir("puller-lock-");
  lockPath = join(tmp.path, "lock");
});
afterEach(() => tmp.cleanup());

async function take(opts: Partial<Parameters<typeof acquireLock>[1]> = {}): Promise<Lock> {
  const r = await acquireLock(lockPath, { staleMs: 5_000, pollMs: 10, ...opts });
  if (!("lock" in r)) throw new Error("expected the lock");
  return r.lock;
}

async function ourIdentity() {
  let bootId: string | undefined;
  try {
    bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    bootId = undefined;
  }
  let pidNamespace: string | undefined;
  try {
    pidNamespace = await readlink("/proc/self/ns/pid");
  } catch {
    pidNamespace = undefined;
  }
  return { hostname: hostname(), bootId, pidNamespace };
}

describe("lock", () => {
  it("is exclusive: a second taker waits until the first releases", async () => {
    const events: string[] = [];
    const a = await take();
    events.push("a acquired");
    const b = take().then((l) => {
      events.push("b acquired");
      return l;
    });
    await new Promise((r) => setTimeout(r, 100));
    events.push("a releasing");
    await a.release();
    const lb = await b;
    expect(events).toEqual(["a acquired", "a releasing", "b acquired"]);
    expect(JSON.parse(readFileSync(lockPath, "utf8"))).toMatchObject({ pid: process.pid, token: lb.info.token });
    await lb.release();
  });

  it("records pid, hostname and time, and refreshes its mtime (heartbeat)", async () => {
    const l = await take({ staleMs: 200 });
    const info = JSON.parse(readFileSync(lockPath, "utf8")) as Record<string, unknown>;
    expect(info).toMatchObject({ pid: process.pid, hostname: hostname() });
    expect(typeof info.createdAt).toBe("string");
    utimesSync(lockPath, new Date(0), new Date(0));
    await new Promise((r) => setTimeout(r, 250));
    const { mtimeMs } = await import("node:fs").then((fs) => fs.statSync(lockPath));
    expect(mtimeMs).toBeGreaterThan(0);
    await l.release();
  });

  it("takes over at once a lock whose holder process is gone (same host and pid namespace)", async () => {
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]).stdout.toString();
    writeFileSync(lockPath, JSON.stringify({ token: "old", pid: Number(dead), ...(await ourIdentity()), createdAt: new Date().toISOString() }));
    const { log, messages } = await quietLogger();
    const l = await take({ staleMs: 60_000, log });
    expect(messages().find((m) => m.msg === "taking over a stale lock")).toMatchObject({ reason: "holder process is gone", holderPid: Number(dead) });
    await l.release();
  });

  it("takes over a lock from another host only after its heartbeat stopped for --lock-stale", async () => {
    writeFileSync(lockPath, JSON.stringify({ token: "remote", pid: 1, hostname: "other-pod", createdAt: new Date().toISOString() }));
    // The remote holder is alive: it keeps touching the file.
    const beat = setInterval(() => {
      const now = new Date();
      utimesSync(lockPath, now, now);
    }, 30);
    const { log, messages } = await quietLogger();
    const waiting = acquireLock(lockPath, { staleMs: 600, pollMs: 20, log, signal: AbortSignal.timeout(1_500) });
    await expect(waiting).rejects.toBeInstanceOf(PullerError);
    expect(messages().some((m) => m.msg === "taking over a stale lock")).toBe(false);
    expect(messages().some((m) => m.msg === "waiting for lock held by another puller" && m.holderHost === "other-pod")).toBe(true);
    // Now it dies.
    clearInterval(beat);
    const l = await take({ staleMs: 300, log });
    expect(messages().find((m) => m.msg === "taking over a stale lock")?.reason).toMatch(/no heartbeat for \d+ ms/);
    await l.release();
  });

  it("notices when its lock was taken away, and never removes someone else's lock", async () => {
    let lost: PullerError | undefined;
    const l = await take({ staleMs: 80, onLost: (e) => (lost = e) });
    writeFileSync(lockPath, JSON.stringify({ token: "intruder", pid: 1, hostname: "elsewhere" }));
    await expect(l.assertHeld()).rejects.toMatchObject({ code: "LOCK_LOST" });
    await new Promise((r) => setTimeout(r, 150));
    expect(lost?.code).toBe("LOCK_LOST");
    await l.release();
    expect(JSON.parse(readFileSync(lockPath, "utf8")).token).toBe("intruder");
  });

  it("stops waiting when isDone reports that another puller finished", async () => {
    const a = await take();
    let polls = 0;
    const r = await acquireLock(lockPath, { staleMs: 60_000, pollMs: 10, isDone: async () => ++polls >= 3 });
    expect(r).toEqual({ done: true });
    await a.release();
  });
});
