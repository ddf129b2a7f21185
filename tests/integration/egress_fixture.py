"""Shared setup for the egress integration tests: certificates, TLS origins, policies, the gateway
config, a running `moat egress`, raw CONNECT clients, hand-built ClientHellos and audit records.

Everything listens on 127.0.0.0/8 on ports chosen at run time; every wait polls with a deadline.
"""
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request

from harness import (MOAT, check, free_port, make_ca_and_leaf, openssl_server, start, stop,
                     tempdir, wait_for_port)

# Every name a test may ask for; the one leaf certificate carries them all.
TEST_NAMES = ("app.salestim.io", "raw.salestim.io", "meta.salestim.io", "intra.salestim.io",
              "api.vendor.test", "api.other.test", "unlisted.example.test", "localhost")

POLL = 0.02  # poll interval of a readiness check, not a wait for an effect


def wait_until(predicate, timeout=10.0):
    """Polls `predicate` until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(POLL)


# ---- TLS ClientHello built by hand ---------------------------------------------------------

def _u16(n):
    return struct.pack("!H", n)


def _vec8(b):
    return bytes([len(b)]) + b


def _vec16(b):
    return _u16(len(b)) + b


def client_hello(sni=None, versions=(0x0304, 0x0303), legacy_version=0x0303,
                 record_version=0x0301, extra_extensions=b""):
    """A structurally valid ClientHello record. `sni`: str/bytes or None (no server_name);
    `versions`: the supported_versions list, or None/() for no supported_versions extension
    (then `legacy_version` is the highest version offered)."""
    ext = b""
    if sni is not None:
        name = sni.encode() if isinstance(sni, str) else sni
        entry = b"\x00" + _vec16(name)
        ext += _u16(0) + _vec16(_vec16(entry))
    ext += _u16(10) + _vec16(_vec16(_u16(0x001d) + _u16(0x0017)))       # supported_groups
    ext += _u16(11) + _vec16(_vec8(b"\x00"))                              # ec_point_formats
    ext += _u16(13) + _vec16(_vec16(_u16(0x0403) + _u16(0x0804) + _u16(0x0401)))  # sig algs
    if versions:
        ext += _u16(43) + _vec16(_vec8(b"".join(_u16(v) for v in versions)))
        if 0x0304 in versions:
            ext += _u16(51) + _vec16(_vec16(_u16(0x001d) + _vec16(os.urandom(32))))  # key_share
    ext += extra_extensions
    suites = [0x1301, 0x1302, 0xc02b, 0xc02f, 0xc013, 0x002f, 0x00ff]
    body = (_u16(legacy_version) + os.urandom(32) + _vec8(os.urandom(32))
            + _vec16(b"".join(_u16(s) for s in suites)) + _vec8(b"\x00") + _vec16(ext))
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16" + _u16(record_version) + _vec16(handshake)


def tls10_only_hello(sni):
    """A ClientHello that offers TLS 1.0 and nothing newer (no supported_versions)."""
    return client_hello(sni=sni, versions=None, legacy_version=0x0301, record_version=0x0301)


# ---- HTTP over raw sockets -----------------------------------------------------------------

class Reply:
    def __init__(self, status, reason, headers, body, raw, rest):
        self.status = status
        self.reason = reason
        self.headers = headers  # lowercased name -> value (last wins)
        self.body = body
        self.raw = raw
        self.rest = rest  # bytes received after the reply (tunnel bytes)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"Reply({self.status}, {self.raw[:300]!r})"


def read_reply(sock, timeout=10.0):
    """Reads one HTTP/1.1 response head (and its Content-Length body). Returns a Reply, or None
    if the connection closed (or the deadline passed) before a complete head."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return None
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        return Reply(0, lines[0], {}, b"", data, rest)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        rest += chunk
    body, rest = rest[:length], rest[length:]
    return Reply(int(m.group(1)), m.group(2), headers, body, data, rest)


def wait_closed(sock, timeout=5.0):
    """True if the peer closes (EOF or reset) within `timeout`; bytes received before are
    discarded. False if the connection is still open at the deadline."""
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
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True


def connect_socket(port, source=None, host="127.0.0.1", timeout=5.0):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if source:
        s.bind((source, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


# ---- Origins -------------------------------------------------------------------------------

class RawOrigin:
    """A plain TCP origin (threads) that records, per accepted connection, the bytes it got and
    whether the peer has closed. mode "record" never sends anything; "echo" sends every byte
    back; "reply_on_eof" answers b"got N bytes" after the peer half-closes, then closes."""

    def __init__(self, host="127.0.0.1", mode="record"):
        self.mode = mode
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = []  # dicts: {"bytes": bytearray, "closed": bool}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            record = {"bytes": bytearray(), "closed": False}
            with self.lock:
                self.connections.append(record)
            threading.Thread(target=self._serve, args=(conn, record), daemon=True).start()

    def _serve(self, conn, record):
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                with self.lock:
                    record["bytes"] += chunk
                if self.mode == "echo":
                    try:
                        conn.sendall(chunk)
                    except OSError:
                        break
            if self.mode == "reply_on_eof":
                with self.lock:
                    n = len(record["bytes"])
                try:
                    conn.sendall(b"got %d bytes" % n)
                except OSError:
                    pass
        with self.lock:
            record["closed"] = True

    def snapshot(self):
        with self.lock:
            return [(bytes(c["bytes"]), c["closed"]) for c in self.connections]

    def total_bytes(self):
        return sum(len(b) for b, _ in self.snapshot())

    def wait_all_closed(self, timeout=5.0):
        return wait_until(lambda: all(closed for _, closed in self.snapshot()), timeout)


class TlsOrigin:
    """A threaded TLS origin (Python ssl) that answers each request line with a small page, and
    keeps the connection open for further requests (openssl s_server serves one at a time)."""

    def __init__(self, cert, key, marker="tls-origin"):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.marker = marker
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(30)
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                    while b"\r\n\r\n" in data:
                        head, _, data = data.partition(b"\r\n\r\n")
                        with self.lock:
                            self.requests += 1
                            n = self.requests
                        line = head.split(b"\r\n")[0].decode("latin-1")
                        body = f"{self.marker} answer {n} to {line}\n".encode()
                        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                                    + body)
        except (OSError, ssl.SSLError):
            return


# ---- The gateway ---------------------------------------------------------------------------

def policy_yaml(name, services, min_version=None):
    """services: list of dicts with id, hosts, ports, purpose."""
    lines = ["moat: policy/v1", f"metadata: {{publisher: Test, name: {name}, revision: 1}}",
             "services:"]
    for s in services:
        lines += [f"  - id: {s['id']}",
                  f"    name: {s.get('name', s['id'])}",
                  f"    purpose: {json.dumps(s['purpose'])}",
                  f"    hosts: {json.dumps(list(s['hosts']))}",
                  f"    ports: {json.dumps(list(s['ports']))}"]
    if min_version:
        lines += ["tls:", f"  min_version: \"{min_version}\""]
    return "\n".join(lines) + "\n"


class Egress:
    """One test's gateway: a temp dir with certificates, policies and config, and the process."""

    def __init__(self):
        self.dir = tempdir()
        self.certs = make_ca_and_leaf(self.dir, name="origin", dns=TEST_NAMES)
        self.ca = self.certs["ca"]["crt"]
        self.port = free_port()
        self.admin_port = free_port()
        self.dns_port = free_port()
        self.audit = os.path.join(self.dir, "audit.log")
        self.config_path = os.path.join(self.dir, "gateway.yaml")
        self.stdout_path = os.path.join(self.dir, "moat.stdout")
        self.stderr_path = os.path.join(self.dir, "moat.stderr")
        self.process = None
        self.origins = []

    # Files
    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def write_policy(self, file_name, policy_name, services, min_version=None):
        return self.write(file_name, policy_yaml(policy_name, services, min_version))

    def config_text(self, policies, resolve=None, allow_private=("127.0.0.1/32",), extra="",
                    limits=None, listen=True, transparent=None, dns=True):
        lines = ["moat: gateway/v1",
                 f"admin: {{listen: 127.0.0.1:{self.admin_port}}}",
                 "egress:"]
        if listen:
            lines.append(f"  listen: [127.0.0.1:{self.port}]")
        if transparent:
            lines.append(f"  transparent: [{transparent}]")
        lines.append(f"  policies: {json.dumps(list(policies))}")
        if resolve:
            lines.append("  resolve:")
            for name, addr in resolve.items():
                lines.append(f"    {name}: {json.dumps(addr)}")
        if allow_private:
            lines.append(f"  allow_private: {json.dumps(list(allow_private))}")
        lines.append(f"  audit_log: {self.audit}")
        if dns:
            # Names not in `resolve:` go to a loopback port where nothing answers: a test never
            # sends a query off the machine.
            lines.append(f"  dns: {{nameservers: [\"127.0.0.1:{self.dns_port}\"], timeout: 500ms, attempts: 1}}")
        if limits:
            lines.append("  limits:")
            for k, v in limits.items():
                lines.append(f"    {k}: {v}")
        for line in extra.strip("\n").splitlines():
            lines.append(line)
        return "\n".join(lines) + "\n"

    def write_config(self, *args, **kwargs):
        text = self.config_text(*args, **kwargs)
        # Replace atomically: a reload must never read a half-written file.
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        return self.config_path

    # Origins
    def openssl_origin(self):
        p, port = openssl_server(self.certs["crt"], self.certs["key"])
        self.origins.append(p)
        return port

    def raw_origin(self, mode="record"):
        return RawOrigin(mode=mode)

    def tls_origin(self, marker="tls-origin"):
        return TlsOrigin(self.certs["crt"], self.certs["key"], marker)

    # Process
    def start(self, workers=2, wait_port=None):
        self.stdout = open(self.stdout_path, "ab")
        self.stderr = open(self.stderr_path, "ab")
        self.process = start([MOAT, "egress", "--config", self.config_path, "--workers",
                              str(workers)], stdout=self.stdout, stderr=self.stderr)
        wait_for_port(wait_port or self.port, process=self.process)
        wait_for_port(self.admin_port, process=self.process)
        return self.process

    def signal(self, sig):
        os.kill(self.process.pid, sig)

    def log_text(self):
        out = ""
        for path in (self.stdout_path, self.stderr_path):
            try:
                with open(path, "rb") as f:
                    out += f.read().decode("utf-8", "replace")
            except FileNotFoundError:
                pass
        return out

    def non_audit_log(self):
        """The process's log lines (stdout and stderr), without JSON records."""
        return "\n".join(l for l in self.log_text().splitlines() if not l.startswith("{"))

    def wait_log(self, needle, timeout=10.0, after=0):
        """Waits until the process log contains `needle` (a regex) at or after character `after`."""
        rx = re.compile(needle)
        return wait_until(lambda: rx.search(self.log_text()[after:]), timeout)

    def stop(self):
        if self.process and self.process.poll() is None:
            return stop(self.process)
        return self.process.returncode if self.process else None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    # Audit records
    def records(self, path=None):
        """Every audit record so far (lines that do not parse are returned as {"_bad": line})."""
        out = []
        try:
            with open(path or self.audit, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return out
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                out.append(json.loads(line.decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                out.append({"_bad": line})
        return out

    def wait_record(self, timeout=10.0, path=None, **fields):
        """The first audit record whose fields equal `fields`, waiting for it (None if none)."""
        def find():
            for r in self.records(path):
                if all(r.get(k) == v for k, v in fields.items()):
                    return r
            return None
        return wait_until(find, timeout)

    # Admin
    def admin_get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric_lines(self, name):
        _, text = self.admin_get("/metrics")
        return [l for l in text.splitlines() if l.startswith(name + "{") or l.startswith(name + " ")]

    def metric_value(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`."""
        total = None
        for line in self.metric_lines(name):
            m = re.match(r"([a-z_]+)(\{(.*)\})? ([0-9.eE+-]+)$", line)
            if not m:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total = (total or 0) + float(m.group(4))
        return total

    # Clients
    def connect(self, target, headers="", extra=b"", source=None, version="HTTP/1.1",
                timeout=10.0, host="127.0.0.1", port=None):
        """Sends `CONNECT target` (with `extra` bytes in the same write), returns (socket, Reply
        or None). The caller closes the socket."""
        s = connect_socket(port or self.port, source=source, host=host)
        request = f"CONNECT {target} {version}\r\nHost: {target}\r\n{headers}\r\n".encode()
        s.sendall(request + extra)
        return s, read_reply(s, timeout)

    def request(self, raw, source=None, timeout=10.0):
        """Sends raw bytes, returns (socket, Reply or None)."""
        s = connect_socket(self.port, source=source)
        s.sendall(raw)
        return s, read_reply(s, timeout)

    def curl(self, url, *args, timeout=20):
        """curl through the proxy; returns (exit code, body, http code of the proxy/origin,
        local port of the connection to the proxy)."""
        cmd = ["curl", "-sS", "--max-time", "10", "--proxy", f"http://127.0.0.1:{self.port}",
               "--cacert", self.ca, "-o", "-", "-w", "\n@@%{http_code} %{http_connect} %{local_port}",
               *args, url]
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
        out = r.stdout.decode("utf-8", "replace")
        body, _, tail = out.rpartition("\n@@")
        parts = tail.split()
        http_code = int(parts[0]) if parts and parts[0].isdigit() else 0
        connect_code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        local_port = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
        return r.returncode, body, http_code, connect_code, local_port, r.stderr.decode("utf-8", "replace")

    def tls_through(self, target, server_hostname, source=None, timeout=10.0):
        """CONNECT target, then a TLS handshake (Python ssl, the test CA) over the tunnel.
        Returns (tls socket or None, Reply, error)."""
        s, reply = self.connect(target, source=source, timeout=timeout)
        if reply is None or reply.status != 200:
            s.close()
            return None, reply, None
        ctx = ssl.create_default_context(cafile=self.ca)
        try:
            s.settimeout(timeout)
            tls = ctx.wrap_socket(s, server_hostname=server_hostname)
            return tls, reply, None
        except (OSError, ssl.SSLError) as e:
            s.close()
            return None, reply, e


def https_get(tls, path="/", host="x", timeout=10.0):
    """Sends a GET over an established TLS socket; returns the bytes read until the response
    is complete (Content-Length) or the peer closes."""
    tls.settimeout(timeout)
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = tls.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        if sep and m and len(body) >= int(m.group(1)):
            break
    return data


def memory_bio_hello(ca, server_hostname):
    """A real ClientHello from Python's ssl (memory BIOs): returns (sslobj, incoming, outgoing,
    hello bytes); the handshake continues with `finish_handshake`."""
    ctx = ssl.create_default_context(cafile=ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return obj, incoming, outgoing, outgoing.read()


def finish_handshake(sock, obj, incoming, outgoing, already=b"", timeout=10.0):
    """Drives an SSLObject's handshake over `sock`. Returns None on success, or the error."""
    if already:
        incoming.write(already)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            obj.do_handshake()
            pending = outgoing.read()
            if pending:
                sock.sendall(pending)
            return None
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                sock.sendall(pending)
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, OSError) as e:
                return e
            if not chunk:
                return EOFError("closed during the handshake")
            incoming.write(chunk)
        except ssl.SSLError as e:
            return e
    return TimeoutError("handshake")


def bio_get(sock, obj, incoming, outgoing, host, timeout=10.0):
    """GET / over an SSLObject; returns the response bytes (until Content-Length or close)."""
    obj.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    sock.sendall(outgoing.read())
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = obj.read(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length: *(\d+)", head)
            if sep and m and len(body) >= int(m.group(1)):
                break
            continue
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLError):
            break
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            incoming.write_eof()
            try:
                data += obj.read(65536)
            except ssl.SSLError:
                pass
            break
        incoming.write(chunk)
    return data


def check_all_records_parse(gw, what="every audit line is one JSON object"):
    bad = [r for r in gw.records() if "_bad" in r]
    return check(not bad, what, repr(bad[:3]))


def check_alive(gw):
    return check(gw.alive(), "moat is still running", gw.non_audit_log()[-2000:])


def stop_and_check(*gateways):
    """SIGTERM each gateway; each must exit 0 and leave no sanitizer report in its output."""
    for gw in gateways:
        if gw.process is None:
            continue
        code = gw.stop()
        check(code == 0, f"moat (port {gw.port}) exits 0 on SIGTERM", f"exit code {code}")
        log = gw.log_text()
        check("Sanitizer" not in log, f"moat (port {gw.port}): no sanitizer report",
              log[log.find("Sanitizer") - 200:][:3000] if "Sanitizer" in log else "")
