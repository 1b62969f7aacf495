#!/usr/bin/env python3
"""LightGBM → ONNX with onnxmltools: a regressor on the diabetes data set.

    pip install lightgbm onnxmltools scikit-learn
    python examples/own-model/lightgbm_diabetes.py [REPOSITORY] [--name diabetes-lgbm]

Trains an LGBMRegressor on scikit-learn's bundled diabetes data (442 rows, 10 features, no
download), converts it with onnxmltools.convert_lightgbm and writes

    REPOSITORY/NAME/1/model.onnx          (REPOSITORY defaults to ./models)
    REPOSITORY/NAME/model-settings.json

The graph: input `input` FP32 [-1, 10] → `variable` FP32 [-1, 1] (disease progression one
year later). A classifier converts the same way; pass `zipmap=False` to convert_lightgbm so its
probabilities come out as a tensor rather than a ZipMap.
"""
import argparse
import json
import os

import lightgbm
import numpy as np
import onnx
import onnxmltools
from lightgbm import LGBMRegressor
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("repository", nargs="?", default="models", help="model repository (default: ./models)")
parser.add_argument("--name", default="diabetes-lgbm", help="model name (default: diabetes-lgbm)")
parser.add_argument("--version", default="1", help="version directory (default: 1)")
args = parser.parse_args()

data = load_diabetes()
X = data.data.astype(np.float32)
y = data.target
model = LGBMRegressor(n_estimators=50, num_leaves=8, verbose=-1)
model.fit(X, y)
print(f"trained LGBMRegressor ({model.n_estimators} trees) on diabetes: {len(X)} rows, training R² {model.score(X, y):.3f}")

onx = onnxmltools.convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))], target_opset=15)
onnx.checker.check_model(onx)

version_dir = os.path.join(args.repository, args.name, args.version)
os.makedirs(version_dir, exist_ok=True)
path = os.path.join(version_dir, "model.onnx")
with open(path, "wb") as f:
    f.write(onx.SerializeToString())
settings_path = os.path.join(args.repository, args.name, "model-settings.json")
with open(settings_path, "w") as f:
    json.dump({"parameters": {"framework": f"lightgbm {lightgbm.__version__}", "converter": f"onnxmltools {onnxmltools.__version__}"}}, f, indent=2)
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
rows = X[:2]
print("first two rows:", json.dumps([[round(float(v), 6) for v in r] for r in rows]))
print("lightgbm predicts for them:", [round(float(p), 4) for p in model.predict(rows)])
