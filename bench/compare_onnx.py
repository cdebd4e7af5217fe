#!/usr/bin/python3
"""crayon's integer engine beside ONNX Runtime on the same exported models, side by side.

  /usr/bin/python3 bench/compare_onnx.py [--rounds 3] [--models lenet5,mlp,cifar-cnn]
      [--cifar-dir ../shared/data/cifar10]

For each model: a QAT checkpoint (trained here for one epoch if out/onnx-bench/ lacks it:
speed does not depend on how well a model is trained), its int8 file, its QDQ ONNX export and
the float ONNX export of the same weights without the grids. Then, for batch 1 and 256 and 1
and 2 threads, alternating in each round: crayon (bench_infer: the int8 engine from raw
pixels, and crayon's fp32 forward) and ONNX Runtime (bench/ort_infer.js: QDQ int8 and fp32,
from float pixels). Prints every raw line, then a table of medians over the rounds.
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRAYON = os.path.join(ROOT, "build", "apps", "crayon")
BENCH_INFER = os.path.join(ROOT, "build", "bench", "bench_infer")
OUT = os.path.join(ROOT, "out", "onnx-bench")


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def dataset_of(model):
    return "cifar10" if model == "cifar-cnn" else "mnist"


def ensure_models(model, cifar_dir):
    os.makedirs(OUT, exist_ok=True)
    qat = os.path.join(OUT, f"{model}-qat.h5")
    data = ["--dataset", "cifar10", "--data-dir", cifar_dir] if model == "cifar-cnn" else []
    if not os.path.exists(qat):
        run([CRAYON, "train", "--model", model, "--epochs", "1", "--qat", "--out", qat, "--quiet"] + data)
    files = {"qat": qat, "int8": os.path.join(OUT, f"{model}.int8.h5"), "qdq": os.path.join(OUT, f"{model}-qdq.onnx"),
             "fp32": os.path.join(OUT, f"{model}-fp32.onnx")}
    run([CRAYON, "export", "--model", qat, "--out", files["int8"], "--quiet"])
    run([CRAYON, "export", "--model", qat, "--format", "onnx", "--out", files["qdq"], "--quiet"])
    run([CRAYON, "export", "--model", qat, "--format", "onnx", "--float", "--out", files["fp32"], "--quiet"])
    return files


def test_images(model, cifar_dir):
    """The test set as ort_infer.js reads it: float32 pixels / 255, NCHW; returns (path, n, c, h, w)."""
    path = os.path.join(OUT, f"{dataset_of(model)}-test.f32")
    if dataset_of(model) == "mnist":
        with gzip.open(os.path.join(ROOT, "data", "mnist", "t10k-images-idx3-ubyte.gz")) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    else:
        names = sorted(n for n in os.listdir(cifar_dir) if n.startswith("test_batch"))
        raw = np.fromfile(os.path.join(cifar_dir, names[0]), np.uint8).reshape(-1, 3073)
        x = raw[:, 1:].reshape(-1, 3, 32, 32)
    if not os.path.exists(path):
        (x.astype(np.float32) / np.float32(255)).tofile(path)
    return (path,) + x.shape


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="lenet5,mlp,cifar-cnn")
    ap.add_argument("--cifar-dir", default=os.path.join(ROOT, "..", "shared", "data", "cifar10"))
    a = ap.parse_args()
    results = {}
    for model in a.models.split(","):
        files = ensure_models(model, a.cifar_dir)
        images = test_images(model, a.cifar_dir)
        for r in range(a.rounds):
            for threads in (1, 2):
                for batch in (1, 256):
                    runs = "3" if batch == 1 else "7"
                    for line in run([BENCH_INFER, "--checkpoint", files["qat"], "--int8", files["int8"], "--threads",
                                     str(threads), "--batch", str(batch), "--runs", runs]).splitlines():
                        print(line, flush=True)
                        j = json.loads(line)
                        key = "crayon int8" if j["config"].startswith("int8") else "crayon fp32"
                        results.setdefault((model, threads, batch, key), []).append(j["images_per_s"])
                    for kind in ("qdq", "fp32"):
                        line = run(["node", os.path.join(ROOT, "bench", "ort_infer.js"), files[kind], *map(str, images),
                                    "--threads", str(threads), "--batch", str(batch), "--runs", runs]).strip()
                        print(line, flush=True)
                        key = "ORT int8 (QDQ)" if kind == "qdq" else "ORT fp32"
                        results.setdefault((model, threads, batch, key), []).append(json.loads(line)["images_per_s"])
    keys = ["crayon int8", "ORT int8 (QDQ)", "crayon fp32", "ORT fp32"]
    print("\n| model | threads | batch | " + " | ".join(keys) + " | crayon int8 / ORT int8 | crayon int8 / ORT best |")
    print("|---|---|---|" + "---|" * (len(keys) + 2))
    for model in a.models.split(","):
        for threads in (1, 2):
            for batch in (1, 256):
                med = {k: statistics.median(results[(model, threads, batch, k)]) for k in keys}
                best = max(med["ORT int8 (QDQ)"], med["ORT fp32"])
                print(f"| {model} | {threads} | {batch} | " + " | ".join(f"{med[k]:,.0f}" for k in keys) +
                      f" | {med['crayon int8'] / med['ORT int8 (QDQ)']:.2f}x | {med['crayon int8'] / best:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
