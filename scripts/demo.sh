#!/usr/bin/env bash
# weft's main job, end to end on a CPU: DenseCLIP (tiny config) trained on synthetic scenes in
# ADE20K's layout, evaluated (per-class IoU table, mIoU), with loss/mIoU curves and colour
# predictions, also for the three real ADE20K validation images in ../shared. About 10-15
# minutes on 2 cores, build included.
#   scripts/demo.sh [build-dir]      (default: build/release; or WEFT_BUILD_DIR)
# Environment: DEMO_DIR (default <build-dir>/demo), DEMO_ITERS (default: the tiny config's).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

build_dir="${1:-${WEFT_BUILD_DIR:-$WEFT_ROOT/build/release}}"
demo_dir="${DEMO_DIR:-$build_dir/demo}"
config="$WEFT_ROOT/examples/denseclip/configs/tiny.json"
shared="$WEFT_ROOT/../shared/data"
start=$SECONDS

weft_install_missing_packages
weft_configure "$build_dir"
weft_build "$build_dir" --target denseclip
dc="$build_dir/bin/denseclip"
export WEFT_CLIP_VOCAB="$shared/clip/bpe_simple_vocab_16e6.txt.gz"

weft_log "1/4 drawing synthetic scenes (ADE20K layout and class ids) in $demo_dir/data"
rm -rf "$demo_dir"
"$dc" make-synthetic --out "$demo_dir/data" --train 400 --val 50 --size 160 --seed 0

weft_log "2/4 training DenseCLIP (tiny: ViT with adapters, text encoder with learnable contexts,"
weft_log "    context decoder, FPN + Semantic FPN head, decode + pixel-text losses) on the CPU"
iters=()
[[ -n "${DEMO_ITERS:-}" ]] && iters=(--iters "$DEMO_ITERS")
"$dc" train --config "$config" --data-root "$demo_dir/data" --work-dir "$demo_dir/work" "${iters[@]}"

ckpt="$demo_dir/work/$(cat "$demo_dir/work/latest")"
weft_log "3/4 colour predictions for validation scenes and the three real ADE20K images"
"$dc" predict --config "$config" --checkpoint "$ckpt" --out "$demo_dir/predictions/synthetic" \
  "$demo_dir"/data/images/validation/ADE_val_0000000{1,2,3,4,5,6}.jpg
"$dc" predict --config "$config" --checkpoint "$ckpt" --out "$demo_dir/predictions/ade20k" \
  "$shared"/ade20k/sample/images/*.jpg

weft_log "4/4 the real images scored against their annotations (a model trained on 400 synthetic"
weft_log "    scenes for minutes knows little of real rooms and streets: this shows the pipeline, not accuracy)"
"$dc" score --pred "$demo_dir/predictions/ade20k" --gt "$shared/ade20k/sample/annotations" | tail -6

weft_log "done in $((SECONDS - start)) s. Look at:"
weft_log "  $demo_dir/work/loss.svg and miou.svg          training curves"
weft_log "  $demo_dir/work/log.jsonl, eval.jsonl          the numbers behind them"
weft_log "  $demo_dir/predictions/*/overlay/*.png          colour predictions (ADE palette)"
weft_log "  $demo_dir/predictions/*/*.png                  label maps in ADE's encoding (class k as k+1)"
