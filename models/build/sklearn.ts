/**
 * Classifiers as skl2onnx exports them (sklearn's LogisticRegression, skl2onnx 1.20), built
 * with this repository's ONNX builder for the tests of ZipMap outputs:
 *
 *   X: FP32 [?, features]
 *   LinearClassifier (ai.onnx.ml) → label, probability_tensor
 *   label → Cast to INT64 (integer classes) or Identity (string classes) → output_label [?]
 *   probability_tensor → Normalizer L1 → probabilities        (multinomial; two classes: none, LOGISTIC)
 *   probabilities → ZipMap (classlabels_int64s | classlabels_strings) → output_probability,
 *     a seq(map(int64 | string, tensor(float))): one class → probability map per row
 *
 * Node names, attributes, opset imports ("" 17, ai.onnx.ml 1) and the outputs' declared types
 * (unknown row dimension, no shape on the sequence) are skl2onnx's, checked against a real
 * LogisticRegression export; only the weights are made up.
 */
import { elemType, model, node, type OnnxTypes } from "./onnx.js";

export interface LinearClassifierSpec {
  /** Class labels: integers (sklearn classes_ of ints) or strings. Two classes build the binary form. */
  labels: number[] | string[];
  /** Features per row. */
  features: number;
  /**
   * sklearn's coef_, row-major: classes × features, or features alone for two classes (the second
   * class's weights; skl2onnx writes [-w, w] and LOGISTIC). Default: a fixed pattern.
   */
  coefficients?: number[];
  /** sklearn's intercept_: one per class, or one for two classes. Default: zeros. */
  intercepts?: number[];
  name?: string;
}

/** A tensor value info whose dimensions may be unknown (null), as skl2onnx writes `None`. */
function tensorInfo(name: string, type: "FLOAT" | "INT64" | "STRING", shape: (number | null)[]): OnnxTypes.IValueInfoProto {
  return { name, type: { tensorType: { elemType: elemType(type), shape: { dim: shape.map((d) => (d === null ? {} : { dimValue: d })) } } } };
}

/** seq(map(key, tensor(float))): ZipMap's output type. */
function sequenceOfMaps(name: string, key: "INT64" | "STRING"): OnnxTypes.IValueInfoProto {
  return { name, type: { sequenceType: { elemType: { mapType: { keyType: elemType(key), valueType: { tensorType: { elemType: elemType("FLOAT") } } } } } } };
}

export function buildLinearClassifier(spec: LinearClassifierSpec): Uint8Array {
  const { labels, features } = spec;
  const classes = labels.length;
  if (classes < 2) throw new Error("a classifier needs two classes or more");
  const strings = typeof labels[0] === "string";
  const binary = classes === 2;
  const rows = binary ? 1 : classes;
  const coef = spec.coefficients ?? Array.from({ length: rows * features }, (_, i) => ((i * 7) % 5) - 2 + 0.25);
  const intercept = spec.intercepts ?? new Array<number>(rows).fill(0);
  if (coef.length !== rows * features || intercept.length !== rows) throw new Error(`expected ${rows}×${features} coefficients and ${rows} intercepts`);
  const coefficients = binary ? [...coef.map((w) => -w), ...coef] : coef;
  const intercepts = binary ? [-intercept[0]!, intercept[0]!] : intercept;
  const probabilities = binary ? "probabilities" : "probability_tensor";
  const nodes: OnnxTypes.INodeProto[] = [
    node(
      "LinearClassifier",
      ["X"],
      ["label", probabilities],
      {
        [strings ? "classlabels_strings" : "classlabels_ints"]: labels,
        coefficients: { floats: coefficients },
        intercepts: { floats: intercepts },
        multi_class: binary ? 0 : 1,
        post_transform: binary ? "LOGISTIC" : "SOFTMAX",
      },
      "ai.onnx.ml",
    ),
    strings ? node("Identity", ["label"], ["output_label"]) : node("Cast", ["label"], ["output_label"], { to: elemType("INT64") }),
  ];
  if (!binary) nodes.push(node("Normalizer", ["probability_tensor"], ["probabilities"], { norm: "L1" }, "ai.onnx.ml"));
  nodes.push(node("ZipMap", ["probabilities"], ["output_probability"], { [strings ? "classlabels_strings" : "classlabels_int64s"]: labels }, "ai.onnx.ml"));
  return model(
    {
      name: spec.name ?? "ONNX(LogisticRegression)",
      nodes,
      inputs: [tensorInfo("X", "FLOAT", [null, features])],
      outputs: [tensorInfo("output_label", strings ? "STRING" : "INT64", [null]), sequenceOfMaps("output_probability", strings ? "STRING" : "INT64")],
    },
    { opsets: { "": 17, "ai.onnx.ml": 1 } },
  );
}

/**
 * The same classifier reduced to ai.onnx.ml operators only (no default-domain opset import, as a
 * hand-made or older converter's graph may be): LinearClassifier → ZipMap, label straight out.
 */
export function buildMlOnlyClassifier(labels: number[], features: number): Uint8Array {
  const classes = labels.length;
  return model(
    {
      name: "ml_only_classifier",
      nodes: [
        node(
          "LinearClassifier",
          ["X"],
          ["output_label", "probabilities"],
          {
            classlabels_ints: labels,
            coefficients: { floats: Array.from({ length: classes * features }, (_, i) => (i % 3) - 1 + 0.5) },
            intercepts: { floats: new Array<number>(classes).fill(0) },
            post_transform: "SOFTMAX",
          },
          "ai.onnx.ml",
        ),
        node("ZipMap", ["probabilities"], ["output_probability"], { classlabels_int64s: labels }, "ai.onnx.ml"),
      ],
      inputs: [tensorInfo("X", "FLOAT", [null, features])],
      outputs: [tensorInfo("output_label", "INT64", [null]), sequenceOfMaps("output_probability", "INT64")],
    },
    { opsets: { "ai.onnx.ml": 1 } },
  );
}

/**
 * A graph with an output that is a sequence of tensors (SequenceConstruct) and, unless `only`, a
 * tensor output beside it: what ONNX Runtime's Node.js API cannot return, other than a ZipMap.
 */
export function buildSequenceOutputModel(only = false): Uint8Array {
  const nodes = [node("SequenceConstruct", ["INPUT", "INPUT"], ["PAIR"])];
  const outputs: OnnxTypes.IValueInfoProto[] = [{ name: "PAIR", type: { sequenceType: { elemType: { tensorType: { elemType: elemType("FLOAT") } } } } }];
  if (!only) {
    nodes.push(node("Identity", ["INPUT"], ["OUTPUT"]));
    outputs.push(tensorInfo("OUTPUT", "FLOAT", [null]));
  }
  return model({ name: only ? "sequence_only" : "sequence_beside_tensor", nodes, inputs: [tensorInfo("INPUT", "FLOAT", [null])], outputs });
}
