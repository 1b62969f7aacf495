#!/usr/bin/env python3
"""XGBoost → ONNX with onnxmltools: a binary classifier on the breast cancer data set.

    pip install xgboost onnxmltools scikit-learn
    python examples/own-model/xgboost_breast_cancer.py [REPOSITORY] [--name breast-cancer-xgb]

Trains an XGBClassifier on scikit-learn's bundled breast cancer data (569 rows, 30 features,
no download), converts it with onnxmltools.convert_xgboost and writes

    REPOSITORY/NAME/1/model.onnx          (REPOSITORY defaults to ./models)
    REPOSITORY/NAME/model-settings.json   (the class names as labels)

The graph: input `input` FP32 [-1, 30] → `label` INT64 [-1] and `probabilities` FP32 [-1, 2].
"""
import argparse
import json
import os

import numpy as np
import onnx
import onnxmltools
import xgboost
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer
from xgboost import XGBClassifier

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("repository", nargs="?", default="models", help="model repository (default: ./models)")
parser.add_argument("--name", default="breast-cancer-xgb", help="model name (default: breast-cancer-xgb)")
parser.add_argument("--version", default="1", help="version directory (default: 1)")
args = parser.parse_args()

data = load_breast_cancer()
X = data.data.astype(np.float32)
y = data.target
model = XGBClassifier(n_estimators=20, max_depth=3, learning_rate=0.3)
model.fit(X, y)
print(f"trained XGBClassifier ({model.n_estimators} trees) on breast cancer: {len(X)} rows, "
      f"training accuracy {(model.predict(X) == y).mean():.3f}")

onx = onnxmltools.convert_xgboost(model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))], target_opset=15)
onnx.checker.check_model(onx)

version_dir = os.path.join(args.repository, args.name, args.version)
os.makedirs(version_dir, exist_ok=True)
path = os.path.join(version_dir, "model.onnx")
with open(path, "wb") as f:
    f.write(onx.SerializeToString())
settings_path = os.path.join(args.repository, args.name, "model-settings.json")
with open(settings_path, "w") as f:
    json.dump({"labels": [str(n) for n in data.target_names],
               "parameters": {"framework": f"xgboost {xgboost.__version__}", "converter": f"onnxmltools {onnxmltools.__version__}"}}, f, indent=2)
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
row = X[:1]
print("first row:", json.dumps([round(float(v), 6) for v in row[0]]))
print("xgboost predicts for it:", model.predict(row).tolist(), "probabilities", [round(float(p), 4) for p in model.predict_proba(row)[0]])
