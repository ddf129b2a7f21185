#!/usr/bin/env bash
# Adapter for ../shared/bench/egress.sh: starts moat egress allowing only ALLOW_HOST:ALLOW_PORT,
# with one worker, in the foreground. Usage (as an OUR_EGRESS_CMD template):
#   bash bench/egress-gateway.sh {PORT} {ALLOW_HOST} {ALLOW_PORT} {STATE}
set -euo pipefail
port=$1 allow_host=$2 allow_port=$3 state=$4
here=$(cd "$(dirname "$0")/.." && pwd)
moat="${MOAT_BIN:-$here/build/release/moat}"
cat >"$state/moat-policy.yaml" <<YAML
moat: policy/v1
metadata: {publisher: bench, name: bench, revision: 1}
services:
  - id: origin
    name: Benchmark origin
    hosts: ["$allow_host"]
    ports: [$allow_port]
    purpose: the benchmark's TLS origin
YAML
cat >"$state/moat-egress.yaml" <<YAML
moat: gateway/v1
workers: 1
egress:
  listen: ["127.0.0.1:$port"]
  policies: [moat-policy.yaml]
  # The origin is on loopback, which egress refuses unless it is listed here.
  allow_private: [127.0.0.1/32, "::1/128"]
  # The peers run without access logs; moat still formats its record and writes it here.
  audit_log: /dev/null
YAML
exec "$moat" egress --config "$state/moat-egress.yaml" --workers 1
