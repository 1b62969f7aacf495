/**
 * A lock file on the volume, so that pullers in several pods sharing one
 * ReadWriteMany volume download once.
 *
 * - Acquire: create `lock` with O_CREAT|O_EXCL (atomic on local filesystems and
 *   NFSv3+), holding {token, pid, hostname, boot id, pid namespace, time}.
 * - Heartbeat: the holder touches the file's mtime every `staleMs / 4` and checks
 *   that the token is still its own; if it is not (another puller judged the lock
 *   stale and took it over), the holder aborts its pull instead of publishing.
 * - Stale: a waiter takes the lock over when its mtime has not changed for
 *   `staleMs` by the waiter's own clock (no clock comparison between machines), or
 *   at once when the holder ran in the same host and pid namespace and its pid no
 *   longer exists (a killed puller restarted in the same pod).
 * - Takeover is guarded by a second O_EXCL file (`lock.break`) and re-reads the
 *   token just before removing the stale lock, so two waiters never both break
 *   it, and a lock renewed in the meantime is not broken.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { open, readFile, readlink, stat, unlink, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { PullerError, throwIfAborted } from "./errors.js";
import type { Logger } from "./log.js";
import { sleep } from "./retry.js";

export interface LockInfo {
  token: string;
  pid: number;
  hostname: string;
  bootId?: string;
  pidNamespace?: string;
  createdAt: string;
}

export interface LockOptions {
  /** A lock whose heartbeat stopped this long ago is taken over. */
  staleMs: number;
  /** Poll interval of waiters (default staleMs/10, between 50 ms and 1 s). */
  pollMs?: number;
  signal?: AbortSignal;
  log?: Logger;
  /** Checked while waiting: when it returns true the wait ends without the lock. */
  isDone?: () => Promise<boolean>;
  /** Called when the heartbeat finds that the lock was taken away. */
  onLost?: (err: PullerError) => void;
}

let identity: Pick<LockInfo, "hostname" | "bootId" | "pidNamespace"> | undefined;

function machineIdentity(): Pick<LockInfo, "hostname" | "bootId" | "pidNamespace"> {
  if (identity) return identity;
  let bootId: string | undefined;
  let pidNamespace: string | undefined;
  try {
    bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    // not Linux
  }
  identity = { hostname: hostname(), bootId, pidNamespace };
  return identity;
}

async function pidNamespace(): Promise<string | undefined> {
  try {
    return await readlink("/proc/self/ns/pid");
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readLock(path: string): Promise<{ info?: LockInfo; raw: string; mtimeMs: number } | undefined> {
  try {
    const [raw, st] = await Promise.all([readFile(path, "utf8"), stat(path)]);
    let info: LockInfo | undefined;
    try {
      const parsed = JSON.parse(raw) as LockInfo;
      if (typeof parsed.token === "string") info = parsed;
    } catch {
      // being written, or a crash between create and write
    }
    return { info, raw, mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export class Lock {
  private timer: NodeJS.Timeout | undefined;
  private released = false;
  private lostError: PullerError | undefined;
  private lostNotified = false;

  constructor(
    readonly path: string,
    readonly info: LockInfo,
    private readonly opts: LockOptions,
  ) {}

  /** @internal */
  startHeartbeat(): void {
    const every = Math.max(20, Math.floor(this.opts.staleMs / 4));
    this.timer = setInterval(() => void this.beat(), every);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    if (this.released || this.lostNotified) return;
    try {
      await this.assertHeld();
      const now = new Date();
      await utimes(this.path, now, now);
    } catch (err) {
      if (this.released || this.lostNotified) return;
      if (err instanceof PullerError && err.code === "LOCK_LOST") {
        this.lostNotified = true;
        clearInterval(this.timer);
        this.opts.onLost?.(err);
      } else {
        this.opts.log?.warn({ err: (err as Error).message }, "lock heartbeat failed");
      }
    }
  }

  get lost(): PullerError | undefined {
    return this.lostError;
  }

  /** Throws LOCK_LOST unless the lock file still carries this holder's token. */
  async assertHeld(): Promise<void> {
    if (this.lostError) throw this.lostError;
    const cur = await readLock(this.path);
    if (cur?.info?.token !== this.info.token) {
      this.lostError = new PullerError(
        "LOCK_LOST",
        cur?.info
          ? `lost the lock ${this.path} to pid ${cur.info.pid} on ${cur.info.hostname} (our heartbeat stalled longer than --lock-stale?)`
          : `lost the lock ${this.path} (the file was removed)`,
      );
      throw this.lostError;
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    try {
      const cur = await readLock(this.path);
      if (cur?.info?.token === this.info.token) await unlink(this.path);
    } catch {
      // already gone
    }
  }
}

export type AcquireResult = { lock: Lock } | { done: true };

async function tryCreate(path: string, info: LockInfo): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, "wx", 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw new PullerError("DEST", `cannot create the lock file ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    await fh.writeFile(`${JSON.stringify(info)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return true;
}

/** Removes the lock if it is still exactly the stale one observed; guarded against concurrent breakers. */
async function breakStale(path: string, observed: { raw: string; mtimeMs: number }, staleMs: number): Promise<boolean> {
  const guard = `${path}.break`;
  let fh;
  try {
    fh = await open(guard, "wx");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    // A breaker that died while holding the guard (it holds it for milliseconds).
    try {
      const st = await stat(guard);
      if (Date.now() - st.mtimeMs > Math.max(staleMs, 5_000)) await unlink(guard);
    } catch {
      // gone meanwhile
    }
    return false;
  }
  try {
    await fh.close();
    const cur = await readLock(path);
    if (!cur) return true;
    if (cur.raw !== observed.raw || cur.mtimeMs !== observed.mtimeMs) return false;
    await unlink(path);
    return true;
  } finally {
    await unlink(guard).catch(() => {});
  }
}

/**
 * Waits for and takes the lock. Resolves with `{done: true}` instead when
 * `isDone` reports (while waiting) that another puller already finished the work.
 */
export async function acquireLock(path: string, opts: LockOptions): Promise<AcquireResult> {
  const info: LockInfo = {
    token: randomBytes(16).toString("hex"),
    pid: process.pid,
    ...machineIdentity(),
    pidNamespace: await pidNamespace(),
    createdAt: new Date().toISOString(),
  };
  const poll = opts.pollMs ?? Math.min(1_000, Math.max(50, Math.floor(opts.staleMs / 10)));
  let observed: { raw: string; mtimeMs: number; since: number } | undefined;
  let lastWaitLog = Number.NEGATIVE_INFINITY;

  for (;;) {
    throwIfAborted(opts.signal);
    if (await tryCreate(path, info)) {
      const lock = new Lock(path, info, opts);
      lock.startHeartbeat();
      return { lock };
    }
    const cur = await readLock(path);
    if (!cur) continue; // released between our attempt and the read

    const now = performance.now();
    if (!observed || observed.raw !== cur.raw || observed.mtimeMs !== cur.mtimeMs) {
      observed = { raw: cur.raw, mtimeMs: cur.mtimeMs, since: now };
    }
    const holder = cur.info;
    const sameNamespace =
      holder !== undefined &&
      holder.hostname === info.hostname &&
      holder.bootId === info.bootId &&
      holder.pidNamespace === info.pidNamespace;
    const deadHolder = sameNamespace && holder !== undefined && !pidAlive(holder.pid);
    const silentFor = now - observed.since;

    if (deadHolder || silentFor >= opts.staleMs) {
      opts.log?.warn(
        {
          holderPid: holder?.pid,
          holderHost: holder?.hostname,
          reason: deadHolder ? "holder process is gone" : `no heartbeat for ${Math.round(silentFor)} ms`,
        },
        "taking over a stale lock",
      );
      await breakStale(path, cur, opts.staleMs);
      observed = undefined;
      continue;
    }

    if (now - lastWaitLog > 30_000) {
      lastWaitLog = now;
      opts.log?.info({ lock: path, holderPid: holder?.pid, holderHost: holder?.hostname, since: holder?.createdAt }, "waiting for lock held by another puller");
    }
    if (opts.isDone && (await opts.isDone())) return { done: true };
    await sleep(poll + Math.floor(Math.random() * poll * 0.5), opts.signal);
  }
}
