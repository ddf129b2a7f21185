"""moat egress, the ClientHello checks after `200 Connection established`: an SNI that differs
from the CONNECT host, no SNI, a TLS 1.0-only hello, bytes that are not TLS, an SSLv2 hello;
the hello pipelined behind the CONNECT, split into 1-byte writes, fragmented over TLS records.
Refused tunnels must never reach the origin (a recording TCP origin checks that no byte
arrived); allowed ones carry the hello byte for byte."""
import signal
import socket
import subprocess
import threading
import time

from harness import SOURCE_DIR, check, check_eq, done
from egress_fixture import (Egress, bio_get, check_alive, check_all_records_parse, client_hello,
                            finish_handshake, memory_bio_hello, stop_and_check, tls10_only_hello,
                            wait_closed, wait_until)

gw = Egress()
origin = gw.openssl_origin()
raw = gw.raw_origin()
gw.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [origin, raw.port],
     "purpose": "SalesTim main web application"}])
gw.write_policy("vendor.yaml", "vendor", [
    {"id": "api", "hosts": ["api.vendor.test"], "ports": [origin, raw.port], "purpose": "Vendor API"}])
gw.write_config(["salestim.yaml", "vendor.yaml"],
                resolve={"app.salestim.io": "127.0.0.1", "raw.salestim.io": "127.0.0.1",
                         "api.vendor.test": "127.0.0.1"},
                limits={"hello_timeout": "3s"})
gw.start()

RAW = f"raw.salestim.io:{raw.port}"


def refused_tunnel(name, payload, reason_part, code, target=RAW, pipelined=False, chunks=None):
    """CONNECT to the recording origin, send `payload` in the tunnel; expect 200, then a close,
    an audit deny whose reason contains `reason_part`, and no byte at the origin."""
    before = len(raw.snapshot())
    if pipelined:
        s, reply = gw.connect(target, extra=payload)
    else:
        s, reply = gw.connect(target)
    port = s.getsockname()[1]
    ok = check(reply is not None and reply.status == 200, f"{name}: CONNECT answered 200", repr(reply))
    if ok and not pipelined:
        try:
            for part in (chunks or [payload]):
                s.sendall(part)
        except OSError:
            pass
    check(wait_closed(s, 5), f"{name}: the proxy closes the tunnel")
    s.close()
    rec = gw.wait_record(client_port=port) or {}
    check_eq(rec.get("decision"), "deny", f"{name}: audit decision deny")
    check(reason_part in rec.get("reason", ""), f"{name}: audit reason mentions '{reason_part}'", rec)
    codes = code if isinstance(code, tuple) else (code,)
    check(rec.get("reason_code") in codes, f"{name}: reason_code in {codes}", rec)
    check_eq(rec.get("phase"), "client_hello", f"{name}: phase client_hello")
    check_eq(rec.get("termination"), "proxy", f"{name}: termination proxy")
    check_eq(rec.get("bytes_up"), 0, f"{name}: audit bytes_up 0")
    # The upstream connection was made before the 200: wait until the origin accepted it and
    # saw it closed, then count what arrived on it.
    wait_until(lambda: len(raw.snapshot()) > before, 5)
    raw.wait_all_closed()
    new = raw.snapshot()[before:]
    check(len(new) == 1 and sum(len(b) for b, _ in new) == 0,
          f"{name}: not one byte reached the origin", repr(new))
    return rec


def allowed_tunnel(name, payload, chunks=None, pipelined=False, target=RAW):
    """The hello is valid: the origin gets exactly the hello bytes."""
    before = len(raw.snapshot())
    if pipelined:
        s, reply = gw.connect(target, extra=payload)
    else:
        s, reply = gw.connect(target)
    port = s.getsockname()[1]
    ok = check(reply is not None and reply.status == 200, f"{name}: CONNECT answered 200", repr(reply))
    if ok and not pipelined:
        for part in (chunks or [payload]):
            s.sendall(part)
    got = wait_until(lambda: len(raw.snapshot()) > before and
                     len(raw.snapshot()[before][0]) >= len(payload), 5)
    new = raw.snapshot()[before:]
    check(got and new[0][0] == payload, f"{name}: the origin receives the hello byte for byte",
          repr([len(b) for b, _ in new]))
    s.close()
    rec = gw.wait_record(client_port=port) or {}
    check_eq(rec.get("decision"), "allow", f"{name}: audit decision allow")
    check_eq(rec.get("bytes_up"), len(payload), f"{name}: audit bytes_up is the hello's size")
    return rec


# ---- 4. SNI differs from the CONNECT host ---------------------------------------------------
rec = refused_tunnel("SNI of another allowed host", client_hello(sni="api.vendor.test"), "SNI",
                     "sni_mismatch")
check_eq(rec.get("sni"), "api.vendor.test", "SNI mismatch: the audit record has the SNI")
check_eq(rec.get("host"), "raw.salestim.io", "SNI mismatch: the audit record has the CONNECT host")
refused_tunnel("SNI of a sibling name", client_hello(sni="app.salestim.io"), "SNI", "sni_mismatch")
# openssl s_client through the proxy, SNI set to another name: the handshake never completes.
r = subprocess.run(["openssl", "s_client", "-proxy", f"127.0.0.1:{gw.port}", "-connect",
                    f"app.salestim.io:{origin}", "-servername", "api.vendor.test", "-CAfile", gw.ca],
                   input=b"", capture_output=True, timeout=20)
check(b"Cipher is (NONE)" in r.stdout or b"CONNECTED" not in r.stdout or r.returncode != 0,
      "s_client with a different SNI gets no TLS session", r.stdout[-400:])
rec = gw.wait_record(host="app.salestim.io", sni="api.vendor.test") or {}
check(rec.get("decision") == "deny" and "SNI" in rec.get("reason", ""),
      "s_client with a different SNI: audit deny, reason mentions SNI", rec)

# ---- 5. No SNI -----------------------------------------------------------------------------
rec = refused_tunnel("no SNI", client_hello(sni=None), "SNI", "no_sni")
check_eq(rec.get("sni"), None, "no SNI: audit sni is null")
with open(f"{SOURCE_DIR}/tests/fixtures/client_hello/openssl_no_sni.bin", "rb") as f:
    refused_tunnel("no SNI (captured openssl hello)", f.read(), "SNI", "no_sni")

# ---- 6. TLS 1.0 only -----------------------------------------------------------------------
rec = refused_tunnel("TLS 1.0-only hello", tls10_only_hello("raw.salestim.io"), "floor",
                     "tls_version")
check_eq(rec.get("tls_offered"), "TLSv1.0", "TLS 1.0: audit tls_offered")
check("TLSv1.2" in rec.get("reason", ""), "TLS 1.0: the reason names the floor", rec)
refused_tunnel("TLS 1.1-only hello", client_hello(sni="raw.salestim.io", versions=(0x0302, 0x0301)),
               "floor", "tls_version")
# A TLS 1.2-only hello meets the floor.
allowed_tunnel("TLS 1.2-only hello", client_hello(sni="raw.salestim.io", versions=None))

# ---- 7. Bytes that are not TLS -------------------------------------------------------------
refused_tunnel("plain HTTP in the tunnel", b"GET / HTTP/1.1\r\nHost: raw.salestim.io\r\n\r\n",
               "tunnel does not carry TLS", "not_tls")
refused_tunnel("SSH banner in the tunnel", b"SSH-2.0-OpenSSH_9.2\r\n", "tunnel does not carry TLS",
               "not_tls")
refused_tunnel("SSLv2-compatible hello", bytes.fromhex("802e0103010015000000100100800300800700c0"
                                                      "060040020080040080") + bytes(16),
               "", "bad_client_hello")
hello = client_hello(sni="raw.salestim.io")
refused_tunnel("a TLS record that is not a handshake", b"\x17\x03\x03\x00\x05hello",
               "", ("not_tls", "bad_client_hello"))
refused_tunnel("a hello with a broken length", hello[:5] + b"\x02" + hello[6:9] + b"\xff\xff"
               + hello[11:], "", "bad_client_hello")

# ---- 13. Pipelined: CONNECT and hello in one write -----------------------------------------
allowed_tunnel("pipelined valid hello", client_hello(sni="raw.salestim.io"), pipelined=True)
refused_tunnel("pipelined hello with a different SNI", client_hello(sni="api.vendor.test"), "SNI",
               "sni_mismatch", pipelined=True)
refused_tunnel("pipelined plain HTTP", b"GET / HTTP/1.1\r\n\r\n", "tunnel does not carry TLS",
               "not_tls", pipelined=True)

# A real client that pipelines: Python's ssl (memory BIOs) against the TLS origin, full page.
obj, incoming, outgoing, hello_bytes = memory_bio_hello(gw.ca, "app.salestim.io")
s, reply = gw.connect(f"app.salestim.io:{origin}", extra=hello_bytes)
port = s.getsockname()[1]
check(reply is not None and reply.status == 200, "pipelined real hello: 200", repr(reply))
err = finish_handshake(s, obj, incoming, outgoing, already=reply.rest if reply else b"")
check(err is None, "pipelined real hello: the TLS handshake with the origin completes", repr(err))
page = bio_get(s, obj, incoming, outgoing, "app.salestim.io") if err is None else b""
check(b"Cipher" in page, "pipelined real hello: the origin's page arrives", page[:200])
s.close()
rec = gw.wait_record(client_port=port) or {}
check(rec.get("decision") == "allow" and rec.get("sni") == "app.salestim.io",
      "pipelined real hello: audit allow", rec)

# ---- The hello in 1-byte TCP writes, and over many TLS records ------------------------------
hello = client_hello(sni="raw.salestim.io")
allowed_tunnel("hello in 1-byte writes", hello, chunks=[hello[i:i + 1] for i in range(len(hello))])
bad = client_hello(sni="api.vendor.test")
refused_tunnel("different SNI in 1-byte writes", bad, "SNI", "sni_mismatch",
               chunks=[bad[i:i + 1] for i in range(len(bad))])


def fragment(record, size):
    """The same handshake bytes re-framed as several TLS records of at most `size` bytes."""
    body = record[5:]
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += record[:3] + len(part).to_bytes(2, "big") + part
    return out


allowed_tunnel("hello over 16-byte TLS records", fragment(hello, 16))
refused_tunnel("different SNI over 16-byte TLS records", fragment(bad, 16), "SNI", "sni_mismatch")

# A real client in 1-byte writes against the TLS origin: full handshake and page.
s, reply = gw.connect(f"app.salestim.io:{origin}")
port = s.getsockname()[1]
check(reply is not None and reply.status == 200, "1-byte real hello: 200", repr(reply))
obj, incoming, outgoing, hello_bytes = memory_bio_hello(gw.ca, "app.salestim.io")
for i in range(len(hello_bytes)):
    s.sendall(hello_bytes[i:i + 1])
err = finish_handshake(s, obj, incoming, outgoing)
check(err is None, "1-byte real hello: the TLS handshake completes", repr(err))
page = bio_get(s, obj, incoming, outgoing, "app.salestim.io") if err is None else b""
check(b"Cipher" in page, "1-byte real hello: the origin's page arrives", page[:200])
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("decision"), "allow", "1-byte real hello: audit allow")

# ---- SNI normalization and odd bytes -------------------------------------------------------
allowed_tunnel("SNI in upper case", client_hello(sni="RAW.SalesTim.IO"))
for name, sni in [("SNI with a NUL byte", b"raw.salestim.io\x00x"),
                  ("SNI with quotes and invalid UTF-8", b'raw"\\\xff.salestim.io'),
                  ("SNI as an IP address", b"127.0.0.1")]:
    before = len(raw.snapshot())
    s, reply = gw.connect(RAW)
    port = s.getsockname()[1]
    s.sendall(client_hello(sni=sni))
    check(wait_closed(s, 5), f"{name}: the proxy closes the tunnel")
    s.close()
    rec = gw.wait_record(client_port=port) or {}
    check_eq(rec.get("decision"), "deny", f"{name}: audit deny")
    wait_until(lambda: len(raw.snapshot()) > before, 5)
    raw.wait_all_closed()
    check(sum(len(b) for b, _ in raw.snapshot()[before:]) == 0, f"{name}: nothing reached the origin")

# supported_versions that names no version the proxy knows (GREASE only, a draft): below the
# floor, and the reason still says something a person can read.
for name, versions in [("GREASE-only supported_versions", (0x0a0a,)),
                       ("a draft-only supported_versions", (0x7f1c,))]:
    rec = refused_tunnel(name, client_hello(sni="raw.salestim.io", versions=versions), "floor",
                         "tls_version")
    check("at most ," not in rec.get("reason", "") and "at most  " not in rec.get("reason", ""),
          f"{name}: the reason names what was offered (no empty version name)", rec.get("reason"))

# ---- The tunnel itself: bytes both ways, exactly, and half-close --------------------------
echo = gw.raw_origin("echo")
eof = gw.raw_origin("reply_on_eof")
gw.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [origin, raw.port, echo.port, eof.port],
     "purpose": "SalesTim main web application"}])
mark = len(gw.log_text())
gw.signal(signal.SIGHUP)
check(gw.wait_log("reload: .*applied", after=mark), "reload with the echo origins' ports applied")

hello = client_hello(sni="raw.salestim.io")
payload = bytes(range(256)) * 4096  # 1 MiB after the hello
s, reply = gw.connect(f"raw.salestim.io:{echo.port}")
port = s.getsockname()[1]
check(reply is not None and reply.status == 200, "echo: 200", repr(reply))
s.sendall(hello)
received = bytearray()


def reader():
    s.settimeout(10)
    while len(received) < len(hello) + len(payload):
        try:
            chunk = s.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        received.extend(chunk)


t = threading.Thread(target=reader)
t.start()
s.sendall(payload)
t.join(15)
check(bytes(received) == hello + payload, "echo: 1 MiB through the tunnel comes back intact",
      f"{len(received)} of {len(hello) + len(payload)} bytes")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("bytes_up"), len(hello) + len(payload), "echo: audit bytes_up exact")
check_eq(rec.get("bytes_down"), len(hello) + len(payload), "echo: audit bytes_down exact")

s, reply = gw.connect(f"raw.salestim.io:{eof.port}")
port = s.getsockname()[1]
s.sendall(hello)
s.shutdown(socket.SHUT_WR)  # the client is done sending, still reading
answer = b""
s.settimeout(5)
while True:  # bounded by the socket timeout and the origin's close
    try:
        chunk = s.recv(4096)
    except OSError:
        break
    if not chunk:
        break
    answer += chunk
check_eq(answer, b"got %d bytes" % len(hello), "half-close: the origin's answer after the client's FIN arrives")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("bytes_down"), len(answer), "half-close: audit bytes_down")
check_eq(rec.get("termination"), "closed", "half-close: termination closed")

# No ClientHello at all within hello_timeout.
s, reply = gw.connect(RAW)
port = s.getsockname()[1]
t0 = time.monotonic()
closed = wait_closed(s, 8)
elapsed = time.monotonic() - t0
check(closed and 2.0 <= elapsed <= 6.0, "no hello: closed after hello_timeout (3 s)", f"{elapsed:.2f}s")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("termination"), "timeout", "no hello: audit termination timeout")
check_eq(rec.get("reason_code"), "hello_timeout", "no hello: reason_code")

v = gw.metric_value("moat_egress_client_hello_failures_total", reason="sni_mismatch")
check(v is not None and v >= 4, "metrics: hello failures by reason (sni_mismatch)",
      "\n".join(gw.metric_lines("moat_egress_client_hello_failures_total")))
check_all_records_parse(gw)
check_alive(gw)
stop_and_check(gw)
done()
