#!/usr/bin/env bash
# The main job: install what is missing, build, and run crayon.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
build/apps/crayon --help
