#!/usr/bin/env bash
# Installs everything moat needs to build, test and demo on Debian 12, from Debian's archive only.
# Idempotent: re-running it installs nothing new. Needs root (or sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang lld libclang-rt-14-dev git
  # libraries
  libssl-dev libnghttp2-dev libasio-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  # real peers and clients the tests drive
  openssl curl nginx-light nghttp2-client testssl.sh sslscan python3 iproute2 procps psmisc
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# nginx-light would start a system nginx on port 80; moat's tests start their own.
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts nginx on install; tests run their own instances on free ports.
if command -v systemctl >/dev/null 2>&1; then "${sudo_cmd[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true; fi
"${sudo_cmd[@]}" pkill -x nginx >/dev/null 2>&1 || true
echo "install-deps: done"
