#!/usr/bin/env bash
# Side-by-side benchmarks with the peers, through the shared harness (../shared/bench).
# Usage: bench/run-peers.sh egress   (moat vs squid and tinyproxy)
# Needs a release build (scripts/build.sh release) and the harness set-up, which this runs
# once (../shared/bench/setup.sh installs the peers and makes certificates). Results land in
# bench/results/. Everything runs on loopback, bounded in time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
harness="${MOAT_BENCH_HARNESS:-$here/../shared/bench}"
[ -x "$harness/egress.sh" ] || { echo "no benchmark harness at $harness" >&2; exit 2; }
[ -x "$here/build/release/moat" ] || "$here/scripts/build.sh" release
[ -f "$harness/certs/ca.crt" ] || "$harness/setup.sh"
export RESULTS_DIR="$here/bench/results"
mkdir -p "$RESULTS_DIR"
case "${1:-egress}" in
  egress)
    PEERS="${PEERS:-squid tinyproxy moat}" OUR_EGRESS_NAME=moat \
      OUR_EGRESS_CMD="bash $here/bench/egress-gateway.sh {PORT} {ALLOW_HOST} {ALLOW_PORT} {STATE}" \
      "$harness/egress.sh"
    ;;
  *) echo "usage: $0 egress" >&2; exit 2 ;;
esac
