"""moat edge: pools route like a traffic manager. Origins are real processes (this script run with
--origin NAME PORT: a small HTTP/1.1 server answering its own name, with /healthz).

- priority: requests go to the primary; kill it (SIGKILL) -> the secondary answers with no 5xx
  for GETs (the connect-failure retry covers the gap until the health check marks it down);
  restart it -> traffic returns within about rise * interval (interval 200 ms, rise 2);
- weighted 3:1 over 400 requests gives about 300/100; round-robin alternates;
- every member down -> 503 with Retry-After, code no_healthy_upstream in the access record;
- moat_edge_upstream_up shows 0/1, transitions are JSON lines on stderr.
Every wait polls with a deadline (metrics or the responses themselves), never a bare sleep."""
import datetime
import http.server
import json
import re
import signal
import socketserver
import sys
import time


def serve_origin(name, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            body = (b"ok\n" if self.path == "/healthz" else name.encode())
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    Server(("127.0.0.1", port), Handler).serve_forever()


if len(sys.argv) == 4 and sys.argv[1] == "--origin":
    serve_origin(sys.argv[2], int(sys.argv[3]))
    sys.exit(0)

from harness import check, check_eq, done, free_port, start, wait_for_port  # noqa: E402
from edge_fixture import Edge, read_response, wait_until  # noqa: E402

INTERVAL_MS = 200
RISE = 2
FALL = 2


def start_origin(name, port):
    p = start([sys.executable, __file__, "--origin", name, str(port)])
    wait_for_port(port, process=p)
    return p


ports = {name: free_port() for name in ("primary", "secondary", "c", "d", "dead1", "dead2")}
origins = {name: start_origin(name, ports[name]) for name in ("primary", "secondary", "c", "d")}


def member(name):
    return f"127.0.0.1:{ports[name]}"


health = (f"health_check: {{path: /healthz, interval: {INTERVAL_MS}ms, timeout: 150ms, "
          f"fall: {FALL}, rise: {RISE}}}")
pools = (
    f'    - name: app\n      method: priority\n'
    f'      members: ["{member("primary")}", "{member("secondary")}"]\n      {health}\n'
    f'    - name: weighted\n      method: weighted\n'
    f'      members: [{{address: "{member("c")}", weight: 3}}, {{address: "{member("d")}"}}]\n'
    f'    - {{name: rr, members: ["{member("c")}", "{member("d")}"]}}\n'
    f'    - name: dead\n      method: least-connections\n      retry_after: 7s\n'
    f'      members: ["{member("dead1")}", "{member("dead2")}"]\n      {health}\n')
routes = ('    - {host: prio.app.example.test, pool: app}\n'
          '    - {host: w.app.example.test, pool: weighted}\n'
          '    - {host: rr.app.example.test, pool: rr}\n'
          '    - {host: dead.app.example.test, pool: dead}\n')
edge = Edge(pools=pools, routes=routes, origin=False)


def up(pool, name, text=None):
    m = re.search(r'^moat_edge_upstream_up\{pool="%s",member="%s"\} (\S+)$'
                  % (pool, re.escape(member(name))), text or edge.metrics(), re.M)
    return None if m is None else int(float(m.group(1)))


class Client:
    """One keep-alive TLS connection; reconnects if the edge closed it (503 closes)."""

    def __init__(self):
        self.sock = None

    def get(self, host, path="/"):
        for _ in range(2):
            if self.sock is None:
                self.sock = edge.tls_socket("prio.app.example.test")
            self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            r = read_response(self.sock)
            if r is not None:
                status, headers, body, _ = r
                if headers.get("connection", "").lower() == "close":
                    self.sock.close()
                    self.sock = None
                return status, headers, body.decode()
            self.sock.close()
            self.sock = None
        return 0, {}, ""


client = Client()
PRIO = "prio.app.example.test"

# Readiness: the checks ran (the primary is up, the dead members are marked down).
ready = wait_until(lambda: up("app", "primary") == 1 and up("dead", "dead1") == 0
                   and up("dead", "dead2") == 0, timeout=15)
check(ready, "health checks ran: primary up, dead members down", edge.metrics())

# Priority: everything on the primary.
answers = [client.get(PRIO) for _ in range(20)]
check_eq({(s, b) for s, _, b in answers}, {(200, "primary")}, "priority: all 20 on the primary")

# Kill the primary: GETs keep getting 200 from the secondary, no 5xx, during the whole gap
# until the health check marks it down and after.
origins["primary"].send_signal(signal.SIGKILL)
origins["primary"].wait(timeout=10)
killed_at = time.monotonic()
killed_wall = time.time()
statuses, bodies = [], []
while True:
    s, _, b = client.get(PRIO)
    statuses.append(s)
    bodies.append(b)
    if up("app", "primary") == 0 or time.monotonic() - killed_at > 15:
        break
for _ in range(20):
    s, _, b = client.get(PRIO)
    statuses.append(s)
    bodies.append(b)
check(all(s == 200 for s in statuses),
      f"failover: {len(statuses)} GETs after the kill, no 5xx",
      f"statuses: {sorted(set(statuses))}")
check_eq(set(bodies), {"secondary"}, "failover: the secondary answered every one")
check_eq(up("app", "primary"), 0, "metrics: moat_edge_upstream_up of the primary is 0")


def event(name, pool):
    for line in edge.log().splitlines():
        if line.startswith("{") and f'"event":"{name}"' in line and f'"pool":"{pool}"' in line:
            return json.loads(line)
    return None


down = wait_until(lambda: event("upstream_down", "app"), timeout=5)
check(down is not None and down["member"] == member("primary"),
      "stderr: an upstream_down JSON line for the primary", edge.log())
if down:
    at = datetime.datetime.fromisoformat(down["time"].replace("Z", "+00:00")).timestamp()
    print(f"     primary marked down {at - killed_wall:.2f} s after the kill "
          f"(fall {FALL} x interval {INTERVAL_MS} ms)")

# Restart the primary: traffic returns once `rise` checks passed.
origins["primary"] = start_origin("primary", ports["primary"])
restarted_at = time.monotonic()
back = wait_until(lambda: client.get(PRIO)[2] == "primary", timeout=15)
returned = time.monotonic() - restarted_at
check(back, "recovery: traffic returns to the primary")
print(f"     traffic back on the primary {returned:.2f} s after its restart "
      f"(rise {RISE} x interval {INTERVAL_MS} ms = {RISE * INTERVAL_MS / 1000:.1f} s)")
# rise * interval, plus one interval for the check cycle in progress and slack for a loaded host.
check(returned < (RISE + 1) * INTERVAL_MS / 1000 + 1.0,
      f"recovery within (rise + 1) * interval + 1 s ({returned:.2f} s)")
check_eq(up("app", "primary"), 1, "metrics: moat_edge_upstream_up of the primary is 1 again")
answers = [client.get(PRIO) for _ in range(10)]
check_eq({b for _, _, b in answers}, {"primary"}, "recovery: all on the primary again")
recovered = event("upstream_up", "app")
check(recovered is not None and recovered["member"] == member("primary") and recovered["reason"],
      "stderr: an upstream_up JSON line for the primary", edge.log())

# Weighted 3:1 over 400 requests (one connection: one worker's smooth WRR).
counts = {}
for _ in range(400):
    s, _, b = client.get("w.app.example.test")
    counts[b] = counts.get(b, 0) + 1
print(f"     weighted 3:1 over 400: {counts}")
check(270 <= counts.get("c", 0) <= 330 and 70 <= counts.get("d", 0) <= 130,
      "weighted: about 300/100 (+-10%)", counts)

# Round-robin alternates.
seq = [client.get("rr.app.example.test")[2] for _ in range(10)]
check(all(seq[i] != seq[i + 1] for i in range(len(seq) - 1)) and set(seq) == {"c", "d"},
      "round-robin alternates", seq)

# Every member down: 503 with Retry-After and the access record's code.
s, headers, body = client.get("dead.app.example.test", "/nothing-here")
check_eq(s, 503, "all members down: 503")
check_eq(headers.get("retry-after"), "7", "all members down: Retry-After is retry_after (7 s)")
rec = wait_until(lambda: next((r for r in edge.records() if r["path"] == "/nothing-here"), None))
check(rec is not None and rec["code"] == "no_healthy_upstream" and rec["status"] == 503,
      "access record: code no_healthy_upstream", rec)

# The same over HTTP/2 (curl negotiates h2 by ALPN).
r = edge.curl("--http2", f"https://dead.app.example.test:{edge.https_port}/h2",
              host="dead.app.example.test")
check(re.search(r"^HTTP/2 503", r.stdout, re.M) and re.search(r"^retry-after: 7\r?$", r.stdout,
                                                                re.M | re.I),
      "HTTP/2: 503 with retry-after", r.stdout + r.stderr)

# A reload (SIGHUP, same file) keeps the state of the members the config still names: the dead
# members stay down (rebuilt state would start them up, and a GET would get 502, not 503).
edge.process.send_signal(signal.SIGHUP)
check(wait_until(lambda: " applied (" in edge.log(), timeout=10), "reload applied", edge.log())
s, headers, _ = client.get("dead.app.example.test", "/after-reload")
check_eq((s, headers.get("retry-after")), (503, "7"), "after the reload: still 503 at once")
check_eq(client.get(PRIO)[:3:2], (200, "primary"), "after the reload: the primary still serves")

# Metrics.
text = edge.metrics()
check_eq((up("app", "secondary", text), up("dead", "dead1", text), up("dead", "dead2", text)),
         (1, 0, 0), "metrics: up gauges 1 for a live member, 0 for the dead ones")
check(re.search(r'^moat_edge_health_checks_total\{pool="dead",member="%s",result="connect_failed"\} '
                r'[1-9]' % re.escape(member("dead1")), text, re.M),
      "metrics: moat_edge_health_checks_total counts connect failures")
check(re.search(r'^moat_edge_health_checks_total\{pool="app",member="%s",result="ok"\} [1-9]'
                % re.escape(member("primary")), text, re.M),
      "metrics: moat_edge_health_checks_total counts passed checks")
check("# TYPE moat_edge_upstream_ejections_total counter" in text,
      "metrics: moat_edge_upstream_ejections_total is exported")

done()
