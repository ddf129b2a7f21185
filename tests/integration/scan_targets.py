"""Shared setup for the `moat scan` integration tests: certificates with known properties and
loopback TLS servers (openssl s_server, nginx for HSTS) with known configurations."""
import json
import os
import shutil
import socket
import subprocess
import threading

import harness


def sh(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr}")
    return r.stdout


def self_signed(directory, name, key="ec", cn="scan.test", days=30, extra=()):
    """A self-signed certificate; key "ec" (P-256) or "rsaBITS"."""
    k = os.path.join(directory, f"{name}.key")
    c = os.path.join(directory, f"{name}.crt")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else ["-newkey", f"rsa:{key[3:]}"]
    sh("openssl", "req", "-x509", *newkey, "-nodes", "-keyout", k, "-out", c, "-days", str(days),
       "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}", *extra)
    return {"key": k, "crt": c}


def expired_leaf(directory, ca, name="expired"):
    """A leaf signed by `ca` whose validity ended yesterday (openssl x509 -not_after is 3.4+:
    use `ca` with explicit dates instead)."""
    k = os.path.join(directory, f"{name}.key")
    csr = os.path.join(directory, f"{name}.csr")
    c = os.path.join(directory, f"{name}.crt")
    sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", k)
    sh("openssl", "req", "-new", "-key", k, "-out", csr, "-subj", "/CN=scan.test")
    db = os.path.join(directory, "index.txt")
    open(db, "w").close()
    conf = os.path.join(directory, "ca.cnf")
    with open(conf, "w") as f:
        f.write(f"""[ca]
default_ca = d
[d]
database = {db}
new_certs_dir = {directory}
serial = {os.path.join(directory, 'serial')}
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = ext
[p]
commonName = supplied
[ext]
subjectAltName = DNS:scan.test
basicConstraints = CA:FALSE
""")
    with open(os.path.join(directory, "serial"), "w") as f:
        f.write("1000\n")
    sh("openssl", "ca", "-batch", "-config", conf, "-cert", ca["crt"], "-keyfile", ca["key"],
       "-in", csr, "-out", c, "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
       "-notext")
    return {"key": k, "crt": c}


def s_server(cert, extra=(), chain=None):
    """openssl s_server on loopback; returns the port."""
    _, port = harness.openssl_server(cert["crt"], cert["key"], extra=list(extra), chain=chain)
    return port


def nginx_server(directory, cert, hsts=True, chain=None):
    """nginx on loopback with TLS 1.2/1.3 and (optionally) HSTS; returns the port, or None when
    nginx is not installed."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        return None
    port = harness.free_port()
    crt = cert["crt"]
    if chain:
        crt = os.path.join(directory, "nginx-chain.pem")
        with open(crt, "w") as f:
            f.write(open(cert["crt"]).read() + open(chain).read())
    conf = os.path.join(directory, f"nginx-{port}.conf")
    header = 'add_header Strict-Transport-Security "max-age=63072000" always;' if hsts else ""
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {directory}/nginx-{port}.pid;
error_log {directory}/nginx-{port}.err warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {directory}/cb; proxy_temp_path {directory}/px;
  fastcgi_temp_path {directory}/fc; uwsgi_temp_path {directory}/uw; scgi_temp_path {directory}/sc;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {cert['key']};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
    ssl_prefer_server_ciphers on;
    {header}
    location / {{ return 200 "ok\\n"; }}
  }}
}}
""")
    p = harness.start([nginx, "-c", conf, "-p", directory, "-e", f"{directory}/nginx-{port}.err"])
    harness.wait_for_port(port, process=p)
    return port


def scan(port, *extra, sni="scan.test", ca=None, timeout=60):
    """Runs `moat scan --json` against 127.0.0.1:port under the name `sni`. Returns (rc, doc,
    stderr); doc is None if stdout is not JSON."""
    args = ["scan", f"{sni}:{port}", "--connect", "127.0.0.1", "--json", *extra]
    if ca:
        args += ["--ca", ca]
    r = harness.moat(*args, timeout=timeout)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        doc = None
    return r.returncode, doc, r.stderr


def supported(doc):
    return [p["version"] for p in doc["protocols"] if p["supported"]]


def suites(doc, version):
    for p in doc["protocols"]:
        if p["version"] == version:
            return [s["name"] for s in p["cipher_suites"]]
    return []


def finding_ids(doc):
    return {f["id"] for f in doc["findings"]}


class ThreadedServer:
    """A loopback TCP listener that hands each connection to self._handle on its own thread;
    `conn_timeout` (seconds, or None) bounds every read and write on it."""

    def _listen(self, backlog, conn_timeout=None):
        self.conn_timeout = conn_timeout
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.conn_timeout is not None:
                conn.settimeout(self.conn_timeout)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()


class RawServer(ThreadedServer):
    """A loopback TCP server with a scripted behaviour per connection: "garbage" (answers
    non-TLS bytes), "reset" (reads, then resets), "silent" (reads, never answers)."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.held = []
        self._listen(64)

    def _handle(self, conn):
        try:
            conn.recv(4096)
            if self.behaviour == "garbage":
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\nthis is not TLS at all\r\n")
                conn.close()
            elif self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()
            else:
                self.held.append(conn)  # silent: keep it open, say nothing
        except OSError:
            pass


def der_certificate(directory, name="fake"):
    """A self-signed RSA 2048 certificate in DER, for the fake servers' Certificate message."""
    pem = self_signed(directory, name, key="rsa2048")
    der = os.path.join(directory, f"{name}.der")
    sh("openssl", "x509", "-in", pem["crt"], "-outform", "DER", "-out", der)
    return open(der, "rb").read()


def _read_exact(conn, n):
    data = b""
    while len(data) < n:
        more = conn.recv(n - len(data))
        if not more:
            raise EOFError
        data += more
    return data


class FakeTlsServer(ThreadedServer):
    """A loopback server that speaks just enough TLS 1.2 (TLS_RSA_WITH_AES_128_GCM_SHA256 or
    TLS_RSA_WITH_AES_128_CBC_SHA, server order) for `moat scan` to grade it, with the flaws no
    real server here can have:
      "sslv2"      answers an SSL 2.0 CLIENT-HELLO with a canned SERVER-HELLO (otherwise a TLS
                   protocol_version alert, as OpenSSL 3 does);
      "heartbleed" echoes the heartbeat extension and answers a heartbeat_request with
                   payload_length bytes of "memory" (CVE-2014-0160);
      "heartbeat"  echoes the heartbeat extension, but discards bad requests (RFC 6520 4);
      "ccs"        accepts an early ChangeCipherSpec and fails to decrypt what follows with
                   decryption_failed(21) (CVE-2014-0224); otherwise unexpected_message(10);
      "deflate"    picks DEFLATE (1) when the hello offers it (TLS compression, CRIME);
      "insecure_renegotiation"  never answers renegotiation_info (no RFC 5746).
    The handshake never completes (no key exchange); OpenSSL's chain fetch fails."""

    SUITES = (0x009C, 0x002F)

    def __init__(self, cert_der, *modes):
        self.cert = cert_der
        self.modes = set(modes)
        self.seen = {"sslv2_hellos": 0, "heartbeats": 0, "ccs": 0}
        self._listen(128, conn_timeout=10)

    @staticmethod
    def _record(content_type, body, version=0x0303):
        return bytes([content_type]) + version.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body

    def _alert(self, conn, description, version=0x0303):
        conn.sendall(self._record(21, bytes([2, description]), version))

    def _handle(self, conn):
        try:
            first = _read_exact(conn, 2)
            if first[0] & 0x80:  # SSL 2.0 record, 2-byte header
                body = _read_exact(conn, ((first[0] & 0x7F) << 8) | first[1])
                self.seen["sslv2_hellos"] += 1
                if "sslv2" in self.modes and body[0] == 1:
                    specs = bytes.fromhex("0700c0" "010080" "020080")
                    hello = (bytes([4, 0, 1]) + b"\x00\x02" + len(self.cert).to_bytes(2, "big") +
                             len(specs).to_bytes(2, "big") + (16).to_bytes(2, "big") + self.cert +
                             specs + os.urandom(16))
                    conn.sendall(bytes([0x80 | (len(hello) >> 8), len(hello) & 0xFF]) + hello)
                else:
                    self._alert(conn, 70, 0x0301)
                return
            header = first + _read_exact(conn, 3)
            if header[0] != 22:
                return
            self._client_hello(conn, _read_exact(conn, int.from_bytes(header[3:5], "big")))
        except (OSError, EOFError, IndexError, ValueError):
            pass
        finally:
            conn.close()

    def _client_hello(self, conn, msg):
        if msg[0] != 1:
            return
        legacy = int.from_bytes(msg[4:6], "big")
        at = 6 + 32
        at += 1 + msg[at]  # session id
        n = int.from_bytes(msg[at:at + 2], "big")
        suites = [int.from_bytes(msg[i:i + 2], "big") for i in range(at + 2, at + 2 + n, 2)]
        at += 2 + n
        methods = msg[at + 1:at + 1 + msg[at]]
        at += 1 + msg[at]  # compression methods
        extensions = {}
        if at + 2 <= len(msg):
            end = at + 2 + int.from_bytes(msg[at:at + 2], "big")
            at += 2
            while at + 4 <= end:
                kind, size = int.from_bytes(msg[at:at + 2], "big"), int.from_bytes(msg[at + 2:at + 4], "big")
                extensions[kind] = msg[at + 4:at + 4 + size]
                at += 4 + size
        if 43 in extensions:
            data = extensions[43]
            versions = {int.from_bytes(data[i:i + 2], "big") for i in range(1, 1 + data[0], 2)}
            ok = 0x0303 in versions
        else:
            ok = legacy >= 0x0303
        if not ok:
            return self._alert(conn, 70, 0x0301)
        chosen = next((s for s in self.SUITES if s in suites), None)
        if chosen is None:
            return self._alert(conn, 40)
        heartbeat = 15 in extensions and self.modes & {"heartbleed", "heartbeat"}
        ext = b""
        if (0xFF01 in extensions or 0x00FF in suites) and "insecure_renegotiation" not in self.modes:
            ext += b"\xff\x01\x00\x01\x00"
        if heartbeat:
            ext += b"\x00\x0f\x00\x01\x01"
        compression = b"\x01" if "deflate" in self.modes and 1 in methods else b"\x00"
        hello = (b"\x03\x03" + os.urandom(32) + b"\x00" + chosen.to_bytes(2, "big") + compression +
                 len(ext).to_bytes(2, "big") + ext)
        cert = len(self.cert).to_bytes(3, "big") + self.cert
        cert = len(cert).to_bytes(3, "big") + cert
        flight = b""
        for kind, body in ((2, hello), (11, cert), (14, b"")):
            flight += bytes([kind]) + len(body).to_bytes(3, "big") + body
        conn.sendall(self._record(22, flight))
        ccs_seen = 0
        while True:
            header = _read_exact(conn, 5)
            body = _read_exact(conn, int.from_bytes(header[3:5], "big"))
            if header[0] == 24:
                self.seen["heartbeats"] += 1
                if "heartbleed" in self.modes and body[0] == 1:
                    asked = int.from_bytes(body[1:3], "big")
                    leak = (body[3:] + b"SECRET-MEMORY " * (asked // 14 + 1))[:asked]
                    conn.sendall(self._record(24, b"\x02" + asked.to_bytes(2, "big") + leak + os.urandom(16)))
            elif header[0] == 20:
                self.seen["ccs"] += 1
                ccs_seen += 1
                if "ccs" not in self.modes:
                    return self._alert(conn, 10)
                if ccs_seen == 2:
                    return self._alert(conn, 21)
            else:
                return
