"""moat edge: the first DDoS defences (core/guard). A request flood from 127.0.0.1 gets 429 with
Retry-After while 127.0.0.2 keeps getting 200; a handshake flood from 127.0.0.1 is refused while
127.0.0.2 handshakes; the per-client connection cap closes at accept; repeated trips earn a ban
(closed at accept), which ends after its time. client_prefix_v4: 32 makes 127.0.0.1 and 127.0.0.2
two clients (the default /24 would make them one). Every wait polls with a deadline."""
import socket
import ssl
import time

from harness import check, check_eq, done
from edge_fixture import Edge, closed_by_peer, read_response, read_response_from, wait_until

A = "127.0.0.1"  # the flooder
B = "127.0.0.2"  # a well-behaved client


def tls_from(edge, source, timeout=5.0):
    """A TLS connection to the edge from `source` (a loopback address), or None if refused."""
    raw = socket.create_connection(("127.0.0.1", edge.https_port), timeout=timeout,
                                   source_address=(source, 0))
    try:
        return edge.context().wrap_socket(raw, server_hostname="app.example.test")
    except (ssl.SSLError, OSError):
        raw.close()
        return None


def get(sock, path="/", host="app.example.test"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return read_response(sock)


def pipelined(sock, paths, host="app.example.test"):
    """Sends GETs for `paths` in one write, reads the responses in order: (status, headers)s."""
    sock.sendall("".join(f"GET {p} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                         for p in paths).encode())
    out, leftover = [], b""
    for _ in paths:
        r = read_response_from(sock, leftover, time.monotonic() + 10)
        if r is None:
            break
        out.append((r[0], r[1]))
        leftover = r[3]
    return out


# ---- edge 1: request budget and handshake budget -------------------------------------------
edge = Edge(limits="    client_prefix_v4: 32\n"
                   "    requests_per_second_per_client: 50\n"     # burst 100
                   "    handshakes_per_second_per_client: 5\n"
                   "    handshake_burst_per_client: 10\n"
                   "    ban_after_trips: 0\n")                    # bans: edge 2

flood = [tls_from(edge, A) for _ in range(2)]
good = tls_from(edge, B)
check(all(flood) and good is not None, "keep-alive TLS connections from 127.0.0.1 and 127.0.0.2")
# The flood asks for a host without a route: its answers (404, or 429 over the budget; both keep
# the connection) are local, so the flood runs at the edge's speed, not the test origin's.
statuses = {404: 0, 429: 0}
retry_after = set()
good_statuses = []
started = time.monotonic()
for batch in range(40):  # 2,000 requests, 50 pipelined at a time, over two connections
    answers = pipelined(flood[batch % 2], [f"/flood/{batch}/{i}" for i in range(50)],
                        host="flood.invalid")
    for status, headers in answers:
        statuses[status] = statuses.get(status, 0) + 1
        if status == 429:
            retry_after.add(headers.get("retry-after"))
    if batch % 2 == 0:
        g = get(good, f"/good/{batch}")
        good_statuses.append(g[0] if g else None)
elapsed = time.monotonic() - started
check_eq(sum(statuses.values()), 2000, "the flood's 2,000 requests were all answered (429 keeps the connection)")
check(statuses[429] > 0, "the flood from 127.0.0.1 gets 429s", statuses)
check(100 <= statuses[404] <= 100 + 50 * elapsed + 5,
      "no more 200s than the burst plus the rate allows", f"{statuses} in {elapsed:.1f}s")
check(retry_after and all(v is not None and v.isdigit() and int(v) >= 1 for v in retry_after),
      "every 429 carries Retry-After in whole seconds", retry_after)
check(good_statuses and all(s == 200 for s in good_statuses),
      "127.0.0.2 keeps getting 200 during the flood", good_statuses)
check(edge.rejections("requests") == statuses[429], "moat_edge_guard_rejections_total{limit=\"requests\"}",
      edge.rejections("requests"))
records = edge.wait_records(2000 + len(good_statuses))
limited = [r for r in records if r.get("status") == 429]
check(limited and all(r.get("limit") == "requests" and r.get("code") == "rate_limited" for r in limited),
      "access records of 429s carry \"limit\": \"requests\"", limited[:1])
check(all("limit" not in r for r in records if r.get("status") != 429),
      "other answers have no limit in their record")
for s in flood + [good]:
    s.close()

# Handshake flood: new TLS connections from 127.0.0.1 beyond the budget are closed before TLS.
before = edge.rejections("handshakes")
ok = refused = 0
started = time.monotonic()
for _ in range(40):
    s = tls_from(edge, A)
    if s is None:
        refused += 1
    else:
        ok += 1
        s.close()
elapsed = time.monotonic() - started
check(refused > 0, "a handshake flood from 127.0.0.1 is refused", f"ok={ok} refused={refused}")
check(ok <= 10 + 5 * elapsed + 3, "no more handshakes than the burst plus the rate allows",
      f"ok={ok} in {elapsed:.1f}s")
check(edge.rejections("handshakes") - before >= refused,
      "moat_edge_guard_rejections_total{limit=\"handshakes\"}", edge.rejections("handshakes"))
good_handshakes = 0
for _ in range(3):
    s = tls_from(edge, B)
    if s is not None:
        r = get(s)
        good_handshakes += 1 if r and r[0] == 200 else 0
        s.close()
check_eq(good_handshakes, 3, "127.0.0.2 handshakes (and is served) during 127.0.0.1's flood")

# ---- edge 2: connection cap per client, then a ban and its end --------------------------------
edge2 = Edge(http_listener=False,
             limits="    client_prefix_v4: 32\n"
                    "    max_connections_per_client: 5\n"
                    "    requests_per_second_per_client: 5\n"
                    "    request_burst_per_client: 5\n"
                    "    ban_after_trips: 6\n"
                    "    ban_window: 10s\n"
                    "    ban_time: 1s\n"
                    "    ban_time_max: 2s\n")
# Readiness probes (wait_for_port) are connections too: wait until they are gone.
wait_until(lambda: edge2.metric("moat_edge_connections_active") == 0)
held = [socket.create_connection(("127.0.0.1", edge2.https_port), timeout=5, source_address=(A, 0))
        for _ in range(5)]
check(wait_until(lambda: edge2.metric("moat_edge_connections_active") == 5),
      "five connections from 127.0.0.1 are open (the cap)")
extra = socket.create_connection(("127.0.0.1", edge2.https_port), timeout=5, source_address=(A, 0))
check(closed_by_peer(extra), "the sixth connection from 127.0.0.1 is closed at accept")
extra.close()
check(edge2.rejections("connections_per_client") >= 1,
      "moat_edge_guard_rejections_total{limit=\"connections_per_client\"}")
other = tls_from(edge2, B)
check(other is not None and get(other)[0] == 200, "127.0.0.2 connects while 127.0.0.1 is at its cap")
if other:
    other.close()
for s in held:
    s.close()
check(wait_until(lambda: edge2.metric("moat_edge_connections_active") == 0),
      "closed connections are released")

# Trips: one so far (the cap); requests over the budget of 5 add the rest; the sixth trip bans.
conn = tls_from(edge2, A)
answers = []
for i in range(20):
    r = get(conn, f"/ban/{i}", host="flood.invalid")  # local 404s: no origin in the timing
    if r is None:
        break
    answers.append((r[0], r[1].get("connection", "")))
    if r[1].get("connection", "").lower() == "close":
        break
conn.close()
check(answers and answers[-1] == (429, "close"), "the trip that starts the ban gets 429 and a close",
      answers)
served = sum(1 for s, _ in answers if s == 404)
check(5 <= served <= 6, "the request burst (5) was served first", answers)
refused_at_accept = socket.create_connection(("127.0.0.1", edge2.https_port), timeout=5,
                                             source_address=(A, 0))
check(closed_by_peer(refused_at_accept), "a banned client is closed at accept")
refused_at_accept.close()
check(edge2.rejections("banned") >= 1, "moat_edge_guard_rejections_total{limit=\"banned\"}")
other = tls_from(edge2, B)
check(other is not None and get(other)[0] == 200, "127.0.0.2 is not banned")
if other:
    other.close()


def served_again():
    s = tls_from(edge2, A, timeout=2)
    if s is None:
        return False
    r = get(s, "/after-ban")
    s.close()
    return r is not None and r[0] == 200


started = time.monotonic()
check(wait_until(served_again, timeout=10), "after the ban (1 s) 127.0.0.1 is served again")
check(time.monotonic() - started < 5, "the ban ended within a few seconds",
      time.monotonic() - started)
banned_records = wait_until(lambda: [r for r in edge2.records() if r.get("limit") in ("requests", "banned")])
check(banned_records, "the ban's 429 is in the access log with its limit", edge2.records()[-3:])

# ---- edge 3: the global cap ----------------------------------------------------------------------
edge3 = Edge(http_listener=False, limits="    client_prefix_v4: 32\n    max_connections: 3\n")
wait_until(lambda: edge3.metric("moat_edge_connections_active") == 0)
held = [socket.create_connection(("127.0.0.1", edge3.https_port), timeout=5, source_address=(A, 0))
        for _ in range(3)]
check(wait_until(lambda: edge3.metric("moat_edge_connections_active") == 3),
      "three connections open (the global cap)")
extra = socket.create_connection(("127.0.0.1", edge3.https_port), timeout=5, source_address=(B, 0))
check(closed_by_peer(extra), "over max_connections, even another client is closed at accept")
extra.close()
check(edge3.rejections("connections") >= 1, "moat_edge_guard_rejections_total{limit=\"connections\"}")
for s in held:
    s.close()
check(wait_until(lambda: edge3.metric("moat_edge_connections_active") == 0), "the held connections closed")
check(wait_until(lambda: tls_from(edge3, B) is not None, timeout=5), "below the cap, connections are accepted again")

done()
