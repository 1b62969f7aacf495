#!/usr/bin/env python3
"""PyTorch → ONNX with torch.onnx.export: a small MLP on the 8×8 digits data set.

    pip install torch onnx onnxscript scikit-learn
    python examples/own-model/pytorch_digits.py [REPOSITORY] [--name digits-torch]

Trains a two-layer MLP for a few seconds on scikit-learn's bundled digits (1,797 images of
8×8 pixels, values 0–16, no download), exports it with torch.onnx.export (the dynamo-based
exporter, opset 18) with a dynamic batch dimension, and writes

    REPOSITORY/NAME/1/model.onnx          (REPOSITORY defaults to ./models)
    REPOSITORY/NAME/model-settings.json   (labels "0".."9")

The graph: input `pixels` FP32 [-1, 64] → `probabilities` FP32 [-1, 10] (softmax inside the
graph) and `label` INT64 [-1] (argmax).
"""
import argparse
import json
import os

import numpy as np
import onnx
import torch
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("repository", nargs="?", default="models", help="model repository (default: ./models)")
parser.add_argument("--name", default="digits-torch", help="model name (default: digits-torch)")
parser.add_argument("--version", default="1", help="version directory (default: 1)")
args = parser.parse_args()

torch.manual_seed(0)
digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32)
y = torch.tensor(digits.target)

mlp = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
opt = torch.optim.Adam(mlp.parameters(), lr=0.01)
for epoch in range(200):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(mlp(X / 16), y)
    loss.backward()
    opt.step()
accuracy = (mlp(X / 16).argmax(1) == y).float().mean().item()
print(f"trained an MLP on digits: {len(X)} images, training accuracy {accuracy:.3f}")


class Served(torch.nn.Module):
    """What is exported: scaling, the MLP, softmax and argmax in one graph, so clients send raw pixels."""

    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp

    def forward(self, pixels):
        probabilities = torch.softmax(self.mlp(pixels / 16), dim=1)
        return probabilities, probabilities.argmax(dim=1)


served = Served(mlp).eval()
version_dir = os.path.join(args.repository, args.name, args.version)
os.makedirs(version_dir, exist_ok=True)
path = os.path.join(version_dir, "model.onnx")
batch = torch.export.Dim("batch")
torch.onnx.export(
    served,
    (X[:2],),
    path,
    input_names=["pixels"],
    output_names=["probabilities", "label"],
    dynamic_shapes={"pixels": {0: batch}},  # any number of rows
    opset_version=18,
    dynamo=True,
    external_data=False,  # one self-contained file
)
onx = onnx.load(path)
onnx.checker.check_model(onx)

settings_path = os.path.join(args.repository, args.name, "model-settings.json")
with open(settings_path, "w") as f:
    json.dump({"labels": [str(d) for d in range(10)], "parameters": {"framework": f"torch {torch.__version__}"}}, f, indent=2)
    f.write("\n")


def describe(values):
    out = []
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        out.append(f"{v.name} {onnx.TensorProto.DataType.Name(t.elem_type)} {dims}")
    return ", ".join(out)


opsets = ", ".join(sorted({f"{o.domain or 'ai.onnx'} {o.version}" for o in onx.opset_import}))
print(f"wrote {path} ({os.path.getsize(path)} bytes; IR {onx.ir_version}; opsets {opsets})")
print(f"  inputs:  {describe(onx.graph.input)}")
print(f"  outputs: {describe(onx.graph.output)}")
print(f"wrote {settings_path}")
row = X[:1]
with torch.no_grad():
    probabilities, label = served(row)
print(f"image 0 (a {int(y[0])}):", json.dumps([int(v) for v in row[0]]))
print(f"torch predicts: {label.tolist()} with probability {float(probabilities[0, label[0]]):.6f}")
