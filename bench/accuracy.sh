#!/usr/bin/env bash
# The accuracy quality bar: full-length training runs on real data, one log per run in
# out/bench/. Fashion-MNIST needs `scripts/install-deps.sh --fashion`; the CIFAR-10 run
# needs the 4000+1000-record subset (or the full set from `crayon fetch cifar10`) in
# data/cifar10 or --data-dir. Usage: bench/accuracy.sh [mlp|lenet5|fashion|cifar]...
set -euo pipefail
cd "$(dirname "$0")/.."
crayon=build/apps/crayon
mkdir -p out/bench
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(mlp lenet5 fashion cifar)
for r in "${runs[@]}"; do
  name=$r
  case "$r" in
    mlp) $crayon train --model mlp --epochs 10 --lr 0.05 --lr-schedule cosine --seed 1 \
           --out out/bench/mlp.h5 --log out/bench/mlp.csv --quiet ;;
    lenet5) $crayon train --model lenet5 --epochs 15 --lr 0.05 --lr-schedule cosine --seed 1 \
           --out out/bench/lenet5.h5 --log out/bench/lenet5.csv --quiet ;;
    fashion) name=fashion-lenet5; $crayon train --dataset fashion-mnist --model lenet5 --epochs 20 --lr 0.05 --lr-schedule cosine \
           --seed 1 --out out/bench/fashion-lenet5.h5 --log out/bench/fashion-lenet5.csv --quiet ;;
    cifar) name=cifar-cnn; $crayon train --dataset cifar10 --data-dir "${CIFAR_DIR:-data/cifar10}" --model cifar-cnn --epochs 20 \
           --lr 0.01 --lr-schedule cosine --weight-decay 5e-4 --seed 1 \
           --out out/bench/cifar-cnn.h5 --log out/bench/cifar-cnn.csv --quiet ;;
    *) echo "accuracy.sh: unknown run '$r' (expected mlp, lenet5, fashion or cifar)" >&2; exit 2 ;;
  esac
  echo "$name: $(tail -1 "out/bench/$name.csv")"
done
