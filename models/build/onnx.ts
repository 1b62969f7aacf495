/**
 * A small, deterministic ONNX graph builder on top of onnx-proto's protobufjs
 * bindings. Every model in models/ and every test fixture is built with it, so
 * the committed .onnx files can be rebuilt byte for byte: protobufjs encodes
 * fields in declaration order and we never put maps or timestamps in a model.
 */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";

export const onnx = onnxProto.onnx;
export type { OnnxTypes };

export type ElemType =
  | "FLOAT" | "UINT8" | "INT8" | "UINT16" | "INT16" | "INT32" | "INT64" | "STRING"
  | "BOOL" | "FLOAT16" | "DOUBLE" | "UINT32" | "UINT64" | "BFLOAT16";

export const elemType = (t: ElemType): number => onnx.TensorProto.DataType[t];

/** A dimension is a fixed size, or a symbolic name (dynamic: -1 in V2 metadata). */
export type Dim = number | string;

export function valueInfo(name: string, type: ElemType, shape: Dim[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: elemType(type),
        shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

type AttrValue = number | string | number[] | string[] | OnnxTypes.ITensorProto | { float: number } | { floats: number[] };

function attribute(name: string, value: AttrValue): OnnxTypes.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof value === "number") {
    return Number.isInteger(value) ? { name, type: A.INT, i: value } : { name, type: A.FLOAT, f: value };
  }
  if (typeof value === "string") return { name, type: A.STRING, s: Buffer.from(value, "utf8") };
  if (Array.isArray(value)) {
    if (value.length > 0 && typeof value[0] === "string") {
      return { name, type: A.STRINGS, strings: (value as string[]).map((s) => Buffer.from(s, "utf8")) };
    }
    const nums = value as number[];
    return nums.every((n) => Number.isInteger(n))
      ? { name, type: A.INTS, ints: nums }
      : { name, type: A.FLOATS, floats: nums };
  }
  if ("float" in value) return { name, type: A.FLOAT, f: value.float };
  if ("floats" in value) return { name, type: A.FLOATS, floats: value.floats };
  return { name, type: A.TENSOR, t: value };
}

export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, AttrValue> = {},
  domain = "",
): OnnxTypes.INodeProto {
  return {
    opType,
    input: inputs,
    output: outputs,
    name: `${opType}_${outputs[0]}`,
    domain,
    attribute: Object.keys(attrs).sort().map((k) => attribute(k, attrs[k]!)),
  };
}

/** A constant tensor (an initializer or a Constant node's value). */
export function tensor(name: string, type: ElemType, dims: number[], values: ArrayLike<number> | string[]): OnnxTypes.ITensorProto {
  const t: OnnxTypes.ITensorProto = { name, dataType: elemType(type), dims };
  switch (type) {
    case "FLOAT": {
      const a = Float32Array.from(values as ArrayLike<number>);
      t.rawData = new Uint8Array(a.buffer);
      break;
    }
    case "DOUBLE":
      t.rawData = new Uint8Array(Float64Array.from(values as ArrayLike<number>).buffer);
      break;
    case "INT64":
      t.rawData = new Uint8Array(BigInt64Array.from(Array.from(values as ArrayLike<number>, (v) => BigInt(v))).buffer);
      break;
    case "INT32":
      t.rawData = new Uint8Array(Int32Array.from(values as ArrayLike<number>).buffer);
      break;
    case "STRING":
      t.stringData = (values as string[]).map((s) => Buffer.from(s, "utf8"));
      break;
    default:
      throw new Error(`tensor(): constant of type ${type} is not needed yet`);
  }
  return t;
}

export interface GraphSpec {
  name: string;
  nodes: OnnxTypes.INodeProto[];
  inputs: OnnxTypes.IValueInfoProto[];
  outputs: OnnxTypes.IValueInfoProto[];
  initializers?: OnnxTypes.ITensorProto[];
  docString?: string;
}

export interface ModelOptions {
  /** Opset imports, e.g. { "": 17, "com.microsoft": 1 }. */
  opsets?: Record<string, number>;
  docString?: string;
  metadata?: Record<string, string>;
}

export function model(graph: GraphSpec, options: ModelOptions = {}): Uint8Array {
  const opsets = options.opsets ?? { "": 17 };
  const proto: OnnxTypes.IModelProto = {
    irVersion: 8,
    producerName: "inference-runtime models/build",
    producerVersion: "1",
    docString: options.docString ?? "",
    opsetImport: Object.keys(opsets).sort().map((domain) => ({ domain, version: opsets[domain]! })),
    metadataProps: Object.entries(options.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes,
      input: graph.inputs,
      output: graph.outputs,
      initializer: graph.initializers ?? [],
      docString: graph.docString ?? "",
    },
  };
  const err = onnx.ModelProto.verify(proto);
  if (err) throw new Error(`invalid ONNX model ${graph.name}: ${err}`);
  return onnx.ModelProto.encode(onnx.ModelProto.create(proto)).finish();
}
