"""moat egress, who may go where: groups by source address (each reaches only its own vendor's
hosts; an address in no group is refused), proxy credentials (407 without them), and report mode
(what enforce mode would deny is let through and logged with report_only and the reason)."""
import base64
import hashlib

from harness import check, check_eq, done, free_port, wait_for_port
from egress_fixture import (Egress, check_alive, check_all_records_parse, client_hello,
                            stop_and_check, wait_until)

# ---- 10. Two groups by source address ------------------------------------------------------
gw = Egress()
origin = gw.openssl_origin()
gw.write_policy("vendora.yaml", "vendora", [
    {"id": "api", "hosts": ["api.vendor.test"], "ports": [origin], "purpose": "Vendor A API"}])
gw.write_policy("vendorb.yaml", "vendorb", [
    {"id": "api", "hosts": ["api.other.test"], "ports": [origin], "purpose": "Vendor B API"}])
port6 = free_port("::1")
gw.write_config(["vendora.yaml", "vendorb.yaml"],
                resolve={"api.vendor.test": "127.0.0.1", "api.other.test": "127.0.0.1"},
                listen=False, extra=f"""
  listen: [127.0.0.1:{gw.port}, "[::1]:{port6}"]
  groups:
    - {{name: team-a, sources: [127.0.0.1/32], policies: [vendora]}}
    - {{name: team-b, sources: [127.0.0.2/32, "::1/128"], policies: [vendorb]}}
""")
gw.start()
wait_for_port(port6, host="::1", process=gw.process)

for source, own, other, group, policy in [("127.0.0.1", "api.vendor.test", "api.other.test", "team-a", "vendora"),
                                          ("127.0.0.2", "api.other.test", "api.vendor.test", "team-b", "vendorb")]:
    rc, body, code, connect_code, local_port, err = gw.curl(f"https://{own}:{origin}/",
                                                            "--interface", source)
    check(rc == 0 and "Cipher" in body, f"{group} ({source}) reaches its own vendor {own}",
          f"rc={rc} connect={connect_code} {err}")
    rec = gw.wait_record(client_port=local_port, client=source) or {}
    check_eq(rec.get("group"), group, f"{group}: audit group")
    check_eq(rec.get("decision"), "allow", f"{group}: audit allow for {own}")
    check_eq(rec.get("policy"), policy, f"{group}: audit policy")
    rc, body, code, connect_code, local_port, err = gw.curl(f"https://{other}:{origin}/",
                                                            "--interface", source)
    check(rc != 0 and connect_code == 403, f"{group} ({source}) cannot reach the other vendor {other}",
          f"rc={rc} connect={connect_code} {err}")
    rec = gw.wait_record(client_port=local_port, client=source) or {}
    check_eq(rec.get("group"), group, f"{group}: audit group on the denial")
    check_eq(rec.get("reason"), "host not in policy", f"{group}: audit reason for {other}")

# Raw sockets bound to each source, same answers.
for source, host, status in [("127.0.0.1", "api.vendor.test", 200), ("127.0.0.1", "api.other.test", 403),
                             ("127.0.0.2", "api.other.test", 200), ("127.0.0.2", "api.vendor.test", 403)]:
    s, reply = gw.connect(f"{host}:{origin}", source=source)
    check(reply is not None and reply.status == status, f"raw from {source} to {host}: {status}",
          repr(reply))
    s.close()

# An IPv6 client (::1) is in team-b by its address.
for host, status in [("api.other.test", 200), ("api.vendor.test", 403)]:
    s, reply = gw.connect(f"{host}:{origin}", host="::1", port=port6)
    port = s.getsockname()[1]
    check(reply is not None and reply.status == status, f"::1 to {host}: {status}", repr(reply))
    s.close()
    rec = gw.wait_record(client_port=port, client="::1") or {}
    check_eq(rec.get("group"), "team-b", f"::1 to {host}: audit client ::1 in team-b")

# An address in no group.
s, reply = gw.connect(f"api.vendor.test:{origin}", source="127.0.0.3")
port = s.getsockname()[1]
check(reply is not None and reply.status == 403, "127.0.0.3 (no group): 403", repr(reply))
if reply is not None:
    check_eq(reply.header("X-Moat-Reason"), "client not in any group", "no group: X-Moat-Reason")
s.close()
rec = gw.wait_record(client_port=port, client="127.0.0.3") or {}
check_eq(rec.get("decision"), "deny", "no group: audit deny")
check_eq(rec.get("reason"), "client not in any group", "no group: audit reason")
check_eq(rec.get("group"), "", "no group: audit group empty")
check_all_records_parse(gw)
check_alive(gw)
stop_and_check(gw)

# ---- Proxy credentials ---------------------------------------------------------------------
auth = Egress()
origin = auth.openssl_origin()
auth.write_policy("vendora.yaml", "vendora", [
    {"id": "api", "hosts": ["api.vendor.test"], "ports": [origin], "purpose": "Vendor A API"}])
auth.write_policy("vendorb.yaml", "vendorb", [
    {"id": "api", "hosts": ["api.other.test"], "ports": [origin], "purpose": "Vendor B API"}])
digest = hashlib.sha256(b"s3cret pass").hexdigest()
auth.write_config(["vendora.yaml", "vendorb.yaml"],
                  resolve={"api.vendor.test": "127.0.0.1", "api.other.test": "127.0.0.1"},
                  extra=f"""
  groups:
    - {{name: team-a, sources: [127.0.0.1/32], policies: [vendora]}}
    - {{name: team-b, policies: [vendorb]}}
  users:
    - {{name: alice, password_sha256: "{digest.upper()}", group: team-b}}
  auth_realm: moat test
""")
auth.start()


def basic(user, password):
    return "Proxy-Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() + "\r\n"


s, reply = auth.connect(f"api.other.test:{origin}", source="127.0.0.3")
check(reply is not None and reply.status == 407, "no credentials, no group: 407", repr(reply))
if reply is not None:
    check_eq(reply.header("Proxy-Authenticate"), 'Basic realm="moat test"', "407: Proxy-Authenticate")
s.close()
s, reply = auth.connect(f"api.other.test:{origin}", headers=basic("alice", "wrong"), source="127.0.0.3")
check(reply is not None and reply.status == 407, "wrong password: 407", repr(reply))
s.close()
s, reply = auth.connect(f"api.other.test:{origin}", headers=basic("bob", "s3cret pass"), source="127.0.0.3")
check(reply is not None and reply.status == 407, "unknown user: 407", repr(reply))
s.close()
rc, body, code, connect_code, local_port, err = auth.curl(
    f"https://api.other.test:{origin}/", "--interface", "127.0.0.3", "--proxy-user", "alice:s3cret pass")
check(rc == 0 and "Cipher" in body, "alice (group team-b) reaches vendor B with curl --proxy-user",
      f"rc={rc} connect={connect_code} {err}")
rec = auth.wait_record(client_port=local_port, client="127.0.0.3") or {}
check_eq(rec.get("user"), "alice", "auth: audit user")
check_eq(rec.get("group"), "team-b", "auth: audit group from the user")
s, reply = auth.connect(f"api.vendor.test:{origin}", headers=basic("alice", "s3cret pass"), source="127.0.0.3")
check(reply is not None and reply.status == 403, "alice cannot reach vendor A: 403", repr(reply))
s.close()
# Credentials name the group even from a source address that has another group.
s, reply = auth.connect(f"api.other.test:{origin}", headers=basic("alice", "s3cret pass"))
check(reply is not None and reply.status == 200, "alice from 127.0.0.1 gets team-b's policies", repr(reply))
s.close()
check_all_records_parse(auth)
check_alive(auth)
stop_and_check(auth)

# ---- 9. Report mode ------------------------------------------------------------------------
rep = Egress()
origin = rep.openssl_origin()
raw = rep.raw_origin()
rep.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [origin, raw.port],
     "purpose": "SalesTim main web application"}])
rep.write_config(["salestim.yaml"],
                 resolve={"app.salestim.io": "127.0.0.1", "raw.salestim.io": "127.0.0.1",
                          "unlisted.example.test": "127.0.0.1", "meta.salestim.io": "169.254.169.254"},
                 extra="  mode: report\n")
rep.start()

rc, body, code, connect_code, local_port, err = rep.curl(f"https://unlisted.example.test:{origin}/")
check(rc == 0 and "Cipher" in body, "report mode: a host not in the policy is let through",
      f"rc={rc} connect={connect_code} {err}")
rec = rep.wait_record(client_port=local_port) or {}
check_eq(rec.get("decision"), "allow", "report mode: audit decision allow")
check_eq(rec.get("report_only"), True, "report mode: audit report_only true")
check_eq(rec.get("reason"), "host not in policy", "report mode: the reason it would have been denied")
check_eq(rec.get("host"), "unlisted.example.test", "report mode: audit host")
check(rec.get("bytes_down", 0) > 0, "report mode: bytes flowed", rec)

rc, body, code, connect_code, local_port, err = rep.curl(f"https://app.salestim.io:{origin}/")
check(rc == 0, "report mode: an allowed host still works", err)
rec = rep.wait_record(client_port=local_port) or {}
check_eq(rec.get("report_only"), False, "report mode: an allowed connection is not report_only")

# A ClientHello check failure in report mode: logged, let through.
s, reply = rep.connect(f"raw.salestim.io:{raw.port}")
port = s.getsockname()[1]
check(reply is not None and reply.status == 200, "report mode: CONNECT 200", repr(reply))
hello = client_hello(sni="other.example.test")
s.sendall(hello)
got = wait_until(lambda: raw.total_bytes() >= len(hello), 5)
check(got, "report mode: a hello with a different SNI reaches the origin")
s.close()
rec = rep.wait_record(client_port=port) or {}
check_eq(rec.get("decision"), "allow", "report mode SNI mismatch: audit allow")
check_eq(rec.get("report_only"), True, "report mode SNI mismatch: report_only")
check("SNI" in rec.get("reason", ""), "report mode SNI mismatch: reason mentions SNI", rec)

v = rep.metric_value("moat_egress_decisions_total", decision="report")
check(v is not None and v >= 2, "report mode: metrics count decision=report",
      "\n".join(rep.metric_lines("moat_egress_decisions_total")))
check_all_records_parse(rep)
check_alive(rep)
stop_and_check(rep)

# ---- Per-service modes: report by default, one service enforced (and the reverse) ----------
svc = Egress()
raw = svc.raw_origin()
svc.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["app.salestim.io", "raw.salestim.io"], "ports": [raw.port],
     "purpose": "SalesTim web app"},
    {"id": "help", "hosts": ["help.salestim.io"], "ports": [raw.port], "purpose": "Help center"}])
svc.write_config(["salestim.yaml"],
                 resolve={"raw.salestim.io": "127.0.0.1", "help.salestim.io": "127.0.0.1",
                          "unlisted.example.test": "127.0.0.1"},
                 extra="""
  mode: report
  services:
    - {id: salestim/web-app, mode: enforce}
""")
svc.start()

s, reply = svc.connect(f"unlisted.example.test:{raw.port}")
check(reply is not None and reply.status == 200, "report default: a host in no policy is let through",
      repr(reply))
s.close()
s, reply = svc.connect(f"raw.salestim.io:{raw.port + 1 if raw.port < 65535 else raw.port - 1}")
check(reply is not None and reply.status == 403, "enforced service: a wrong port is refused", repr(reply))
s.close()


def hello_case(host, sni):
    """CONNECT host, send a hello for `sni`; returns (bytes the origin got, audit record)."""
    before = len(raw.snapshot())
    s, reply = svc.connect(f"{host}:{raw.port}")
    port = s.getsockname()[1]
    hello = client_hello(sni=sni)
    if reply is not None and reply.status == 200:
        s.sendall(hello)
    if wait_until(lambda: len(raw.snapshot()) > before, 5):
        wait_until(lambda: raw.snapshot()[before][0] == hello or raw.snapshot()[before][1], 5)
    s.close()
    rec = svc.wait_record(client_port=port) or {}
    return raw.snapshot()[before][0] if len(raw.snapshot()) > before else b"", rec


got, rec = hello_case("raw.salestim.io", "other.example.test")
check(got == b"", "enforced service: an SNI mismatch is refused even though the default mode is report",
      f"{len(got)} bytes of the hello reached the origin")
check(rec.get("decision") == "deny" and rec.get("report_only") is False,
      "enforced service: SNI mismatch audit deny, not report_only", rec)
got, rec = hello_case("help.salestim.io", "other.example.test")
check(got != b"", "report service: an SNI mismatch is let through")
check(rec.get("decision") == "allow" and rec.get("report_only") is True,
      "report service: SNI mismatch audit allow, report_only", rec)
check_all_records_parse(svc)
check_alive(svc)
stop_and_check(svc)
done()
