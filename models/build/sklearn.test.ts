/**
 * The classifier builder writes the graph skl2onnx 1.20 writes for sklearn's LogisticRegression
 * (compared with a real export: same nodes, domains, attributes, opset imports and output types;
 * only the weights differ).
 */
import { describe, expect, it } from "vitest";
import { buildLinearClassifier } from "./sklearn.js";
import { onnx } from "./onnx.js";

/** The model as plain objects, int64s as numbers, every repeated field present. */
const decode = (bytes: Uint8Array): any => onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes), { longs: Number, arrays: true });
const text = (b: Uint8Array) => Buffer.from(b).toString();
const A = onnx.AttributeProto.AttributeType;
const T = onnx.TensorProto.DataType;

describe("skl2onnx-shaped classifiers", () => {
  it("multinomial, integer classes: LinearClassifier → Cast → output_label, Normalizer → ZipMap → output_probability", () => {
    const m = decode(buildLinearClassifier({ labels: [0, 1, 2], features: 4 }));
    expect(m.opsetImport.map((o: { domain: string; version: number }) => [o.domain, o.version])).toEqual([["", 17], ["ai.onnx.ml", 1]]);
    const g = m.graph;
    expect(g.node.map((n: any) => [n.opType, n.domain ?? "", n.input, n.output])).toEqual([
      ["LinearClassifier", "ai.onnx.ml", ["X"], ["label", "probability_tensor"]],
      ["Cast", "", ["label"], ["output_label"]],
      ["Normalizer", "ai.onnx.ml", ["probability_tensor"], ["probabilities"]],
      ["ZipMap", "ai.onnx.ml", ["probabilities"], ["output_probability"]],
    ]);
    const linear = Object.fromEntries(g.node[0].attribute.map((a: any) => [a.name, a]));
    expect(linear.classlabels_ints.type).toBe(A.INTS);
    expect(linear.multi_class.i).toEqual(1);
    expect(text(linear.post_transform.s)).toBe("SOFTMAX");
    const zipmap = g.node[3].attribute[0];
    expect([zipmap.name, zipmap.type, zipmap.ints]).toEqual(["classlabels_int64s", A.INTS, [0, 1, 2]]);
    expect(g.output[0].type.tensorType).toMatchObject({ elemType: T.INT64, shape: { dim: [{}] } });
    expect(g.output[1].type.sequenceType.elemType.mapType).toMatchObject({ keyType: T.INT64, valueType: { tensorType: { elemType: T.FLOAT } } });
  });

  it("string classes: Identity for the label, classlabels_strings on ZipMap", () => {
    const g = decode(buildLinearClassifier({ labels: ["a", "b", "c"], features: 4 })).graph;
    expect(g.node.map((n: any) => n.opType)).toEqual(["LinearClassifier", "Identity", "Normalizer", "ZipMap"]);
    expect(g.node[3].attribute[0].strings.map(text)).toEqual(["a", "b", "c"]);
    expect(g.output[1].type.sequenceType.elemType.mapType.keyType).toBe(T.STRING);
  });

  it("two classes: LOGISTIC on [-w, w], no Normalizer", () => {
    const g = decode(buildLinearClassifier({ labels: [0, 1], features: 2, coefficients: [1.5, -2], intercepts: [0.5] })).graph;
    expect(g.node.map((n: any) => n.opType)).toEqual(["LinearClassifier", "Cast", "ZipMap"]);
    const linear = Object.fromEntries(g.node[0].attribute.map((a: any) => [a.name, a]));
    expect(linear.coefficients.floats).toEqual([-1.5, 2, 1.5, -2]);
    expect(linear.intercepts.floats).toEqual([-0.5, 0.5]);
    expect(linear.multi_class.i).toEqual(0);
    expect(text(linear.post_transform.s)).toBe("LOGISTIC");
  });
});
