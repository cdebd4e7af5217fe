#!/usr/bin/env bash
# Nearest vs stochastic rounding (DESIGN.md idea 7), on real MNIST with the schedules of
# bench/qat_quality.sh; logs in out/bench/rounding/.
#   qat-w2-*     QAT with 2-bit weights: the fake-quant of the WEIGHTS rounds stochastically
#                in training passes (activations stay round-to-nearest on 8 bits)
#   update8-*    Gupta et al. 2015: no float shadow weights; the weights live on an 8-bit
#                fixed-point grid and every update is rounded onto it
# Usage: bench/rounding_quality.sh [lenet5|mlp]...
set -euo pipefail
cd "$(dirname "$0")/.."
crayon=build/apps/crayon
out=out/bench/rounding
mkdir -p $out
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(mlp lenet5)
for m in "${models[@]}"; do
  case "$m" in
    lenet5) common=(--model lenet5 --epochs 15 --lr 0.05 --lr-schedule cosine --seed 1 --quiet) ;;
    mlp) common=(--model mlp --epochs 10 --lr 0.05 --lr-schedule cosine --seed 1 --quiet) ;;
    *) echo "rounding_quality.sh: unknown model '$m' (expected lenet5 or mlp)" >&2; exit 2 ;;
  esac
  run() {
    local name=$1; shift
    $crayon train "${common[@]}" "$@" --out $out/$m-$name.h5 --log $out/$m-$name.csv
    echo "$m $name: test acc $(tail -1 $out/$m-$name.csv | cut -d, -f9)"
  }
  run qat-w2-stochastic-weights --qat --weight-bits 2 --qat-config rounding=stochastic,act_rounding=nearest
  for r in nearest stochastic; do run update8-$r --update-bits 8 --update-rounding $r; done
done
