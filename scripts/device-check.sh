#!/usr/bin/env bash
# Builds and runs weft's CUDA tests and benchmarks on a GPU machine, in under 8 minutes.
#
#   scripts/device-check.sh
#
# Expects nvcc (PATH or /usr/local/cuda/bin), CMake, Ninja and python3, and the dependency folder
# .deps/ made by scripts/fetch-device-deps.sh (Catch2, Eigen, xtensor, Google Benchmark, ...; when it
# is absent, the system's packages are used). Steps, each under a time limit taken from one budget:
#   1. configure build/device (Release, WEFT_CUDA=ON, sm_90, benchmarks on, examples off; WEFT_NCCL=ON
#      when an NCCL is found: /usr/local/cuda, NCCL_ROOT, or the nvidia-nccl wheel PyTorch installs;
#      otherwise without NCCL, which the log and the summary say)
#   2. build only test_cuda and weft-bench-cuda, on all cores
#   3. run test_cuda (every CUDA kernel against the CPU executor)
#   4. run weft-bench-cuda with JSON output
# and always ends with one table (case, time, GB/s, ratio to cudaMemcpy) and a PASS/FAIL line per
# step, whatever failed before. Logs and the benchmark JSON go to build/device/device-check/, and
# are copied into $OUT when that variable names a folder. Exit status 0 only if every step passed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="$root/build/device"
logs="$build/device-check"
mkdir -p "$logs"
bench_json="$logs/bench-cuda.json"
rm -f "$bench_json" "$logs"/*.log

start=$SECONDS
budget="${WEFT_DEVICE_CHECK_BUDGET:-470}"  # seconds for all steps; the summary needs a few more
declare -A status=([configure]=SKIP [build]=SKIP [test]=SKIP [bench]=SKIP)

log() { printf '[device-check %3ds] %s\n' "$((SECONDS - start))" "$*"; }

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
  if ((rc == 124)); then log "timed out after $limit s: $*"; fi
  return "$rc"
}

summary() {
  local rc=$?
  set +e
  echo
  echo "==================== weft device check ===================="
  if [[ -s $bench_json ]]; then
    python3 - "$bench_json" <<'EOF' 2>&1 | tee "$logs/bench-table.txt"
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except Exception as e:  # a benchmark run killed half-way leaves broken JSON
    print(f"(benchmark JSON unreadable: {e})")
    sys.exit(0)
rows = {}
for b in data.get("benchmarks", []):
    if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
        continue
    name = b.get("run_name", b["name"]).replace("/manual_time", "")
    if b.get("error_occurred"):
        rows[name] = None
    elif "bytes_per_second" in b:
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
        rows[name] = (b["real_time"] * scale, b["bytes_per_second"] / 1e9)
memcpy = next((v[1] for k, v in rows.items() if v and "memcpy" in k), None)
print(f"{'case':<30} {'time (us)':>10} {'GB/s':>8} {'vs memcpy':>10}")
for name, v in rows.items():
    if v is None:
        print(f"{name:<30} {'error':>10}")
        continue
    ratio = f"{v[1] / memcpy:.2f}" if memcpy else "-"
    print(f"{name:<30} {v[0]:>10.1f} {v[1]:>8.0f} {ratio:>10}")
print("(median of 3 repetitions; GB/s counts the bytes each case must move, see bench/cuda/elementwise.cu)")
EOF
  else
    echo "(no benchmark results)"
  fi
  local overall=PASS
  for step in configure build test bench; do
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
# WEFT_OPENMP=OFF: the GPU benchmarks link the PyTorch wheel's libtorch, which brings its own
# copy of libgomp; weft's std::thread pool keeps one OpenMP runtime in the process.
if limited "$(allowance 90 330)" cmake -S "$root" -B "$build" -G Ninja \
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
log "building test_cuda and weft-bench-cuda with $(nproc) jobs"
status[build]=FAIL
if limited "$(allowance 330 150)" cmake --build "$build" --target test_cuda weft-bench-cuda -j "$(nproc)" \
    >"$logs/build.log" 2>&1; then
  status[build]=PASS
else
  grep -E "error|Error" "$logs/build.log" | head -n 40 || tail -n 20 "$logs/build.log"
  exit 1
fi
test_bin="$(find "$build" -name test_cuda -type f -perm -u+x | head -n 1)"
bench_bin="$(find "$build" -name weft-bench-cuda -type f -perm -u+x | head -n 1)"

# ---- 3. tests ------------------------------------------------------------------------------------
log "running $test_bin"
status[test]=FAIL
if LD_LIBRARY_PATH="$lib_path" limited "$(allowance 180 60)" "$test_bin" --durations yes \
    >"$logs/test.log" 2>&1; then
  status[test]=PASS
fi
# Durations, failures and Catch's totals: the full output is in test.log.
grep -vE "^[0-9.]+ s: " "$logs/test.log" | tail -n 60 || true
grep -E "^[0-9.]+ s: " "$logs/test.log" | sort -rn | head -n 5 | sed 's/^/  slowest: /' || true
# Catch prints each failing test case's name between two rules of dashes.
awk '/^-+$/ { if (getline name > 0 && getline rule > 0 && rule ~ /^-+$/) print "  FAILED: " name }' \
  "$logs/test.log" | sort -u || true

# ---- 4. benchmarks -------------------------------------------------------------------------------
log "running $bench_bin"
status[bench]=FAIL
if LD_LIBRARY_PATH="$lib_path" limited "$(allowance 100 5)" "$bench_bin" --benchmark_format=json \
    --benchmark_min_time=0.2 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    >"$bench_json" 2>"$logs/bench.log"; then
  status[bench]=PASS
  if grep -q '"error_occurred": true' "$bench_json"; then status[bench]=FAIL; fi
fi
tail -n 5 "$logs/bench.log" || true
[[ ${status[test]} == PASS && ${status[bench]} == PASS ]]
