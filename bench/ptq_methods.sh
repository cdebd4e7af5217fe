#!/usr/bin/env bash
# PTQ methods side by side (issue 16): plain calibration, bias correction, equalization,
# both, per model, bit width and seed; 8 calibration batches of 128 (1024 images).
#   bench/ptq_methods.sh CRAYON FLOAT_DIR [models] [bits] [seeds]
# FLOAT_DIR holds MODEL-none-seedS.h5 float checkpoints (what `crayon sweep` writes in
# float/). Prints one TSV row per run: model bits seed method scope float% quantized%.
# METHODS and SCOPES (environment) choose a subset, e.g. METHODS="adaround" SCOPES=per-channel.
set -euo pipefail
crayon="$1"; dir="$2"; models="${3:-lenet5 mlp}"; bits="${4:-4 3}"; seeds="${5:-1 2 3}"
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
printf 'model\tbits\tseed\tmethod\tscope\tfloat\tquantized\n'
for m in $models; do for b in $bits; do for s in $seeds; do
  for scope in ${SCOPES:-per-channel per-tensor}; do
    for method in ${METHODS:-plain bias-correction equalize equalize+bias-correction adaround adaround+bias-correction}; do
      flags="--$scope"
      case $method in
        bias-correction) flags="$flags --bias-correction" ;;
        data-free) flags="$flags --bias-correction data-free" ;;
        equalize) flags="$flags --equalize" ;;
        equalize+bias-correction) flags="$flags --equalize --bias-correction" ;;
        adaround) flags="$flags --adaround" ;;
        adaround+bias-correction) flags="$flags --adaround --bias-correction" ;;
      esac
      line=$("$crayon" quantize --model "$dir/$m-none-seed$s.h5" --out "$out/q.h5" --weight-bits "$b" --act-bits 8 \
             --calib-batches 8 $flags | tail -1)
      fl=$(sed -E 's/.*float ([0-9.]+)%.*/\1/' <<<"$line"); q=$(sed -E 's/.*quantized ([0-9.]+)%.*/\1/' <<<"$line")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$b" "$s" "$method" "$scope" "$fl" "$q"
    done
  done
done; done; done
