"""Shared setup for the edge integration tests: certificates, an echoing origin, the gateway
config, a running `moat edge`, raw TLS clients and the access log.

Everything listens on 127.0.0.1 on ports chosen at run time; every wait polls with a deadline.
"""
import http.server
import json
import os
import re
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.request

from harness import (MOAT, free_port, make_ca_and_leaf, start, tempdir, wait_for_port)

POLL = 0.02  # poll interval of a readiness check, not a wait for an effect


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(POLL)


class Origin:
    """A threaded HTTP/1.1 origin on loopback. Every request is recorded (method, path, headers,
    body) and answered 200 with a JSON echo of it, keep-alive. Paths: /chunked answers with a
    chunked body, /close answers close-delimited (HTTP/1.0 style)."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.connections = 0
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with origin.lock:
                    origin.connections += 1

            def _serve(self):
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                record = {"method": self.command, "path": self.path,
                          "headers": [[k, v] for k, v in self.headers.items()],
                          "body": body.decode("latin-1")}
                with origin.lock:
                    origin.requests.append(record)
                payload = json.dumps(record).encode()
                if self.path.startswith("/chunked"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(payload), 7):
                        piece = payload[i:i + 7]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if self.path.startswith("/close"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Strict-Transport-Security", "max-age=1")  # the edge's wins
                self.send_header("Keep-Alive", "timeout=5")  # hop-by-hop: stripped
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _serve

        class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = ThreadingServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.requests)

    def paths(self):
        with self.lock:
            return [r["path"] for r in self.requests]


def header(record, name):
    """The first value of header `name` in a recorded origin request (case-insensitive)."""
    for k, v in record["headers"]:
        if k.lower() == name.lower():
            return v
    return None


class Edge:
    """Certificates (two names on two certificates), an origin, a config, and `moat edge`."""

    def __init__(self, routes=None, pools=None, limits="", names=(("app.example.test", "*.app.example.test"),
                                                                   ("other.example.test",)),
                 origin=True, http_listener=True, admin=True, extra_edge="", access_log=None):
        self.dir = tempdir()
        self.origin = Origin() if origin else None
        self.certs = []
        ca = None
        for i, dns in enumerate(names):
            c = make_ca_and_leaf(self.dir, name=f"site{i}", dns=dns, ips=("127.0.0.1",), ca=ca)
            ca = c["ca"]
            self.certs.append(c)
        self.ca = ca["crt"]
        self.https_port = free_port()
        self.http_port = free_port() if http_listener else None
        self.admin_port = free_port() if admin else None
        self.access_log = os.path.join(self.dir, "access.log")
        access_log_value = access_log or self.access_log
        origin_port = self.origin.port if self.origin else free_port()
        if pools is None:
            pools = f'    - {{name: app, members: ["127.0.0.1:{origin_port}"]}}\n'
        if routes is None:
            routes = ('    - {host: "*.app.example.test", path_prefix: /, pool: app}\n'
                      '    - {host: app.example.test, path_prefix: /, pool: app}\n'
                      '    - {host: localhost, path_prefix: /api, pool: app}\n')
        certs = "".join(f"    - {{cert: {c['chain']}, key: {c['key']}}}\n" for c in self.certs)
        self.config = os.path.join(self.dir, "edge.yaml")
        with open(self.config, "w") as f:
            f.write("moat: gateway/v1\n"
                    "workers: 2\n"
                    + (f"admin:\n  listen: 127.0.0.1:{self.admin_port}\n" if admin else "")
                    + "edge:\n"
                    f"  listen_https: [127.0.0.1:{self.https_port}]\n"
                    + (f"  listen_http: [127.0.0.1:{self.http_port}]\n" if http_listener else "")
                    + f"  certificates:\n{certs}"
                    f"  pools:\n{pools}"
                    f"  routes:\n{routes}"
                    f"  access_log: {access_log_value}\n"
                    + (f"  limits:\n{limits}" if limits else "")
                    + extra_edge)
        self.stderr_path = os.path.join(self.dir, "edge.stderr")
        self.stderr = open(self.stderr_path, "w")
        self.process = start([MOAT, "edge", "--config", self.config], stderr=self.stderr)
        wait_for_port(self.https_port, process=self.process)
        if http_listener:
            wait_for_port(self.http_port, process=self.process)
        if admin:  # started after the listeners: /metrics may be read right away
            wait_for_port(self.admin_port, process=self.process)

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def metrics(self):
        """The admin listener's /metrics text."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def metric(self, name, labels=""):
        """The value of one series (`labels` as exposed: '{limit="route"}'), 0 if absent."""
        m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), self.metrics(), re.M)
        return float(m.group(1)) if m else 0.0

    def rejections(self, limit):
        return self.metric("moat_edge_guard_rejections_total", '{limit="%s"}' % limit)

    def records(self):
        try:
            with open(self.access_log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait_records(self, n, timeout=10.0):
        return wait_until(lambda: self.records() if len(self.records()) >= n else None, timeout) \
            or self.records()

    def context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx

    def tls_socket(self, server_name="app.example.test", timeout=10.0):
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout=timeout)
        return self.context().wrap_socket(raw, server_hostname=server_name)

    def curl(self, *args, host="app.example.test", timeout=30):
        """curl against the edge with `host` resolved to 127.0.0.1 and the test CA trusted."""
        # curl picks HTTP/2 when the edge offers it; HTTP/1.1 unless the caller asks for h2.
        version = [] if any(a.startswith("--http2") for a in args) else ["--http1.1"]
        cmd = ["curl", "-sS", *version, "--cacert", self.ca,
               "--resolve", f"{host}:{self.https_port}:127.0.0.1", "-D", "-", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def read_response(sock, timeout=10.0):
    """Reads one HTTP/1.1 response (Content-Length or chunked body) from a socket. Returns
    (status, headers dict lowercased, body bytes, leftover bytes) or None on close/timeout."""
    deadline = time.monotonic() + timeout
    data = b""

    def more():
        nonlocal data
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError, ssl.SSLError, OSError):
            return False
        if not chunk:
            return False
        data += chunk
        return True

    while b"\r\n\r\n" not in data:
        if not more():
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    status = int(m.group(1)) if m else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    data = rest
    if status in (100, 103):
        return read_response_from(sock, data, deadline)
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(data) < n:
            if not more():
                break
        return status, headers, data[:n], data[n:]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in data:
                if not more():
                    return status, headers, body, b""
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                if not more():
                    return status, headers, body, b""
            body += data[:size]
            data = data[size + 2:]
            if size == 0:
                return status, headers, body, data
    return status, headers, data, b""


def read_response_from(sock, prefix, deadline):
    class Prefixed:
        def __init__(self):
            self.buf = prefix

        def settimeout(self, t):
            sock.settimeout(t)

        def recv(self, n):
            if self.buf:
                b, self.buf = self.buf, b""
                return b
            return sock.recv(n)
    return read_response(Prefixed(), max(0.1, deadline - time.monotonic()))


def closed_by_peer(sock, timeout=5.0):
    """True if the peer closes (EOF, reset or TLS close) within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            return True
        if not chunk:
            return True


# ---- raw HTTP/2, for clients that must misbehave (floods, resets, trickled bodies) -------------
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_int(value, prefix_bits=7):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out = [limit]
    value -= limit
    while value >= 128:
        out.append((value % 128) + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack(fields):
    """Literal fields without indexing, names and values as raw strings (RFC 7541 6.2.2)."""
    out = b""
    for name, value in fields:
        n, v = name.encode(), value.encode()
        out += b"\x00" + hpack_int(len(n)) + n + hpack_int(len(v)) + v
    return out
