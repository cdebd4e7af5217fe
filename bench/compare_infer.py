#!/usr/bin/python3
"""Inference throughput side by side in one run: crayon fp32 and crayon's int8 engine
(build/bench/bench_infer) beside PyTorch fp32 and int8 (bench/torch_infer.py, onednn and
qnnpack, eager and TorchScript), batch 256, 2 threads, on the 10000 MNIST test images.
Alternates the two frameworks ROUNDS times and prints medians as a Markdown table.

The crayon models are made first if missing: 3 epochs of 8-bit QAT (lr 0.05 cosine), then
`crayon export`, in out/bench/infer/. PyTorch's int8 is post-training static quantization of
its float model (weights only matter for accuracy, not speed). PyTorch runs in four
environments each round (as installed, OPENBLAS_NUM_THREADS=1, OMP_WAIT_POLICY=PASSIVE, both;
--torch-envs picks some) and the ratios are taken against its fastest.

  /usr/bin/python3 bench/compare_infer.py [--rounds 3] [--models lenet5,mlp]
  /usr/bin/python3 bench/compare_infer.py --models cifar-cnn --cifar-dir DIR   (its test batch; models of 1 QAT epoch)
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


def ensure_models(model, cifar_dir):
    qat, int8 = os.path.join(OUT, f"{model}-qat.h5"), os.path.join(OUT, f"{model}.int8.h5")
    if not os.path.exists(int8):
        os.makedirs(OUT, exist_ok=True)
        data = ["--dataset", "cifar10", "--data-dir", cifar_dir, "--epochs", "1"] if model == "cifar-cnn" else ["--epochs", "3"]
        subprocess.run([CRAYON, "train", "--model", model, *data, "--lr", "0.05", "--lr-schedule", "cosine",
                        "--qat", "--out", qat, "--quiet"], check=True)
        subprocess.run([CRAYON, "export", "--model", qat, "--out", int8, "--quiet"], check=True)
    return qat, int8


def crayon_rates(model, threads, cifar_dir):
    qat, int8 = ensure_models(model, cifar_dir)
    out = subprocess.run([BENCH, "--checkpoint", qat, "--int8", int8, "--threads", str(threads), "--runs", "5"],
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {"crayon " + r["config"].split(" ")[0]: r["images_per_s"] for r in rows}


# PyTorch's environments: as installed, one OpenBLAS thread, passive OpenMP waiting, both.
TORCH_ENVS = {"as installed": {}, "OPENBLAS_NUM_THREADS=1": {"OPENBLAS_NUM_THREADS": "1"},
              "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
              "both": {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}}


def torch_configs(model):
    # PyTorch 1.13 cannot script cifar-cnn's quantized BatchNorm ("Cannot input a tensor of
    # dimension other than 0 as a scalar argument"), so its int8 runs eager only.
    if model == "cifar-cnn":
        return "fp32,fp32-jit,int8-onednn,int8-qnnpack"
    return "fp32,fp32-jit,int8-onednn,int8-onednn-jit,int8-qnnpack"


def torch_rates(model, threads, cifar_dir, env_name):
    env = dict(os.environ, **TORCH_ENVS[env_name])
    for k in ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS"):
        if k not in TORCH_ENVS[env_name]:
            env.pop(k, None)
    out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_infer.py"), "--models", model,
                          "--threads", str(threads), "--train-epochs", "0", "--passes", "5",
                          "--configs", torch_configs(model),
                          *(["--cifar-dir", cifar_dir] if cifar_dir else [])],
                         check=True, capture_output=True, text=True, env=env).stdout
    rates = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rates[f"PyTorch {r['config']} ({env_name})"] = r["images_per_s"]
    return rates


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="lenet5,mlp")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cifar-dir", help="CIFAR-10 binary batches, for --models cifar-cnn (e.g. the 4000-image subset)")
    ap.add_argument("--torch-envs", default=",".join(TORCH_ENVS), help="PyTorch environments to try (best counts)")
    args = ap.parse_args()
    if "cifar-cnn" in args.models.split(",") and not args.cifar_dir:
        sys.exit("--models cifar-cnn needs --cifar-dir")
    for model in args.models.split(","):
        runs = {}
        for _ in range(args.rounds):
            measured = [crayon_rates(model, args.threads, args.cifar_dir)]
            measured += [torch_rates(model, args.threads, args.cifar_dir, e) for e in args.torch_envs.split(",")]
            for rates in measured:
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
