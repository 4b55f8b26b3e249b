#!/usr/bin/env bash
# Installs what is missing, builds weft's examples (Release) and runs them: until the
# DenseCLIP program exists, tensor_basics and the mlp_spiral training example.
#   scripts/demo.sh [build-dir]      (default: build/release; or WEFT_BUILD_DIR)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

build_dir="${1:-${WEFT_BUILD_DIR:-$WEFT_ROOT/build/release}}"

weft_install_missing_packages
weft_configure "$build_dir"
weft_build "$build_dir" --target weft_examples

weft_log "The DenseCLIP program does not exist yet; running the examples that do:"
weft_log "tensor_basics (tensors and fused expressions)"
"$build_dir/bin/tensor_basics"
weft_log "mlp_spiral (autograd, nn::Linear, cross-entropy, AdamW: an MLP learns three spirals)"
exec "$build_dir/bin/mlp_spiral"
