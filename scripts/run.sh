#!/usr/bin/env bash
# The main job: install what is missing, build, train lenet5 on real MNIST (shipped in
# data/mnist), then evaluate the saved checkpoint. Extra arguments go to `crayon train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
mkdir -p out
build/apps/crayon train --model lenet5 --epochs 3 --lr 0.05 --momentum 0.9 --lr-schedule cosine \
  --out out/lenet5.h5 --log out/lenet5.csv "$@"
build/apps/crayon eval --model out/lenet5.h5
