#!/usr/bin/python3
"""Inference throughput side by side in one run: crayon fp32 and crayon's int8 engine
(build/bench/bench_infer) beside PyTorch fp32 and int8 (bench/torch_infer.py, onednn and
qnnpack, eager and TorchScript), batch 256, 2 threads, on the 10000 MNIST test images.
Alternates the two frameworks ROUNDS times and prints medians as a Markdown table.

The crayon models are made first if missing: 3 epochs of 8-bit QAT (lr 0.05 cosine), then
`crayon export`, in out/bench/infer/. PyTorch's int8 is post-training static quantization of
its float model (weights only matter for accuracy, not speed). PyTorch runs with
OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS=1, its best configuration on this shared
machine (bench/README.md).

  /usr/bin/python3 bench/compare_infer.py [--rounds 3] [--models lenet5,mlp]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CRAYON = os.path.join(ROOT, "build", "apps", "crayon")
BENCH = os.path.join(ROOT, "build", "bench", "bench_infer")
OUT = os.path.join(ROOT, "out", "bench", "infer")


def ensure_models(model):
    qat, int8 = os.path.join(OUT, f"{model}-qat.h5"), os.path.join(OUT, f"{model}.int8.h5")
    if not os.path.exists(int8):
        os.makedirs(OUT, exist_ok=True)
        subprocess.run([CRAYON, "train", "--model", model, "--epochs", "3", "--lr", "0.05", "--lr-schedule", "cosine",
                        "--qat", "--out", qat, "--quiet"], check=True)
        subprocess.run([CRAYON, "export", "--model", qat, "--out", int8, "--quiet"], check=True)
    return qat, int8


def crayon_rates(model, threads):
    qat, int8 = ensure_models(model)
    out = subprocess.run([BENCH, "--checkpoint", qat, "--int8", int8, "--threads", str(threads), "--runs", "5"],
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {"crayon " + r["config"].split(" ")[0]: r["images_per_s"] for r in rows}


def torch_rates(model, threads):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_infer.py"), "--models", model,
                          "--threads", str(threads), "--train-epochs", "0", "--passes", "5",
                          "--configs", "fp32,fp32-jit,int8-onednn,int8-onednn-jit,int8-qnnpack"],
                         check=True, capture_output=True, text=True, env=env).stdout
    rates = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rates["PyTorch " + r["config"]] = r["images_per_s"]
    return rates


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="lenet5,mlp")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for model in args.models.split(","):
        runs = {}
        for _ in range(args.rounds):
            for rates in (crayon_rates(model, args.threads), torch_rates(model, args.threads)):
                for k, v in rates.items():
                    runs.setdefault(k, []).append(v)
        med = {k: statistics.median(v) for k, v in runs.items()}
        torch_int8 = max(v for k, v in med.items() if k.startswith("PyTorch int8"))
        torch_fp32 = max(v for k, v in med.items() if k.startswith("PyTorch fp32"))
        print(f"\n### {model} (images/s, medians of {args.rounds} rounds, batch 256, {args.threads} threads)\n")
        print("| configuration | images/s |\n|---|---|")
        for k in sorted(med, key=lambda k: -med[k]):
            print(f"| {k} | {med[k]:,.0f} |")
        print(f"\ncrayon int8 / crayon fp32: {med['crayon int8'] / med['crayon fp32']:.2f}x; "
              f"crayon int8 / best PyTorch int8: {med['crayon int8'] / torch_int8:.2f}x; "
              f"crayon fp32 / best PyTorch fp32: {med['crayon fp32'] / torch_fp32:.2f}x")
        print(f"<!-- raw: {json.dumps(runs)} -->")
    return 0


if __name__ == "__main__":
    sys.exit(main())
