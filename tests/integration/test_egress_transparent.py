"""moat egress, the transparent TLS listener: a client speaks TLS straight to the listener and the
ClientHello's SNI names the destination (port: transparent_port, since no REDIRECT rule is in
place). An allowed SNI is proxied to the origin; an SNI not in the policy, no SNI, an IP as SNI,
non-TLS bytes, a TLS 1.0 hello and a private destination are closed without reaching it."""
import ssl

from harness import check, check_eq, done, free_port
from egress_fixture import (Egress, check_alive, check_all_records_parse, client_hello,
                            connect_socket, https_get, stop_and_check, tls10_only_hello,
                            wait_closed, wait_until)

gw = Egress()
origin = gw.openssl_origin()
tport = free_port()
gw.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [origin],
     "purpose": "SalesTim main web application"}])
gw.write_config(["salestim.yaml"],
                resolve={"app.salestim.io": "127.0.0.1", "api.other.test": "127.0.0.1",
                         "meta.salestim.io": "169.254.169.254"},
                transparent=f"127.0.0.1:{tport}", extra=f"  transparent_port: {origin}\n")
gw.start(wait_port=tport)


def tls_direct(sni, port=tport):
    ctx = ssl.create_default_context(cafile=gw.ca)
    if sni is None:
        ctx.check_hostname = False
    s = connect_socket(port)
    try:
        return ctx.wrap_socket(s, server_hostname=sni), None
    except (OSError, ssl.SSLError) as e:
        local = s.getsockname()[1] if s.fileno() >= 0 else 0
        s.close()
        return local, e


# ---- 14. An allowed SNI --------------------------------------------------------------------
tls, err = tls_direct("app.salestim.io")
check(isinstance(tls, ssl.SSLSocket), "transparent: TLS with SNI app.salestim.io reaches the origin", repr(err))
if isinstance(tls, ssl.SSLSocket):
    port = tls.getsockname()[1]
    page = https_get(tls, host="app.salestim.io")
    check(b"Cipher" in page, "transparent: the origin's page arrives", page[:200])
    tls.close()
    rec = gw.wait_record(client_port=port) or {}
    check_eq(rec.get("listener"), "transparent", "transparent: audit listener")
    check_eq(rec.get("decision"), "allow", "transparent: audit allow")
    check_eq(rec.get("host"), "app.salestim.io", "transparent: audit host from the SNI")
    check_eq(rec.get("port"), origin, "transparent: audit port is transparent_port")
    check_eq(rec.get("service"), "web-app", "transparent: audit service")
    check_eq(rec.get("upstream"), f"127.0.0.1:{origin}", "transparent: audit upstream")
    check(rec.get("bytes_up", 0) > 0 and rec.get("bytes_down", 0) > 0, "transparent: bytes counted", rec)

# The same through the CONNECT listener of the same process still works.
rc, body, code, connect_code, local_port, err = gw.curl(f"https://app.salestim.io:{origin}/")
check(rc == 0 and "Cipher" in body, "the CONNECT listener works next to the transparent one", err)

# ---- Refused: the connection is closed, nothing is answered --------------------------------
cases = [
    ("an SNI not in the policy", client_hello(sni="api.other.test"), "host not in policy"),
    ("no SNI", client_hello(sni=None), "SNI"),
    ("an IP address as SNI", client_hello(sni="127.0.0.1"), "SNI"),
    ("a numeric SNI", client_hello(sni="2130706433"), "SNI"),
    ("non-TLS bytes", b"GET / HTTP/1.1\r\nHost: app.salestim.io\r\n\r\n", "TLS"),
    ("a TLS 1.0-only hello", tls10_only_hello("app.salestim.io"), "floor"),
    ("an SNI resolving to a metadata address", client_hello(sni="meta.salestim.io"), "private destination"),
]
for name, payload, reason in cases:
    s = connect_socket(tport)
    port = s.getsockname()[1]
    s.sendall(payload)
    check(wait_closed(s, 5), f"transparent, {name}: closed")
    s.close()
    rec = gw.wait_record(client_port=port) or {}
    check_eq(rec.get("decision"), "deny", f"transparent, {name}: audit deny")
    check(reason in rec.get("reason", ""), f"transparent, {name}: reason mentions '{reason}'", rec)
    check_eq(rec.get("bytes_up"), 0, f"transparent, {name}: nothing sent upstream")

# A real client whose SNI is not in the policy: the handshake fails.
result, err = tls_direct("api.other.test")
check(not isinstance(result, ssl.SSLSocket), "transparent: a real client with SNI api.other.test is refused")
if isinstance(result, ssl.SSLSocket):
    result.close()
result, err = tls_direct(None)
check(not isinstance(result, ssl.SSLSocket), "transparent: a real client without SNI is refused")
if isinstance(result, ssl.SSLSocket):
    result.close()
check_all_records_parse(gw)
check_alive(gw)
stop_and_check(gw)

# ---- Transparent listener in report mode ---------------------------------------------------
# Report mode lets a check failure through, but a connection whose first bytes are not a TLS
# hello has no SNI, hence no destination: it must still be closed, never sent anywhere.
rep = Egress()
raw = rep.raw_origin()
tport = free_port()
rep.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [raw.port], "purpose": "SalesTim"}])
rep.write_config(["salestim.yaml"],
                 resolve={"raw.salestim.io": "127.0.0.1", "unlisted.example.test": "127.0.0.1"},
                 transparent=f"127.0.0.1:{tport}",
                 extra=f"  transparent_port: {raw.port}\n  mode: report\n")
rep.start(wait_port=tport)

hello = client_hello(sni="unlisted.example.test")
s = connect_socket(tport)
port = s.getsockname()[1]
s.sendall(hello)
check(wait_until(lambda: raw.total_bytes() >= len(hello), 5),
      "transparent report mode: an SNI not in the policy is let through")
s.close()
rec = rep.wait_record(client_port=port) or {}
check(rec.get("decision") == "allow" and rec.get("report_only") is True,
      "transparent report mode: audit allow, report_only", rec)

# A hello below the TLS floor, for an allowed SNI: let through, and the record keeps the reason
# enforce mode would have refused it for (the policy decision comes after the hello here).
raw.wait_all_closed()
before = len(raw.snapshot())
hello = tls10_only_hello("raw.salestim.io")
s = connect_socket(tport)
port = s.getsockname()[1]
s.sendall(hello)
check(wait_until(lambda: len(raw.snapshot()) > before and raw.snapshot()[before][0] == hello, 5),
      "transparent report mode: a TLS 1.0 hello is let through")
s.close()
rec = rep.wait_record(client_port=port) or {}
check_eq(rec.get("report_only"), True, "transparent report mode, TLS 1.0: report_only")
check("floor" in rec.get("reason", ""),
      "transparent report mode, TLS 1.0: the reason says it would have been refused (floor)", rec)
check_eq(rec.get("reason_code"), "tls_version", "transparent report mode, TLS 1.0: reason_code")

for name, payload, code in [("non-TLS bytes", b"GET / HTTP/1.1\r\nHost: raw.salestim.io\r\n\r\n", "not_tls"),
                            ("garbage that looks like a record", b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",
                             "bad_client_hello"),
                            ("a hello with a NUL in the SNI", client_hello(sni=b"raw\x00.salestim.io"),
                             "bad_client_hello")]:
    raw.wait_all_closed()
    before = raw.snapshot()
    s = connect_socket(tport)
    port = s.getsockname()[1]
    s.sendall(payload)
    closed = wait_closed(s, 5)
    check(closed, f"transparent report mode, {name}: closed")
    s.close()
    rec = rep.wait_record(client_port=port) or {}
    check(rec != {}, f"transparent report mode, {name}: an audit record", rep.records()[-1:])
    check(rec.get("upstream", "") == "" and rec.get("bytes_up", 0) == 0,
          f"transparent report mode, {name}: nothing goes upstream", rec)
    check_eq(rec.get("decision"), "deny", f"transparent report mode, {name}: audit decision deny")
    check_eq(rec.get("reason_code"), code,
             f"transparent report mode, {name}: the record says why (not a DNS error)")
    raw.wait_all_closed()
    check_eq(raw.snapshot()[len(before):], [], f"transparent report mode, {name}: origin untouched")

check_all_records_parse(rep)
check_alive(rep)
stop_and_check(rep)
done()
