#!/usr/bin/python3
"""Training throughput, crayon vs PyTorch CPU, side by side in one run.

For each model, alternates crayon and PyTorch runs (RUNS each) on the same work: one epoch
of the 60000 MNIST training images, batch 128, SGD lr 0.01 momentum 0.9, 2 threads.
PyTorch runs in the configurations of TORCH_CONFIGS below (OpenBLAS's default thread count
or one OpenBLAS thread, so OpenBLAS and PyTorch's own OpenMP pool don't fight over the 2
cores; OMP_WAIT_POLICY as the caller's or PASSIVE). Prints medians and ratios as a Markdown
table.

With --qat, each round runs five one-epoch trainings in turn: crayon float, crayon QAT
(`crayon train --qat`: W8A8, per-channel weights, activation observers watching the first
200 steps then frozen), PyTorch float, and PyTorch eager-mode QAT (bench/torch_train.py
--qat) with the onednn and with the qnnpack engine; every PyTorch run with
OPENBLAS_NUM_THREADS=1, its best configuration above. PyTorch's QAT observers are frozen
after the same 200 steps (--torch-qat-warmup). Without --limit every epoch is a full one of
60000 images (469 steps), so crayon's QAT epoch includes its 200 observer warm-up steps as
in a real first QAT epoch. The table gives the medians (images/s), crayon's QAT / float
time per epoch (the bar: <= 1.15x) and crayon QAT / PyTorch's best QAT throughput.

The caller's environment reaches every run. PyTorch's float runs are tried in four
configurations each round: as installed, OPENBLAS_NUM_THREADS=1, OMP_WAIT_POLICY=PASSIVE (its
libgomp threads otherwise spin at each barrier and, when another job holds a core, PyTorch at
2 threads becomes 3-10x slower) and both; the ratio is against the fastest. crayon does not
use OpenMP and is unaffected. OPENBLAS_CORETYPE (which OpenBLAS kernels PyTorch's Linear
layers get) is the caller's: run the script once as the machine is set and once with it
unset, or set to SkylakeX on an AVX-512 CPU (bench/README.md section 2).

  /usr/bin/python3 bench/compare_train.py [--runs 5] [--models mlp,lenet5] [--qat] [--limit N]
  /usr/bin/python3 bench/compare_train.py --models cifar-cnn --cifar-dir DIR   (CIFAR-10 batches, no augmentation)
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


def data_args(model, cifar_dir):
    """cifar-cnn trains on the CIFAR-10 batches in cifar_dir, without augmentation in both
    frameworks (the same work per image); the other models on MNIST."""
    if model != "cifar-cnn":
        return [], []
    if not cifar_dir:
        sys.exit("--models cifar-cnn needs --cifar-dir")
    return ["--dataset", "cifar10", "--data-dir", cifar_dir, "--augment", "0"], ["--cifar-dir", cifar_dir]


def crayon_rate(model, threads, limit, qat=False, cifar_dir=None):
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "log.jsonl")
        cmd = [CRAYON, "train", *data_args(model, cifar_dir)[0], "--model", model, "--epochs", "1", "--batch-size", "128", "--lr", "0.01",
               "--momentum", "0.9", "--threads", str(threads), "--out", os.path.join(d, "m.h5"), "--log", log,
               "--quiet", "--test-limit", "1000"]
        if qat:
            cmd += ["--qat", "--weight-bits", "8", "--act-bits", "8", "--qat-warmup", "200"]
        if limit:
            cmd += ["--train-limit", str(limit)]
        subprocess.run(cmd, check=True)
        with open(log) as f:
            return json.loads(f.readline())["images_per_s"]


def torch_rate(model, threads, limit, openblas_threads, qat_engine=None, qat_warmup=200, passive=None,
               cifar_dir=None):
    """passive: None keeps the caller's OMP_WAIT_POLICY, True sets PASSIVE, False removes it."""
    env = dict(os.environ)
    if openblas_threads is None:
        env.pop("OPENBLAS_NUM_THREADS", None)
    else:
        env["OPENBLAS_NUM_THREADS"] = str(openblas_threads)
    if passive is True:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif passive is False:
        env.pop("OMP_WAIT_POLICY", None)
    cmd = ["/usr/bin/python3", os.path.join(HERE, "torch_train.py"), "--model", model, "--threads", str(threads),
           *data_args(model, cifar_dir)[1]]
    if qat_engine:
        cmd += ["--qat", "--engine", qat_engine, "--qat-warmup", str(qat_warmup)]
    if limit:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


# PyTorch's configurations tried on every run: (OPENBLAS_NUM_THREADS, OMP_WAIT_POLICY=PASSIVE).
TORCH_CONFIGS = {
    "PyTorch as installed": (None, False),
    "OPENBLAS_NUM_THREADS=1": (1, False),
    "OMP_WAIT_POLICY=PASSIVE": (None, True),
    "both": (1, True),
}


def compare_float(args):
    print("| model | crayon img/s | " + " | ".join(f"PyTorch, {k}" if k != "PyTorch as installed" else k
                                                for k in TORCH_CONFIGS) + " | crayon / PyTorch best |")
    print("|---" * (len(TORCH_CONFIGS) + 3) + "|")
    for model in args.models.split(","):
        c, t = [], {k: [] for k in TORCH_CONFIGS}
        for _ in range(args.runs):
            c.append(crayon_rate(model, args.threads, args.limit, cifar_dir=args.cifar_dir))
            for k, (ob, passive) in TORCH_CONFIGS.items():
                t[k].append(torch_rate(model, args.threads, args.limit, ob, passive=passive, cifar_dir=args.cifar_dir))
        mc = statistics.median(c)
        med = {k: statistics.median(v) for k, v in t.items()}
        best = max(med.values())
        print(f"| {model} | {mc:,.0f} | " + " | ".join(f"{v:,.0f}" for v in med.values()) +
              f" | {mc / best:.2f} |", flush=True)
        print(f"<!-- {model} raw: crayon {[round(x) for x in c]} " +
              " ".join(f"{k}: {[round(x) for x in v]}" for k, v in t.items()) + " -->", flush=True)


def compare_qat(args):
    runs = {  # name -> one epoch's images/s
        "crayon float": lambda m: crayon_rate(m, args.threads, args.limit),
        "crayon QAT": lambda m: crayon_rate(m, args.threads, args.limit, qat=True),
        "PyTorch float": lambda m: torch_rate(m, args.threads, args.limit, 1),
        "PyTorch QAT onednn": lambda m: torch_rate(m, args.threads, args.limit, 1, "onednn", args.torch_qat_warmup),
        "PyTorch QAT qnnpack": lambda m: torch_rate(m, args.threads, args.limit, 1, "qnnpack", args.torch_qat_warmup),
    }
    print("| model | " + " | ".join(runs) + " | crayon QAT / float, time per epoch "
          "| crayon QAT / PyTorch QAT best, img/s |")
    print("|---" * (len(runs) + 3) + "|")
    for model in args.models.split(","):
        raw = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, run in runs.items():
                raw[name].append(run(model))
        med = {name: statistics.median(x) for name, x in raw.items()}
        torch_qat = max(med["PyTorch QAT onednn"], med["PyTorch QAT qnnpack"])
        slowdown = med["crayon float"] / med["crayon QAT"]  # time per epoch, QAT over float
        print(f"| {model} | " + " | ".join(f"{v:,.0f}" for v in med.values()) +
              f" | {slowdown:.2f}x | {med['crayon QAT'] / torch_qat:.2f} |", flush=True)
        print(f"<!-- {model} raw: " + "; ".join(f"{name} {[round(x) for x in v]}" for name, v in raw.items()) +
              " -->", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--models", default="mlp,lenet5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all 60000)")
    ap.add_argument("--cifar-dir", help="CIFAR-10 binary batches, for --models cifar-cnn (e.g. the 4000-image subset)")
    ap.add_argument("--qat", action="store_true", help="float and QAT epochs of both frameworks")
    ap.add_argument("--torch-qat-warmup", type=int, default=200,
                    help="steps before PyTorch's QAT observers freeze, as crayon's (0: never)")
    args = ap.parse_args()
    if not os.path.exists(CRAYON):
        sys.exit(f"{CRAYON} not found: build first (scripts/build.sh)")
    print(f"<!-- {args.threads} threads; PyTorch env: OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')} -->")
    if args.limit and args.qat:
        steps = -(-args.limit // 128)
        print(f"<!-- --limit {args.limit}: epochs of {args.limit} images, not 60000; crayon's QAT epoch is {steps} "
              f"steps, {min(steps, 200)} of them with the observers running -->")
    (compare_qat if args.qat else compare_float)(args)


if __name__ == "__main__":
    main()
