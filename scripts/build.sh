#!/usr/bin/env bash
# Configures and builds one CMake preset (release, debug, ci, fuzz). Usage: scripts/build.sh PRESET
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
jobs="${MOAT_JOBS:-$(nproc)}"
# Outside the tree, so a fresh clone on the same machine (as CI is) reuses earlier compiles.
export CCACHE_DIR="${CCACHE_DIR:-${HOME:-/root}/.cache/moat-ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-2G}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"  # hits across clones in other folders
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$jobs"
