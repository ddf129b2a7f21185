#!/usr/bin/env bash
# Adapter for ../shared/bench/edge.sh: starts moat edge with one worker in front of the harness's
# backend, in the foreground. Usage (as an OUR_EDGE_CMD template):
#   bash bench/edge-gateway.sh {PORT} {CHAIN} {KEY} {BACKEND} {STATE}
set -euo pipefail
port=$1 chain=$2 key=$3 backend=$4 state=$5
here=$(cd "$(dirname "$0")/.." && pwd)
moat="${MOAT_BIN:-$here/build/release/moat}"
cat >"$state/moat-edge.yaml" <<YAML
moat: gateway/v1
workers: 1
edge:
  listen_https: ["127.0.0.1:$port"]
  certificates:
    - {cert: "$chain", key: "$key"}
  pools:
    - {name: backend, members: ["$backend"]}
  routes:
    - {pool: backend}
  # The peers run without access logs (nginx "access_log off"); so does moat, unless
  # MOAT_ACCESS_LOG names a file (bench/run-peers.sh's moat-logged peer: /dev/null).
  access_log: ${MOAT_ACCESS_LOG:-off}
  limits:
    # The load comes from one address, which the per-client defences would rightly throttle;
    # the peers run without such limits, so they are off here.
    max_connections_per_client: 0
    handshakes_per_second_per_client: 0
    requests_per_second_per_client: 0
    ban_after_trips: 0
    max_requests_per_connection: 1000000
    # The nginx peer keeps 128 idle upstream connections ("keepalive 128"); so does moat here.
    max_idle_upstream: 128
YAML
exec "$moat" edge --config "$state/moat-edge.yaml" --workers 1
