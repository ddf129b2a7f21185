#!/usr/bin/env python3
"""Resident memory of a TLS front door holding N idle TLS connections (a measurement, not a test).

Starts nginx and moat edge in turn, each with one worker and the shared harness's ECDSA
certificate (../shared/bench/certs), opens N connections with a full TLS 1.3 handshake (Python
ssl, from 20 loopback source addresses so no source runs out of ports), leaves them idle, and
reads the server's VmRSS (summed over its process tree) before and with all of them open.

  bench/idle_tls.py [-n 10000] [--moat build/release/moat]

moat's per-client defences (connections per /24, handshake budget) are off here, as nginx has
none by default. Loopback only, bounded: every connect has a deadline, the servers are stopped
by the pids this script started. Needs root to raise RLIMIT_NOFILE.
"""
import argparse
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CERTS = os.path.join(HERE, "..", "..", "shared", "bench", "certs")


def rss_kib(pid):
    """VmRSS of pid and its children, KiB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                text=True).stdout.split()]
    except ValueError:
        pass
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def wait_port(port, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_nginx(d, port):
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
worker_rlimit_nofile 60000;
events {{ worker_connections 30000; }}
http {{ access_log off; keepalive_timeout 600s; client_header_timeout 600s;
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {CERTS}/ecdsa.chain.crt;
    ssl_certificate_key {CERTS}/ecdsa.key; ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ return 200 ok; }} }} }}
""")
    return subprocess.Popen(["nginx", "-c", conf], stderr=subprocess.DEVNULL)


def start_moat(d, port, moat):
    conf = os.path.join(d, "edge.yaml")
    with open(conf, "w") as f:
        f.write(f"""moat: gateway/v1
workers: 1
edge:
  listen_https: ["127.0.0.1:{port}"]
  certificates: [{{cert: "{CERTS}/ecdsa.chain.crt", key: "{CERTS}/ecdsa.key"}}]
  pools: [{{name: b, members: ["127.0.0.1:9"]}}]
  routes: [{{pool: b}}]
  access_log: /dev/null
  limits:
    max_connections: 100000
    max_connections_per_client: 0
    handshakes_per_second_per_client: 0
    ban_after_trips: 0
    header_timeout: 600s
    idle_timeout: 600s
""")
    return subprocess.Popen([moat, "edge", "--config", conf], stderr=subprocess.DEVNULL)


def measure(name, proc, port, n):
    if not wait_port(port):
        print(f"{name}: did not start")
        return None
    time.sleep(0.5)  # settle after start-up allocations (not a synchronization)
    before = rss_kib(proc.pid)
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    conns, failed = [], 0
    start = time.monotonic()
    for i in range(n):
        try:
            raw = socket.socket()
            raw.settimeout(10)
            raw.bind((f"127.0.0.{1 + i % 20}", 0))
            raw.connect(("127.0.0.1", port))
            conns.append(ctx.wrap_socket(raw, server_hostname="localhost"))
        except (OSError, ssl.SSLError):
            failed += 1
        if time.monotonic() - start > 300:
            break
    time.sleep(1.0)  # let the server finish its side of the last handshakes
    held = rss_kib(proc.pid)
    for c in conns:
        c.close()
    per = (held - before) / max(1, len(conns))
    print(f"| {name} | {len(conns)} | {failed} | {before / 1024:.1f} | {held / 1024:.1f} | {per:.1f} |")
    return per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--moat", default=os.path.join(HERE, "..", "build", "release", "moat"))
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.n + 100 > hard:
        print(f"note: the open-file limit is {hard}; fewer connections fit")
    d = tempfile.mkdtemp(prefix="moat-idle-tls-")
    print(f"{args.n} idle TLS 1.3 connections, one worker each, ECDSA P-256\n")
    print("| server | connections | failed | RSS before MiB | RSS with them MiB | KiB per connection |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, starter in (("nginx", lambda p: start_nginx(d, p)),
                          ("moat", lambda p: start_moat(d, p, args.moat))):
        port = 18900 + (name == "moat")
        proc = starter(port)
        try:
            measure(name, proc, port, args.n)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
