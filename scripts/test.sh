#!/usr/bin/env bash
# Installs what is missing, builds weft (Release: tests, examples, benchmarks)
# and runs the whole CPU test suite.
#   scripts/test.sh [build-dir]      (default: build/release; or WEFT_BUILD_DIR)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

build_dir="${1:-${WEFT_BUILD_DIR:-$WEFT_ROOT/build/release}}"

weft_install_missing_packages
weft_configure "$build_dir"
weft_build "$build_dir"

weft_log "running the CPU test suite (ctest -LE cuda)"
cd "$build_dir"
ctest --output-on-failure --no-tests=error -j"$(nproc)" -LE cuda
