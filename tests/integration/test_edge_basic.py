"""moat edge: HTTPS reverse proxying to an origin: GET with HSTS and forwarding headers,
keep-alive (client side and upstream pool), POST with Content-Length and chunked bodies,
Expect: 100-continue, chunked and close-delimited responses, HEAD, the HTTP listener's 308,
no route (404), origin down (502), access records, metrics and /healthz."""
import http.client
import json
import os
import shutil
import socket
import urllib.request

from harness import MOAT, SOURCE_DIR, check, check_eq, done, moat
from edge_fixture import Edge, header, read_response, closed_by_peer, wait_until

edge = Edge()
port = edge.https_port
base = f"https://app.example.test:{port}"

# ---- GET: status, body, HSTS, forwarding headers --------------------------------------------
r = edge.curl(f"{base}/hello?q=1", "-H", "X-Forwarded-For: 6.6.6.6", "-H", "Connection: x-secret",
              "-H", "X-Secret: hop", "-H", "Proxy-Authorization: Basic Zm9v")
check_eq(r.returncode, 0, "curl GET over HTTPS succeeds")
head, _, body = r.stdout.partition("\n\n")
check("HTTP/1.1 200" in head.splitlines()[0], "GET answered 200", head)
check("strict-transport-security: max-age=63072000; includesubdomains" in head.lower(),
      "HSTS header with the default policy value", head)
check(head.lower().count("strict-transport-security") == 1, "the origin's own HSTS is replaced", head)
check("keep-alive:" not in head.lower(), "hop-by-hop Keep-Alive from the origin is stripped", head)
echo = json.loads(body)
check_eq(echo["path"], "/hello?q=1", "origin sees the path and query")
check_eq(header(echo, "X-Forwarded-For"), "127.0.0.1", "X-Forwarded-For is the client (client's claim replaced)")
check_eq(header(echo, "X-Forwarded-Proto"), "https", "X-Forwarded-Proto: https")
check_eq(header(echo, "Forwarded"), 'for=127.0.0.1;proto=https;host="app.example.test:%d"' % port,
         "Forwarded (RFC 7239)")
rid = header(echo, "X-Request-Id")
check(rid is not None and len(rid) == 32, "X-Request-Id added", rid)
check(f"x-request-id: {rid}" in head.lower(), "the same X-Request-Id is returned to the client", head)
check(header(echo, "X-Secret") is None, "a header named by Connection is stripped")
check(header(echo, "Connection") is None, "Connection is stripped")
check(header(echo, "Proxy-Authorization") is None, "Proxy-* headers are stripped")

# ---- keep-alive: two requests on one client connection; the upstream connection is reused ----
conn = http.client.HTTPSConnection("app.example.test", port, context=edge.context(), timeout=10)
conn.sock = edge.tls_socket()
statuses = []
for path in ("/one", "/two", "/three"):
    conn.request("GET", path, headers={"Host": f"app.example.test:{port}"})
    resp = conn.getresponse()
    statuses.append((resp.status, json.loads(resp.read())["path"]))
check_eq(statuses, [(200, "/one"), (200, "/two"), (200, "/three")],
         "three requests on one keep-alive connection")

# ---- POST with Content-Length; chunked POST; Expect: 100-continue -----------------------------
conn.request("POST", "/form", body=b"a=1&b=2", headers={"Content-Type": "application/x-www-form-urlencoded"})
resp = conn.getresponse()
echo = json.loads(resp.read())
check_eq((resp.status, echo["method"], echo["body"]), (200, "POST", "a=1&b=2"), "POST with Content-Length")
check_eq(header(echo, "Content-Length"), "7", "origin gets the body with Content-Length")

conn.request("POST", "/upload", body=iter([b"hello ", b"chunked ", b"world"]),
             headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
resp = conn.getresponse()
echo = json.loads(resp.read())
check_eq((resp.status, echo["body"]), (200, "hello chunked world"), "chunked POST is decoded and forwarded")
check(header(echo, "Transfer-Encoding") is None and header(echo, "Content-Length") == "19",
      "origin gets the chunked body re-framed with Content-Length", echo["headers"])
conn.close()

r = edge.curl(f"{base}/expect", "-H", "Expect: 100-continue", "--data-binary", "x" * 2000)
check("HTTP/1.1 100 Continue" in r.stdout and "HTTP/1.1 200" in r.stdout,
      "Expect: 100-continue gets 100 then 200", r.stdout[:400])

# ---- chunked and close-delimited responses; HEAD ------------------------------------------------
r = edge.curl(f"{base}/chunked")
check("transfer-encoding: chunked" in r.stdout.lower() and json.loads(r.stdout.partition("\n\n")[2])["path"] == "/chunked",
      "chunked response relayed (re-chunked)", r.stdout[:400])
r = edge.curl(f"{base}/close")
check(r.returncode == 0 and json.loads(r.stdout.partition("\n\n")[2])["path"] == "/close",
      "close-delimited response relayed (and the connection closed cleanly)", r.stdout[:400] + r.stderr)
r = edge.curl(f"{base}/head", "-I")
check("HTTP/1.1 200" in r.stdout and "content-length:" in r.stdout.lower(),
      "HEAD keeps the origin's Content-Length and sends no body", r.stdout)

# ---- pipelining: two requests in one write, answered in order ----------------------------------
s = edge.tls_socket()
s.sendall(b"GET /p1 HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
          b"GET /p2 HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
first = read_response(s)
second = None
if first:
    # Whatever came after the first response starts the second one.
    class Pre:
        def __init__(self, sock, buf):
            self.sock, self.buf = sock, buf
        def settimeout(self, t):
            self.sock.settimeout(t)
        def recv(self, n):
            if self.buf:
                b, self.buf = self.buf, b""
                return b
            return self.sock.recv(n)
    second = read_response(Pre(s, first[3]))
check(first is not None and second is not None and json.loads(first[2])["path"] == "/p1"
      and json.loads(second[2])["path"] == "/p2", "pipelined requests answered in order")
s.close()

# ---- routing: no route 404 (keep-alive kept), path prefix -----------------------------------------
r = edge.curl(f"https://unknown.test:{port}/", "-k", "--resolve", f"unknown.test:{port}:127.0.0.1", host="unknown.test")
check("HTTP/1.1 404" in r.stdout, "unknown host answered 404", r.stdout[:300])
r = edge.curl(f"https://localhost:{port}/apix", "-k", host="localhost")
check("HTTP/1.1 404" in r.stdout, "path_prefix /api does not cover /apix", r.stdout[:300])
r = edge.curl(f"https://localhost:{port}/api/v1", "-k", host="localhost")
check("HTTP/1.1 200" in r.stdout, "path_prefix /api covers /api/v1", r.stdout[:300])
r = edge.curl(f"https://deep.app.example.test:{port}/x", host="deep.app.example.test")
check("HTTP/1.1 200" in r.stdout, "wildcard route and wildcard certificate (*.app.example.test)", r.stdout[:300] + r.stderr)
r = edge.curl(f"{base}/a/../admin", "--path-as-is")
check("HTTP/1.1 400" in r.stdout, "dot segments are refused (400)", r.stdout[:300])

# ---- the HTTP listener: 308 to HTTPS; ACME path 404 for now ------------------------------------
req = urllib.request.Request(f"http://127.0.0.1:{edge.http_port}/some/path?x=1",
                             headers={"Host": "app.example.test"}, method="POST", data=b"z")
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
opener = urllib.request.build_opener(NoRedirect)
try:
    opener.open(req, timeout=10)
    status, location, hsts = 200, None, None
except urllib.error.HTTPError as e:
    status, location, hsts = e.code, e.headers.get("Location"), e.headers.get("Strict-Transport-Security")
check_eq(status, 308, "HTTP listener answers 308 (method and body preserved by the client)")
check_eq(location, f"https://app.example.test:{port}/some/path?x=1", "Location is the same URL on HTTPS")
check(hsts is None, "no HSTS over plain HTTP (RFC 6797 7.2)")
try:
    opener.open(urllib.request.Request(f"http://127.0.0.1:{edge.http_port}/.well-known/acme-challenge/t",
                                       headers={"Host": "app.example.test"}), timeout=10)
    status = 200
except urllib.error.HTTPError as e:
    status = e.code
check_eq(status, 404, "ACME challenge path is 404 for now")

# ---- access records -----------------------------------------------------------------------------
records = edge.wait_records(15)
oks = [r for r in records if r.get("path") == "/hello"]
check(len(oks) == 1, "one access record for GET /hello", records[:2])
if oks:
    rec = oks[0]
    check_eq((rec["status"], rec["method"], rec["host"], rec["route"], rec["pool"], rec["termination"]),
             (200, "GET", "app.example.test", "app.example.test/", "app", "complete"),
             "access record fields")
    check(rec["tls_version"] in ("TLSv1.2", "TLSv1.3") and rec["alpn"] == "http/1.1" and rec["bytes_out"] > 0
          and rec["upstream"].startswith("127.0.0.1:") and rec["request_id"] == rid,
          "access record: TLS version, ALPN, bytes, upstream, request id", rec)
two = [r for r in records if r.get("path") == "/two"]
check(two and two[0]["upstream_reused"] is True, "second keep-alive request reused the upstream connection", two)
# Records are written in per-worker batches (100 ms): wait for the one asked about.
redirects = wait_until(lambda: [r for r in edge.records()
                                if r.get("listener") == "http" and r.get("status") == 308]) or []
check(len(redirects) == 1, "the redirect has an access record", redirects)

# ---- metrics and /healthz ------------------------------------------------------------------------
with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin_port}/metrics", timeout=10) as m:
    metrics = m.read().decode()
check('moat_edge_requests_total{route="app.example.test/",status="2xx",code="ok"}' in metrics,
      "requests counted by route and status class", metrics[:2000])
check('moat_edge_upstream_connections_total{result="reused"}' in metrics, "upstream reuse counted")
with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin_port}/healthz", timeout=10) as h:
    check_eq(h.status, 200, "/healthz answers 200")

# ---- origin down: 502; a pool whose member refuses connections -----------------------------------
down = Edge(origin=False, http_listener=False, admin=False)
r = down.curl(f"https://app.example.test:{down.https_port}/")
check("HTTP/1.1 502" in r.stdout, "origin down answered 502", r.stdout[:300])
check("strict-transport-security" in r.stdout.lower(), "local replies carry HSTS too", r.stdout[:300])
recs = down.wait_records(1)
check(recs and recs[0]["code"] == "upstream_unreachable" and recs[0]["status"] == 502,
      "502 access record says upstream_unreachable", recs)

# ---- access_log: off (nginx's): requests served and counted, no record written -----------------
quiet = Edge(http_listener=False, access_log="off")
r = quiet.curl(f"https://app.example.test:{quiet.https_port}/quiet")
check("HTTP/1.1 200" in r.stdout, "access_log off: request served", r.stdout[:300] + r.stderr)


check(wait_until(lambda: quiet.metric("moat_edge_requests_total",
                                      '{route="app.example.test/",status="2xx",code="ok"}') == 1),
      "access_log off: the request is still counted in the metrics")
check(not os.path.exists(quiet.access_log) and quiet.records() == [],
      "access_log off: no access log file, no record")

# ---- --check of a config whose certificate does not match its key ------------------------------
bad = os.path.join(edge.dir, "bad.yaml")
text = open(edge.config).read().replace(edge.certs[0]["key"], edge.certs[1]["key"])
open(bad, "w").write(text)
r = moat("edge", "--check", "--config", bad)
check(r.returncode == 1 and ("does not match" in r.stderr or "mismatch" in r.stderr), "--check refuses a key that does not match its certificate", r.stderr)
r = moat("edge", "--check", "--config", edge.config)
check(r.returncode == 0 and "edge config ok" in r.stdout, "--check accepts the test config", r.stderr)

# ---- examples/edge.yaml loads (with certificates generated next to a copy) ----------------------
ex_dir = os.path.join(edge.dir, "example")
os.makedirs(os.path.join(ex_dir, "certs"))
shutil.copy(os.path.join(SOURCE_DIR, "examples", "edge.yaml"), ex_dir)
shutil.copy(os.path.join(SOURCE_DIR, "examples", "salestim.yaml"), ex_dir)
shutil.copy(edge.certs[0]["chain"], os.path.join(ex_dir, "certs", "site.crt"))
shutil.copy(edge.certs[0]["key"], os.path.join(ex_dir, "certs", "site.key"))
r = moat("edge", "--check", "--config", os.path.join(ex_dir, "edge.yaml"))
check(r.returncode == 0, "examples/edge.yaml passes --check", r.stdout + r.stderr)

done()
