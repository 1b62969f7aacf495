/**
 * Decode time and memory of V2 JSON inference requests: the streaming decoder
 * (runtime/src/codecs/v2-decoder.ts), whole and in 64 KiB chunks, against
 * JSON.parse + toInferenceRequest; and the 63 MB hostile `[{},{},…]` body.
 * Run: npx tsx bench/decode.ts  (add --expose-gc via NODE_OPTIONS for steadier RSS figures)
 */
import { toInferenceRequest } from "../runtime/src/codecs/v2.js";
import { decodeV2Request, V2RequestDecoder } from "../runtime/src/codecs/v2-decoder.js";

const CHUNK = 64 * 1024;
const utf8 = new TextEncoder();
const gc = (globalThis as { gc?: () => void }).gc;

function fp32Body(n: number): Uint8Array {
  const values = Array.from({ length: n }, () => Math.random());
  return utf8.encode(`{"inputs":[{"name":"INPUT0","shape":[1,${n}],"datatype":"FP32","data":[${values.join(",")}]}]}`);
}

function hostileBody(total: number): Uint8Array {
  const head = utf8.encode('{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[');
  const body = new Uint8Array(total);
  body.set(head);
  for (let i = head.length; i + 3 <= total; i += 3) body.set([0x7b, 0x7d, 0x2c], i);
  return body;
}

function chunked(body: Uint8Array): unknown {
  const decoder = new V2RequestDecoder({ byteLength: body.byteLength });
  for (let at = 0; at < body.byteLength; at += CHUNK) decoder.write(body.subarray(at, at + CHUNK));
  return decoder.end();
}

function viaJsonParse(body: Uint8Array): unknown {
  return toInferenceRequest(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body)), "m", undefined);
}

function measure(label: string, run: () => unknown, runs = 5): void {
  gc?.();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const times: number[] = [];
  let outcome = "ok";
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    try {
      run();
    } catch (err) {
      outcome = `refused: ${(err as Error).message.slice(0, 60)}`;
    }
    times.push(performance.now() - t0);
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  console.log(`${label.padEnd(48)} median ${median.toFixed(1).padStart(8)} ms  min ${times[0]!.toFixed(1).padStart(8)} ms  peak RSS +${((peak - rss0) / 2 ** 20).toFixed(0)} MiB  (${outcome})`);
}

const n = 1_000_000;
const body = fp32Body(n);
console.log(`1M-element FP32 request: ${(body.byteLength / 2 ** 20).toFixed(1)} MiB of JSON`);
measure("streaming decoder, one shot", () => decodeV2Request(body));
measure("streaming decoder, 64 KiB chunks", () => chunked(body));
measure("JSON.parse + toInferenceRequest", () => viaJsonParse(body));

const hostile = hostileBody(63 * 1024 * 1024);
console.log(`hostile [{},{},…] body: ${(hostile.byteLength / 2 ** 20).toFixed(0)} MiB`);
measure("streaming decoder, 64 KiB chunks (hostile)", () => chunked(hostile));
measure("JSON.parse + toInferenceRequest (hostile)", () => viaJsonParse(hostile), 1);
