#!/usr/bin/python3
"""PyTorch CPU inference peer for crayon's int8 engine: forward passes of the `mlp` and
`lenet5` presets (bench/torch_train.py's build()) over the 10000 MNIST test images
(data/mnist, normalized with MNIST's mean/std) in batches of 256, one JSON line per
configuration and a final Markdown table. Run with Debian's python3 (python3-torch).
`--models cifar-cnn --cifar-dir DIR` runs the CIFAR preset on the test batch in DIR.

  /usr/bin/python3 bench/torch_infer.py [--models mlp,lenet5] [--threads 2] [--passes 5]
      [--configs fp32,fp32-jit,int8-onednn,...] [--train-epochs 1 | --weights mlp=FILE.pt ...]
      [--load FILE.pt ...]

Timing: the test images are cut into batches once; a configuration's warm-up pass comes
first (its predictions give the test accuracy), then --passes timed passes over all 10000
images; the median pass gives images/s. Only the forward calls are timed, under
torch.inference_mode(); an int8 model's input quantization (its QuantStub) is part of its
forward.

Configurations:
  fp32            eager float model
  fp32-jit        torch.jit.script + torch.jit.freeze
  int8-ENGINE     post-training static quantization for ENGINE (onednn, qnnpack): Linear+ReLU
                  fused (there is no eager fusion for ReLU6), default qconfig of the engine
                  (HistogramObserver activations; weights per channel on onednn, per tensor
                  on qnnpack), `prepare`, calibration on the first --calib training images,
                  `convert` (torch_train.convert(), with its qnnpack ReLU6 workaround); eager
  int8-ENGINE-jit the same model scripted and frozen
  --load FILE     a TorchScript model saved by torch_train.py --out-model (for instance the
                  int8 model of a QAT run), run on the engine it was converted for
Not included: torch.jit.optimize_for_inference. It runs lenet5's convolutions on oneDNN
tensors and looks 2x faster, but PyTorch 1.13's oneDNN ReLU6 (prim::MKLDNNHardTanh_) gives
wrong outputs there (test accuracy 98.1 % -> 80 %); on the mlp it gained nothing.

The float weights come from --train-epochs epochs of training here (SGD lr 0.05 momentum 0.9,
cosine, batch 128: enough for a meaningful int8-vs-fp32 accuracy comparison, not for the
best accuracy) or from --weights NAME=FILE, a float model saved by torch_train.py
--out-model. --train-epochs 0 benchmarks random weights.

Threads: torch.set_num_threads(--threads). PyTorch's Linear runs on OpenBLAS, whose own
thread count OPENBLAS_NUM_THREADS is left to the caller, as is OMP_WAIT_POLICY (both must be
set before PyTorch loads; both are recorded). Findings on this shared 2-core machine, measured
while another engineer's training jobs ran (so noisy, up to 2x from run to run):
  - OMP_WAIT_POLICY=PASSIVE matters most: without it PyTorch's libgomp threads spin at every
    barrier and collapse whenever the other job holds a core (all configurations 3-10x slower,
    e.g. mlp fp32 8,000-24,000 instead of 110,000-190,000 img/s).
  - OPENBLAS_NUM_THREADS: with PASSIVE, =1 and the default gave the same fp32 speed (mlp fp32,
    three alternating pairs: 112k/115k/118k with =1, 114k/120k/120k default). It matters
    for training (bench/README.md), not here; compare runs use =1.
  - qnnpack runs on its own thread pool (pthreadpool, which OMP_WAIT_POLICY does not reach)
    and degrades the same way: at 2 threads under contention ~10,000 img/s on the mlp and
    ~2,000 on lenet5, 3-6x slower than at --threads 1. It is an ARM-first engine; on this x86 it is the slowest
    configuration even when quiet (mlp 122k vs onednn 240k at best).
Best configuration found (OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1, 2 threads, medians
of 5 passes, two runs): int8 on onednn, scripted and frozen, for both models: mlp
257,000-280,000 img/s (1.5x fp32 eager), lenet5 47,000-71,000 (1.45x). Among fp32 ones,
fp32-jit, within 10 % of eager. int8 accuracy equals fp32's within 0.05 points (PTQ on
2000 images).
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import build, cifar10, convert, env_settings, mnist, quantizable, train  # noqa: E402

CONFIGS = ["fp32", "fp32-jit", "int8-onednn", "int8-onednn-jit", "int8-qnnpack", "int8-qnnpack-jit"]


def float_model(name, args, x, y):
    """The trained float model: from --weights, or trained here for --train-epochs."""
    torch.manual_seed(args.seed)
    model = build(name)
    if name in args.weights:
        path = args.weights[name]
        meta = saved_settings(path)
        if meta.get("model") != name or meta.get("dtype") != "fp32":
            sys.exit(f"--weights {name}={path}: not a float {name} (bench.json: {meta})")
        model.load_state_dict(torch.jit.load(path).state_dict())
    elif args.train_epochs:
        train(model, x, y, args.train_epochs, 0.05, "cosine", 128, args.seed)
    return model.eval()


def ptq(model, engine, calib):
    """Post-training static quantization of a float model for engine, calibrated on calib."""
    torch.backends.quantized.engine = engine
    prepared = quantizable(copy.deepcopy(model), engine, qat=False)
    with torch.inference_mode():
        for i in range(0, len(calib), 256):
            prepared(calib[i:i + 256])
    return convert(prepared)


def scripted(model):
    return torch.jit.freeze(torch.jit.script(model.eval()))


def make(config, model, calib):
    """The model of one configuration, with torch.backends.quantized.engine set for it."""
    if config == "fp32":
        return model
    if config == "fp32-jit":
        return scripted(model)
    _, engine, *jit = config.split("-")
    int8 = ptq(model, engine, calib)
    return scripted(int8) if jit else int8


def saved_settings(path):
    """The settings torch_train.py --out-model stores beside a TorchScript model (the extra
    file bench.json in its zip archive), read without loading the model."""
    with zipfile.ZipFile(path) as z:
        name = next((n for n in z.namelist() if n.endswith("/extra/bench.json")), None)
        if name is None:
            sys.exit(f"{path}: no bench.json; save models with bench/torch_train.py --out-model")
        return json.loads(z.read(name))


def load(path):
    """A model saved by torch_train.py --out-model and its settings, with the engine its
    int8 weights were converted for set before loading (loading packs them for the engine)."""
    meta = saved_settings(path)
    if meta.get("engine"):
        torch.backends.quantized.engine = meta["engine"]
    return torch.jit.load(path), meta


def measure(model, batches, labels, passes):
    """Warm-up pass (gives the test accuracy), then passes timed passes: (images/s per pass, accuracy)."""
    n = sum(len(b) for b in batches)
    with torch.inference_mode():
        pred = torch.cat([model(b).argmax(1) for b in batches])
        rates = []
        for _ in range(passes):
            t0 = time.perf_counter()
            for b in batches:
                model(b)
            rates.append(n / (time.perf_counter() - t0))
    return rates, (pred == labels).sum().item() / len(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mlp,lenet5")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"any of {','.join(CONFIGS)}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--passes", type=int, default=5, help="timed passes over the test images")
    ap.add_argument("--calib", type=int, default=2000, help="training images for int8 calibration")
    ap.add_argument("--train-epochs", type=int, default=1, help="float training before benchmarking (0: random)")
    ap.add_argument("--weights", action="append", default=[], metavar="NAME=FILE",
                    help="float weights of model NAME from torch_train.py --out-model instead of training")
    ap.add_argument("--load", action="append", default=[], metavar="FILE",
                    help="also benchmark this model saved by torch_train.py --out-model (e.g. a QAT int8 model)")
    ap.add_argument("--cifar-dir", help="CIFAR-10 binary batches, for --models cifar-cnn")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.weights = dict(w.split("=", 1) for w in args.weights)
    configs = args.configs.split(",") if args.configs else []
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        sys.exit(f"unknown configuration(s) {sorted(unknown)}; expected some of {CONFIGS}")

    torch.set_num_threads(args.threads)
    data = {}

    def dataset(model_name):
        """(training images, labels, test batches, test labels) of the model's data set."""
        kind = "cifar" if model_name == "cifar-cnn" else "mnist"
        if kind not in data:
            if kind == "cifar":
                if not args.cifar_dir:
                    sys.exit("--models cifar-cnn needs --cifar-dir")
                (x, y), (xt, yt) = cifar10(args.cifar_dir, True), cifar10(args.cifar_dir, False)
            else:
                (x, y), (xt, yt) = mnist(True), mnist(False)
            data[kind] = (x, y, list(torch.split(xt, args.batch_size)), yt)
        return data[kind]

    rows = []

    def report(model_name, config, model):
        _, _, batches, yt = dataset(model_name)
        rates, acc = measure(model, batches, yt, args.passes)
        row = {"framework": "pytorch", "version": torch.__version__, "model": model_name, "config": config,
               "engine": torch.backends.quantized.engine if "int8" in config else None,
               "threads": args.threads, **env_settings(), "batch_size": args.batch_size,
               "images_per_s": statistics.median(rates), "images_per_s_per_pass": rates, "test_acc": acc}
        print(json.dumps(row), flush=True)
        rows.append(row)

    for name in args.models.split(",") if args.models else []:
        x, y, _, _ = dataset(name)
        model = float_model(name, args, x, y)
        for config in configs:
            report(name, config, make(config, model, x[:args.calib]))
    for path in args.load:
        model, meta = load(path)
        kind = f"{meta['dtype']}{'-qat' if meta.get('qat') else ''}{'-' + meta['engine'] if meta.get('engine') else ''}"
        report(meta["model"], f"{kind} ({os.path.basename(path)})", model)

    print(f"\n{args.threads} threads, batch {args.batch_size}, "
          f"OPENBLAS_NUM_THREADS={env_settings()['openblas_threads']}, "
          f"OMP_WAIT_POLICY={env_settings()['omp_wait_policy']}; median of {args.passes} passes\n")
    print("| model | configuration | img/s | test acc | vs fp32 eager |")
    print("|---|---|---|---|---|")
    for row in rows:
        base = next((r["images_per_s"] for r in rows if r["model"] == row["model"] and r["config"] == "fp32"), None)
        vs = f"{row['images_per_s'] / base:.2f}x" if base else ""
        print(f"| {row['model']} | {row['config']} | {row['images_per_s']:,.0f} | {100 * row['test_acc']:.2f} % "
              f"| {vs} |")


if __name__ == "__main__":
    sys.exit(main())
