#!/usr/bin/env bash
# Unpacks weft's Debian build dependencies (headers, Google Benchmark's library
# and CMake packages) into the git-ignored folder .deps/ (layout .deps/usr/...),
# and copies the shared data the tests read into .deps/shared/. For machines
# that have CMake and a compiler but no Debian packages and no network (the GPU
# device-check machine): carry .deps there and configure with
#   cmake ... -DWEFT_DEPS_PREFIX=$PWD/.deps/usr
# (WEFT_SHARED_DIR then defaults to .deps/shared when ../shared is absent).
#   scripts/fetch-device-deps.sh     (WEFT_SHARED_SRC overrides ../shared)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.deps"

# Header-only libraries, plus Google Benchmark (headers, CMake config, shared
# library). xtensor-dev is a transitional package for libxtensor-dev, and
# bookworm ships xtl as xtl-dev.
packages=(
  catch2 libeigen3-dev xtensor-dev libxtensor-dev xtl-dev libstb-dev
  nlohmann-json3-dev libcli11-dev libbenchmark-dev libbenchmark1debian
)

sudo=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then sudo=(sudo); fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"   # apt's download sandbox user must be able to write here
cd "$tmp"
echo "[weft] downloading: ${packages[*]}"
if ! apt-get download "${packages[@]}"; then
  echo "[weft] apt-get download failed; refreshing the package lists and retrying"
  "${sudo[@]}" apt-get update
  apt-get download "${packages[@]}"
fi

rm -rf "$deps/usr"
mkdir -p "$deps"
for deb in ./*.deb; do
  echo "[weft] unpacking $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
  dpkg -x "$deb" "$deps"
done
# Documentation and packaging metadata are dead weight on the device machine.
rm -rf "$deps/usr/share/doc" "$deps/usr/share/man" "$deps/usr/share/lintian" \
       "$deps/usr/share/bug"

# Shared data the tests read through WEFT_SHARED_DIR.
shared_src="${WEFT_SHARED_SRC:-$root/../shared}"
if [[ -d $shared_src/data ]]; then
  rm -rf "$deps/shared"
  mkdir -p "$deps/shared/data"
  for d in ade20k clip; do
    if [[ -d $shared_src/data/$d ]]; then
      cp -r "$shared_src/data/$d" "$deps/shared/data/$d"
    else
      echo "[weft] warning: $shared_src/data/$d not found; not copied"
    fi
  done
else
  echo "[weft] warning: no shared data at $shared_src/data; .deps/shared not made"
fi

size_kib=$(du -sk "$deps" | cut -f1)
echo "[weft] .deps is $((size_kib / 1024)) MiB:"
du -sh "$deps"/usr "$deps"/shared 2>/dev/null || true
if ((size_kib > 60 * 1024)); then
  echo "[weft] ERROR: .deps exceeds 60 MiB (the device machine takes 64 MiB in all)"
  exit 1
fi
echo "[weft] done: configure with -DWEFT_DEPS_PREFIX=$deps/usr"
