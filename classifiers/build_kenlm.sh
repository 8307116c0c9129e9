#!/usr/bin/env bash
# Build KenLM's lmplz/build_binary once into a cache (pip `kenlm` can only query).  Idempotent: a present binary
# is kept.  Usage: classifiers/build_kenlm.sh [CACHE_DIR] [PYTHON]   (default .cache/kenlm, .venv/bin/python)
set -euo pipefail
CACHE="${1:-.cache/kenlm}"
PY="${2:-.venv/bin/python}"
if [ -x "$CACHE/bin/lmplz" ] && [ -x "$CACHE/bin/build_binary" ]; then
  echo "kenlm: $CACHE/bin/lmplz is built"
  exit 0
fi
need=()
for pkg in cmake g++ libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev \
           libeigen3-dev zlib1g-dev libbz2-dev liblzma-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "kenlm: installing build dependencies: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null \
    || { echo "kenlm: apt-get failed; install ${need[*]} yourself and rerun" >&2; exit 1; }
fi
mkdir -p "$CACHE/src"
if [ ! -f "$CACHE/src/CMakeLists.txt" ]; then
  tmp="$(mktemp -d)"
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation kenlm -d "$tmp"
  tar -xzf "$tmp"/kenlm-*.tar.gz -C "$CACHE/src" --strip-components=1
  rm -rf "$tmp"
fi
mkdir -p "$CACHE/build"
cmake -S "$CACHE/src" -B "$CACHE/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 -DCMAKE_CXX_FLAGS=-w >/dev/null
cmake --build "$CACHE/build" -j "$(nproc)" --target lmplz build_binary >/dev/null
mkdir -p "$CACHE/bin"
cp "$CACHE/build/bin/lmplz" "$CACHE/build/bin/build_binary" "$CACHE/bin/"
echo "kenlm: built $CACHE/bin/lmplz"
