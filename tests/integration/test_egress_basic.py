"""moat egress, the basics with real clients: an allowed host through curl (page, audit record),
a host not in the policy, a wrong port, plain HTTP, malformed requests, /metrics and /healthz,
and `moat egress --check`."""
import os
import signal
import subprocess

from harness import SOURCE_DIR, check, check_eq, done, moat
from egress_fixture import (Egress, check_alive, check_all_records_parse, stop_and_check)

gw = Egress()
origin = gw.openssl_origin()
gw.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [origin],
     "purpose": "SalesTim main web application"}])
gw.write_policy("vendor.yaml", "vendor", [
    {"id": "api", "hosts": ["api.vendor.test"], "ports": [origin], "purpose": "Vendor API"}])
gw.write_config(["salestim.yaml", "vendor.yaml"],
                resolve={"app.salestim.io": "127.0.0.1", "api.vendor.test": "127.0.0.1",
                         "api.other.test": "127.0.0.1"})
gw.start()

# ---- 1. An allowed host through curl ------------------------------------------------------
rc, body, code, connect_code, local_port, err = gw.curl(f"https://app.salestim.io:{origin}/")
check_eq(rc, 0, "curl to an allowed host succeeds")
check_eq(connect_code, 200, "the proxy answers the CONNECT with 200")
check_eq(code, 200, "the origin answers 200")
check("Cipher" in body, "the page is the origin's (openssl s_server -www lists the cipher)",
      body[:500] + err)
rec = gw.wait_record(client_port=local_port)
check(rec is not None, "an audit record for the curl connection", gw.records())
rec = rec or {}
check_eq(rec.get("decision"), "allow", "audit: decision allow")
check_eq(rec.get("report_only"), False, "audit: report_only false")
check_eq(rec.get("reason"), "allowed", "audit: reason")
check_eq(rec.get("policy"), "salestim", "audit: policy")
check_eq(rec.get("service"), "web-app", "audit: service id")
check_eq(rec.get("purpose"), "SalesTim main web application", "audit: purpose text")
check_eq(rec.get("method"), "CONNECT", "audit: method")
check_eq(rec.get("host"), "app.salestim.io", "audit: host")
check_eq(rec.get("port"), origin, "audit: port")
check_eq(rec.get("sni"), "app.salestim.io", "audit: sni")
check_eq(rec.get("tls_offered"), "TLSv1.3", "audit: tls_offered (curl offers TLS 1.3)")
check_eq(rec.get("upstream"), f"127.0.0.1:{origin}", "audit: upstream address")
check_eq(rec.get("status"), 200, "audit: status")
check_eq(rec.get("client"), "127.0.0.1", "audit: client")
check_eq(rec.get("listener"), "connect", "audit: listener")
check_eq(rec.get("group"), "default", "audit: group (no groups configured)")
check(isinstance(rec.get("bytes_up"), int) and rec["bytes_up"] > 300,
      "audit: bytes_up counts the hello and the request", rec)
check(isinstance(rec.get("bytes_down"), int) and rec["bytes_down"] > 1000,
      "audit: bytes_down counts the certificate and the page", rec)
check(isinstance(rec.get("duration_ms"), int) and rec["duration_ms"] >= 0, "audit: duration_ms")
check_eq(rec.get("phase"), "done", "audit: phase done")
check_eq(rec.get("termination"), "closed", "audit: termination closed")
for field in ("time", "client", "client_port", "listener", "group", "user", "method", "host", "port",
              "sni", "decision", "report_only", "reason", "policy", "service", "purpose",
              "upstream", "tls_offered", "status", "bytes_up", "bytes_down", "duration_ms",
              "phase", "termination"):
    check(field in rec, f"audit record has field '{field}'")

# The same through openssl s_client -proxy: a second vendor's host, allowed.
r = subprocess.run(["openssl", "s_client", "-proxy", f"127.0.0.1:{gw.port}", "-connect",
                    f"api.vendor.test:{origin}", "-servername", "api.vendor.test", "-CAfile", gw.ca,
                    "-verify_return_error", "-quiet", "-ign_eof"],
                   input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=20)
check(b"Cipher" in r.stdout, "openssl s_client -proxy reaches an allowed host and gets the page",
      r.stdout[:300] + r.stderr[-500:])
rec = gw.wait_record(host="api.vendor.test", decision="allow")
check(rec is not None and rec.get("service") == "api" and rec.get("policy") == "vendor",
      "audit: s_client connection allowed by vendor/api", gw.records()[-1:])

# ---- 2. A host not in any policy -----------------------------------------------------------
rc, body, code, connect_code, local_port, err = gw.curl(f"https://api.other.test:{origin}/")
check(rc != 0, "curl to a host not in the policy fails", err)
check_eq(connect_code, 403, "curl sees 403 on its CONNECT")

s, reply = gw.connect(f"api.other.test:{origin}")
port = s.getsockname()[1]
check(reply is not None and reply.status == 403, "raw CONNECT to a host not in the policy: 403",
      repr(reply))
if reply:
    check_eq(reply.header("X-Moat-Reason"), "host not in policy", "X-Moat-Reason header")
    check(reply.header("Proxy-Status") is not None and "moat" in reply.header("Proxy-Status"),
          "Proxy-Status header", repr(reply.headers))
    # RFC 9209 2.3.13: a request refused by the proxy's policy is http_request_denied;
    # destination_ip_prohibited (2.3.4) is for a refused destination IP address.
    check("error=http_request_denied" in (reply.header("Proxy-Status") or ""),
          "Proxy-Status error type for a policy denial is http_request_denied",
          reply.header("Proxy-Status"))
    check_eq(reply.body, b"moat: host not in policy\n", "one-line body")
    check_eq(reply.header("Connection"), "close", "Connection: close")
check(s.recv(1) == b"" if reply else False, "the proxy closes after the 403")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("decision"), "deny", "audit: deny")
check_eq(rec.get("reason"), "host not in policy", "audit: reason")
check_eq(rec.get("status"), 403, "audit: status 403")
check_eq(rec.get("host"), "api.other.test", "audit: host")
check_eq(rec.get("upstream"), "", "audit: no upstream")
check_eq(rec.get("bytes_up"), 0, "audit: no bytes up")

# ---- 3. A listed host on a port its service does not list ----------------------------------
wrong = origin + 1 if origin < 65535 else origin - 1
s, reply = gw.connect(f"app.salestim.io:{wrong}")
port = s.getsockname()[1]
check(reply is not None and reply.status == 403, "CONNECT to a wrong port: 403", repr(reply))
if reply:
    check_eq(reply.header("X-Moat-Reason"), "port not allowed", "X-Moat-Reason: port not allowed")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("decision"), "deny", "wrong port audit: deny")
check_eq(rec.get("reason"), "port not allowed", "wrong port audit: reason")
check_eq(rec.get("service"), "web-app", "wrong port audit: names the service that lists the host")
check_eq(rec.get("policy"), "salestim", "wrong port audit: policy")
check_eq(rec.get("port"), wrong, "wrong port audit: port")

# A name the policy allows but that does not resolve (the test's DNS server does not answer):
# 502, decision error, Proxy-Status dns_error (RFC 9209 2.3.1).
gw.write_policy("vendor.yaml", "vendor", [
    {"id": "api", "hosts": ["api.vendor.test", "nodns.vendor.test"], "ports": [origin],
     "purpose": "Vendor API"}])
mark = len(gw.log_text())
gw.signal(signal.SIGHUP)
check(gw.wait_log("reload: .*applied", after=mark), "reload with nodns.vendor.test applied")
s, reply = gw.connect(f"nodns.vendor.test:{origin}")
port = s.getsockname()[1]
check(reply is not None and reply.status in (502, 504), "a name that does not resolve: 502 or 504",
      repr(reply))
if reply is not None:
    check("error=dns_error" in (reply.header("Proxy-Status") or ""),
          "Proxy-Status error type for a DNS failure is dns_error", reply.header("Proxy-Status"))
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("decision"), "error", "DNS failure audit: decision error")
check_eq(rec.get("phase"), "resolve", "DNS failure audit: phase resolve")

# Host names are normalized before the decision: case and a trailing dot.
s, reply = gw.connect(f"APP.SalesTim.IO.:{origin}")
port = s.getsockname()[1]
check(reply is not None and reply.status == 200, "CONNECT APP.SalesTim.IO. (case, trailing dot): 200",
      repr(reply))
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("host"), "app.salestim.io", "normalized host in the audit record")

# ---- 13. Plain HTTP and malformed requests -------------------------------------------------
s, reply = gw.request(b"GET http://app.salestim.io/ HTTP/1.1\r\nHost: app.salestim.io\r\n\r\n")
port = s.getsockname()[1]
check(reply is not None and reply.status == 403, "absolute-form GET: 403", repr(reply))
check(reply is not None and b"HTTPS" in reply.body, "the 403 body mentions HTTPS",
      repr(reply.body if reply else None))
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("decision"), "deny", "absolute-form GET audit: deny")
check_eq(rec.get("method"), "GET", "absolute-form GET audit: method")

malformed = {
    "CONNECT without port": (b"CONNECT app.salestim.io HTTP/1.1\r\n\r\n", 400),
    "CONNECT port 99999": (b"CONNECT a:99999 HTTP/1.1\r\n\r\n", 400),
    "CONNECT port 0": (b"CONNECT app.salestim.io:0 HTTP/1.1\r\n\r\n", 400),
    "CONNECT empty port": (b"CONNECT app.salestim.io: HTTP/1.1\r\n\r\n", 400),
    "CONNECT userinfo": (f"CONNECT u@app.salestim.io:{origin} HTTP/1.1\r\n\r\n".encode(), 400),
    "CONNECT origin-form": (b"CONNECT / HTTP/1.1\r\n\r\n", 400),
    "obs-fold header": (f"CONNECT app.salestim.io:{origin} HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n".encode(), 400),
    "bare LF": (f"CONNECT app.salestim.io:{origin} HTTP/1.1\nHost: x\n\n".encode(), 400),
    "space before colon": (f"CONNECT app.salestim.io:{origin} HTTP/1.1\r\nHost : x\r\n\r\n".encode(), 400),
    "NUL in target": (f"CONNECT app.salestim.io\x00:{origin} HTTP/1.1\r\n\r\n".encode(), 400),
    "HTTP/2.0 request line": (f"CONNECT app.salestim.io:{origin} HTTP/2.0\r\n\r\n".encode(), 505),
    "request line too long": (b"CONNECT " + b"a" * 9000 + b".salestim.io:443 HTTP/1.1\r\n\r\n", 414),
    "header too large": (f"CONNECT app.salestim.io:{origin} HTTP/1.1\r\nX: ".encode()
                         + b"a" * 40000 + b"\r\n\r\n", 431),
    "origin-form GET": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
}
for name, (raw, status) in malformed.items():
    try:
        s, reply = gw.request(raw)
    except OSError as e:
        check(False, f"{name}: {status}", repr(e))
        continue
    port = s.getsockname()[1]
    check(reply is not None and reply.status == status, f"{name}: {status}", repr(reply))
    if reply is not None:
        check(reply.header("X-Moat-Reason") not in (None, ""), f"{name}: X-Moat-Reason set")
    s.close()
    rec = gw.wait_record(client_port=port) or {}
    check(rec.get("decision") == "deny" and rec.get("status") == status,
          f"{name}: audit deny with status {status}", rec)

# ---- 13. Metrics and health ----------------------------------------------------------------
status, text = gw.admin_get("/healthz")
check_eq(status, 200, "/healthz 200")
v = gw.metric_value("moat_egress_decisions_total", decision="allow", policy="salestim",
                    service="web-app", reason="allowed")
check(v is not None and v >= 1, "metrics: allow decisions for salestim/web-app",
      "\n".join(gw.metric_lines("moat_egress_decisions_total")))
v = gw.metric_value("moat_egress_decisions_total", decision="deny", reason="host_not_in_policy")
check(v is not None and v >= 2, "metrics: deny decisions, host_not_in_policy",
      "\n".join(gw.metric_lines("moat_egress_decisions_total")))
v = gw.metric_value("moat_egress_decisions_total", decision="deny", reason="port_not_allowed",
                    service="web-app")
check(v is not None and v >= 1, "metrics: deny decisions, port_not_allowed",
      "\n".join(gw.metric_lines("moat_egress_decisions_total")))
records = gw.records()
v = gw.metric_value("moat_egress_connections_total")
check(v is not None and v >= len(records), "metrics: moat_egress_connections_total counts every connection",
      f"{v} < {len(records)}")
v = gw.metric_value("moat_egress_decisions_total")
check_eq(v, float(len(records)), "metrics: one decision sample per audit record")
v = gw.metric_value("moat_egress_bytes_total", direction="down")
check(v is not None and v > 1000, "metrics: bytes down counted")
status, _ = gw.admin_get("/nope")
check_eq(status, 404, "admin: unknown path 404")

check_all_records_parse(gw)
check_alive(gw)
stop_and_check(gw)

# ---- 13. moat egress --check --------------------------------------------------------------
r = moat("egress", "--config", os.path.join(SOURCE_DIR, "examples", "egress.yaml"), "--check")
check_eq(r.returncode, 0, "--check examples/egress.yaml exits 0")
check("egress config ok" in r.stdout, "--check says ok", r.stdout + r.stderr)
bad = gw.write("bad.yaml", "moat: gateway/v1\negress:\n  policies: [salestim.yaml]\n"
               "  listen: [127.0.0.1:1]\n  bogus_key: 1\n")
r = moat("egress", "--config", bad, "--check")
check_eq(r.returncode, 1, "--check on a config with an unknown key exits 1")
check(r.stderr.startswith(f"{bad}:5:3:") and "bogus_key" in r.stderr,
      "--check names the unknown key at file:line:column", r.stderr)
r = moat("egress", "--config", os.path.join(gw.dir, "missing.yaml"), "--check")
check(r.returncode == 2 and "missing.yaml" in r.stderr, "--check on a missing file exits 2",
      f"{r.returncode} {r.stderr}")
done()
