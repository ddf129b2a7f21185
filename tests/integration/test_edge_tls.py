"""moat edge: the TLS profile: TLS 1.0 and 1.1 refused, a CBC/static-RSA cipher refused, TLS 1.2
with ECDHE+AEAD and TLS 1.3 accepted, groups, SNI certificate choice, ALPN h2 and http/1.1,
session resumption with tickets, and the handshake deadline."""
import os
import socket
import subprocess
import time

from harness import check, check_eq, done
from edge_fixture import Edge, closed_by_peer

edge = Edge(http_listener=False, admin=False, limits="    handshake_timeout: 1s\n")
port = edge.https_port


def s_client(*args, servername="app.example.test", stdin=b"Q\n"):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", edge.ca]
    if servername:
        cmd += ["-servername", servername]
    r = subprocess.run(cmd + list(args), input=stdin, capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode("latin-1") + r.stderr.decode("latin-1")


def handshake_ok(out):
    return "Cipher is (NONE)" not in out and ("Cipher is " in out or "Protocol  :" in out) \
        and "alert" not in out.lower().split("---")[0] and "New, " in out


for flag, name in (("-tls1", "TLS 1.0"), ("-tls1_1", "TLS 1.1")):
    # Recent OpenSSL refuses these at security level 1 on the client side too: lower it, so the
    # refusal tested is the edge's.
    rc, out = s_client(flag, "-cipher", "DEFAULT:@SECLEVEL=0")
    check(rc != 0 and not handshake_ok(out), f"{name} is refused", out[-600:])

rc, out = s_client("-tls1_2", "-cipher", "AES128-SHA")
check(rc != 0 and not handshake_ok(out), "TLS 1.2 with AES128-SHA (static RSA, CBC) is refused", out[-600:])
rc, out = s_client("-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA")
check(rc != 0 and not handshake_ok(out), "TLS 1.2 with ECDHE but CBC is refused", out[-600:])
rc, out = s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
check(rc == 0 and "ECDHE-ECDSA-AES128-GCM-SHA256" in out and "TLSv1.2" in out,
      "TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 is accepted", out[-800:])
rc, out = s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305")
check(rc == 0 and "CHACHA20" in out, "TLS 1.2 with ChaCha20-Poly1305 is accepted", out[-600:])
rc, out = s_client("-tls1_3")
check(rc == 0 and "TLSv1.3" in out, "TLS 1.3 is accepted", out[-600:])
rc, out = s_client("-tls1_3", "-groups", "X25519")
check(rc == 0 and "X25519" in out, "group X25519", out[-600:])
rc, out = s_client("-tls1_3", "-groups", "P-384")
check(rc == 0 and ("P-384" in out or "secp384r1" in out), "group P-384", out[-600:])
rc, out = s_client("-tls1_3", "-groups", "ffdhe2048")
check(rc != 0 and not handshake_ok(out), "finite-field group ffdhe2048 is refused", out[-600:])

# ---- SNI: two certificates, two names ---------------------------------------------------------------
rc, out = s_client("-tls1_3", servername="app.example.test")
check("CN = app.example.test" in out or "CN=app.example.test" in out, "SNI app.example.test gets its certificate", out[:800])
rc, out = s_client("-tls1_3", servername="other.example.test")
check(("CN = other.example.test" in out or "CN=other.example.test" in out) and "Verify return code: 0" in out,
      "SNI other.example.test gets the second certificate (verified)", out[:800])
rc, out = s_client("-tls1_3", servername="x.app.example.test")
check("CN = app.example.test" in out or "CN=app.example.test" in out, "a wildcard SAN covers x.app.example.test", out[:800])
rc, out = s_client("-tls1_3", servername=None)
check("CN = app.example.test" in out or "CN=app.example.test" in out, "no SNI gets the default (first) certificate", out[:800])

# ---- ALPN ----------------------------------------------------------------------------------------------
rc, out = s_client("-alpn", "h2,http/1.1")
check("ALPN protocol: h2" in out, "ALPN: h2,http/1.1 offered, h2 selected", out[-800:])
rc, out = s_client("-alpn", "http/1.1")
check("ALPN protocol: http/1.1" in out, "ALPN: http/1.1 only, http/1.1 selected", out[-800:])
rc, out = s_client("-alpn", "spdy/3")
check(rc != 0 or "No ALPN negotiated" in out, "ALPN: an unknown protocol is not silently accepted", out[-600:])

# ---- session resumption (tickets), TLS 1.2 and 1.3 ---------------------------------------------------
for version in ("-tls1_2", "-tls1_3"):
    sess = os.path.join(edge.dir, f"sess{version}.pem")
    # TLS 1.3 tickets arrive after the handshake: send a request so s_client reads them.
    req = b"GET / HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n"
    s_client(version, "-sess_out", sess, "-ign_eof", stdin=req)
    rc, out = s_client(version, "-sess_in", sess, "-ign_eof", stdin=req)
    check("Reused, " in out, f"session resumption with {version[1:]}", out[-900:])

# ---- handshake deadline ------------------------------------------------------------------------------
s = socket.create_connection(("127.0.0.1", port), timeout=5)
start = time.monotonic()
closed = closed_by_peer(s, timeout=5)
check(closed and time.monotonic() - start < 4, "a silent client is closed at the handshake deadline (1s)")
s.close()

done()
