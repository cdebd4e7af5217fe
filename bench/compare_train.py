#!/usr/bin/python3
"""Training throughput, crayon vs PyTorch CPU, side by side in one run.

For each model, alternates crayon and PyTorch runs (RUNS each) on the same work: one epoch
of the 60000 MNIST training images, batch 128, SGD lr 0.01 momentum 0.9, 2 threads.
PyTorch runs in two configurations: as installed (its Linear layers on OpenBLAS with
OpenBLAS's default thread count) and with OPENBLAS_NUM_THREADS=1 for the PyTorch process
(so OpenBLAS and PyTorch's own OpenMP pool don't fight over the 2 cores). Prints medians
and ratios as a Markdown table.

  /usr/bin/python3 bench/compare_train.py [--runs 5] [--models mlp,lenet5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CRAYON = os.path.join(ROOT, "build", "apps", "crayon")


def crayon_rate(model, threads, limit):
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "log.jsonl")
        cmd = [CRAYON, "train", "--model", model, "--epochs", "1", "--batch-size", "128", "--lr", "0.01",
               "--momentum", "0.9", "--threads", str(threads), "--out", os.path.join(d, "m.h5"), "--log", log,
               "--quiet", "--test-limit", "1000"]
        if limit:
            cmd += ["--train-limit", str(limit)]
        subprocess.run(cmd, check=True)
        with open(log) as f:
            return json.loads(f.readline())["images_per_s"]


def torch_rate(model, threads, limit, openblas_threads):
    env = dict(os.environ)
    if openblas_threads is None:
        env.pop("OPENBLAS_NUM_THREADS", None)
    else:
        env["OPENBLAS_NUM_THREADS"] = str(openblas_threads)
    cmd = ["/usr/bin/python3", os.path.join(HERE, "torch_train.py"), "--model", model, "--threads", str(threads)]
    if limit:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--models", default="mlp,lenet5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all 60000)")
    args = ap.parse_args()
    if not os.path.exists(CRAYON):
        sys.exit(f"{CRAYON} not found: build first (scripts/build.sh)")
    print(f"| model | crayon img/s | PyTorch as installed | PyTorch, OPENBLAS_NUM_THREADS=1 | crayon / PyTorch best |")
    print("|---|---|---|---|---|")
    for model in args.models.split(","):
        c, t_default, t_ob1 = [], [], []
        for _ in range(args.runs):
            c.append(crayon_rate(model, args.threads, args.limit))
            t_default.append(torch_rate(model, args.threads, args.limit, None))
            t_ob1.append(torch_rate(model, args.threads, args.limit, 1))
        mc, md, m1 = (statistics.median(x) for x in (c, t_default, t_ob1))
        best = max(md, m1)
        print(f"| {model} | {mc:,.0f} | {md:,.0f} | {m1:,.0f} | {mc / best:.2f} |", flush=True)
        print(f"<!-- {model} raw: crayon {[round(x) for x in c]} torch {[round(x) for x in t_default]} "
              f"torch-ob1 {[round(x) for x in t_ob1]} -->", flush=True)


if __name__ == "__main__":
    main()
