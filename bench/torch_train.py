#!/usr/bin/python3
"""PyTorch CPU peer for crayon's training benchmark: the same architecture, batch size,
optimizer (SGD, momentum 0.9), initialization family and data (data/mnist, normalized with
MNIST's mean/std) as `crayon train`, timed over each epoch including batching (evaluation
excluded), printed as one JSON line. Run with Debian's python3 (python3-torch).

  /usr/bin/python3 bench/torch_train.py --model lenet5 --threads 2 [--epochs 1] [--lr 0.01]
      [--lr-schedule constant|cosine] [--qat [--engine onednn|qnnpack] [--qat-warmup STEPS]]
      [--limit N] [--out-model FILE.pt]

Full-length runs with crayon's accuracy settings (bench/accuracy.sh, bench/qat_quality.sh):

  /usr/bin/python3 bench/torch_train.py --model lenet5 --epochs 15 --lr 0.05 --lr-schedule cosine [--qat]
  /usr/bin/python3 bench/torch_train.py --model mlp --epochs 10 --lr 0.05 --lr-schedule cosine [--qat]

Threading: torch.set_num_threads(--threads); OPENBLAS_NUM_THREADS (PyTorch's Linear runs on
OpenBLAS; =1 is best here, see bench/README.md) and OMP_WAIT_POLICY are the caller's, both
recorded in the JSON. On a shared machine OMP_WAIT_POLICY=PASSIVE keeps PyTorch's libgomp
threads from spinning at every barrier while another job holds a core (3-10x at 2 threads).

--lr-schedule cosine is crayon's `cosine`: per step, lr_t = 0.5 * lr * (1 + cos(pi * t / T)),
t = 0 .. T-1 the step, T = epochs * steps per epoch.

--qat is PyTorch eager-mode quantization-aware training (torch.ao.quantization): QuantStub
on the input, DeQuantStub on the logits, `get_default_qat_qconfig(engine)` (activations:
per-tensor affine quint8 [0, 255] with moving-average min-max observers; weights: qint8
[-128, 127], per-channel symmetric for onednn, per-tensor symmetric for qnnpack),
`prepare_qat`, training, then `convert` to a real int8 model for --engine. Both the
fake-quant model (observers frozen) and the converted int8 model are evaluated on the 10000
test images. Fusion: Linear+ReLU (mlp) is fused; PyTorch 1.13's eager fuser has no pattern
for Conv2d/Linear + ReLU6 (torch.ao.quantization.fuser_method_mappings), so lenet5's ReLU6
layers stay separate modules after their conv/linear, each quantizing its output twice in
training (the conv's fake-quant, then the ReLU6's own) and, once converted, clamping the
quantized tensor (nnq.ReLU6; the max-pools run on quantized tensors as they are). With
qnnpack the converted ReLU6 works around a qnnpack bug, see convert().
Differences from crayon's --qat: crayon's weight grid is [-127, 127], its activation
observers are plain min-max frozen after 200 steps (here moving averages that keep
updating unless --qat-warmup STEPS freezes them likewise), and its logits stay float (here
the last Linear's output is quantized before the DeQuantStub, as eager-mode static
quantization requires).

JSON fields: images_per_s (best epoch), images_per_s_per_epoch, test_acc (float model, or
the fake-quant model with --qat), float_test_acc (without --qat), int8_test_acc (with --qat:
the converted model). --out-model saves the trained model (the converted int8 one with
--qat) as TorchScript, with the settings in an extra file `bench.json`, for
bench/torch_infer.py --load.
"""
import argparse
import copy
import gzip
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.ao.nn.quantized as nnq

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "data", "mnist")


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist(train):
    prefix = "train" if train else "t10k"
    x = load_idx(os.path.join(MNIST, f"{prefix}-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = load_idx(os.path.join(MNIST, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
    x = (x - 0.1307) / 0.3081
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar10(directory, train):
    """The CIFAR-10 binary batches in directory as crayon reads them (data_batch_<k>[.<subset>].bin
    in batch order, or test_batch[.<subset>].bin: records of 1 label byte + 3072 CHW pixels),
    normalized per channel with crayon's cifar10 statistics."""
    pattern = re.compile(r"data_batch_(\d+)(\..+)?\.bin$" if train else r"test_batch(\..+)?\.bin$")
    names = sorted((n for n in os.listdir(directory) if pattern.match(n)),
                   key=lambda n: int(pattern.match(n).group(1)) if train else 0)
    if not names:
        raise SystemExit(f"{directory}: no CIFAR-10 {'training' if train else 'test'} batches")
    raw = np.concatenate([np.fromfile(os.path.join(directory, n), dtype=np.uint8).reshape(-1, 3073) for n in names])
    x = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    x = (x - np.array(CIFAR_MEAN, np.float32).reshape(1, 3, 1, 1)) / np.array(CIFAR_STD, np.float32).reshape(1, 3, 1, 1)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(raw[:, 0].astype(np.int64))


def build(name):
    if name == "cifar-cnn":  # crayon's preset: three pairs of bias-free 3x3 convs with BN and ReLU
        layers, c = [], 3
        for width in (32, 64, 128):
            for _ in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                c = width
            layers.append(nn.MaxPool2d(2))
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 10))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    if name == "lenet5":  # crayon's preset: relu6 activations
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU6(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                             nn.ReLU6(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU6(),
                             nn.Linear(120, 84), nn.ReLU6(), nn.Linear(84, 10))
    raise SystemExit(f"unknown model {name}")


class Quantizable(nn.Module):
    """body between a QuantStub and a DeQuantStub: float in, float logits out, int8 inside
    once prepared and converted (eager mode)."""

    def __init__(self, body):
        super().__init__()
        self.quant = tq.QuantStub()
        self.body = body
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.body(self.quant(x)))


def fusable_pairs(body):
    """Names of the adjacent (Conv2d | Linear, ReLU) pairs in a Sequential: the only
    conv/linear + activation patterns eager mode can fuse (ReLU6 is not one of them)."""
    mods = list(body.named_children())
    return [[a, b] for (a, ma), (b, mb) in zip(mods, mods[1:])
            if isinstance(ma, (nn.Conv2d, nn.Linear)) and type(mb) is nn.ReLU]


def quantizable(body, engine, qat):
    """A float Sequential from build() (modified in place) wrapped in quant stubs, fused,
    with the default qconfig of engine; then prepare_qat (qat, model in train mode) or
    prepare for post-training calibration (eval mode). torch.backends.quantized.engine
    must already be engine."""
    model = Quantizable(body)
    pairs = fusable_pairs(model.body)
    if qat:
        model.train()
        if pairs:
            tq.fuse_modules_qat(model.body, pairs, inplace=True)
        model.qconfig = tq.get_default_qat_qconfig(engine)
        return tq.prepare_qat(model, inplace=True)
    model.eval()
    if pairs:
        tq.fuse_modules(model.body, pairs, inplace=True)
    model.qconfig = tq.get_default_qconfig(engine)
    return tq.prepare(model, inplace=True)


class ContiguousReLU6(nn.Module):
    """Quantized ReLU6 on a contiguous copy of its input: see convert()."""

    def forward(self, x):
        return torch.ops.quantized.relu6(x.contiguous(), True)


def convert(model):
    """The int8 model of a prepared (QAT or calibrated) model, for the current engine.

    Works around a bug of PyTorch 1.13's qnnpack engine: its quantized relu6 / hardtanh /
    clamp kernels (in place or not) scramble channels-last inputs, which is what its
    quantized Conv2d returns; lenet5's int8 accuracy falls to chance. With qnnpack, the
    converted ReLU6 modules therefore run on a contiguous copy of their input (onednn's
    kernels are correct and left alone)."""
    int8 = tq.convert(copy.deepcopy(model).eval())
    if torch.backends.quantized.engine == "qnnpack":
        for parent in list(int8.modules()):
            for name, child in parent.named_children():
                if isinstance(child, nnq.ReLU6):
                    setattr(parent, name, ContiguousReLU6())
    return int8


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def save_scripted(model, path, meta):
    """model as TorchScript (frozen in eval mode), meta as the extra file bench.json."""
    scripted = torch.jit.script(model.eval())
    torch.jit.save(scripted, path, _extra_files={"bench.json": json.dumps(meta)})


def train(model, x, y, epochs, lr, lr_schedule="constant", batch_size=128, seed=1, qat_warmup=0):
    """SGD (momentum 0.9) on cross-entropy, shuffled batches; returns each epoch's images/s
    (batching included). qat_warmup > 0 freezes a QAT model's observers after that many steps."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    total_steps = math.ceil(len(x) / batch_size) * epochs
    step = 0
    rates = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        t0 = time.perf_counter()
        for i in range(0, len(x), batch_size):
            if lr_schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = 0.5 * lr * (1.0 + math.cos(math.pi * step / total_steps))
            if step == qat_warmup and step > 0:
                model.apply(tq.disable_observer)
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            step += 1
        rates.append(len(x) / (time.perf_counter() - t0))
    return rates


def env_settings():
    """The environment variables that change PyTorch's CPU threading, as set by the caller."""
    return {"openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="lenet5", choices=["mlp", "lenet5", "cifar-cnn"])
    ap.add_argument("--cifar-dir", help="CIFAR-10 binary batches for --model cifar-cnn (no augmentation)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    ap.add_argument("--limit", type=int, default=0, help="first N training images only")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--qat", action="store_true", help="eager-mode quantization-aware training, then convert to int8")
    ap.add_argument("--engine", default="onednn", choices=["onednn", "qnnpack"],
                    help="quantized engine for --qat (qconfig and the converted model)")
    ap.add_argument("--qat-warmup", type=int, default=0,
                    help="freeze the QAT observers after this many steps, as crayon does after 200 (0: never)")
    ap.add_argument("--out-model", help="save the trained (with --qat: converted int8) model as TorchScript")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.qat:
        torch.backends.quantized.engine = args.engine
    if args.model == "cifar-cnn":
        if not args.cifar_dir:
            raise SystemExit("--model cifar-cnn needs --cifar-dir")
        (x, y), (xt, yt) = cifar10(args.cifar_dir, True), cifar10(args.cifar_dir, False)
    else:
        (x, y), (xt, yt) = mnist(True), mnist(False)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    model = quantizable(build(args.model), args.engine, qat=True) if args.qat else build(args.model)
    rates = train(model, x, y, args.epochs, args.lr, args.lr_schedule, args.batch_size, args.seed,
                  args.qat_warmup if args.qat else 0)

    result = {"framework": "pytorch", "version": torch.__version__, "model": args.model, "threads": args.threads,
              **env_settings(), "qat": args.qat, "epochs": args.epochs, "lr": args.lr,
              "lr_schedule": args.lr_schedule, "train_images": len(x), "images_per_s": max(rates),
              "images_per_s_per_epoch": rates}
    meta = {"model": args.model, "qat": args.qat}
    if args.qat:
        model.apply(tq.disable_observer)  # evaluation must not move the ranges convert() will use
        result.update(engine=args.engine, qat_warmup=args.qat_warmup, test_acc=accuracy(model, xt, yt))
        int8 = convert(model)
        result["int8_test_acc"] = accuracy(int8, xt, yt)
        model = int8
        meta.update(engine=args.engine, dtype="int8")
    else:
        result["test_acc"] = result["float_test_acc"] = accuracy(model, xt, yt)
        meta["dtype"] = "fp32"
    if args.out_model:
        save_scripted(model, args.out_model, meta)
        result["out_model"] = args.out_model
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
