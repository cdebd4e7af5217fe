#!/usr/bin/python3
"""PyTorch CPU peer for crayon's training benchmark: the same architecture, batch size,
optimizer (SGD, momentum 0.9), initialization family and data (data/mnist, normalized with
MNIST's mean/std) as `crayon train`, timed over one epoch including batching, printed as
one JSON line. Run with Debian's python3 (python3-torch).

  /usr/bin/python3 bench/torch_train.py --model lenet5 --threads 2 [--epochs 1] [--qat]
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

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


def build(name):
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    if name == "lenet5":  # crayon's preset: relu6 activations
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU6(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                             nn.ReLU6(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU6(),
                             nn.Linear(120, 84), nn.ReLU6(), nn.Linear(84, 10))
    raise SystemExit(f"unknown model {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--limit", type=int, default=0, help="first N training images only")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y = mnist(True)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    xt, yt = mnist(False)
    model = build(args.model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(args.seed)
    rates = []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        t0 = time.perf_counter()
        for i in range(0, len(x), args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        rates.append(len(x) / (time.perf_counter() - t0))
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(json.dumps({"framework": "pytorch", "version": torch.__version__, "model": args.model,
                      "threads": args.threads, "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
                      "images_per_s": max(rates), "images_per_s_per_epoch": rates, "test_acc": acc}))


if __name__ == "__main__":
    sys.exit(main())
