#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz, clang + ASan + UBSan) and run each for a bounded
# time, starting from the committed seed corpus (tests/fuzz/corpus/TARGET: real files, the
# test suite's broken fixtures, and every input that once found a bug). Fails on the first
# crash, leak, timeout or sanitizer report, leaving the input as build-fuzz/crash-* (or
# timeout-*, leak-*, oom-*).
#   scripts/fuzz.sh                  20 s per target (what .ci/run runs)
#   scripts/fuzz.sh --seconds N      N s per target
#   scripts/fuzz.sh --minutes N      N min per target (before a release)
#   scripts/fuzz.sh --only NAME      one target (e.g. fuzz_spec)
# Prints each target's executions (libFuzzer's stat::number_of_executed_units).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=20
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --minutes) seconds=$(( $2 * 60 )); shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "fuzz.sh: unknown option '$1' (expected --seconds N, --minutes N or --only NAME)" >&2; exit 2 ;;
  esac
done
case "$seconds" in ''|*[!0-9]*|0) echo "fuzz.sh: expected a whole number of seconds > 0, got '$seconds'" >&2; exit 2 ;; esac

scripts/install-deps.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRAYON_FUZZ=ON \
  -DCRAYON_BUILD_TESTS=OFF -DCRAYON_BUILD_BENCH=OFF -DCRAYON_ONNX=OFF > /dev/null
cmake --build build-fuzz -j"$(nproc)" > /dev/null

export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp
targets=(fuzz_idx fuzz_cifar fuzz_tar fuzz_md5 fuzz_spec fuzz_text fuzz_checkpoint fuzz_int8 fuzz_cli)
cd build-fuzz
for t in "${targets[@]}"; do
  [ -n "$only" ] && [ "$only" != "$t" ] && continue
  # Absolute paths: a target may change its working folder (fuzz_cli does).
  work="$PWD/corpus/$t"
  src="$(cd .. && pwd)/tests/fuzz"
  mkdir -p "$work"
  args=("$work" -artifact_prefix="$PWD/")
  [ -d "$src/corpus/$t" ] && args+=("$src/corpus/$t")
  [ -f "$src/$t.dict" ] && args+=(-dict="$src/$t.dict")
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: one taking over 2 GB is a
  # bomb; -max_len 64 KiB keeps the inputs in the size the readers' checks are about.
  if ! "tests/fuzz/$t" "${args[@]}" \
       -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -print_final_stats=1 > "$t.log" 2>&1; then
    echo "fuzz.sh: $t failed (build-fuzz/$t.log):" >&2
    grep -E "ERROR|SUMMARY|property violated|refused without|Test unit written" "$t.log" | head -8 >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$t.log" | grep -o '[0-9]*$' || echo "?")
  printf "fuzz.sh: %-16s %10s executions in %ss, no crash\n" "$t" "$runs" "$seconds"
done
