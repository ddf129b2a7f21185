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


class RawServer:
    """A loopback TCP server with a scripted behaviour per connection: "garbage" (answers
    non-TLS bytes), "reset" (reads, then resets), "silent" (reads, never answers)."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

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
