"""moat edge: the defences against slow and abusive clients, and overload (docs/edge.md "DDoS
defences"). Real processes on loopback:

- a route's rate_limit: 429 with Retry-After (limit "route") on /limited while / from the same
  client is still served, over HTTP/1.1 and HTTP/2 (one bucket per client and route);
- min_body_rate: a POST body sent at one byte a second gets 408 (code body_too_slow) soon after
  body_rate_grace;
- send_timeout: a client that asks for 16 MB and never reads is dropped (code send_timeout)
  within send_timeout + 1 s of the moment its buffers filled;
- a WebSocket handshake through the edge to a small echo origin, one masked frame echoed; any
  other Upgrade is stripped;
- overload_memory: 1MiB (always exceeded): new connections are closed at accept, the gauge says
  so; a SIGHUP without it: accepted again.

Every wait polls with a deadline; records are written in 100 ms batches, so each check waits for
the record it needs."""
import base64
import hashlib
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

from harness import check, check_eq, done
from edge_fixture import H2_PREFACE, Edge, Origin, frame, hpack, read_response, wait_until

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
BIG = 16 * 1024 * 1024  # more than loopback socket buffers hold on both sides


def record_where(edge, predicate, timeout=10.0):
    return wait_until(lambda: next((r for r in edge.records() if predicate(r)), None), timeout)


def read_head(sock, timeout=10.0):
    """Bytes up to the end of a response head: (status, headers, leftover)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return (int(m.group(1)) if m else 0), headers, rest


class RawOrigin:
    """A threaded origin on loopback: reads one request head per connection and hands it, with
    the bytes after it, to answer(conn, head, rest); closes the connection afterwards."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self.one, args=(conn,), daemon=True).start()

    def one(self, conn):
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            self.answer(conn, head, rest)
        except (OSError, EOFError, KeyError):
            pass
        finally:
            conn.close()


class BigOrigin(RawOrigin):
    """Answers every request with BIG bytes (Content-Length), as fast as it is read."""

    def answer(self, conn, head, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
        block = b"x" * 65536
        for _ in range(BIG // len(block)):
            conn.sendall(block)


def ws_frame(payload, opcode=1, mask=True):
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read_frame(sock, buffer=b""):
    """One frame from `sock` (after `buffer`): (opcode, payload, leftover)."""
    def need(n):
        nonlocal buffer
        while len(buffer) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("closed")
            buffer += chunk
    need(2)
    opcode = buffer[0] & 0x0F
    masked = buffer[1] & 0x80
    n = buffer[1] & 0x7F
    at = 2
    if n == 126:
        need(4)
        n = struct.unpack("!H", buffer[2:4])[0]
        at = 4
    elif n == 127:
        need(10)
        n = struct.unpack("!Q", buffer[2:10])[0]
        at = 10
    key = b""
    if masked:
        need(at + 4)
        key = buffer[at:at + 4]
        at += 4
    need(at + n)
    payload = buffer[at:at + n]
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload, buffer[at + n:]


class WsOrigin(RawOrigin):
    """A WebSocket echo server (RFC 6455, hand-written handshake). Records each handshake head."""

    def __init__(self):
        self.heads = []
        super().__init__()

    def answer(self, conn, head, rest):
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        self.heads.append(headers)
        if headers.get("upgrade", "").lower() != "websocket":
            conn.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
            return
        accept = base64.b64encode(hashlib.sha1(
            (headers["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        buffer = rest
        while True:
            opcode, payload, buffer = ws_read_frame(conn, buffer)
            conn.sendall(ws_frame(payload, opcode, mask=False))
            if opcode == 8:
                return


# ---- edge 1: route limits, slow POST, slow reader, WebSocket --------------------------------
app = Origin()
big = BigOrigin()
ws = WsOrigin()
edge = Edge(
    origin=False,
    pools=(f'    - {{name: app, members: ["127.0.0.1:{app.port}"]}}\n'
           f'    - {{name: big, members: ["127.0.0.1:{big.port}"]}}\n'
           f'    - {{name: ws, members: ["127.0.0.1:{ws.port}"]}}\n'),
    routes=('    - {host: app.example.test, path_prefix: /, pool: app}\n'
            '    - {host: app.example.test, path_prefix: /limited, pool: app,'
            ' rate_limit: {requests_per_second: 1, burst: 3}}\n'
            '    - {host: app.example.test, path_prefix: /big, pool: big}\n'
            '    - {host: app.example.test, path_prefix: /ws, pool: ws}\n'),
    limits=("    send_timeout: 2s\n"
            "    min_body_rate: 1KiB/s\n"
            "    body_rate_grace: 2s\n"))

# 1. A route's rate_limit: burst 3, then 429 with Retry-After; / is still served on the same
# connection (a different route), and the client's own budget is untouched.
sock = edge.tls_socket()
statuses, retry_after = [], None
for i in range(5):
    sock.sendall(f"GET /limited/{i} HTTP/1.1\r\nHost: app.example.test\r\n\r\n".encode())
    r = read_response(sock)
    statuses.append(r[0] if r else None)
    if r and r[0] == 429:
        retry_after = r[1].get("retry-after")
check(statuses[:3] == [200, 200, 200] and 429 in statuses[3:],
      "a route's rate_limit: the burst (3) is served, then 429", statuses)
check(retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1,
      "the route's 429 has Retry-After in whole seconds", retry_after)
sock.sendall(b"GET /other HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
r = read_response(sock)
check(r is not None and r[0] == 200, "another route from the same client on the same connection: 200",
      r and r[0])
sock.close()
limited = record_where(edge, lambda r: r.get("status") == 429)
check(limited and limited.get("limit") == "route" and limited.get("code") == "rate_limited",
      'the access record of the 429 says limit "route"', limited)
check(wait_until(lambda: edge.rejections("route") >= 2), 'moat_edge_guard_rejections_total{limit="route"}')
# HTTP/2 shares the bucket of the client and route: 4 quick requests, at least one refused.
out = edge.curl("--http2", "-o", "/dev/null", "-w", "%{http_code}\n",
                *[f"https://app.example.test:{edge.https_port}/limited/h2/{i}" for i in range(4)])
codes = re.findall(r"^(\d{3})$", out.stdout, re.M)
check("429" in codes, "over HTTP/2 too (the same bucket)", out.stdout + out.stderr)

# 2. Slow POST: one byte a second; under min_body_rate (1KiB/s) after the 2 s grace -> 408.
sock = edge.tls_socket()
started = time.monotonic()
sock.sendall(b"POST /upload HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 100\r\n\r\n")
answer = None
while answer is None and time.monotonic() - started < 10:
    try:
        sock.sendall(b"a")
    except OSError:
        break
    sock.settimeout(1.0)  # the pace of the slow client: one byte per second unless answered
    try:
        data = sock.recv(65536)
    except socket.timeout:
        continue
    answer = data
elapsed = time.monotonic() - started
check(answer is not None and answer.startswith(b"HTTP/1.1 408"),
      "a body at 1 byte/s is answered 408", answer)
check(elapsed < 2 + 2.0, "within the grace (2 s) plus a little", f"{elapsed:.2f}s")
sock.close()
slow = record_where(edge, lambda r: r.get("code") == "body_too_slow")
check(slow and slow.get("status") == 408 and slow.get("termination") == "timeout",
      "the access record says body_too_slow, termination timeout", slow)
check(wait_until(lambda: edge.rejections("body_rate") >= 1), 'moat_edge_guard_rejections_total{limit="body_rate"}')
check(not any(r["path"] == "/upload" for r in app.requests), "the slow body never reached the origin")

# 2b. The same over HTTP/2: the stream whose body trickles is reset (CANCEL) after the grace, per
# stream, while the connection and its other streams go on.
ctx = ssl.create_default_context(cafile=edge.ca)
ctx.set_alpn_protocols(["h2"])
h2 = ctx.wrap_socket(socket.create_connection(("127.0.0.1", edge.https_port), timeout=10),
                     server_hostname="app.example.test")
check(h2.selected_alpn_protocol() == "h2", "HTTP/2 negotiated for the slow-POST stream")
slow_before = edge.rejections("body_rate")
head = [(":method", "POST"), (":scheme", "https"), (":authority", "app.example.test"),
        (":path", "/upload-h2"), ("content-length", "100000")]
h2.sendall(H2_PREFACE + frame(4, 0, 0)
           + frame(1, 0x4, 1, hpack(head)))  # HEADERS, END_HEADERS, body to follow
started = time.monotonic()
reset_code, buf = None, b""
while reset_code is None and time.monotonic() - started < 10:
    try:
        h2.sendall(frame(0, 0, 1, b"a"))  # one byte of DATA per half second
    except OSError:
        break
    h2.settimeout(0.5)
    try:
        chunk = h2.recv(65536)
    except socket.timeout:
        continue
    except OSError:
        break
    if not chunk:
        break
    buf += chunk
    while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
        length, kind = int.from_bytes(buf[:3], "big"), buf[3]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        payload, buf = buf[9:9 + length], buf[9 + length:]
        if kind == 3 and stream == 1:  # RST_STREAM
            reset_code = int.from_bytes(payload[:4], "big")
elapsed = time.monotonic() - started
check(reset_code == 0x8, "HTTP/2: a body at 2 bytes/s is reset with CANCEL", reset_code)
check(elapsed < 2 + 2.5, "HTTP/2: within the grace (2 s) plus a little", f"{elapsed:.2f}s")
check(wait_until(lambda: edge.rejections("body_rate") > slow_before),
      "HTTP/2: counted under limit body_rate")
h2.close()
check(not any(r["path"] == "/upload-h2" for r in app.requests), "HTTP/2: the slow body never reached the origin")

# 3. Slow reader: 16 MB asked for, nothing read; a small receive buffer so that the edge's
# writes stop making progress quickly. Dropped after send_timeout (2 s) without progress.
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.settimeout(10)
raw.connect(("127.0.0.1", edge.https_port))
reader = edge.context().wrap_socket(raw, server_hostname="app.example.test")
reader.sendall(b"GET /big HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
sent_at = time.monotonic()
timed = record_where(edge, lambda r: r.get("code") == "send_timeout", timeout=20)
check(timed is not None and timed.get("termination") == "timeout" and timed.get("path") == "/big",
      "a client that does not read is dropped: termination timeout, code send_timeout", timed)
if timed:
    # duration_ms runs from the request: the buffers fill first (fast on loopback), then 2 s.
    check(timed["duration_ms"] <= 2000 + 1000 + 500, "within send_timeout + 1 s",
          timed["duration_ms"])
    check(timed["bytes_out"] < BIG, "not the whole response", timed["bytes_out"])
check(wait_until(lambda: edge.rejections("send_timeout") >= 1), 'moat_edge_guard_rejections_total{limit="send_timeout"}')
reader.close()

# 4. WebSocket through the edge: handshake forwarded with its Upgrade, 101 relayed, then a tunnel.
key = base64.b64encode(os.urandom(16)).decode()
sock = edge.tls_socket()
sock.sendall((f"GET /ws/chat HTTP/1.1\r\nHost: app.example.test\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
status, headers, leftover = read_head(sock)
expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
check_eq(status, 101, "the WebSocket handshake gets 101 through the edge")
check(headers.get("upgrade", "").lower() == "websocket" and
      "upgrade" in headers.get("connection", "").lower(),
      "the 101 carries Upgrade: websocket and Connection: Upgrade", headers)
check_eq(headers.get("sec-websocket-accept"), expected, "Sec-WebSocket-Accept from the origin")
echo = None
try:
    sock.settimeout(10)
    sock.sendall(ws_frame(b"hello through moat"))
    echo = ws_read_frame(sock, leftover)
    sock.sendall(ws_frame(b"", opcode=8))
except (OSError, EOFError) as e:
    echo = e
check(isinstance(echo, tuple) and echo[0] == 1 and echo[1] == b"hello through moat",
      "a masked text frame is echoed back through the tunnel", echo)
sock.close()
origin_head = ws.heads[0] if ws.heads else {}
check(origin_head.get("upgrade") == "websocket" and
      origin_head.get("connection", "").lower() == "upgrade" and
      origin_head.get("sec-websocket-key") == key,
      "the origin saw Upgrade, Connection and Sec-WebSocket-Key", origin_head)
upgraded = record_where(edge, lambda r: r.get("status") == 101)
check(upgraded and upgraded.get("code") == "upgraded" and upgraded.get("bytes_in", 0) > 0,
      "the access record: status 101, code upgraded, tunnel bytes counted", upgraded)
# Any other Upgrade is stripped: the request is served as a normal one.
sock = edge.tls_socket()
sock.sendall(b"GET /h2c HTTP/1.1\r\nHost: app.example.test\r\nUpgrade: h2c\r\n"
             b"Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
r = read_response(sock)
check(r is not None and r[0] == 200, "Upgrade: h2c is ignored: 200", r and r[0])
seen = [q for q in app.requests if q["path"] == "/h2c"]
check(seen and not any(k.lower() in ("upgrade", "http2-settings") for k, _ in seen[0]["headers"]),
      "the origin never sees a non-WebSocket Upgrade", seen)
sock.close()

# ---- edge 2: overload shedding by memory ------------------------------------------------------
edge2 = Edge(limits="    overload_memory: 1MiB\n")  # any process is over 1 MiB: always shedding
check(wait_until(lambda: edge2.metric("moat_edge_overloaded") >= 1),
      "moat_edge_overloaded is set while memory is over overload_memory")


def served(edge):
    try:
        s = edge.tls_socket(timeout=3)
    except (OSError, ssl.SSLError):
        return False
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
        r = read_response(s, timeout=3)
        return r is not None and r[0] == 200
    finally:
        s.close()


check(not served(edge2), "while overloaded, a new connection is closed at accept")
check(wait_until(lambda: edge2.rejections("overload") >= 1), 'moat_edge_guard_rejections_total{limit="overload"}')
with open(edge2.config) as f:
    text = f.read()
with open(edge2.config, "w") as f:
    f.write(text.replace("    overload_memory: 1MiB\n", "    overload_memory: 0\n"))
edge2.process.send_signal(signal.SIGHUP)
check(wait_until(lambda: "applied" in edge2.log()), "reload without the memory threshold")
check(wait_until(lambda: served(edge2)), "after it, new connections are served again")
# Each worker leaves overload on its own next checks: wait for all of them.
check(wait_until(lambda: edge2.metric("moat_edge_overloaded") == 0),
      "and moat_edge_overloaded is back to 0")

# Both edges drain and exit cleanly (under ASan: no leak, no error), with no session exception.
for e in (edge, edge2):
    e.process.send_signal(signal.SIGTERM)
    check_eq(e.process.wait(timeout=20), 0, "the edge exits 0 on SIGTERM")
    check("exception" not in e.log() and "Sanitizer" not in e.log(),
          "no session exception or sanitizer report", e.log()[-2000:])

done()
