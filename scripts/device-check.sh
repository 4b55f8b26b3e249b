#!/usr/bin/env bash
# Builds and runs weft's CUDA tests and GPU benchmarks on a GPU machine, in under 8 minutes, and
# compares the benchmarks with PyTorch's in the same run.
#
#   scripts/device-check.sh
#
# Expects nvcc (PATH or /usr/local/cuda/bin), CMake, Ninja and python3 (with PyTorch, for the
# comparison; $WEFT_PYTHON overrides the interpreter), and the dependency folder .deps/ made by
# scripts/fetch-device-deps.sh (Catch2, Eigen, xtensor, Google Benchmark, ...; when it is absent,
# the system's packages are used). Steps, each under a time limit taken from one budget:
#   1. configure build/device (Release, WEFT_CUDA=ON, sm_90, benchmarks on, examples off; WEFT_NCCL=ON
#      when an NCCL is found: /usr/local/cuda, NCCL_ROOT, or the nvidia-nccl wheel PyTorch installs;
#      otherwise without NCCL, which the log and the summary say)
#   2. build test_cuda, weft-bench-cuda and the model-level benchmarks (weft-bench-cuda-models:
#      weft-bench-cuda-vit, weft-bench-cuda-denseclip) on all cores, going on past a target that
#      fails, so that whatever did build still runs
#   3. run test_cuda (every CUDA kernel against the CPU executor)
#   4. run weft-bench-cuda and each model-level benchmark, JSON output (bench/cuda/*.cu)
#   5. run PyTorch's side of the same cases: bench/gpu/ops_torch.py (GEMM, attention, ViT-B/16)
#      and bench/gpu/denseclip_torch.py (one DenseCLIP ViT-B/16 training step), JSON lines
# and always ends with one table (scripts/device-table.py: case, weft and PyTorch times, their
# ratio, TFLOP/s, MFU against the dtype's dense peak, the measured cuBLAS peak, peak memory) and
# a PASS/FAIL line per step, whatever failed before. Logs and results go to build/device/device-check/,
# and are copied into $OUT when that variable names a folder. Exit status 0 only if every step
# passed. docs/performance.md ("GPU (issue 6): how to read the device check") explains the table.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="$root/build/device"
logs="$build/device-check"
mkdir -p "$logs"
bench_json="$logs/bench-cuda.json"  # weft-bench-cuda; the model-level ones: bench-cuda-<name>.json
rm -f "$logs"/*.log "$logs"/*.json "$logs"/*.jsonl "$logs"/*.txt
python="${WEFT_PYTHON:-python3}"

start=$SECONDS
budget="${WEFT_DEVICE_CHECK_BUDGET:-470}"  # seconds for all steps; the summary needs a few more
declare -A status=([configure]=SKIP [build]=SKIP [test]=SKIP [bench]=SKIP [torch]=SKIP)

log() { printf '[device-check %3ds] %s\n' "$((SECONDS - start))" "$*"; }
exec 3>&1  # the console, for messages from steps whose output goes to a file

# Seconds a step may take: at most $1, and never eating into the $2 seconds kept for later steps
# (both scaled when WEFT_DEVICE_CHECK_BUDGET changes the 470-second budget, e.g. on a slow machine).
allowance() {
  local cap=$(($1 * budget / 470)) keep=$(($2 * budget / 470))
  local left=$((budget - (SECONDS - start) - keep))
  ((left > cap)) && left=$cap
  ((left < 10)) && left=10
  echo "$left"
}

# Runs a step under `timeout`, saying so when the limit killed it.
limited() {
  local limit=$1 rc=0
  shift
  timeout "$limit" "$@" || rc=$?
  if ((rc == 124)); then log "timed out after $limit s: $*" >&3; fi
  return "$rc"
}

summary() {
  local rc=$?
  set +e
  echo
  echo "==================== weft device check ===================="
  shopt -s nullglob
  local weft_results=("$bench_json" "$logs"/bench-cuda-*.json) torch_results=("$logs"/torch-*.jsonl)
  "$python" "$root/scripts/device-table.py" --weft "${weft_results[@]}" --torch "${torch_results[@]}" 2>&1 |
    tee "$logs/bench-table.txt" || echo "(no table: $python failed; the results are in $logs)"
  local overall=PASS
  for step in configure build test bench torch; do
    printf '  %-10s %s\n' "$step" "${status[$step]}"
    [[ ${status[$step]} == PASS ]] || overall=FAIL
  done
  echo "  nccl       ${nccl_note:-not checked}"
  echo "  overall    $overall  ($((SECONDS - start)) s)"
  echo "==========================================================="
  if [[ -n ${OUT:-} ]]; then
    mkdir -p "$OUT/device-check" && cp -r "$logs"/. "$OUT/device-check/" 2>/dev/null
  fi
  if [[ $overall != PASS && $rc -eq 0 ]]; then rc=1; fi
  exit "$rc"
}
trap summary EXIT

# ---- the machine ---------------------------------------------------------------------------------
{
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 || true
  else
    echo "nvidia-smi: not found"
  fi
  echo "nproc: $(nproc)"
} | tee "$logs/machine.log"
nvcc="$(command -v nvcc || true)"
[[ -n $nvcc ]] || nvcc=/usr/local/cuda/bin/nvcc
"$nvcc" --version | tail -n 2 | tee -a "$logs/machine.log" || true
cmake --version | head -n 1 | tee -a "$logs/machine.log"

deps_args=()
lib_path="${LD_LIBRARY_PATH:-}"
if [[ -d $root/.deps/usr ]]; then
  deps_args=("-DWEFT_DEPS_PREFIX=$root/.deps/usr")
  lib_path="$root/.deps/usr/lib/x86_64-linux-gnu${lib_path:+:$lib_path}"
else
  log "no .deps/usr (scripts/fetch-device-deps.sh): using the system's packages"
fi

# NCCL is optional here: the NCCL communicator's tests are compiled in only when one is found.
nccl_args=(-DWEFT_NCCL=OFF)
nccl_note="not found (no nccl.h under \$NCCL_ROOT, /usr/local/cuda, or python3's nvidia.nccl): built without NCCL"
nccl_root="${NCCL_ROOT:-}"
if [[ -z $nccl_root && -f /usr/local/cuda/include/nccl.h ]]; then
  nccl_root=/usr/local/cuda
fi
if [[ -z $nccl_root ]]; then
  nccl_root="$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)"
fi
nccl_lib="$(ls "$nccl_root"/lib/libnccl.so* "$nccl_root"/lib64/libnccl.so* 2>/dev/null | head -n 1 || true)"
if [[ -n $nccl_root && -f $nccl_root/include/nccl.h && -n $nccl_lib ]]; then
  nccl_args=(-DWEFT_NCCL=ON "-DNCCL_ROOT=$nccl_root")
  nccl_note="ON, from $nccl_root"
  lib_path="$(dirname "$nccl_lib")${lib_path:+:$lib_path}"
fi
log "NCCL: $nccl_note"
echo "NCCL: $nccl_note" >>"$logs/machine.log"

# ---- 1. configure ------------------------------------------------------------------------------
log "configuring $build"
status[configure]=FAIL
# WEFT_OPENMP=OFF: weft's std::thread pool, so no process here holds two OpenMP runtimes (set
# when the GPU benchmarks were to link the PyTorch wheel's libtorch and its libgomp; PyTorch's
# side now runs in its own python process, bench/gpu/).
if limited "$(allowance 60 410)" cmake -S "$root" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DWEFT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DWEFT_BUILD_BENCH=ON -DWEFT_BUILD_TESTS=ON \
    -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_NATIVE=ON -DWEFT_OPENMP=OFF \
    "${deps_args[@]}" "${nccl_args[@]}" >"$logs/configure.log" 2>&1; then
  status[configure]=PASS
else
  tail -n 30 "$logs/configure.log"
  exit 1
fi

# ---- 2. build ------------------------------------------------------------------------------------
# Binaries left by an earlier run must not stand in for ones that fail to build now.
find "$build" \( -name test_cuda -o -name 'weft-bench-cuda*' \) -type f -perm -u+x -delete 2>/dev/null || true
log "building test_cuda, weft-bench-cuda and weft-bench-cuda-models with $(nproc) jobs"
status[build]=FAIL
# -k 0: ninja goes on past a failing target, so the others are built and run.
if limited "$(allowance 280 170)" cmake --build "$build" \
    --target test_cuda weft-bench-cuda weft-bench-cuda-models -j "$(nproc)" -- -k 0 \
    >"$logs/build.log" 2>&1; then
  status[build]=PASS
else
  grep -E "error|Error|FAILED" "$logs/build.log" | head -n 40 || tail -n 20 "$logs/build.log"
fi
find_bin() { find "$build" -name "$1" -type f -perm -u+x | head -n 1; }
test_bin="$(find_bin test_cuda)"
bench_bin="$(find_bin weft-bench-cuda)"
model_bins=()
while IFS= read -r b; do model_bins+=("$b"); done < <(find "$build" -name 'weft-bench-cuda-*' -type f -perm -u+x | sort)
log "built: ${test_bin:+test_cuda }${bench_bin:+weft-bench-cuda }${model_bins[*]##*/}"

# ---- 3. tests ------------------------------------------------------------------------------------
if [[ -n $test_bin ]]; then
  log "running $test_bin"
  status[test]=FAIL
  if LD_LIBRARY_PATH="$lib_path" limited "$(allowance 120 130)" "$test_bin" --durations yes \
      >"$logs/test.log" 2>&1; then
    status[test]=PASS
  fi
  # Durations, failures and Catch's totals: the full output is in test.log.
  grep -vE "^[0-9.]+ s: " "$logs/test.log" | tail -n 60 || true
  grep -E "^[0-9.]+ s: " "$logs/test.log" | sort -rn | head -n 5 | sed 's/^/  slowest: /' || true
  # Catch prints each failing test case's name between two rules of dashes.
  awk '/^-+$/ { if (getline name > 0 && getline rule > 0 && rule ~ /^-+$/) print "  FAILED: " name }' \
    "$logs/test.log" | sort -u || true
else
  status[test]=FAIL
  log "test_cuda was not built"
fi

# ---- 4. weft's benchmarks ------------------------------------------------------------------------
# Runs one Google Benchmark binary into $2 (JSON); false if it failed or a case reported an error.
run_bench() {
  local bin=$1 out=$2 limit=$3 name
  name="$(basename "$bin")"
  log "running $name"
  if LD_LIBRARY_PATH="$lib_path" limited "$limit" "$bin" --benchmark_format=json \
      --benchmark_min_time=0.1 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
      >"$out" 2>"$logs/$name.log"; then
    tail -n 3 "$logs/$name.log" || true
    ! grep -q '"error_occurred": true' "$out"
  else
    tail -n 5 "$logs/$name.log" || true
    return 1
  fi
}
status[bench]=FAIL
bench_ok=1
if [[ -n $bench_bin ]]; then
  run_bench "$bench_bin" "$bench_json" "$(allowance 45 115)" || bench_ok=0
else
  log "weft-bench-cuda was not built"
  bench_ok=0
fi
# The model-level benchmarks set their own iterations and repetitions (bench/cuda/vit.cu, denseclip.cu).
for bin in "${model_bins[@]}"; do
  name="$(basename "$bin")"
  run_bench "$bin" "$logs/bench-cuda-${name#weft-bench-cuda-}.json" "$(allowance 40 75)" || bench_ok=0
done
# None at all fails this step too (the build step's log says which did not build).
if ((${#model_bins[@]} == 0)); then bench_ok=0; fi
((bench_ok)) && status[bench]=PASS

# ---- 5. PyTorch's side ---------------------------------------------------------------------------
status[torch]=FAIL
if "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >"$logs/torch.log" 2>&1; then
  torch_ok=1
  log "running bench/gpu/ops_torch.py"
  limited "$(allowance 60 40)" "$python" "$root/bench/gpu/ops_torch.py" \
    >"$logs/torch-ops.jsonl" 2>>"$logs/torch.log" || torch_ok=0
  log "running bench/gpu/denseclip_torch.py"
  limited "$(allowance 50 0)" "$python" "$root/bench/gpu/denseclip_torch.py" \
    >"$logs/torch-denseclip.jsonl" 2>>"$logs/torch.log" || torch_ok=0
  if grep -q '"error"' "$logs"/torch-*.jsonl; then torch_ok=0; fi
  ((torch_ok)) && status[torch]=PASS
  tail -n 4 "$logs/torch.log" || true
else
  log "no PyTorch with CUDA in $python: $(tail -n 1 "$logs/torch.log")"
fi
[[ ${status[build]} == PASS && ${status[test]} == PASS && ${status[bench]} == PASS && ${status[torch]} == PASS ]]
