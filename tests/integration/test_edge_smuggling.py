"""moat edge: request smuggling forms and malformed requests are answered 400 (or the parser's
specific status) and the connection closes; none of them ever reaches the origin. Also size
limits (413, 414, 431), a request pipelined behind a refused one, the header deadline, and the
deadlines of idle (parked) connections."""
import socket
import time

from harness import check, check_eq, done
from edge_fixture import Edge, closed_by_peer, read_response

edge = Edge(http_listener=False, admin=False,
            limits="    max_body_bytes: 64\n    max_request_line: 256\n    max_header_bytes: 1KiB\n"
                   "    header_timeout: 1s\n    idle_timeout: 2s\n")
H = b"Host: app.example.test\r\n"

# (name, raw request, expected status). Each path is unique so the origin's log can be searched.
cases = [
    ("CL and TE together", b"POST /s1 HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /s1-smuggled HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("TE and CL together (TE first)", b"POST /s2 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
    ("two different Content-Lengths", b"POST /s3 HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
    ("Content-Length list that disagrees", b"POST /s4 HTTP/1.1\r\n" + H + b"Content-Length: 4, 5\r\n\r\nabcde", 400),
    ("Content-Length with a sign", b"POST /s5 HTTP/1.1\r\n" + H + b"Content-Length: +4\r\n\r\nabcd", 400),
    ("Content-Length with a leading zero", b"POST /s6 HTTP/1.1\r\n" + H + b"Content-Length: 04\r\n\r\nabcd", 400),
    ("Transfer-Encoding: gzip, chunked", b"POST /s7 HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("Transfer-Encoding: chunked, chunked", b"POST /s8 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("Transfer-Encoding: xchunked", b"POST /s9 HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    ("Transfer-Encoding in HTTP/1.0", b"POST /s10 HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET /s11 HTTP/1.1\r\n" + H + b"X-A: one\r\n two\r\n\r\n", 400),
    ("obs-fold of Transfer-Encoding", b"POST /s12 HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    ("bare LF line ends", b"GET /s13 HTTP/1.1\nHost: app.example.test\n\n", 400),
    ("bare CR in a header", b"GET /s14 HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("NUL in a header value", b"GET /s15 HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("space before the colon", b"GET /s16 HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n", 400),
    ("invalid header name", b"GET /s17 HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", 400),
    ("absolute-form disagreeing with Host", b"GET https://evil.example.test/s18 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("two Host headers", b"GET /s19 HTTP/1.1\r\n" + H + b"Host: evil.example.test\r\n\r\n", 400),
    ("no Host", b"GET /s20 HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("invalid chunk size", b"POST /s21 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 400),
    ("chunk data longer than its size", b"POST /s22 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n", 400),
    ("chunk size with bare LF", b"POST /s23 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n", 400),
    ("request line too long", b"GET /s24" + b"a" * 400 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("header section too large", b"GET /s25 HTTP/1.1\r\n" + H + b"X-A: " + b"a" * 2000 + b"\r\n\r\n", 431),
    ("body over max_body_bytes (Content-Length)", b"POST /s26 HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n" + b"a" * 100, 413),
    ("body over max_body_bytes (chunked)", b"POST /s27 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n64\r\n" + b"a" * 100 + b"\r\n0\r\n\r\n", 413),
    ("Expect other than 100-continue", b"POST /s28 HTTP/1.1\r\n" + H + b"Expect: 200-ok\r\nContent-Length: 1\r\n\r\na", 417),
    ("fragment in the target", b"GET /s29#frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("encoded dot segment", b"GET /s30/%2e%2E/admin HTTP/1.1\r\n" + H + b"\r\n", 400),
]

for name, raw, expected in cases:
    s = edge.tls_socket()
    s.sendall(raw)
    reply = read_response(s)
    status = reply[0] if reply else None
    check_eq(status, expected, f"{name}: answered {expected}")
    check(closed_by_peer(s), f"{name}: connection closed after the refusal")
    s.close()

seen = edge.origin.paths()
leaked = [p for p in seen if p.startswith("/s")]
check_eq(leaked, [], "no refused request (nor anything smuggled behind it) reached the origin")

# A valid request, then a smuggling form, pipelined: the first is served, the second refused, and
# the request hidden in the second's body never reaches the origin.
s = edge.tls_socket()
s.sendall(b"GET /ok-first HTTP/1.1\r\n" + H + b"\r\n"
          b"POST /bad-second HTTP/1.1\r\n" + H + b"Content-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"0\r\n\r\nGET /hidden HTTP/1.1\r\n" + H + b"\r\n")
first = read_response(s)
check(first is not None and first[0] == 200, "pipelined: the valid first request is answered 200")
rest = first[3] if first else b""
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
second = read_response(Pre(s, rest))
check(second is not None and second[0] == 400, "pipelined: the smuggling form behind it is answered 400")
check(closed_by_peer(s), "pipelined: then the connection closes")
s.close()
paths = edge.origin.paths()
check("/ok-first" in paths and "/bad-second" not in paths and "/hidden" not in paths,
      "pipelined: only the valid request reached the origin", paths)

# Slowloris: a head that never ends is answered 408 at header_timeout (1s) and closed.
s = edge.tls_socket()
s.sendall(b"GET /slow HTTP/1.1\r\nHost: app.example.test\r\n")
start = time.monotonic()
reply = read_response(s, timeout=5)
check(reply is not None and reply[0] == 408 and time.monotonic() - start < 4,
      "an unfinished head is answered 408 at the header deadline")
s.close()

# Idle connections wait parked (no coroutine, no buffer): their deadlines still hold. A TLS
# connection that never sends a request is closed at header_timeout (1s), one that went quiet
# after a request at idle_timeout (2s), and a parked connection still serves its next request.
s = edge.tls_socket()
start = time.monotonic()
check(closed_by_peer(s, timeout=5) and 0.8 < time.monotonic() - start < 4,
      "a connection with no request is closed at header_timeout", time.monotonic() - start)
s.close()
s = edge.tls_socket()
req = b"GET /parked HTTP/1.1\r\n" + H + b"\r\n"
s.sendall(req)
first = read_response(s, timeout=5)
time.sleep(1.2)  # parked past header_timeout (1s): between requests idle_timeout (2s) rules
s.sendall(req)
second = read_response(s, timeout=5)
check(first is not None and first[0] == 200 and second is not None and second[0] == 200,
      "a parked keep-alive connection serves its next request")
start = time.monotonic()
check(closed_by_peer(s, timeout=6) and 1.5 < time.monotonic() - start < 5,
      "a keep-alive connection idle after a request is closed at idle_timeout",
      time.monotonic() - start)
s.close()

records = edge.wait_records(len(cases) + 3)
# Heads that fail to parse have no path yet: count every refusal, not just those with a path.
refused = [r for r in records if r["status"] >= 400]
check(len(refused) >= len(cases) + 2, "every refusal has an access record with its status",
      f"{len(refused)} of {len(cases) + 2}")
check(all(r["termination"] in ("proxy", "timeout") and r["upstream"] == "" for r in refused),
      "refusals are local replies: no upstream in their records", refused[:3])

done()
