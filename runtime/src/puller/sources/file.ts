/**
 * Local sources: file:///path, plain paths, and KServe-style pvc://name/path
 * (read from $PVC_MOUNT_PATH/path, default /mnt/pvc, where KServe mounts the
 * claim). A file or a whole directory; symlinks inside a directory are followed
 * (as `cp -rL` would), so a Hugging Face cache snapshot copies as real files.
 *
 * Files are hard-linked into the staging directory when it is on the same
 * filesystem (no copy, no extra space), and copied otherwise; either way they
 * are read once to compute their sha256.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { link, readdir, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PullerError, UsageError, throwIfAborted } from "../errors.js";
import { checkRelPath, MARKER_NAME, STATE_DIR_NAME } from "../paths.js";
import { writeNewFile } from "../write.js";
import type { FetchResult, PullContext, RemoteFile, ResolvedSource, Source } from "./types.js";

export function localPath(uri: string, env: NodeJS.ProcessEnv): string {
  if (/^file:\/\//i.test(uri)) {
    try {
      return fileURLToPath(uri);
    } catch (err) {
      throw new UsageError(`invalid file URI ${JSON.stringify(uri)}: ${(err as Error).message}`);
    }
  }
  const pvc = /^pvc:\/\/([^/]+)\/?(.*)$/i.exec(uri);
  if (pvc) return join(env.PVC_MOUNT_PATH || "/mnt/pvc", pvc[2]!);
  return resolve(uri);
}

async function hashFile(path: string, ctx: PullContext, onChunk?: (c: Buffer) => void): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    throwIfAborted(ctx.signal);
    h.update(chunk);
    onChunk?.(chunk);
  }
  return h.digest("hex");
}

async function copyOrLink(path: string, dest: string, size: number, ctx: PullContext, label: string): Promise<FetchResult> {
  ctx.budget.check(size, label);
  // link(2) does not follow a symlink given as its source: resolve it first.
  const src = await realpath(path);
  const [s, d] = await Promise.all([stat(src), stat(dirname(dest))]);
  if (s.dev === d.dev) {
    try {
      await link(src, dest);
      ctx.budget.take(size, label);
      const sha256 = await hashFile(dest, ctx, (c) => ctx.progress.add(c.length));
      return { size, sha256, linked: true };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EXDEV" && code !== "EPERM" && code !== "EMLINK" && code !== "EACCES" && code !== "ENOTSUP") throw err;
      ctx.log.debug({ file: label, code }, "hard link refused, copying");
    }
  }
  const h = createHash("sha256");
  const written = await writeNewFile(dest, createReadStream(src, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>, {
    highWaterMark: 4 << 20,
    signal: ctx.signal,
    onChunk: (chunk) => {
      ctx.budget.take(chunk.length, label);
      h.update(chunk);
      ctx.progress.add(chunk.length);
    },
  });
  return { size: written, sha256: h.digest("hex") };
}

export class FileSource implements Source {
  readonly kind = "file" as const;
  readonly id: string;
  readonly path: string;

  constructor(uri: string, env: NodeJS.ProcessEnv) {
    this.path = localPath(uri, env);
    this.id = /^pvc:\/\//i.test(uri) ? uri : `file://${this.path}`;
  }

  async resolve(ctx: PullContext): Promise<ResolvedSource> {
    let st;
    try {
      st = await stat(this.path);
    } catch (err) {
      throw new PullerError("NOT_FOUND", `${this.id}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (err as Error).message}`);
    }
    if (st.isFile()) {
      const src = this.path;
      return { single: true, files: [{ path: basename(src), size: st.size, fetch: (file, c) => copyOrLink(src, file, st.size, c, this.id) }] };
    }
    if (!st.isDirectory()) throw new PullerError("SOURCE", `${this.id} is neither a file nor a directory`);

    const files: RemoteFile[] = [];
    const seen = new Set<string>();
    const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
      throwIfAborted(ctx.signal);
      if (depth > 64) throw new PullerError("SOURCE", `${this.id}: directories nested too deeply (symlink loop?)`);
      const real = await realpath(dir);
      if (seen.has(real)) throw new PullerError("SOURCE", `${this.id}: symlink loop at ${rel || "."}`);
      seen.add(real);
      const names = (await readdir(dir)).sort();
      for (const name of names) {
        if (rel === "" && (name === MARKER_NAME || name === STATE_DIR_NAME)) continue; // a model published by the puller
        const p = join(dir, name);
        const r = rel ? `${rel}/${name}` : name;
        let s;
        try {
          s = await stat(p); // follows symlinks
        } catch {
          ctx.log.warn({ path: p }, "skipping a dangling symlink");
          continue;
        }
        if (s.isDirectory()) await walk(p, r, depth + 1);
        else if (s.isFile()) {
          const c = checkRelPath(r);
          if (!c.ok) throw new PullerError("SOURCE", `refusing ${p}: the path ${c.reason}`);
          const size = s.size;
          files.push({ path: c.path, size, fetch: (file, c2) => copyOrLink(p, file, size, c2, `${this.id}/${r}`) });
        }
      }
      seen.delete(real);
    };
    await walk(this.path, "", 0);
    if (files.length === 0) throw new PullerError("NOT_FOUND", `${this.id}: the directory holds no files`);
    return { single: false, files };
  }
}
