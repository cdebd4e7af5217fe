#!/usr/bin/env bash
# The QAT quality bar (issue 4): float vs quantization-aware training vs post-training
# quantization on real MNIST, every run with the same schedule and seed as the float
# baseline of bench/accuracy.sh. Logs and checkpoints go to out/bench/qat/; the last line of
# each CSV log is the final epoch. Usage: bench/qat_quality.sh [lenet5|mlp]...
set -euo pipefail
cd "$(dirname "$0")/.."
crayon=build/apps/crayon
out=out/bench/qat
mkdir -p $out
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(lenet5 mlp)
for m in "${models[@]}"; do
  case "$m" in
    lenet5) common=(--model lenet5 --epochs 15 --lr 0.05 --lr-schedule cosine --seed 1 --quiet) ;;
    mlp) common=(--model mlp --epochs 10 --lr 0.05 --lr-schedule cosine --seed 1 --quiet) ;;
    *) echo "qat_quality.sh: unknown model '$m' (expected lenet5 or mlp)" >&2; exit 2 ;;
  esac
  run() {  # run NAME FLAGS...: one training run, its final test accuracy printed
    local name=$1; shift
    $crayon train "${common[@]}" "$@" --out $out/$m-$name.h5 --log $out/$m-$name.csv
    echo "$m $name: test acc $(tail -1 $out/$m-$name.csv | cut -d, -f9)"
  }
  run fp32
  for b in 8 6 4; do run qat-w${b}a${b} --qat --weight-bits $b --act-bits $b; done
  run qat-w4a8 --qat --weight-bits 4 --act-bits 8
  for r in nearest stochastic; do run qat-w2a8-$r --qat --weight-bits 2 --act-bits 8 --rounding $r; done
  for b in 8 6 4; do
    $crayon quantize --model $out/$m-fp32.h5 --weight-bits $b --act-bits $b --calib-batches 16 \
      --out $out/$m-ptq-w${b}a${b}.h5 | sed "s/^/$m ptq-w${b}a${b}: /"
  done
  $crayon quantize --model $out/$m-fp32.h5 --weight-bits 4 --act-bits 8 --calib-batches 16 \
    --out $out/$m-ptq-w4a8.h5 | sed "s/^/$m ptq-w4a8: /"
done
