#!/usr/bin/env bash
# Install, with apt-get, whichever of crayon's Debian 12 packages are missing, and ONNX
# Runtime's Node.js package for the ONNX tests (npm, pinned in tests/onnx/package-lock.json).
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --bench    also PyTorch CPU and numpy (benchmarks' peer)
#   scripts/install-deps.sh --fashion  also the Fashion-MNIST data set package
#   scripts/install-deps.sh --mpi      also Open MPI (the -DCRAYON_MPI=ON build, scripts/build.sh --mpi)
set -euo pipefail

packages=(g++ cmake make pkg-config libopenblas-dev libhdf5-dev libboost-program-options-dev
          doctest-dev zlib1g-dev libcurl4-openssl-dev gnuplot-nox python3 python3-numpy python3-h5py
          libonnx-dev libprotobuf-dev python3-onnx clang libclang-rt-14-dev)
# Node.js and npm run ONNX Runtime in the tests; a machine may have them from elsewhere
# (e.g. NodeSource's nodejs, which bundles npm), so look for the commands, not the packages.
command -v node > /dev/null 2>&1 || packages+=(nodejs)
command -v npm > /dev/null 2>&1 || packages+=(npm)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(python3-torch python3-numpy) ;;
    --fashion) packages+=(dataset-fashion-mnist) ;;
    --mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    *) echo "install-deps.sh: unknown option '$arg' (expected --bench, --fashion or --mpi)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# onnxruntime-node from the npm registry, at the locked version. Its install script would
# fetch optional GPU binaries from NuGet; the CPU runtime is in the package itself, so skip it.
ort="$(dirname "$0")/../tests/onnx"
if [ ! -f "$ort/node_modules/onnxruntime-node/package.json" ] ||
   ! cmp -s "$ort/package-lock.json" "$ort/node_modules/.crayon-installed-lock" 2>/dev/null; then
  echo "install-deps: installing onnxruntime-node (npm ci in tests/onnx)"
  (cd "$ort" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
   cp package-lock.json node_modules/.crayon-installed-lock)
fi
