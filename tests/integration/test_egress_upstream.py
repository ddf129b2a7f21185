"""moat egress, `checks: {upstream: version | pins}`: after forwarding the client's hello, moat
reads the server's first flight before the client sees a byte of it.

- pins, TLS 1.2 origin: the Certificate message is in clear; the service's pins (RFC 7469, any
  certificate of the chain) must match one of its certificates: pin_source "certificate".
- pins, TLS 1.3 origin: the certificate is encrypted; moat makes a verification handshake of its
  own to the same address (pin_source "verification"), cached per worker, host and address for
  `pin_cache_ttl` (the origins count accepted connections to see it).
- a mismatch closes the tunnel with nothing of the server's flight forwarded (the client
  records every byte it receives after the 200); report mode lets it through, logged.
- version: the ServerHello's negotiated version must meet `min_version`.

The origins are threaded Python TLS servers (the verification handshake is a second connection
made while the first one waits, so a one-at-a-time server like `openssl s_server` would stall).
Pins are computed with openssl, independently of moat, and cross-checked with `moat cert pin`.
"""
import base64
import hashlib
import json
import signal
import socket
import ssl
import subprocess
import threading
import time

from harness import check, check_eq, done, make_ca_and_leaf, moat
from egress_fixture import (Egress, bio_get, check_alive, check_all_records_parse, stop_and_check,
                            wait_closed)

T0 = time.monotonic()


# ---- Pins, computed without moat ---------------------------------------------------------------

def openssl_pin(cert_path):
    """RFC 7469 pin: base64(SHA-256(DER SubjectPublicKeyInfo)), with openssl."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


# ---- A threaded TLS origin that counts connections ---------------------------------------------

class CountingTlsOrigin:
    """Python ssl server, one thread per connection. Counts accepted TCP connections (moat's
    verification handshake is one of them) and the versions of completed handshakes.
    `versions`: (min, max) ssl.TLSVersion; `groups`: restrict the key-exchange groups (to force a
    HelloRetryRequest); `max_accepts`: close the listener after that many connections."""

    def __init__(self, cert, key, marker, versions=(None, None), groups=None, max_accepts=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if versions[0]:
            self.ctx.minimum_version = versions[0]
        if versions[1]:
            self.ctx.maximum_version = versions[1]
        if groups:
            self.ctx.set_ecdh_curve(groups)
        self.marker = marker
        self.max_accepts = max_accepts
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.versions = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                last = self.max_accepts is not None and self.accepted >= self.max_accepts
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
            if last:
                self.listener.close()
                return

    def _serve(self, conn):
        try:
            conn.settimeout(20)
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                with self.lock:
                    self.versions.append(tls.version())
                data = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                    while b"\r\n\r\n" in data:
                        _, _, data = data.partition(b"\r\n\r\n")
                        body = f"{self.marker} {tls.version()}\n".encode()
                        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                                    + body)
        except (OSError, ssl.SSLError, ValueError):
            return

    def count(self):
        with self.lock:
            return self.accepted


# ---- A client that records every byte it receives after the 200 --------------------------------

HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def tunnel_tls(gw, host, port, ctx=None, session=None, get=True, timeout=10.0):
    """CONNECT host:port, then a TLS handshake (memory BIOs, the test CA, hostname checked) over
    the tunnel. Returns a dict: status (of the CONNECT), port (the client's local port, to find
    the audit record), received (every byte that came from the proxy after the 200 until the
    handshake ended), error (None when the handshake completed), version, reused, session, page
    (the origin's answer to a GET), closed (the proxy closed the tunnel after a failure)."""
    s, reply = gw.connect(f"{host}:{port}", timeout=timeout)
    out = {"status": reply.status if reply else None, "port": s.getsockname()[1], "received": b"",
           "error": None, "version": None, "reused": False, "session": None, "page": b"",
           "closed": None}
    if reply is None or reply.status != 200:
        out["error"] = f"CONNECT answered {reply!r}"
        s.close()
        return out
    ctx = ctx or ssl.create_default_context(cafile=gw.ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=host, session=session)
    received = bytearray(reply.rest)
    if reply.rest:
        incoming.write(reply.rest)
    deadline = time.monotonic() + timeout
    while True:
        try:
            obj.do_handshake()
            pending = outgoing.read()
            if pending:
                s.sendall(pending)
            break
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                try:
                    s.sendall(pending)
                except OSError as e:
                    out["error"] = e
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                out["error"] = TimeoutError("handshake not done in time")
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except (socket.timeout, OSError) as e:
                out["error"] = e
                break
            if not chunk:
                out["error"] = EOFError("the proxy closed the tunnel during the handshake")
                out["closed"] = True
                break
            received += chunk
            incoming.write(chunk)
        except ssl.SSLError as e:
            out["error"] = e
            break
    out["received"] = bytes(received)
    if out["error"] is None:
        out["version"] = obj.version()
        out["reused"] = obj.session_reused
        if get:
            out["page"] = bio_get(s, obj, incoming, outgoing, host, timeout=timeout)
        out["session"] = obj.session
    elif out["closed"] is None:
        out["closed"] = wait_closed(s, 5)
    s.close()
    return out


def record_for(gw, result):
    return gw.wait_record(client_port=result["port"]) or {}


def expect_allowed(gw, name, host, origin, version, pin=None, source=None, tls_negotiated=None,
                   session=None, report_only=False, code="allowed"):
    r = tunnel_tls(gw, host, origin.port, session=session)
    ok = check(r["error"] is None, f"{name}: the client's handshake through the tunnel completes",
               repr(r["error"]))
    if ok:
        check_eq(r["version"], version, f"{name}: the client negotiated {version}")
        check(origin.marker.encode() in r["page"], f"{name}: the origin's page arrives", r["page"][:200])
    rec = record_for(gw, r)
    check_eq(rec.get("decision"), "allow", f"{name}: audit decision allow")
    check_eq(rec.get("reason_code"), code, f"{name}: audit reason_code {code}")
    check_eq(rec.get("report_only"), report_only, f"{name}: audit report_only {report_only}")
    check_eq(rec.get("tls_negotiated"), tls_negotiated or version,
             f"{name}: audit tls_negotiated")
    check_eq(rec.get("upstream_pin"), pin, f"{name}: audit upstream_pin")
    check_eq(rec.get("pin_source"), source, f"{name}: audit pin_source")
    return r, rec


def expect_pin_refused(gw, name, host, origin, seen_pin, listed):
    r = tunnel_tls(gw, host, origin.port)
    check_eq(r["status"], 200, f"{name}: CONNECT answered 200 (the check comes after the hello)")
    check(r["error"] is not None, f"{name}: the client's TLS handshake fails", repr(r["error"]))
    check_eq(r["received"], b"", f"{name}: not one byte of the server's flight reaches the client")
    check(r["closed"], f"{name}: the proxy closes the tunnel")
    rec = record_for(gw, r)
    check_eq(rec.get("decision"), "deny", f"{name}: audit decision deny")
    check_eq(rec.get("reason_code"), "pin_mismatch", f"{name}: audit reason_code pin_mismatch")
    check_eq(rec.get("report_only"), False, f"{name}: audit report_only false")
    reason = rec.get("reason", "")
    check(seen_pin in reason and all(p in reason for p in listed),
          f"{name}: the reason names the pin seen and the listed pins", reason)
    check_eq(rec.get("upstream_pin"), seen_pin, f"{name}: audit upstream_pin is the pin seen")
    check_eq(rec.get("termination"), "proxy", f"{name}: audit termination proxy")
    check_eq(rec.get("bytes_down"), 0, f"{name}: audit bytes_down 0")
    return r, rec


# ---- Certificates, pins, origins ---------------------------------------------------------------

gw = Egress()
# One leaf for every *.vendor.test name, signed by the fixture's CA; another, unrelated key.
certs = make_ca_and_leaf(gw.dir, name="vendor", dns=("*.vendor.test",), ca=gw.certs["ca"])
other = make_ca_and_leaf(gw.dir, name="other", dns=("other.test",), ca=gw.certs["ca"])
LEAF = openssl_pin(certs["crt"])
CA = openssl_pin(gw.ca)
OTHER = openssl_pin(other["crt"])
check(len({LEAF, CA, OTHER}) == 3 and all(len(base64.b64decode(p)) == 32 for p in (LEAF, CA, OTHER)),
      "three distinct pins (leaf, CA, another key), each base64 of 32 bytes", (LEAF, CA, OTHER))
r = moat("cert", "pin", certs["crt"])
check(r.returncode == 0 and LEAF in r.stdout, "`moat cert pin` prints the pin openssl computes",
      r.stdout + r.stderr)

V12 = (None, ssl.TLSVersion.TLSv1_2)
V13 = (ssl.TLSVersion.TLSv1_3, None)
o12 = CountingTlsOrigin(certs["crt"], certs["key"], "origin-12", V12)
o13 = CountingTlsOrigin(certs["crt"], certs["key"], "origin-13", V13)
o12c = CountingTlsOrigin(certs["chain"], certs["key"], "origin-12-chain", V12)
o13c = CountingTlsOrigin(certs["chain"], certs["key"], "origin-13-chain", V13)
o13hrr = CountingTlsOrigin(certs["crt"], certs["key"], "origin-13-hrr", V13, groups="prime256v1")
o13once = CountingTlsOrigin(certs["crt"], certs["key"], "origin-13-once", V13, max_accepts=1)
ORIGINS = [o12, o13, o12c, o13c, o13hrr, o13once]
PORTS = [o.port for o in ORIGINS]

# service id -> (pins, extra yaml)
SERVICES = {
    "pinned": [LEAF], "wrong": [OTHER], "nopin": [], "ca": [CA], "report": [OTHER],
    "multi": [OTHER, LEAF], "cache": [LEAF], "cache2": [LEAF], "resume": [LEAF], "hrr": [LEAF],
    "once": [LEAF], "report13": [OTHER],
}


def vendor_policy():
    lines = ["moat: policy/v1", "metadata: {publisher: Test, name: vendor, revision: 1}",
             "services:"]
    for sid, pins in SERVICES.items():
        lines += [f"  - id: {sid}", f"    name: {sid}", f"    purpose: \"pin test {sid}\"",
                  f"    hosts: [\"{sid}.vendor.test\"]", f"    ports: {json.dumps(PORTS)}"]
        if pins:
            lines.append(f"    pins: {json.dumps(pins)}")
    return "\n".join(lines) + "\n"


gw.write("vendor.yaml", vendor_policy())
RESOLVE = {f"{sid}.vendor.test": "127.0.0.1" for sid in SERVICES}
gw.write_config(["vendor.yaml"], resolve=RESOLVE,
                extra="\n".join(["  services:",
                                 "    - {id: vendor/report, mode: report}",
                                 "    - {id: vendor/report13, mode: report}",
                                 "  checks: {upstream: pins, min_version: \"1.2\", pin_cache_ttl: 10m}"]))
r = moat("egress", "--config", gw.config_path, "--check")
check(r.returncode == 0, "the config with checks.upstream: pins passes --check", r.stdout + r.stderr)
# One worker: the verification cache is per worker, and connections are spread over the
# workers by the kernel (SO_REUSEPORT), so with several a repeat may find a cold cache.
gw.start(workers=1)

# ---- TLS 1.2: the pin is read from the Certificate message ---------------------------------------
expect_allowed(gw, "TLS 1.2, leaf pin listed", "pinned.vendor.test", o12, "TLSv1.2", pin=LEAF,
               source="certificate")
expect_pin_refused(gw, "TLS 1.2, another pin listed", "wrong.vendor.test", o12, LEAF, [OTHER])
expect_allowed(gw, "TLS 1.2, a service without pins", "nopin.vendor.test", o12, "TLSv1.2")
expect_allowed(gw, "TLS 1.2, two pins listed, the second matches", "multi.vendor.test", o12,
               "TLSv1.2", pin=LEAF, source="certificate")
n = o12.count()
expect_allowed(gw, "TLS 1.2 (no verification handshake)", "pinned.vendor.test", o12, "TLSv1.2",
               pin=LEAF, source="certificate")
check_eq(o12.count() - n, 1, "TLS 1.2: the origin sees one connection (no handshake of moat's own)")

# The CA's pin (RFC 7469: any certificate of the chain), when the origin sends the chain.
expect_allowed(gw, "TLS 1.2, CA pin listed, origin sends the chain", "ca.vendor.test", o12c,
               "TLSv1.2", pin=CA, source="certificate")
# ... and when it sends only its leaf, moat cannot see the CA: refused (it builds no chains).
expect_pin_refused(gw, "TLS 1.2, CA pin listed, origin sends only the leaf", "ca.vendor.test", o12,
                   LEAF, [CA])

# ---- TLS 1.3: a verification handshake of moat's own ----------------------------------------------
n = o13.count()
expect_allowed(gw, "TLS 1.3, leaf pin listed", "pinned.vendor.test", o13, "TLSv1.3", pin=LEAF,
               source="verification")
check_eq(o13.count() - n, 2, "TLS 1.3: the origin sees the tunnel and one verification connection")
n = o13.count()
expect_pin_refused(gw, "TLS 1.3, another pin listed", "wrong.vendor.test", o13, LEAF, [OTHER])
check_eq(o13.count() - n, 2, "TLS 1.3 mismatch: the origin sees the tunnel and the verification")
rec = gw.wait_record(host="wrong.vendor.test", reason_code="pin_mismatch",
                     tls_negotiated="TLSv1.3") or {}
check_eq(rec.get("pin_source"), "verification", "TLS 1.3 mismatch: pin_source verification")
n = o13.count()
expect_allowed(gw, "TLS 1.3, a service without pins", "nopin.vendor.test", o13, "TLSv1.3")
check_eq(o13.count() - n, 1, "TLS 1.3 without pins: no verification handshake")

expect_allowed(gw, "TLS 1.3, CA pin listed, origin sends the chain", "ca.vendor.test", o13c,
               "TLSv1.3", pin=CA, source="verification")
expect_pin_refused(gw, "TLS 1.3, CA pin listed, origin sends only the leaf", "ca.vendor.test", o13,
                   LEAF, [CA])

# The cache: a second connection within pin_cache_ttl makes no verification handshake.
n0 = o13.count()
expect_allowed(gw, "TLS 1.3 cache, first connection", "cache.vendor.test", o13, "TLSv1.3", pin=LEAF,
               source="verification")
n1 = o13.count()
check_eq(n1 - n0, 2, "TLS 1.3 cache: the first connection makes a verification handshake")
expect_allowed(gw, "TLS 1.3 cache, second connection", "cache.vendor.test", o13, "TLSv1.3", pin=LEAF,
               source="verification")
n2 = o13.count()
check_eq(n2 - n1, 1, "TLS 1.3 cache: the second connection within the TTL makes none")
for i in range(3):
    tunnel_tls(gw, "cache.vendor.test", o13.port)
check_eq(o13.count() - n2, 3, "TLS 1.3 cache: three more connections, three origin connections")
# The cache is per host: another name on the same address is verified on its own.
expect_allowed(gw, "TLS 1.3 cache, another host, same address", "cache2.vendor.test", o13,
               "TLSv1.3", pin=LEAF, source="verification")
check_eq(o13.count() - n2 - 3, 2, "TLS 1.3 cache: keyed by host (a new host makes a handshake)")

# Several TLS 1.3 tunnels at once, each waiting on a verification (a new host each round).
results = [None] * 4


def parallel(i):
    results[i] = tunnel_tls(gw, "pinned.vendor.test" if i % 2 else "wrong.vendor.test", o13c.port)


threads = [threading.Thread(target=parallel, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join(30)
check(all(r is not None for r in results), "four concurrent TLS 1.3 tunnels finish")
if all(r is not None for r in results):
    ok_right = all(results[i]["error"] is None for i in (1, 3))
    ok_wrong = all(results[i]["error"] is not None and results[i]["received"] == b"" for i in (0, 2))
    check(ok_right and ok_wrong, "concurrent TLS 1.3: right pins pass, wrong pins are closed "
          "before any server byte", [(r["error"], len(r["received"])) for r in results])

# HelloRetryRequest: the origin accepts only P-256, the client's key share is X25519.
n = o13hrr.count()
r, rec = expect_allowed(gw, "TLS 1.3 with a HelloRetryRequest", "hrr.vendor.test", o13hrr,
                        "TLSv1.3", pin=LEAF, source="verification")
check(r["received"][11:43] == HRR_RANDOM,
      "HRR: the server's first message really was a HelloRetryRequest",
      r["received"][:48].hex())

# TLS 1.2 session resumption: the abbreviated handshake has no Certificate message.
resume_ctx = ssl.create_default_context(cafile=gw.ca)  # a session belongs to its context
r1 = tunnel_tls(gw, "resume.vendor.test", o12.port, ctx=resume_ctx)
check(r1["error"] is None and r1["session"] is not None,
      "TLS 1.2 resumption: the first handshake gives a session", repr(r1["error"]))
if r1["session"] is not None:
    r2 = tunnel_tls(gw, "resume.vendor.test", o12.port, ctx=resume_ctx, session=r1["session"])
    rec = record_for(gw, r2)
    check(r2["error"] is None and r2["reused"],
          "TLS 1.2 resumption: the resumed handshake through the tunnel completes",
          f"{r2['error']!r} reused={r2['reused']} record={rec}")
    check(rec.get("decision") == "allow" and rec.get("upstream_pin") == LEAF
          and rec.get("pin_source") == "verification",
          "TLS 1.2 resumption: allowed, the pin checked by a verification handshake", rec)

# The verification handshake cannot be made (the origin takes one connection): fail closed.
r = tunnel_tls(gw, "once.vendor.test", o13once.port)
check(r["error"] is not None and r["received"] == b"",
      "verification impossible: the handshake fails, no server byte reaches the client",
      f"{r['error']!r} {len(r['received'])} bytes")
rec = record_for(gw, r)
check_eq(rec.get("decision"), "deny", "verification impossible: audit deny")
check_eq(rec.get("reason_code"), "pin_unverified", "verification impossible: reason_code pin_unverified")

# ---- Report mode ---------------------------------------------------------------------------------
expect_allowed(gw, "report mode, TLS 1.2, pin mismatch", "report.vendor.test", o12, "TLSv1.2",
               pin=LEAF, source="certificate", report_only=True, code="pin_mismatch")
rec = gw.wait_record(host="report.vendor.test") or {}
check(LEAF in rec.get("reason", "") and OTHER in rec.get("reason", ""),
      "report mode: the reason names both pins", rec.get("reason"))
expect_allowed(gw, "report mode, TLS 1.3, pin mismatch", "report13.vendor.test", o13, "TLSv1.3",
               pin=LEAF, source="verification", report_only=True, code="pin_mismatch")

v = gw.metric_value("moat_egress_decisions_total", reason="pin_mismatch")
check(v is not None and v >= 4, "metrics: decisions counted with reason pin_mismatch",
      "\n".join(gw.metric_lines("moat_egress_decisions_total")))
check_all_records_parse(gw)
check_alive(gw)

# ---- upstream: version ----------------------------------------------------------------------------
gv = Egress()
gv.certs = gw.certs
gv.ca = gw.ca
gv.write("vendor.yaml", vendor_policy())
gv.write_config(["vendor.yaml"], resolve=RESOLVE,
                extra="  checks: {upstream: version, min_version: \"1.3\"}")
gv.start(workers=2)
# The default client context offers TLS 1.2 and 1.3: the ClientHello meets the 1.3 floor, the
# origin (capped at 1.2) answers with 1.2.
r = tunnel_tls(gv, "pinned.vendor.test", o12.port)
check_eq(r["status"], 200, "version: CONNECT 200")
check(r["error"] is not None, "version: a TLS 1.2 answer under a 1.3 floor fails the client's handshake",
      repr(r["error"]))
check_eq(r["received"], b"", "version: not one byte of the server's flight reaches the client")
check(r["closed"], "version: the proxy closes the tunnel")
rec = record_for(gv, r)
check_eq(rec.get("decision"), "deny", "version: audit deny")
check_eq(rec.get("reason_code"), "upstream_tls_version", "version: reason_code upstream_tls_version")
check_eq(rec.get("tls_offered"), "TLSv1.3", "version: audit tls_offered TLSv1.3")
check_eq(rec.get("tls_negotiated"), "TLSv1.2", "version: audit tls_negotiated TLSv1.2")
check("TLSv1.2" in rec.get("reason", "") and "TLSv1.3" in rec.get("reason", ""),
      "version: the reason names both versions", rec.get("reason"))
# A 1.3 origin passes; pins are not checked in version mode (a wrong pin, no verification).
n = o13.count()
expect_allowed(gv, "version: TLS 1.3 origin, wrong pin not checked", "wrong.vendor.test", o13,
               "TLSv1.3")
check_eq(o13.count() - n, 1, "version: no verification handshake")
check_all_records_parse(gv)
check_alive(gv)

# ---- pin_cache_ttl expires ------------------------------------------------------------------------
gt = Egress()
gt.certs = gw.certs
gt.ca = gw.ca
gt.write("vendor.yaml", vendor_policy())
gt.write_config(["vendor.yaml"], resolve=RESOLVE,
                extra="  checks: {upstream: pins, pin_cache_ttl: 2s}")
gt.start(workers=1)
n0 = o13.count()
t_first = time.monotonic()
tunnel_tls(gt, "cache.vendor.test", o13.port)
n1 = o13.count()
tunnel_tls(gt, "cache.vendor.test", o13.port)
t_second = time.monotonic()
n2 = o13.count()
check_eq(n1 - n0, 2, "ttl 2s: the first connection is verified")
if t_second - t_first < 1.5:
    check_eq(n2 - n1, 1, "ttl 2s: a connection within the TTL is not")
# Waiting for the TTL to pass (an effect of time, not a readiness wait).
time.sleep(max(0.0, t_first + 2.3 - time.monotonic()))
tunnel_tls(gt, "cache.vendor.test", o13.port)
check_eq(o13.count() - n2, 2, "ttl 2s: after the TTL a connection is verified again")

# A TTL under a second: `pin_cache_ttl: 900ms` is accepted (durations take ms), so a connection
# 900 ms after a verification must not make another one.
gt.write_config(["vendor.yaml"], resolve=RESOLVE,
                extra="  checks: {upstream: pins, pin_cache_ttl: 900ms}")
r = moat("egress", "--config", gt.config_path, "--check")
check(r.returncode == 0, "pin_cache_ttl: 900ms passes --check", r.stdout + r.stderr)
mark = len(gt.log_text())
gt.signal(signal.SIGHUP)
check(gt.wait_log("reload: .*applied", after=mark), "reload with pin_cache_ttl 900ms applied",
      gt.non_audit_log()[-1000:])
n0 = o13.count()
t_first = time.monotonic()
tunnel_tls(gt, "cache2.vendor.test", o13.port, get=False)
n1 = o13.count()
t_second = time.monotonic()
tunnel_tls(gt, "cache2.vendor.test", o13.port, get=False)
n2 = o13.count()
check_eq(n1 - n0, 2, "ttl 900ms: the first connection is verified")
if t_second - t_first < 0.6:
    check_eq(n2 - n1, 1, f"ttl 900ms: a connection {1000 * (t_second - t_first):.0f} ms later "
             "uses the cached verification (the TTL is not truncated to 0 s)")
else:
    print(f"skip ttl 900ms: the first connection took {t_second - t_first:.2f}s")
check_all_records_parse(gt)
check_alive(gt)

stop_and_check(gw, gv, gt)
print(f"elapsed {time.monotonic() - T0:.1f}s")
done()
