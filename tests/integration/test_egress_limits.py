"""moat egress limits: a CONNECT that never completes and a slowloris are both cut at the header
timeout; an idle tunnel at the idle timeout; an unreachable upstream is 502; per-client and
global connection limits answer 503 and free their slot when a connection closes."""
import select
import time

from harness import check, check_eq, done, free_port
from egress_fixture import (Egress, check_alive, check_all_records_parse, connect_socket, https_get,
                            read_reply, stop_and_check, wait_closed, wait_until)

gw = Egress()
origin = gw.tls_origin("limits-origin")
dead_port = free_port()
gw.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [origin.port, dead_port],
     "purpose": "SalesTim web app"}])
gw.write_config(["salestim.yaml"], resolve={"app.salestim.io": "127.0.0.1"},
                limits={"header_timeout": "1s", "hello_timeout": "1s", "idle_timeout": "1s"})
gw.start()

# ---- 12. A CONNECT that never finishes -----------------------------------------------------
s = connect_socket(gw.port)
port = s.getsockname()[1]
t0 = time.monotonic()
s.sendall(b"CONNECT a")
closed = wait_closed(s, 6)
elapsed = time.monotonic() - t0
check(closed and 0.8 <= elapsed <= 3.0, "an unfinished CONNECT is closed at the header timeout (1 s)",
      f"closed={closed} after {elapsed:.2f}s")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("termination"), "timeout", "unfinished CONNECT: audit termination timeout")
check_eq(rec.get("phase"), "request", "unfinished CONNECT: audit phase request")
check_eq(rec.get("decision"), "none", "unfinished CONNECT: no decision (no request was made)")

# A connection that sends nothing at all.
s = connect_socket(gw.port)
port = s.getsockname()[1]
t0 = time.monotonic()
closed = wait_closed(s, 6)
elapsed = time.monotonic() - t0
check(closed and 0.8 <= elapsed <= 3.0, "a silent connection is closed at the header timeout",
      f"closed={closed} after {elapsed:.2f}s")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("termination"), "timeout", "silent connection: audit termination timeout")

# A slowloris: one byte every 200 ms; the header timeout is a deadline for the whole head.
s = connect_socket(gw.port)
port = s.getsockname()[1]
payload = b"CONNECT app.salestim.io:443 HTTP/1.1\r\nHost: app.salestim.io\r\nX-Pad: " + b"a" * 100
t0 = time.monotonic()
closed = False
sent = 0
for i in range(len(payload)):  # bounded: at most len(payload) rounds of 200 ms
    try:
        s.send(payload[i:i + 1])
        sent += 1
    except OSError:
        closed = True
        break
    readable, _, _ = select.select([s], [], [], 0.2)  # the 200 ms pace, and a close shows here
    if readable:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            closed = True
            break
    if time.monotonic() - t0 > 8:
        break
elapsed = time.monotonic() - t0
check(closed and elapsed <= 3.0, "a slowloris (1 byte / 200 ms) is closed at the header timeout",
      f"closed={closed} after {elapsed:.2f}s, {sent} bytes sent")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("termination"), "timeout", "slowloris: audit termination timeout")

# No ClientHello after the 200.
s, reply = gw.connect(f"app.salestim.io:{origin.port}")
port = s.getsockname()[1]
t0 = time.monotonic()
check(reply is not None and reply.status == 200, "no hello: 200 first", repr(reply))
closed = wait_closed(s, 6)
elapsed = time.monotonic() - t0
check(closed and 0.8 <= elapsed <= 3.0, "no hello: closed at the hello timeout (1 s)", f"{elapsed:.2f}s")
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("termination"), "timeout", "no hello: audit termination timeout")

# An idle tunnel.
tls, reply, err = gw.tls_through(f"app.salestim.io:{origin.port}", "app.salestim.io")
check(tls is not None, "idle tunnel: TLS through the proxy", f"{reply!r} {err!r}")
if tls is not None:
    port = tls.getsockname()[1]
    page = https_get(tls, host="app.salestim.io")
    check(b"limits-origin answer" in page, "idle tunnel: one request answered")
    t0 = time.monotonic()
    closed = wait_closed(tls, 6)
    elapsed = time.monotonic() - t0
    check(closed and elapsed <= 3.0, "idle tunnel: closed at the idle timeout (1 s)", f"{elapsed:.2f}s")
    tls.close()
    rec = gw.wait_record(client_port=port) or {}
    check_eq(rec.get("termination"), "timeout", "idle tunnel: audit termination timeout")
    check_eq(rec.get("reason"), "idle timeout", "idle tunnel: audit reason")
    check(rec.get("bytes_down", 0) > 0, "idle tunnel: bytes counted", rec)

# An upstream that refuses the connection.
s, reply = gw.connect(f"app.salestim.io:{dead_port}")
port = s.getsockname()[1]
check(reply is not None and reply.status == 502, "unreachable upstream: 502", repr(reply))
if reply is not None:
    check("connection_refused" in (reply.header("Proxy-Status") or ""), "502: Proxy-Status error type",
          repr(reply.headers))
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("decision"), "error", "unreachable upstream: audit decision error")
check_eq(rec.get("upstream"), f"127.0.0.1:{dead_port}", "unreachable upstream: audit upstream")
check_all_records_parse(gw)
check_alive(gw)
stop_and_check(gw)

# ---- 13. Connection limits -----------------------------------------------------------------
lim = Egress()
raw = lim.raw_origin()
lim.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [raw.port], "purpose": "SalesTim web app"}])
lim.write_config(["salestim.yaml"], resolve={"raw.salestim.io": "127.0.0.1"},
                 limits={"max_connections_per_client": 2, "max_connections": 4})
lim.start()


def active():
    return lim.metric_value("moat_egress_connections_active")


check(wait_until(lambda: active() == 0, 5), "limits: no connection active at start", active())
idle = [connect_socket(lim.port), connect_socket(lim.port)]
check(wait_until(lambda: active() == 2, 5), "two idle connections are admitted", active())
s = connect_socket(lim.port)
port = s.getsockname()[1]
reply = read_reply(s, 5)
check(reply is not None and reply.status == 503, "the third connection from one client: 503", repr(reply))
if reply is not None:
    check_eq(reply.header("X-Moat-Reason"), "too many connections from this client", "503: X-Moat-Reason")
s.close()
rec = lim.wait_record(client_port=port) or {}
check_eq(rec.get("status"), 503, "503: audit status")
check_eq(rec.get("decision"), "deny", "503: audit decision deny")

# Another client is not affected by the first one's limit.
s, reply = lim.connect(f"raw.salestim.io:{raw.port}", source="127.0.0.4")
check(reply is not None and reply.status == 200, "another client address is served", repr(reply))
s.close()
check(wait_until(lambda: active() == 2, 5), "that client's connection has ended", active())

# The global limit: 2 from .1 and 2 from .2 are open, a fifth from .3 is refused.
idle += [connect_socket(lim.port, source="127.0.0.2"), connect_socket(lim.port, source="127.0.0.2")]
check(wait_until(lambda: active() == 4, 5), "four idle connections are open", active())
s = connect_socket(lim.port, source="127.0.0.3")
reply = read_reply(s, 5)
check(reply is not None and reply.status == 503, "over max_connections: 503", repr(reply))
s.close()

# Closing frees the slots.
for c in idle:
    c.close()
check(wait_until(lambda: active() == 0, 5), "closed connections leave the active gauge", active())
results = []
for _ in range(3):  # three in a row from one client, each closed before the next
    s, reply = lim.connect(f"raw.salestim.io:{raw.port}")
    results.append(reply.status if reply else None)
    s.close()
    wait_until(lambda: active() == 0, 5)
check_eq(results, [200, 200, 200], "after the slots are freed, the client is served again")
opened = [connect_socket(lim.port) for _ in range(2)]
check(wait_until(lambda: active() == 2, 5), "two more idle connections admitted (no leaked slot)", active())
s = connect_socket(lim.port)
reply = read_reply(s, 5)
check(reply is not None and reply.status == 503, "and the third is refused again", repr(reply))
s.close()
for c in opened:
    c.close()
check_all_records_parse(lim)
check_alive(lim)
stop_and_check(lim)
done()
