/**
 * Throughput of the model puller over loopback, next to the raw read rate of the
 * same server.
 *
 *   npm run bench:puller [-- --size 1GiB --runs 3]
 *
 * A child process serves a generated artifact (1 GiB by default; streamed from a
 * repeated 4 MiB random block, so memory stays flat and nothing is written to
 * disk by the server). Then, for each run:
 *   raw          this process reads the body and counts bytes
 *   raw+sha256   the same, hashing every byte
 *   ceiling      the same, also writing every byte to a file in the destination
 *                directory (one write stream, 4 MiB buffer) and fsyncing it: the
 *                least any downloader that hashes and writes can do here
 *   puller       `node dist/model-puller.js URL DEST --sha256 ...` (the shipped
 *                bundle, in its own process): download to disk with sha256 on the
 *                way, fsync, publish. Wall time from spawn to exit, so Node start-up,
 *                fsync and publish count against it.
 * Prints the median of each, the ratio puller / raw, and client-side CPU seconds
 * per GB (a steadier figure than MB/s on a shared machine). `--dest-root /dev/shm`
 * takes the destination disk out of the measurement. Not part of `npm test`.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import http from "node:http";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseSize } from "../runtime/src/puller/units.js";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const { values } = parseArgs({
  options: { size: { type: "string", default: "1GiB" }, runs: { type: "string", default: "3" }, "dest-root": { type: "string" } },
});
const SIZE = parseSize(values.size!) ?? 2 ** 30;
const RUNS = Math.max(1, Number(values.runs));
const MB = 1e6;

// The server: plain JS in its own process. Supports HEAD and Range like a real file server.
const SERVER = `
const http = require("node:http");
const crypto = require("node:crypto");
const SIZE = Number(process.argv[1]);
const BLOCK = crypto.randomBytes(4 << 20);
const server = http.createServer((req, res) => {
  let start = 0;
  const m = /^bytes=(\\d+)-$/.exec(req.headers.range || "");
  if (m) start = Number(m[1]);
  const headers = { "content-length": String(SIZE - start), "accept-ranges": "bytes", etag: '"bench"' };
  if (m) headers["content-range"] = "bytes " + start + "-" + (SIZE - 1) + "/" + SIZE;
  res.writeHead(m ? 206 : 200, headers);
  if (req.method === "HEAD") return res.end();
  let pos = start;
  const pump = () => {
    while (pos < SIZE) {
      const off = pos % BLOCK.length;
      const n = Math.min(BLOCK.length - off, SIZE - pos);
      pos += n;
      if (!res.write(BLOCK.subarray(off, off + n))) return res.once("drain", pump);
    }
    res.end();
  };
  pump();
});
server.listen(0, "127.0.0.1", () => process.stdout.write(JSON.stringify({ port: server.address().port }) + "\\n"));
`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function rawRead(url: string, hash: boolean): Promise<{ seconds: number; bytes: number; sha256?: string; cpuSeconds: number }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  return new Promise((resolvePromise, reject) => {
    http
      .get(url, (res) => {
        const h = hash ? createHash("sha256") : undefined;
        let n = 0;
        res.on("data", (c: Buffer) => {
          n += c.length;
          h?.update(c);
        });
        res.on("end", () => {
          const c = process.cpuUsage(c0);
          resolvePromise({ seconds: (performance.now() - t0) / 1000, bytes: n, sha256: h?.digest("hex"), cpuSeconds: (c.user + c.system) / 1e6 });
        });
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

/** stream -> sha256 -> file -> fsync, nothing else: the realistic ceiling for a puller on this machine. */
async function ceiling(url: string, file: string): Promise<{ seconds: number; bytes: number; fsyncSeconds: number; cpuSeconds: number }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const fh = await open(file, "w");
  try {
    const bytes = await new Promise<number>((resolvePromise, reject) => {
      http
        .get(url, (res) => {
          const h = createHash("sha256");
          const ws = createWriteStream("", { fd: fh.fd, autoClose: false, highWaterMark: 4 << 20 });
          let n = 0;
          res.on("data", (c: Buffer) => {
            n += c.length;
            h.update(c);
            if (!ws.write(c)) res.pause();
          });
          ws.on("drain", () => res.resume());
          res.on("end", () => ws.end());
          res.on("error", reject);
          ws.on("error", reject);
          ws.on("finish", () => {
            h.digest("hex");
            resolvePromise(n);
          });
        })
        .on("error", reject);
    });
    const ts = performance.now();
    await fh.sync();
    const t1 = performance.now();
    const c = process.cpuUsage(c0);
    return { seconds: (t1 - t0) / 1000, bytes, fsyncSeconds: (t1 - ts) / 1000, cpuSeconds: (c.user + c.system) / 1e6 };
  } finally {
    await fh.close();
    rmSync(file, { force: true });
  }
}

async function runPuller(
  url: string,
  dest: string,
  sha256: string,
): Promise<{ seconds: number; downloadSeconds?: number; maxRssKiB?: number; cpuSeconds?: number }> {
  const cli = join(ROOT, "dist", "model-puller.js");
  const timeBin = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
  const args = [cli, url, dest, "--sha256", sha256, "--progress", "none"];
  const t0 = performance.now();
  const child = timeBin
    ? spawn(timeBin, ["-f", "MAXRSS_KIB=%M CPU_S=%U+%S", process.execPath, ...args], { stdio: ["ignore", "ignore", "pipe"] })
    : spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((r) => child.on("close", r));
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`model-puller exited with ${code}:\n${stderr}`);
  let downloadSeconds: number | undefined;
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    const o = JSON.parse(line) as { msg?: string; seconds?: number };
    if (o.msg === "downloaded and verified") downloadSeconds = o.seconds;
  }
  const rss = /MAXRSS_KIB=(\d+)/.exec(stderr)?.[1];
  const cpu = /CPU_S=([\d.]+)\+([\d.]+)/.exec(stderr);
  return { seconds, downloadSeconds, maxRssKiB: rss ? Number(rss) : undefined, cpuSeconds: cpu ? Number(cpu[1]) + Number(cpu[2]) : undefined };
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, "dist", "model-puller.js"))) {
    console.log("building dist/ ...");
    const b = spawnSync(process.execPath, [join(ROOT, "scripts", "build.mjs")], { stdio: "inherit", cwd: ROOT });
    if (b.status !== 0) throw new Error("build failed");
  }
  const server = spawn(process.execPath, ["-e", SERVER, String(SIZE)], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((res, rej) => {
      let out = "";
      server.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const m = /"port":(\d+)/.exec(out);
        if (m) res(Number(m[1]));
      });
      server.on("exit", (c) => rej(new Error(`server exited ${c}`)));
    });
    const url = `http://127.0.0.1:${port}/model.onnx`;
    const work = mkdtempSync(join(values["dest-root"] ?? tmpdir(), "puller-bench-"));
    console.log(
      `artifact: ${(SIZE / MB).toFixed(0)} MB (${SIZE} bytes) over loopback, ${RUNS} runs each, node ${process.version}, ` +
        `${availableParallelism()} CPUs, destination ${work}`,
    );

    const raw: number[] = [];
    const rawSha: number[] = [];
    const ceil: number[] = [];
    const ceilFsync: number[] = [];
    const puller: number[] = [];
    const pullerDl: number[] = [];
    const rss: number[] = [];
    const cpu = { raw: [] as number[], sha: [] as number[], ceil: [] as number[], puller: [] as number[] };
    let digest = "";
    try {
      // Warm-up (JIT, server buffers, page cache for the destination directory).
      await rawRead(url, false);
      for (let i = 0; i < RUNS; i++) {
        const a = await rawRead(url, false);
        raw.push(a.bytes / MB / a.seconds);
        cpu.raw.push(a.cpuSeconds / (SIZE / 1e9));
        const b = await rawRead(url, true);
        rawSha.push(b.bytes / MB / b.seconds);
        cpu.sha.push(b.cpuSeconds / (SIZE / 1e9));
        digest = b.sha256!;
        const w = await ceiling(url, join(work, `ceiling-${i}.bin`));
        ceil.push(w.bytes / MB / w.seconds);
        ceilFsync.push(w.fsyncSeconds);
        cpu.ceil.push(w.cpuSeconds / (SIZE / 1e9));
        const dest = join(work, `run-${i}`, "model");
        const p = await runPuller(url, dest, digest);
        puller.push(SIZE / MB / p.seconds);
        if (p.downloadSeconds) pullerDl.push(SIZE / MB / p.downloadSeconds);
        if (p.maxRssKiB) rss.push(p.maxRssKiB);
        if (p.cpuSeconds !== undefined) cpu.puller.push(p.cpuSeconds / (SIZE / 1e9));
        rmSync(join(work, `run-${i}`), { recursive: true, force: true });
        console.log(
          `run ${i + 1}: raw ${raw[i]!.toFixed(0)} MB/s, raw+sha256 ${rawSha[i]!.toFixed(0)} MB/s, ceiling ${ceil[i]!.toFixed(0)} MB/s, ` +
            `puller ${puller[i]!.toFixed(0)} MB/s end to end (${p.seconds.toFixed(2)} s` +
            `${p.downloadSeconds ? `, download+verify ${p.downloadSeconds.toFixed(2)} s` : ""})`,
        );
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    const mRaw = median(raw);
    const mSha = median(rawSha);
    const mPull = median(puller);
    console.log("");
    console.log(`median raw read                 ${mRaw.toFixed(0)} MB/s`);
    console.log(`median raw read + sha256        ${mSha.toFixed(0)} MB/s`);
    console.log(`median ceiling (+write, fsync)  ${median(ceil).toFixed(0)} MB/s  (in-process stream -> sha256 -> file, fsync ${median(ceilFsync).toFixed(2)} s of it)`);
    console.log(`median model-puller end to end  ${mPull.toFixed(0)} MB/s  (process start to exit: download, sha256, write, fsync, publish)`);
    if (pullerDl.length) console.log(`median model-puller download    ${median(pullerDl).toFixed(0)} MB/s  (its own timer: first byte requested to verified)`);
    if (rss.length) console.log(`model-puller max RSS            ${(median(rss) / 1024).toFixed(0)} MiB`);
    console.log(
      `CPU seconds per GB (client side, median): raw ${median(cpu.raw).toFixed(2)}, raw+sha256 ${median(cpu.sha).toFixed(2)}, ceiling ${median(cpu.ceil).toFixed(2)}` +
        (cpu.puller.length ? `, model-puller ${median(cpu.puller).toFixed(2)} (whole process: start-up, write, fsync, hash thread)` : ""),
    );
    console.log(`ratio puller / raw              ${((mPull / mRaw) * 100).toFixed(1)}%`);
    console.log(`ratio puller / raw+sha256       ${((mPull / mSha) * 100).toFixed(1)}%`);
    console.log(`ratio puller / ceiling          ${((mPull / median(ceil)) * 100).toFixed(1)}%`);
  } finally {
    server.kill();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
