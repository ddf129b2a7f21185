#!/usr/bin/env bash
# Times `moat scan`, testssl.sh and sslscan against one modern loopback server (nginx: TLS 1.2 +
# 1.3, ECDSA P-256, HSTS, server order), on loopback and through a 20 ms round trip. Builds
# nothing: MOAT_BIN (default build/release/moat). Writes bench/results/scan-<date>.md.
#
# The 20 ms path is a Python relay on 127.0.0.1 that holds every chunk 10 ms each way, and the
# first client bytes of a connection 20 ms more (the TCP handshake's round trip, which a relay
# cannot delay itself): a request/response then costs what it costs over a 20 ms RTT link, the
# connection's setup included. (netem in a network namespace would be the real thing; this
# kernel has no sch_netem.) The relay also counts the connections each tool makes.
#
# Usage: bench/scan-timing.sh [--no-testssl]   env: MOAT_BIN, MOAT_ARGS, RTT_MS (20), TESTSSL_FLAGS
set -euo pipefail
cd "$(dirname "$0")/.."
MOAT_BIN=${MOAT_BIN:-build/release/moat}
RTT_MS=${RTT_MS:-20}
RUN_TESTSSL=1
[[ "${1:-}" == "--no-testssl" ]] && RUN_TESTSSL=0
# testssl.sh doing what moat scan does: protocols, suites per protocol, server order, certificate,
# HTTP headers (HSTS), vulnerabilities (Heartbleed, CCS, renegotiation, CRIME, fallback, ...).
TESTSSL_FLAGS=${TESTSSL_FLAGS:--p -E -P -S -h -U}
[[ -x "$MOAT_BIN" ]] || { echo "MOAT_BIN=$MOAT_BIN: not executable (cmake --preset release && cmake --build build/release)" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x "$NGINX" ]] || { echo "nginx not installed" >&2; exit 2; }

work=$(mktemp -d /tmp/moat-scan-timing.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 never opened" >&2; exit 2
}

# Certificates: a CA and an ECDSA P-256 leaf for scan.test.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
  -out "$work/ca.pem" -days 30 -subj "/CN=moat bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/leaf.key" \
  -out "$work/leaf.csr" -subj "/CN=scan.test" 2>/dev/null
printf 'subjectAltName=DNS:scan.test\nbasicConstraints=CA:FALSE\n' > "$work/ext.cnf"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 30 -extfile "$work/ext.cnf" -out "$work/leaf.pem" 2>/dev/null
cat "$work/leaf.pem" "$work/ca.pem" > "$work/chain.pem"

port=$(free_port)
cat > "$work/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/cb; proxy_temp_path $work/px;
  fastcgi_temp_path $work/fc; uwsgi_temp_path $work/uw; scgi_temp_path $work/sc;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $work/chain.pem;
    ssl_certificate_key $work/leaf.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
    ssl_prefer_server_ciphers on;
    add_header Strict-Transport-Security "max-age=63072000" always;
    location / { return 200 "ok\n"; }
  }
}
EOF
"$NGINX" -c "$work/nginx.conf" -p "$work" -e "$work/nginx.err" & pids+=($!)
wait_port "$port"

cat > "$work/relay.py" <<'EOF'
"""Delaying TCP relay: listen port, upstream port, one-way delay ms. Prints nothing; writes the
number of accepted connections to the file given as argv[4] on SIGTERM and on each accept."""
import asyncio, signal, sys, time
listen_port, upstream_port, delay, count_file = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000, sys.argv[4]
accepted = 0

async def pipe(reader, writer, first_extra):
    queue = asyncio.Queue()
    async def deliver():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(data)
            try:
                await writer.drain()
            except OSError:
                return
    task = asyncio.ensure_future(deliver())
    start = time.monotonic()
    last = 0.0
    while True:
        try:
            data = await reader.read(65536)
        except OSError:
            data = b""
        due = max(time.monotonic() + delay, start + delay + first_extra, last)
        last = due
        await queue.put((due, data or None))
        if not data:
            break
    await task
    writer.close()

async def handle(client_reader, client_writer):
    global accepted
    accepted += 1
    open(count_file, "w").write(str(accepted))
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        client_writer.close()
        return
    # The client's first bytes also wait for the TCP handshake's round trip (2 x delay).
    await asyncio.gather(pipe(client_reader, up_writer, 2 * delay), pipe(up_reader, client_writer, 0),
                         return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=512)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with server:
        await stop

asyncio.run(main())
EOF

# relay DELAY_MS -> sets relay_port, relay_pid, relay_count (file)
start_relay() {
  relay_port=$(free_port)
  relay_count="$work/count-$relay_port"
  echo 0 > "$relay_count"
  python3 "$work/relay.py" "$relay_port" "$port" "$1" "$relay_count" & relay_pid=$!
  pids+=($relay_pid)
  wait_port "$relay_port"
  echo 0 > "$relay_count"  # the readiness check's connection does not count
}
stop_relay() { kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; }

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

# moat scan: wall time; connections from its JSON.
run_moat() {  # port -> "seconds connections grade"
  local t0 t1 out
  t0=$(now)
  # shellcheck disable=SC2086
  out=$("$MOAT_BIN" scan "scan.test:$1" --connect 127.0.0.1 --ca "$work/ca.pem" --json ${MOAT_ARGS:-}) || true
  t1=$(now)
  echo "$out" > "$work/moat-$1.json"
  python3 -c "import json,sys; d=json.load(open('$work/moat-$1.json')); print('$(elapsed "$t0" "$t1")', d['connections'], d['grade']['grade'] if d['grade'] else 'error')"
}
run_sslscan() {  # port -> seconds
  local t0 t1
  t0=$(now)
  sslscan --no-colour --sni-name=scan.test "127.0.0.1:$1" > "$work/sslscan-$1.txt" 2>&1 || true
  t1=$(now)
  elapsed "$t0" "$t1"
}
TESTSSL=$(command -v testssl || command -v testssl.sh || true)
run_testssl() {  # port -> seconds
  local t0 t1
  t0=$(now)
  # shellcheck disable=SC2086
  timeout 900 "$TESTSSL" --quiet --warnings off --color 0 -n none --ip 127.0.0.1 \
    --connect-timeout 10 --openssl-timeout 10 $TESTSSL_FLAGS "scan.test:$1" > "$work/testssl-$1.txt" 2>&1 || true
  t1=$(now)
  elapsed "$t0" "$t1"
}

echo "target: nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') on 127.0.0.1:$port; moat: $MOAT_BIN"
declare -A loop_s rtt_s conns

read -r loop_s[moat] _ grade_loop <<<"$(run_moat "$port")"
start_relay "$RTT_MS"
read -r rtt_s[moat] conns[moat] grade_rtt <<<"$(run_moat "$relay_port")"
relay_moat=$(cat "$relay_count")
stop_relay
echo "moat scan: ${loop_s[moat]} s loopback (grade $grade_loop), ${rtt_s[moat]} s at ${RTT_MS} ms RTT (grade $grade_rtt), ${conns[moat]} connections (relay counted $relay_moat)"

# A peer scanner, timed on loopback and through the relay (which counts its connections).
time_peer() { # NAME (run_NAME PORT prints the seconds)
  local name=$1
  loop_s[$name]=$("run_$name" "$port")
  start_relay "$RTT_MS"
  rtt_s[$name]=$("run_$name" "$relay_port")
  conns[$name]=$(cat "$relay_count")
  stop_relay
  printf '%-10s %s s loopback, %s s at %s ms RTT, %s connections\n' "$name:" "${loop_s[$name]}" \
    "${rtt_s[$name]}" "$RTT_MS" "${conns[$name]}"
}
if command -v sslscan >/dev/null; then time_peer sslscan; fi
if [[ $RUN_TESTSSL == 1 && -n "$TESTSSL" ]]; then time_peer testssl; fi

mkdir -p bench/results
out="bench/results/scan-$(date -u +%Y%m%d-%H%M%S).md"
{
  echo "# moat scan timing, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Target: nginx, TLS 1.2 + 1.3, ECDSA P-256, HSTS, server order, on 127.0.0.1. ${RTT_MS} ms RTT:"
  echo "a delaying relay (${RTT_MS}/2 ms each way, one more RTT before a connection's first bytes)."
  echo "Machine: $(nproc) cores, $(uname -sr). moat: \`$MOAT_BIN\`."
  echo
  echo "| tool | loopback s | ${RTT_MS} ms RTT s | connections made |"
  echo "|---|---|---|---|"
  echo "| moat scan | ${loop_s[moat]} | ${rtt_s[moat]} | ${conns[moat]} |"
  [[ -n "${loop_s[sslscan]:-}" ]] && echo "| sslscan $(sslscan --version 2>&1 | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1) | ${loop_s[sslscan]} | ${rtt_s[sslscan]} | ${conns[sslscan]} |"
  [[ -n "${loop_s[testssl]:-}" ]] && echo "| testssl.sh ($TESTSSL_FLAGS) | ${loop_s[testssl]} | ${rtt_s[testssl]} | ${conns[testssl]} |"
  echo
  echo "Command: \`MOAT_BIN=$MOAT_BIN bench/scan-timing.sh\`"
} > "$out"
cat "$out"
