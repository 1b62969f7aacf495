/**
 * Builds and parses bodies the way NVIDIA Triton's HTTP clients do: a JSON
 * header, then each binary input's raw bytes in order, with the header's length
 * in Inference-Header-Content-Length.
 */
export interface BinaryInput {
  name: string;
  datatype: string;
  shape: number[];
  /** Raw little-endian bytes; JSON inputs pass `data` instead. */
  bytes?: Uint8Array;
  data?: unknown[];
}

export function bytesTensor(items: string[]): Uint8Array {
  const parts = items.map((s) => Buffer.from(s, "utf8"));
  const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.writeUInt32LE(p.length, o);
    p.copy(out, o + 4);
    o += 4 + p.length;
  }
  return new Uint8Array(out);
}

export function buildBinaryRequest(
  inputs: BinaryInput[],
  extra: { outputs?: { name: string; parameters?: Record<string, unknown> }[]; parameters?: Record<string, unknown>; id?: string } = {},
): { body: Uint8Array; headers: Record<string, string> } {
  const header = {
    ...(extra.id ? { id: extra.id } : {}),
    inputs: inputs.map((i) =>
      i.bytes
        ? { name: i.name, shape: i.shape, datatype: i.datatype, parameters: { binary_data_size: i.bytes.byteLength } }
        : { name: i.name, shape: i.shape, datatype: i.datatype, data: i.data },
    ),
    ...(extra.outputs ? { outputs: extra.outputs } : {}),
    ...(extra.parameters ? { parameters: extra.parameters } : {}),
  };
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const body = Buffer.concat([json, ...inputs.filter((i) => i.bytes).map((i) => i.bytes!)]);
  return { body: new Uint8Array(body), headers: { "Inference-Header-Content-Length": String(json.byteLength), "Content-Type": "application/octet-stream" } };
}

export interface ParsedOutput {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, unknown>;
  data?: unknown[];
  bytes?: Uint8Array;
}

/** Splits a response into its JSON header and each binary output's bytes. */
export async function parseBinaryResponse(res: Response): Promise<{ json: Record<string, unknown>; outputs: ParsedOutput[] }> {
  const body = new Uint8Array(await res.arrayBuffer());
  const headerLength = res.headers.get("inference-header-content-length");
  const jsonLength = headerLength === null ? body.byteLength : Number(headerLength);
  const json = JSON.parse(Buffer.from(body.subarray(0, jsonLength)).toString("utf8")) as Record<string, unknown>;
  let offset = jsonLength;
  const outputs = ((json.outputs ?? []) as ParsedOutput[]).map((o) => {
    const size = o.parameters?.binary_data_size;
    if (typeof size !== "number") return o;
    const bytes = body.slice(offset, offset + size);
    offset += size;
    return { ...o, bytes };
  });
  if (offset !== body.byteLength) throw new Error(`response has ${body.byteLength - offset} unexplained bytes`);
  return { json, outputs };
}
