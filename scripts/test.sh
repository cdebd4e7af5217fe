#!/usr/bin/env bash
# The test command: install what is missing, build, run the whole test suite with CTest;
# then, where the MPI build exists (scripts/build.sh --mpi made build-mpi/), its MPI tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)")
if [ -f build-mpi/CMakeCache.txt ]; then
  scripts/build.sh --mpi
  cd build-mpi
  ctest --output-on-failure -L mpi
fi
