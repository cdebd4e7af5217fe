#!/usr/bin/env bash
# The main job: install what is missing, build, train lenet5 on real MNIST (shipped in
# data/mnist) with 8-bit quantization-aware training, export the int8 model, and evaluate
# the integer engine beside the fake-quant model it came from. Extra arguments go to
# `crayon train` (e.g. --epochs 15, --weight-bits 4).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
mkdir -p out
build/apps/crayon train --model lenet5 --epochs 3 --lr 0.05 --momentum 0.9 --lr-schedule cosine --qat \
  --out out/lenet5-qat.h5 --log out/lenet5-qat.csv "$@"
build/apps/crayon export --model out/lenet5-qat.h5 --out out/lenet5.int8.h5
build/apps/crayon eval --model out/lenet5-qat.h5 --compare out/lenet5.int8.h5
