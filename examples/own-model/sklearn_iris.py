#!/usr/bin/env python3
"""scikit-learn → ONNX with skl2onnx: a classifier on the iris data set, ready to serve.

    pip install scikit-learn skl2onnx
    python examples/own-model/sklearn_iris.py [REPOSITORY] [--name iris] [--zipmap]

Trains a StandardScaler + LogisticRegression pipeline on iris (bundled with scikit-learn,
no download), converts it with skl2onnx and writes

    REPOSITORY/NAME/1/model.onnx          (REPOSITORY defaults to ./models)
    REPOSITORY/NAME/model-settings.json   (the class names as labels)

The graph: input `input` FP32 [-1, 4] (sepal length, sepal width, petal length, petal width,
in cm) → `output_label` INT64 [-1] (class index) and `output_probability` FP32 [-1, 3].
skl2onnx ends a classifier with a ZipMap (a sequence of {class: probability} maps) unless told
not to; this script turns it off (`zipmap: False`) so the probabilities are a plain tensor.
`--zipmap` keeps skl2onnx's default, to see how the server treats it (docs/own-model.md).

`--expected FILE` also writes scikit-learn's own predictions for a few rows (JSON), so that
what the server answers can be checked against the model itself.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("repository", nargs="?", default="models", help="model repository (default: ./models)")
parser.add_argument("--name", default="iris", help="model name (default: iris)")
parser.add_argument("--version", default="1", help="version directory (default: 1)")
parser.add_argument("--zipmap", action="store_true", help="keep skl2onnx's ZipMap output (a sequence of maps)")
parser.add_argument("--expected", metavar="FILE", help="write scikit-learn's predictions for sample rows here (JSON)")
args = parser.parse_args()

iris = load_iris()
X = iris.data.astype(np.float32)  # ONNX input is FP32: train and check on the same values
y = iris.target
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
model.fit(X, y)
print(f"trained {type(model[-1]).__name__} on iris: {len(X)} rows, training accuracy {model.score(X, y):.3f}")

# ai.onnx 17 / ai.onnx.ml 3 load on every ONNX Runtime since 1.12 (the server's: 1.30).
onx = to_onnx(
    model,
    initial_types=[("input", FloatTensorType([None, X.shape[1]]))],  # None: any number of rows
    options={LogisticRegression: {"zipmap": args.zipmap}},
    target_opset={"": 17, "ai.onnx.ml": 3},
)
onnx.checker.check_model(onx)

version_dir = os.path.join(args.repository, args.name, args.version)
os.makedirs(version_dir, exist_ok=True)
path = os.path.join(version_dir, "model.onnx")
with open(path, "wb") as f:
    f.write(onx.SerializeToString())
settings_path = os.path.join(args.repository, args.name, "model-settings.json")
with open(settings_path, "w") as f:
    json.dump({"labels": [str(n) for n in iris.target_names],
               "parameters": {"framework": f"scikit-learn {sklearn.__version__}", "converter": f"skl2onnx {skl2onnx.__version__}"}}, f, indent=2)
    f.write("\n")

def describe(values):
    out = []
    for v in values:
        t = v.type
        if t.HasField("tensor_type"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.tensor_type.shape.dim]
            out.append(f"{v.name} {onnx.TensorProto.DataType.Name(t.tensor_type.elem_type)} {dims}")
        else:
            out.append(f"{v.name} ({t.WhichOneof('value')}: not a tensor)")
    return ", ".join(out)

opsets = ", ".join(sorted({f"{o.domain or 'ai.onnx'} {o.version}" for o in onx.opset_import}))
print(f"wrote {path} ({os.path.getsize(path)} bytes; IR {onx.ir_version}; opsets {opsets})")
print(f"  inputs:  {describe(onx.graph.input)}")
print(f"  outputs: {describe(onx.graph.output)}")
print(f"wrote {settings_path}")

rows = X[[0, 50, 100]]
if args.expected:
    with open(args.expected, "w") as f:
        json.dump({"input": rows.tolist(),
                   "label": model.predict(rows).tolist(),
                   "probabilities": model.predict_proba(rows).tolist(),
                   "labels": [str(n) for n in iris.target_names]}, f)
    print(f"wrote scikit-learn's predictions for 3 rows to {args.expected}")
print("scikit-learn predicts for rows 0, 50, 100:", model.predict(rows).tolist())
print("  probabilities:", [[round(float(p), 4) for p in row] for row in model.predict_proba(rows)])
