#!/usr/bin/env python3
"""Resident memory of a CONNECT proxy holding N idle TLS tunnels (a measurement, not a test).

Each tunnel: TCP to the proxy from one of 20 loopback source addresses (127.0.0.1..20, so that
no source runs out of ephemeral ports), `CONNECT host:port`, `200`, then a real TLS ClientHello
(the captured tests/fixtures/client_hello/openssl_tls13.bin, or with --handshake a full Python
ssl handshake); the tunnel counts as open once bytes of the origin's answer came back through
it. Then it stays open and idle. The proxy's VmRSS / VmHWM (/proc/PID/status, summed over its
process tree), open fds and CPU time are read before, with all tunnels open, and after they
were closed.

Two ways to run:

  # against any running proxy: its pid, its listener, and a TLS origin it may reach
  bench/idle_tunnels.py --proxy-pid PID --proxy 127.0.0.1:3128 --target origin.test:19443

  # self-contained: start a TLS origin (nginx, or a Python asyncio server with --origin python)
  # and each proxy in turn (moat release build, squid -N, tinyproxy -d), with generated configs
  bench/idle_tunnels.py --start moat,squid,tinyproxy [-n 10000]

With --captured hellos the SNI is tls13.example.com: moat (which requires SNI = CONNECT host)
and squid get `CONNECT tls13.example.com:PORT` resolved to 127.0.0.1 by their own config
(moat `resolve:`, squid `hosts_file`); tinyproxy resolves names with the system resolver, so it
gets `CONNECT 127.0.0.1:PORT` (it does not look at the SNI). No query leaves the machine.

Measure a freshly started proxy: memory freed by earlier tunnels is reused by the allocator, so
a second run against the same process shows almost nothing per tunnel. RLIMIT_NOFILE bounds
what a proxy can hold: moat keeps two splice pipes per tunnel (6 fds per tunnel, squid and
tinyproxy 2), so under a 20000 limit it tops out near 3300 tunnels; without CAP_SYS_RESOURCE
the limit cannot be raised past the hard limit and the script says so.

Bounded: every tunnel has a deadline, the proxies and the origin are stopped at the end (by the
process ids this script started), and the default run takes well under 3 minutes.
Needs root (or CAP_SYS_RESOURCE) to raise RLIMIT_NOFILE above the hard limit.
"""
import argparse
import errno
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HELLO_FILE = os.path.join(REPO, "tests", "fixtures", "client_hello", "openssl_tls13.bin")
HELLO_SNI = "tls13.example.com"
# The shared harness sits beside the repository (../shared/bench); its setup.sh makes the certs.
BENCH_CERTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "certs"))
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: pick the source port at connect(), not at bind()

# ---- /proc ---------------------------------------------------------------------------------------


def descendants(pid):
    """pid and every process below it (by PPid), for proxies that fork helpers."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_sample(pid):
    """Memory (KiB), fds, threads and CPU seconds of pid's process tree; the main process too."""
    total = {"rss_kib": 0, "hwm_kib": 0, "fds": 0, "threads": 0, "cpu_s": 0.0, "processes": 0}
    main = None
    tick = os.sysconf("SC_CLK_TCK")
    for p in descendants(pid):
        try:
            status = {}
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    status[k] = v.strip()
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            fds = len(os.listdir(f"/proc/{p}/fd"))
        except (OSError, ValueError):
            continue
        s = {"rss_kib": int(status.get("VmRSS", "0 kB").split()[0]),
             "hwm_kib": int(status.get("VmHWM", "0 kB").split()[0]),
             "fds": fds, "threads": int(status.get("Threads", "0")),
             "cpu_s": (int(fields[11]) + int(fields[12])) / tick, "processes": 1}
        for k in total:
            total[k] += s[k]
        if p == pid:
            main = s
    total["main"] = main
    return total


def nofile_limit(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = int(v.split()[0])
    return out


def sockstat_tcp_mem_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1])
    return None


# ---- The tunnels ---------------------------------------------------------------------------------

class Tunnel:
    __slots__ = ("sock", "state", "buf", "deadline", "ssl", "inbio", "outbio", "src")

    def __init__(self, sock, src, deadline):
        self.sock = sock
        self.src = src
        self.state = "connect"
        self.buf = b""
        self.deadline = deadline
        self.ssl = self.inbio = self.outbio = None


def open_tunnels(n, proxy, target, sources, hello, handshake, window, per_tunnel_timeout,
                 total_timeout, progress=True):
    """Opens up to n tunnels; returns (open tunnel sockets, error counts, seconds)."""
    sel = selectors.DefaultSelector()
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
    host = target.rsplit(":", 1)[0].strip("[]")
    ctx = None
    if handshake:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    established, errors = [], {}
    started = inflight = 0
    t0 = time.monotonic()
    end = t0 + total_timeout
    last_sweep = t0
    last_print = t0

    def fail(t, why):
        nonlocal inflight
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(t.sock)
        except (KeyError, ValueError):
            pass
        t.sock.close()
        inflight -= 1

    def done(t):
        nonlocal inflight
        sel.unregister(t.sock)
        t.ssl = t.inbio = t.outbio = None
        t.buf = b""
        established.append(t.sock)
        inflight -= 1

    def start_one(i):
        nonlocal inflight
        src = sources[i % len(sources)]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((src, 0))
        except OSError as e:
            s.close()
            errors[f"bind {errno.errorcode.get(e.errno, e.errno)}"] = errors.get(
                f"bind {errno.errorcode.get(e.errno, e.errno)}", 0) + 1
            return
        t = Tunnel(s, src, time.monotonic() + per_tunnel_timeout)
        inflight += 1
        rc = s.connect_ex(proxy)
        if rc not in (0, errno.EINPROGRESS):
            fail(t, f"connect {errno.errorcode.get(rc, rc)}")
            return
        sel.register(s, selectors.EVENT_WRITE, t)

    def ssl_step(t):
        """Drives the handshake; True when done."""
        try:
            t.ssl.do_handshake()
            done_now = True
        except ssl.SSLWantReadError:
            done_now = False
        out = t.outbio.read()
        if out:
            t.sock.send(out)  # small; the socket buffer is empty at this point
        return done_now

    while (started < n or inflight > 0) and time.monotonic() < end:
        while started < n and inflight < window:
            start_one(started)
            started += 1
        for key, _ in sel.select(timeout=0.2):
            t = key.data
            try:
                if t.state == "connect":
                    err = t.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(t, f"connect {errno.errorcode.get(err, err)}")
                        continue
                    t.sock.send(request)
                    t.state = "reply"
                    sel.modify(t.sock, selectors.EVENT_READ, t)
                elif t.state == "reply":
                    chunk = t.sock.recv(65536)
                    if not chunk:
                        fail(t, "closed before the CONNECT reply")
                        continue
                    t.buf += chunk
                    if b"\r\n\r\n" not in t.buf:
                        continue
                    head, _, rest = t.buf.partition(b"\r\n\r\n")
                    status = head.split(b"\r\n", 1)[0].split(b" ")
                    if len(status) < 2 or status[1] != b"200":
                        fail(t, "CONNECT answered " + b" ".join(status[1:]).decode("latin-1")[:40])
                        continue
                    t.buf = b""
                    t.state = "hello"
                    if handshake:
                        t.inbio, t.outbio = ssl.MemoryBIO(), ssl.MemoryBIO()
                        t.ssl = ctx.wrap_bio(t.inbio, t.outbio, server_hostname=host)
                        if rest:
                            t.inbio.write(rest)
                        if ssl_step(t):
                            done(t)
                    else:
                        t.sock.send(hello)
                        if rest:
                            done(t)
                elif t.state == "hello":
                    chunk = t.sock.recv(65536)
                    if not chunk:
                        fail(t, "closed after the ClientHello")
                        continue
                    if handshake:
                        t.inbio.write(chunk)
                        if ssl_step(t):
                            done(t)
                    else:
                        done(t)  # the origin's first bytes came back through the tunnel
            except ssl.SSLError as e:
                fail(t, f"TLS {e.reason or e}")
            except OSError as e:
                fail(t, f"{t.state} {errno.errorcode.get(e.errno, e.errno)}")
        now = time.monotonic()
        if now - last_sweep > 1.0:
            last_sweep = now
            for key in list(sel.get_map().values()):
                if key.data.deadline < now:
                    fail(key.data, f"timeout in {key.data.state}")
        if progress and now - last_print > 5.0:
            last_print = now
            print(f"    ... {len(established)} open, {inflight} in flight, "
                  f"{sum(errors.values())} failed", flush=True)
    for key in list(sel.get_map().values()):
        fail(key.data, f"run out of time in {key.data.state}")
    sel.close()
    return established, errors, time.monotonic() - t0


def drain_and_count_open(socks):
    """Reads whatever is pending (the rest of the origin's flight) without blocking; returns how
    many tunnels are still open (EAGAIN) and how many the far side closed."""
    open_, closed = 0, 0
    for s in socks:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed += 1
                    break
        except BlockingIOError:
            open_ += 1
        except OSError:
            closed += 1
    return open_, closed


# ---- Processes we start --------------------------------------------------------------------------

STARTED = []


def launch(args, log, nofile=None, cwd=None):
    if nofile:
        nofile = settable_nofile(nofile)

    def pre():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    f = open(log, "ab")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, preexec_fn=pre, cwd=cwd)
    STARTED.append(p)
    return p


def terminate(p, timeout=10):
    """SIGTERM to the process group of a process this script started, then SIGKILL."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    if p in STARTED:
        STARTED.remove(p)


def cleanup():
    for p in list(STARTED):
        terminate(p, timeout=5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)  # readiness poll interval
    return False


# ---- The origin ----------------------------------------------------------------------------------

PY_ORIGIN = r'''
import asyncio, resource, ssl, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[4]), int(sys.argv[4])))
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
async def serve(reader, writer):
    try:
        while await reader.read(65536):
            pass
    except Exception:
        pass
    writer.close()
async def main():
    servers = [await asyncio.start_server(serve, "127.0.0.1", int(p), ssl=ctx, backlog=4096,
                                          ssl_handshake_timeout=600)
               for p in sys.argv[1].split(",")]
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
'''


def start_origin(kind, ports, work, certs):
    cert = os.path.join(certs, "ecdsa.chain.crt")
    key = os.path.join(certs, "ecdsa.key")
    nofile = settable_nofile(200000)
    if kind == "nginx" and shutil.which("nginx"):
        listen = "\n".join(f"    listen 127.0.0.1:{p} ssl backlog=4096;" for p in ports)
        conf = os.path.join(work, "nginx.conf")
        os.makedirs(os.path.join(work, "nginx"), exist_ok=True)
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
worker_rlimit_nofile {nofile};
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/error.log warn;
daemon off;
events {{ worker_connections 100000; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx/body;
  proxy_temp_path {work}/nginx/proxy;
  fastcgi_temp_path {work}/nginx/fastcgi;
  uwsgi_temp_path {work}/nginx/uwsgi;
  scgi_temp_path {work}/nginx/scgi;
  server {{
{listen}
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    client_header_timeout 600s;   # also the TLS handshake timeout in nginx 1.22
    keepalive_timeout 600s;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
""")
        p = launch(["nginx", "-p", os.path.join(work, "nginx"), "-c", conf],
                   os.path.join(work, "nginx.log"), nofile=nofile)
        name = "nginx"
    else:
        script = os.path.join(work, "origin.py")
        with open(script, "w") as f:
            f.write(PY_ORIGIN)
        p = launch([sys.executable, script, ",".join(map(str, ports)), cert, key, str(nofile)],
                   os.path.join(work, "origin.log"))
        name = "python asyncio"
    for port in ports:
        if not wait_port(port, p):
            raise RuntimeError(f"origin ({name}) not listening on {port}: see {work}")
    return p, name


# ---- The proxies ---------------------------------------------------------------------------------

def start_moat(work, port, origin_port, n, nofile, moat_bin, workers):
    d = os.path.join(work, "moat")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "policy.yaml"), "w") as f:
        f.write(f"""moat: policy/v1
metadata: {{publisher: bench, name: bench, revision: 1}}
services:
  - id: origin
    name: Benchmark origin
    hosts: ["{HELLO_SNI}", "origin.test"]
    ports: [{origin_port}]
    purpose: the idle-tunnel benchmark's TLS origin
""")
    limit = max(20000, 2 * n)
    with open(os.path.join(d, "egress.yaml"), "w") as f:
        f.write(f"""moat: gateway/v1
workers: {workers}
admin: {{listen: 127.0.0.1:{free_port()}}}
egress:
  listen: ["127.0.0.1:{port}"]
  policies: [policy.yaml]
  resolve: {{{HELLO_SNI}: [127.0.0.1], origin.test: [127.0.0.1]}}
  allow_private: [127.0.0.1/32]
  dns: {{nameservers: ["127.0.0.1:{free_port()}"], timeout: 500ms, attempts: 1}}
  audit_log: {d}/audit.jsonl
  limits:
    max_connections: {limit}
    max_connections_per_client: {limit}
""")
    args = [moat_bin, "egress", "--config", os.path.join(d, "egress.yaml")]
    p = launch(args, os.path.join(d, "moat.log"), nofile=nofile)
    return p, f"{HELLO_SNI}:{origin_port}", os.path.join(d, "moat.log")


def start_squid(work, port, origin_port, n, nofile):
    d = os.path.join(work, "squid")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hosts"), "w") as f:
        f.write(f"127.0.0.1 localhost origin.test {HELLO_SNI}\n")
    user = "cache_effective_user proxy" if os.geteuid() == 0 else ""
    with open(os.path.join(d, "squid.conf"), "w") as f:
        f.write(f"""http_port 127.0.0.1:{port}
workers 1
{user}
pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log none
cache deny all
cache_mem 16 MB
coredump_dir {d}
max_filedescriptors {nofile}
visible_hostname idle-bench-squid
pinger_enable off
netdb_filename none
shutdown_lifetime 1 seconds
hosts_file {d}/hosts
dns_nameservers 127.0.0.1
acl SSL_ports port {origin_port}
acl CONNECT method CONNECT
acl allowed_hosts dstdomain -n {HELLO_SNI} origin.test
acl bench_clients src 127.0.0.0/8
http_access deny CONNECT !SSL_ports
http_access deny CONNECT !allowed_hosts
http_access allow bench_clients
http_access deny all
""")
    if os.geteuid() == 0:
        shutil.chown(d, "proxy")
    p = launch(["squid", "-N", "-f", os.path.join(d, "squid.conf")], os.path.join(d, "squid.log"),
               nofile=nofile, cwd=d)
    return p, f"{HELLO_SNI}:{origin_port}", os.path.join(d, "cache.log")


def start_tinyproxy(work, port, origin_port, n, nofile):
    d = os.path.join(work, "tinyproxy")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o777)
    with open(os.path.join(d, "filter"), "w") as f:
        f.write("^127\\.0\\.0\\.1$\n")
    user = "User tinyproxy\nGroup tinyproxy\n" if os.geteuid() == 0 else ""
    with open(os.path.join(d, "tinyproxy.conf"), "w") as f:
        f.write(f"""{user}Port {port}
Listen 127.0.0.1
Timeout 600
LogFile "{d}/tinyproxy.log"
LogLevel Warning
PidFile "{d}/tinyproxy.pid"
MaxClients {n + 1000}
Allow 127.0.0.0/8
DisableViaHeader Yes
ConnectPort {origin_port}
Filter "{d}/filter"
FilterType ere
FilterURLs Off
FilterDefaultDeny Yes
""")
    p = launch(["tinyproxy", "-d", "-c", os.path.join(d, "tinyproxy.conf")],
               os.path.join(d, "tinyproxy.out"), nofile=nofile)
    # tinyproxy resolves with the system resolver: give it an address, not a name.
    return p, f"127.0.0.1:{origin_port}", os.path.join(d, "tinyproxy.log")


# ---- One measurement -----------------------------------------------------------------------------

def measure(name, pid, proxy, target, args, hello, log=None):
    print(f"\n== {name}: pid {pid}, proxy {proxy[0]}:{proxy[1]}, CONNECT {target}, "
          f"{args.n} tunnels, RLIMIT_NOFILE {nofile_limit(pid)}", flush=True)
    sources = [f"127.0.0.{i}" for i in range(1, args.sources + 1)]
    # One tunnel first, closed again: what a proxy allocates on its first connection is not
    # per-tunnel cost. Then the baseline.
    warm, errs, _ = open_tunnels(1, proxy, target, sources, hello, args.handshake, 1, 10, 10,
                                 progress=False)
    for s in warm:
        s.close()
    if not warm:
        print(f"   the warm-up tunnel failed: {errs}")
    time.sleep(0.5)  # let the proxy finish closing the warm-up tunnel (not a readiness wait)
    mem0, tcp0 = meminfo(), sockstat_tcp_mem_pages()
    before = proc_sample(pid)
    socks, errors, secs = open_tunnels(args.n, proxy, target, sources, hello, args.handshake,
                                       args.window, args.tunnel_timeout, args.open_timeout)
    time.sleep(args.settle)  # idle: let the proxy settle after the last handshake bytes
    still_open, closed_far = drain_and_count_open(socks)
    after = proc_sample(pid)
    mem1, tcp1 = meminfo(), sockstat_tcp_mem_pages()
    for s in socks:
        s.close()
    # Wait (bounded) until the proxy has closed its side: its fd count back near the baseline, or
    # steady for a second (moat keeps up to 256 empty pipes per worker for reuse).
    t_close = time.monotonic()
    deadline = t_close + 20
    last, steady_since = None, time.monotonic()
    while time.monotonic() < deadline:
        fds = proc_sample(pid)["fds"]
        if fds <= before["fds"] + 20:
            break
        if fds != last:
            last, steady_since = fds, time.monotonic()
        elif time.monotonic() - steady_since >= 1.0:
            break
        time.sleep(0.1)  # poll interval
    released = proc_sample(pid)
    release_s = time.monotonic() - t_close
    log_notes = []
    if log and os.path.exists(log):
        with open(log, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for needle in ("Too many open files", "EMFILE", "accept failed", "WARNING! Your cache is running out of filedescriptors"):
            c = text.count(needle)
            if c:
                log_notes.append(f"{needle!r} x{c}")
    opened = len(socks)
    per = lambda a, b, k: (a[k] - b[k]) / max(1, opened)  # noqa: E731
    result = {
        "proxy": name, "pid": pid, "tunnels_requested": args.n, "tunnels_open": opened,
        "still_open_at_measurement": still_open, "closed_by_far_side": closed_far,
        "errors": errors, "open_seconds": round(secs, 2),
        "before": before, "open": after, "after_close": released,
        "rss_per_tunnel_kib": round(per(after, before, "rss_kib"), 2),
        "hwm_per_tunnel_kib": round(per(after, before, "hwm_kib"), 2),
        "fds_per_tunnel": round(per(after, before, "fds"), 2),
        "threads_per_tunnel": round(per(after, before, "threads"), 3),
        "system_memavailable_delta_kib_per_tunnel": round((mem0["MemAvailable"] - mem1["MemAvailable"]) / max(1, opened), 2),
        "system_slab_delta_kib_per_tunnel": round((mem1["Slab"] - mem0["Slab"]) / max(1, opened), 2),
        "tcp_mem_pages_delta": (tcp1 - tcp0) if tcp0 is not None and tcp1 is not None else None,
        "nofile_limit": nofile_limit(pid), "log": log_notes,
        "seconds_to_release_fds": round(release_s, 1),
    }
    print(f"   opened {opened}/{args.n} in {secs:.1f}s, {still_open} open at measurement; "
          f"errors: {errors or 'none'}")
    print(f"   RSS {before['rss_kib']} -> {after['rss_kib']} KiB (after close {released['rss_kib']}), "
          f"HWM {before['hwm_kib']} -> {after['hwm_kib']} KiB; "
          f"{result['rss_per_tunnel_kib']} KiB RSS per tunnel; "
          f"fds {before['fds']} -> {after['fds']} ({result['fds_per_tunnel']}/tunnel); "
          f"threads {before['threads']} -> {after['threads']}; "
          f"CPU {after['cpu_s'] - before['cpu_s']:.2f}s")
    print(f"   after closing: fds {released['fds']} within {release_s:.1f}s, "
          f"CPU {released['cpu_s'] - after['cpu_s']:.2f}s more")
    print(f"   system-wide (noisy): MemAvailable -{result['system_memavailable_delta_kib_per_tunnel']} "
          f"KiB/tunnel, Slab +{result['system_slab_delta_kib_per_tunnel']} KiB/tunnel")
    if log_notes:
        print(f"   proxy log: {', '.join(log_notes)}")
    return result


_NOTED = []


def settable_nofile(want):
    """`want`, or the hard limit when we may not raise it (no CAP_SYS_RESOURCE), with a note."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if want <= hard or hard == resource.RLIM_INFINITY:
        return want
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
        pid = os.fork()
        if pid == 0:  # try it in a child: setrlimit only succeeds with CAP_SYS_RESOURCE
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, nr_open),) * 2)
                os._exit(0)
            except (ValueError, OSError):
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if status == 0:
            return min(want, nr_open)
    except OSError:
        pass
    if not _NOTED:
        _NOTED.append(True)
        print(f"note: RLIMIT_NOFILE cannot be raised above the hard limit {hard} here "
              f"(no CAP_SYS_RESOURCE): started processes get {hard}, not {want}", flush=True)
    return hard


def raise_own_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        print(f"warning: RLIMIT_NOFILE {hard} < {need} needed (not root?): fewer tunnels will open",
              file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10000, help="tunnels (default 10000)")
    ap.add_argument("--proxy", help="HOST:PORT of a running proxy")
    ap.add_argument("--proxy-pid", type=int, help="its pid (memory is read from /proc)")
    ap.add_argument("--target", help="CONNECT target HOST:PORT, a TLS origin")
    ap.add_argument("--start", help="comma list of proxies to start: moat,squid,tinyproxy")
    ap.add_argument("--moat-bin", default=os.path.join(REPO, "build", "release", "moat"))
    ap.add_argument("--moat-workers", type=int, default=0, help="moat workers (0: one per core)")
    ap.add_argument("--origin", choices=("nginx", "python"), default="nginx")
    ap.add_argument("--certs", default=BENCH_CERTS, help="dir with ecdsa.chain.crt, ecdsa.key")
    ap.add_argument("--proxy-nofile", type=int, default=131072,
                    help="RLIMIT_NOFILE for the proxies this script starts (0: inherit ours); "
                         "capped at the hard limit without CAP_SYS_RESOURCE")
    ap.add_argument("--handshake", action="store_true",
                    help="complete a TLS handshake per tunnel (Python ssl) instead of sending "
                         "the captured ClientHello")
    ap.add_argument("--sources", type=int, default=20, help="source addresses 127.0.0.1..N")
    ap.add_argument("--window", type=int, default=400, help="tunnels being opened at once")
    ap.add_argument("--tunnel-timeout", type=float, default=20.0)
    ap.add_argument("--open-timeout", type=float, default=40.0, help="to open all tunnels")
    ap.add_argument("--settle", type=float, default=1.0, help="idle seconds before measuring")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    raise_own_nofile(args.n + 1024)
    with open(HELLO_FILE, "rb") as f:
        hello = f.read()
    results = []
    t0 = time.monotonic()
    try:
        if args.proxy:
            if not (args.proxy_pid and args.target):
                ap.error("--proxy needs --proxy-pid and --target")
            host, port = args.proxy.rsplit(":", 1)
            results.append(measure(f"pid {args.proxy_pid}", args.proxy_pid, (host, int(port)),
                                   args.target, args, hello))
        elif args.start:
            names = [x.strip() for x in args.start.split(",") if x.strip()]
            work = tempfile.mkdtemp(prefix="idle-tunnels-")
            os.chmod(work, 0o755)
            origin_ports = {name: free_port() for name in names}  # one per proxy: no TIME_WAIT reuse
            origin, origin_name = start_origin(args.origin, list(origin_ports.values()), work,
                                               args.certs)
            print(f"origin: {origin_name} on {sorted(origin_ports.values())}; state in {work}")
            nofile = args.proxy_nofile or None
            for name in names:
                port = free_port()
                if name == "moat":
                    if not os.access(args.moat_bin, os.X_OK):
                        print(f"\n== moat: {args.moat_bin} not found, skipped")
                        continue
                    p, target, log = start_moat(work, port, origin_ports[name], args.n, nofile,
                                                args.moat_bin, args.moat_workers)
                elif name == "squid" and shutil.which("squid"):
                    p, target, log = start_squid(work, port, origin_ports[name], args.n,
                                                 nofile or 65536)
                elif name == "tinyproxy" and shutil.which("tinyproxy"):
                    p, target, log = start_tinyproxy(work, port, origin_ports[name], args.n, nofile)
                else:
                    print(f"\n== {name}: unknown or not installed, skipped")
                    continue
                if not wait_port(port, p):
                    print(f"\n== {name}: did not start (exit {p.poll()}); see {work}")
                    terminate(p)
                    continue
                try:
                    results.append(measure(name, p.pid, ("127.0.0.1", port), target, args, hello,
                                           log))
                finally:
                    terminate(p)
            terminate(origin)
            shutil.rmtree(work, ignore_errors=True)
        else:
            ap.error("give --proxy/--proxy-pid/--target, or --start")
    finally:
        cleanup()
    print(f"\n{'proxy':<12} {'open':>7} {'RSS before':>11} {'RSS open':>10} {'KiB/tunnel':>11} "
          f"{'HWM KiB/t':>10} {'fds/t':>6} {'threads':>8}")
    for r in results:
        print(f"{r['proxy']:<12} {r['tunnels_open']:>7} {r['before']['rss_kib']:>9}Ki "
              f"{r['open']['rss_kib']:>8}Ki {r['rss_per_tunnel_kib']:>11} "
              f"{r['hwm_per_tunnel_kib']:>10} {r['fds_per_tunnel']:>6} {r['open']['threads']:>8}")
    print(f"total {time.monotonic() - t0:.1f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
