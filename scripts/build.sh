#!/usr/bin/env bash
# Configure and build crayon (Release) into build/. Extra arguments go to cmake's configure.
#   scripts/build.sh --mpi   instead: the MPI build (-DCRAYON_MPI=ON, Open MPI installed if
#                            missing) into build-mpi/: the crayon program and its MPI tests,
#                            which scripts/test.sh runs from then on
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--mpi" ]; then
  shift
  scripts/install-deps.sh --mpi
  cmake -S . -B build-mpi -DCMAKE_BUILD_TYPE=Release -DCRAYON_MPI=ON -DCRAYON_BUILD_BENCH=OFF "$@" >/dev/null
  cmake --build build-mpi -j"$(nproc)" --target crayon
  exit 0
fi
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
