#!/usr/bin/env bash
# Data-parallel scaling on this machine (issue 15): one epoch of lenet5 on MNIST and of
# cifar-cnn on CIFAR-10 (batch 128), as 1 process with 1 thread, 1 process with 2 threads,
# and mpirun -np 2 with 1 thread per rank; each run RUNS times (default 3), the median
# images/s and the time rank 0 spent summing gradients per step printed. Needs the MPI
# build (scripts/build.sh --mpi).
#   bench/mpi_scaling.sh [--runs N] [--cifar-dir DIR] [--mnist-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
crayon=build-mpi/apps/crayon
runs=3 cifar="" mnist=data/mnist
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --cifar-dir) cifar=$2; shift 2 ;;
    --mnist-dir) mnist=$2; shift 2 ;;
    *) echo "mpi_scaling.sh: unknown option '$1' (expected --runs N, --cifar-dir DIR, --mnist-dir DIR)" >&2; exit 2 ;;
  esac
done
[ -x $crayon ] || { echo "mpi_scaling.sh: $crayon not found: run scripts/build.sh --mpi first" >&2; exit 2; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
bench() {  # bench MODEL ARGS...
  local model=$1; shift
  printf "%-10s %-28s %10s %14s\n" model configuration "img/s" "sum ms/step"
  for config in "1 process, 1 thread" "1 process, 2 threads" "2 ranks, 1 thread each"; do
    local ips=() ms=()
    for _ in $(seq "$runs"); do
      case "$config" in
        "1 process, 1 thread") line=$($crayon train "$@" --threads 1 --out $out/m.h5 2>&1 | grep "^epoch") ;;
        "1 process, 2 threads") line=$($crayon train "$@" --threads 2 --out $out/m.h5 2>&1 | grep "^epoch") ;;
        *) line=$(mpirun --oversubscribe -np 2 $crayon train "$@" --out $out/m.h5 2>&1 | grep "^epoch") ;;
      esac
      ips+=("$(echo "$line" | sed -E 's/.* ([0-9]+) img\/s.*/\1/')")
      ms+=("$(echo "$line" | sed -nE 's/.*summing gradients ([0-9.]+) ms.*/\1/p')")
    done
    local m="-"
    [ -n "${ms[0]}" ] && m=$(printf "%s\n" "${ms[@]}" | median)
    printf "%-10s %-28s %10s %14s\n" "$model" "$config" "$(printf "%s\n" "${ips[@]}" | median)" "$m"
  done
}
bench lenet5 --dataset mnist --data-dir "$mnist" --model lenet5 --epochs 1 --batch-size 128 --seed 1
if [ -n "$cifar" ]; then
  bench cifar-cnn --dataset cifar10 --data-dir "$cifar" --model cifar-cnn --epochs 1 --batch-size 128 --seed 1 \
    --test-limit 1000
fi
