#!/usr/bin/env python3
"""TensorFlow (Keras) → ONNX with tf2onnx: a small classifier on the wine data set.

    pip install tensorflow tf2onnx scikit-learn
    python examples/own-model/tensorflow_wine.py [REPOSITORY] [--name wine-tf]

Trains a Keras model on scikit-learn's bundled wine data (178 rows, 13 features, 3 classes,
no download), saves it as a SavedModel (model.export) and converts that with tf2onnx's
command line, as you would convert any SavedModel:

    python -m tf2onnx.convert --saved-model DIR --output REPOSITORY/NAME/1/model.onnx --opset 17

and writes REPOSITORY/NAME/model-settings.json (the class names as labels).

The graph: input `features` FP32 [-1, 13] → `probabilities` FP32 [-1, 3] (normalisation and
softmax inside the graph, so clients send the raw measurements).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from sklearn.datasets import load_wine

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("repository", nargs="?", default="models", help="model repository (default: ./models)")
parser.add_argument("--name", default="wine-tf", help="model name (default: wine-tf)")
parser.add_argument("--version", default="1", help="version directory (default: 1)")
args = parser.parse_args()

tf.keras.utils.set_random_seed(0)
wine = load_wine()
X = wine.data.astype(np.float32)
y = wine.target
norm = tf.keras.layers.Normalization()
norm.adapt(X)
inputs = tf.keras.Input(shape=(X.shape[1],), name="features")
hidden = tf.keras.layers.Dense(16, activation="relu")(norm(inputs))
outputs = tf.keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
model = tf.keras.Model(inputs, outputs)
model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=60, batch_size=32, verbose=0)
print(f"trained a Keras MLP on wine: {len(X)} rows, training accuracy {model.evaluate(X, y, verbose=0)[1]:.3f}")

version_dir = os.path.join(args.repository, args.name, args.version)
os.makedirs(version_dir, exist_ok=True)
path = os.path.join(version_dir, "model.onnx")
with tempfile.TemporaryDirectory() as saved:
    # A SavedModel whose serving signature takes `features` and answers `probabilities`.
    export = tf.keras.export.ExportArchive()
    export.track(model)
    export.add_endpoint(
        name="serving_default",
        fn=lambda features: {"probabilities": model(features)},
        input_signature=[tf.TensorSpec([None, X.shape[1]], tf.float32, name="features")],
    )
    export.write_out(saved, verbose=False)
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--output", path, "--opset", "17"]
    print(f"$ python -m tf2onnx.convert --saved-model <SavedModel dir> --output {path} --opset 17")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

onx = onnx.load(path)
onnx.checker.check_model(onx)
settings_path = os.path.join(args.repository, args.name, "model-settings.json")
with open(settings_path, "w") as f:
    json.dump({"labels": [str(n) for n in wine.target_names],
               "parameters": {"framework": f"tensorflow {tf.__version__}", "converter": f"tf2onnx {tf2onnx.__version__}"}}, f, indent=2)
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
print("first row:", json.dumps([round(float(v), 4) for v in row[0]]))
print("keras predicts:", [float(f"{p:.6g}") for p in model.predict(row, verbose=0)[0]])
