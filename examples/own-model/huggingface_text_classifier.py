#!/usr/bin/env python3
"""Hugging Face Transformers → ONNX with Optimum, offline: a tiny DistilBERT text classifier.

    pip install "optimum-onnx[onnxruntime]"          # brings torch and transformers
    python examples/own-model/huggingface_text_classifier.py [REPOSITORY] [--name tiny-distilbert]

A real model comes from the Hub in one command (docs/own-model.md):

    optimum-cli export onnx --model distilbert/distilbert-base-uncased-finetuned-sst-2-english \
        --task text-classification models/sst2/1/

This script needs no network: it builds a DistilBERT of the same architecture but tiny and with
random weights (its answers mean nothing), with a word-piece tokenizer over a small vocabulary,
saves both with save_pretrained to a temporary directory, and runs the same command on it:

    optimum-cli export onnx --model <that directory> --task text-classification REPOSITORY/NAME/1/

Optimum writes model.onnx (plus config.json and the tokenizer files, which the server ignores)
into the version directory. The script then writes REPOSITORY/NAME/model-settings.json with the
labels, tokenizes one sentence and prints its token ids and what transformers itself answers.

The graph, as for any DistilBERT classifier: `input_ids` and `attention_mask` INT64 [-1, -1]
(batch, sequence) → `logits` FP32 [-1, 2]. Tokenizing stays on the client.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import onnx
import torch
import transformers
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("repository", nargs="?", default="models", help="model repository (default: ./models)")
parser.add_argument("--name", default="tiny-distilbert", help="model name (default: tiny-distilbert)")
parser.add_argument("--version", default="1", help="version directory (default: 1)")
args = parser.parse_args()

torch.manual_seed(0)
words = "the a movie film was is great good bad terrible fantastic boring plot acting not very and".split()
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "!", ","] + words
config = DistilBertConfig(vocab_size=len(vocab), dim=32, hidden_dim=64, n_layers=2, n_heads=2, max_position_embeddings=64,
                          id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
model = DistilBertForSequenceClassification(config).eval()

version_dir = os.path.join(args.repository, args.name, args.version)
with tempfile.TemporaryDirectory() as source:
    with open(os.path.join(source, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    tokenizer = DistilBertTokenizerFast(vocab_file=os.path.join(source, "vocab.txt"), do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(source)
    model.save_pretrained(source)
    print(f"built a random {config.n_layers}-layer DistilBERT ({sum(p.numel() for p in model.parameters()):,} parameters) in a temporary directory")
    if os.path.isdir(version_dir):
        shutil.rmtree(version_dir)
    optimum_cli = shutil.which("optimum-cli", path=os.path.dirname(sys.executable)) or "optimum-cli"
    cmd = [optimum_cli, "export", "onnx", "--model", source, "--task", "text-classification", version_dir]
    print(f"$ optimum-cli export onnx --model <that directory> --task text-classification {version_dir}/")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"optimum-cli failed:\n{done.stdout}\n{done.stderr}")

path = os.path.join(version_dir, "model.onnx")
onx = onnx.load(path)
settings_path = os.path.join(args.repository, args.name, "model-settings.json")
with open(settings_path, "w") as f:
    json.dump({"labels": [config.id2label[i] for i in range(config.num_labels)],
               "parameters": {"framework": f"transformers {transformers.__version__}", "note": "random weights: mechanics only"}}, f, indent=2)
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
print(f"  beside it: {', '.join(sorted(n for n in os.listdir(version_dir) if n != 'model.onnx'))}")
print(f"wrote {settings_path}")

sentence = "The movie was great!"
encoded = tokenizer([sentence], return_tensors="pt")
with torch.no_grad():
    logits = model(**encoded).logits
print(f"tokenized {sentence!r}:")
print("  input_ids:     ", encoded["input_ids"][0].tolist())
print("  attention_mask:", encoded["attention_mask"][0].tolist())
print("transformers answers logits", [round(float(v), 6) for v in logits[0]])
