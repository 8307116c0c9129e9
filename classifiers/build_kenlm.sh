#!/usr/bin/env bash
# Build KenLM's lmplz/build_binary once into a cache (pip `kenlm` can only query).  Idempotent: a present binary
# is kept.  It installs nothing system-wide: when a build tool or library is missing it says exactly what to install
# and exits 3.
#   classifiers/build_kenlm.sh [CACHE_DIR] [PYTHON]   build (default .cache/kenlm, .venv/bin/python)
#   classifiers/build_kenlm.sh --missing-apt          print the missing Debian/Ubuntu packages (empty: none)
set -euo pipefail

# What is missing, as Debian package names, checked without dpkg where possible (tools on PATH, headers on disk),
# so the check also means something on other distributions and macOS.
missing_apt() {
  local inc=(/usr/include /usr/local/include /opt/homebrew/include)
  has_header() { local h; for d in "${inc[@]}"; do h="$d/$1"; [ -e "$h" ] && return 0; done; return 1; }
  command -v cmake >/dev/null 2>&1 || echo cmake
  command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1 || echo g++
  has_header boost/program_options.hpp || echo libboost-program-options-dev
  has_header boost/system/error_code.hpp || echo libboost-system-dev
  has_header boost/thread.hpp || echo libboost-thread-dev
  has_header boost/test/unit_test.hpp || echo libboost-test-dev
  has_header eigen3/Eigen/Core || echo libeigen3-dev
  has_header zlib.h || echo zlib1g-dev
  has_header bzlib.h || echo libbz2-dev
  has_header lzma.h || echo liblzma-dev
}

if [ "${1:-}" = "--missing-apt" ]; then
  missing_apt | tr '\n' ' '
  echo
  exit 0
fi

CACHE="${1:-.cache/kenlm}"
PY="${2:-.venv/bin/python}"
if [ -x "$CACHE/bin/lmplz" ] && [ -x "$CACHE/bin/build_binary" ]; then
  echo "kenlm: $CACHE/bin/lmplz is built"
  exit 0
fi
mapfile -t need < <(missing_apt)
if [ "${#need[@]}" -gt 0 ]; then
  cat >&2 <<EOF
kenlm: cannot build lmplz: missing ${need[*]}
  Debian/Ubuntu:  sudo apt-get install -y ${need[*]}
  Fedora:         sudo dnf install -y cmake gcc-c++ boost-devel eigen3-devel zlib-devel bzip2-devel xz-devel
  macOS:          brew install cmake boost eigen zlib bzip2 xz
then run this again (make models / make test).  Only training a new KenLM model needs lmplz.
EOF
  exit 3
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
cmake --build "$CACHE/build" -j "$(nproc 2>/dev/null || sysctl -n hw.ncpu)" --target lmplz build_binary >/dev/null
mkdir -p "$CACHE/bin"
cp "$CACHE/build/bin/lmplz" "$CACHE/build/bin/build_binary" "$CACHE/bin/"
echo "kenlm: built $CACHE/bin/lmplz"
