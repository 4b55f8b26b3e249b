# Shared by scripts/test.sh and scripts/demo.sh (source it, don't run it).
# The one list of Debian packages weft's build, tests, examples and benchmarks need.
# (Debian bookworm names: xtensor's companion is packaged as xtl-dev.)

WEFT_DEBIAN_PACKAGES=(
  build-essential
  cmake
  ninja-build
  catch2
  libeigen3-dev
  xtensor-dev
  xtl-dev
  libstb-dev
  nlohmann-json3-dev
  libcli11-dev
  libbenchmark-dev
  libopenblas-dev   # the CPU GEMM engine (CMake falls back to Eigen's GEMM without it)
  libopenmpi-dev    # dist/: the MPI communicator (data-parallel training across processes)
  openmpi-bin       # mpirun, for the data-parallel tests
)

# Repository root (this file lives in scripts/lib/).
WEFT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

weft_log() { printf '[weft] %s\n' "$*"; }

# Installs those of WEFT_DEBIAN_PACKAGES that are missing, with one apt-get run.
weft_install_missing_packages() {
  local missing=() pkg
  for pkg in "${WEFT_DEBIAN_PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]} == 0)); then
    weft_log "all ${#WEFT_DEBIAN_PACKAGES[@]} Debian packages already installed"
    return 0
  fi
  weft_log "installing missing Debian packages: ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { weft_log "not root and no sudo: install ${missing[*]} yourself"; return 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

# weft_configure <build-dir> [extra cmake args...]: Release, tests+examples+bench, MPI, Ninja.
weft_configure() {
  local build_dir="$1"; shift
  weft_log "configuring $build_dir"
  cmake -S "$WEFT_ROOT" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DWEFT_BUILD_TESTS=ON -DWEFT_BUILD_EXAMPLES=ON -DWEFT_BUILD_BENCH=ON -DWEFT_MPI=ON \
    -DWEFT_BENCH_LIBTORCH="${WEFT_BENCH_LIBTORCH:-ON}" \
    -DWEFT_EXAMPLE_OPT_FLAGS="${WEFT_EXAMPLE_OPT_FLAGS:-}" -DWEFT_BENCH_OPT_FLAGS="${WEFT_BENCH_OPT_FLAGS:-}" \
    "$@"
}

# weft_build <build-dir> [cmake --build args...]
weft_build() {
  local build_dir="$1"; shift
  weft_log "building $build_dir with $(nproc) jobs"
  cmake --build "$build_dir" -j"$(nproc)" "$@"
}
