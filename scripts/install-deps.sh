#!/usr/bin/env bash
# Install, with apt-get, whichever of crayon's Debian 12 packages are missing.
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --bench    also PyTorch CPU and numpy (benchmarks' peer)
#   scripts/install-deps.sh --fashion  also the Fashion-MNIST data set package
set -euo pipefail

packages=(g++ cmake make pkg-config libopenblas-dev libhdf5-dev libboost-program-options-dev
          doctest-dev zlib1g-dev libcurl4-openssl-dev gnuplot-nox python3 python3-numpy python3-h5py)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(python3-torch python3-numpy) ;;
    --fashion) packages+=(dataset-fashion-mnist) ;;
    *) echo "install-deps.sh: unknown option '$arg' (expected --bench or --fashion)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
