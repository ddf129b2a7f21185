#!/usr/bin/env bash
# Side-by-side benchmarks with the peers, through the shared harness (../shared/bench).
# Usage: bench/run-peers.sh egress   (moat vs squid, tinyproxy and "floor", a do-nothing
#        epoll+splice proxy in C (bench/floor/splice_floor.c): what the kernel alone charges)
#        bench/run-peers.sh edge     (moat vs nginx and HAProxy, and the backend alone; ~6 min;
#        moat once without access records like the peers, once with them: moat-logged)
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
    floor="$here/build/bench-floor/splice_floor"
    mkdir -p "$(dirname "$floor")"
    cc -O2 -Wall -o "$floor" "$here/bench/floor/splice_floor.c"
    peers_file="$here/build/bench-floor/peers.txt"
    printf 'floor %s {PORT} {ALLOW_PORT}\n' "$floor" >"$peers_file"
    PEERS="${PEERS:-squid tinyproxy floor moat}" OUR_EGRESS_NAME=moat \
      OUR_EGRESS_CMD="bash $here/bench/egress-gateway.sh {PORT} {ALLOW_HOST} {ALLOW_PORT} {STATE}" \
      "$harness/egress.sh" "$peers_file"
    ;;
  edge)
    # moat runs twice: without access records like the peers, and as moat-logged with one JSON
    # record per request (written to /dev/null): what the records cost.
    peers_file="$here/build/bench-floor/edge-peers.txt"
    mkdir -p "$(dirname "$peers_file")"
    printf 'moat-logged env MOAT_ACCESS_LOG=/dev/null bash %s {PORT} {CHAIN} {KEY} {BACKEND} {STATE}\n' \
      "$here/bench/edge-gateway.sh" >"$peers_file"
    PEERS="${PEERS:-direct-http nginx haproxy moat moat-logged}" OUR_EDGE_NAME=moat \
      OUR_EDGE_CMD="bash $here/bench/edge-gateway.sh {PORT} {CHAIN} {KEY} {BACKEND} {STATE}" \
      "$harness/edge.sh" "$peers_file"
    ;;
  *) echo "usage: $0 egress|edge" >&2; exit 2 ;;
esac
