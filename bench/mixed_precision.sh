#!/usr/bin/env bash
# Mixed precision against uniform bit widths (issue 16): for each budget of mean weight bits,
# `crayon quantize --bits-budget B` (bits per layer from the layer sensitivities) beside the
# uniform width B where B is whole, each with nearest rounding and with --adaround; 8 x 128
# calibration images, activations 8-bit, per-channel weights.
#   bench/mixed_precision.sh CRAYON FLOAT_DIR [models] [budgets] [seeds]
# FLOAT_DIR holds MODEL-none-seedS.h5 (a sweep's float/). One TSV row per run:
# model seed budget choice rounding mean_bits bits quantized%.
set -euo pipefail
crayon="$1"; dir="$2"; models="${3:-lenet5 mlp}"; budgets="${4:-4 3 2.5 2}"; seeds="${5:-1 2 3}"
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
printf 'model\tseed\tbudget\tchoice\trounding\tmean_bits\tbits\tquantized\n'
for m in $models; do for s in $seeds; do for b in $budgets; do
  choices="mixed"
  [[ "$b" =~ ^[0-9]+$ ]] && choices="mixed uniform"
  for choice in $choices; do for rounding in nearest adaround; do
    flags="--bits-budget $b"
    [ "$choice" = uniform ] && flags="--weight-bits $b"
    [ "$rounding" = adaround ] && flags="$flags --adaround"
    said=$("$crayon" quantize --model "$dir/$m-none-seed$s.h5" --out "$out/q.h5" --calib-batches 8 $flags)
    q=$(tail -1 <<<"$said" | sed -E 's/.*quantized ([0-9.]+)%.*/\1/')
    if [ "$choice" = mixed ]; then
      bits=$(grep -o 'mixed precision: W\[[0-9:]*' <<<"$said" | sed 's/.*\[//')
      mean=$(grep -o '(mean [0-9.]*' <<<"$said" | cut -d' ' -f2)
    else
      bits="$b"; mean="$b"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$s" "$b" "$choice" "$rounding" "$mean" "$bits" "$q"
  done; done
done; done; done
