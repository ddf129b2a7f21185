"""moat cert with bad input: every case gives a clear `moat: error:` and exit 2, within its
deadline, never a crash or a hang."""
import os
import socket
import threading
import time

import harness
from harness import check, check_eq, moat
import cert_util as cu


def expect_error(args, fragment, what, code=2, timeout=30):
    start = time.monotonic()
    r = moat(*args, timeout=timeout)
    elapsed = time.monotonic() - start
    check_eq(r.returncode, code, f"{what}: exit {code}")
    check(r.stderr.startswith("moat: error: ") or code != 2 or "--" in r.stderr,
          f"{what}: stderr starts with 'moat: error:'", r.stderr)
    check(fragment in r.stderr, f"{what}: says {fragment!r}", r.stderr)
    check(r.stdout == "", f"{what}: nothing on stdout", r.stdout)
    return r, elapsed


def serve_forever(sock, handler):
    def loop():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                try:
                    handler(conn)
                except OSError:
                    pass
    threading.Thread(target=loop, daemon=True).start()


def main():
    d = harness.tempdir()
    leaf = harness.make_ca_and_leaf(d, name="leaf", key="ec")
    pem = open(leaf["crt"], "rb").read()
    der = cu.sh("openssl", "x509", "-in", leaf["crt"], "-outform", "der")

    def write(name, data):
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    cases = [
        ("empty file", write("empty.pem", b""), "the input is empty"),
        ("blank file", write("blank.pem", b"\n  \n"), "the input is empty"),
        ("garbage", write("garbage.bin", bytes((i * 37 + 11) % 256 for i in range(4096))),
         "not a certificate: neither PEM"),
        ("text", write("text.txt", b"hello, this is not a certificate\n"), "not a certificate"),
        ("truncated PEM", write("trunc.pem", pem[: len(pem) // 2]), "has no '-----END CERTIFICATE-----' line"),
        ("PEM with a corrupt body", write("corrupt.pem", pem.replace(b"\n", b"\n!!", 3)), "does not decode"),
        ("PEM, second block truncated", write("trunc2.pem", pem + pem[:200]), "block at byte"),
        ("truncated DER", write("trunc.der", der[:200]), "is truncated: it declares"),
        ("DER with trailing data", write("trail.der", der + b"garbage"), "7 bytes of trailing data"),
        ("DER, invalid content", write("bad.der", b"\x30\x82\x00\x10" + b"\x01" * 16), "does not decode"),
        ("private key only", leaf["key"], "no certificate in the PEM input (it holds: PRIVATE KEY)"),
        ("a directory", d, "is a directory"),
        ("missing file", os.path.join(d, "missing.pem"), "cannot open"),
        ("not a file nor HOST:PORT", "missing.pem", "no such file, and not HOST:PORT"),
        ("port 0", "localhost:0", "not HOST:PORT"),
        ("port out of range", "localhost:70000", "not HOST:PORT"),
    ]
    big = os.path.join(d, "big.pem")
    with open(big, "wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: costs nothing, must be refused before reading
    cases.append(("100 MB file", big, "more than the limit of 16777216 bytes"))
    p7 = os.path.join(d, "chain.p7b")
    cu.sh("openssl", "crl2pkcs7", "-nocrl", "-certfile", leaf["crt"], "-out", p7)
    cases.append(("PKCS7 file", p7, "openssl pkcs7 -print_certs"))

    for what, target, fragment in cases:
        for cmd in ("show", "pin"):
            expect_error(["cert", cmd, target], fragment, f"{cmd}: {what}")
    policy = cu.write_policy(os.path.join(d, "p.yaml"), ["localhost"], [])
    expect_error(["cert", "verify", os.path.join(d, "trunc.pem"), "--policy", policy, "--host", "localhost"],
                 "has no '-----END CERTIFICATE-----' line", "verify: truncated PEM")

    # Usage errors from the command line.
    expect_error(["cert", "show", leaf["crt"], "--format", "yaml"], "--format", "bad --format")
    expect_error(["cert", "show", "localhost:443", "--timeout", "0"], "--timeout", "--timeout 0")
    expect_error(["cert", "show"], "target", "missing TARGET")
    expect_error(["cert", "show", "127.0.0.1:443", "--connect", "not-an-ip"], "--connect not-an-ip: not an IP",
                 "--connect with a name")
    expect_error(["cert", "verify", leaf["crt"], "--policy", policy, "--host", "localhost", "--min-days", "-1"],
                 "--min-days", "negative --min-days")

    # Network: a listener that never accepts nor answers: the handshake deadline holds.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]
    r, elapsed = expect_error(["cert", "show", f"127.0.0.1:{port}", "--timeout", "2"],
                              "no answer before the deadline", "silent server")
    check(1.5 <= elapsed <= 3.0, f"silent server: returns after the 2 s deadline ({elapsed:.2f} s)")
    r, elapsed = expect_error(["cert", "verify", f"localhost:{port}", "--connect", "127.0.0.1", "--timeout", "1",
                               "--policy", policy], "no answer before the deadline", "verify: silent server")
    check(elapsed <= 2.5, f"verify: silent server within deadline ({elapsed:.2f} s)")

    # Connection refused: a port nothing listens on (bound, never listening, so it stays ours).
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    expect_error(["cert", "show", f"127.0.0.1:{closed.getsockname()[1]}"], "Connection refused", "refused")

    # A plain TCP server that answers HTTP.
    http = socket.socket()
    http.bind(("127.0.0.1", 0))
    http.listen(8)
    serve_forever(http, lambda c: (c.recv(4096), c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")))
    hport = http.getsockname()[1]
    expect_error(["cert", "show", f"127.0.0.1:{hport}", "--timeout", "5"], "does not speak TLS", "HTTP server")
    expect_error(["cert", "pin", f"localhost:{hport}", "--connect", "127.0.0.1", "--timeout", "5"],
                 "wrong version number", "HTTP server, pin")

    # A server that accepts and closes at once.
    closer = socket.socket()
    closer.bind(("127.0.0.1", 0))
    closer.listen(8)
    serve_forever(closer, lambda c: None)
    expect_error(["cert", "show", f"127.0.0.1:{closer.getsockname()[1]}", "--timeout", "5"],
                 "the peer ended it", "server closes at once")

    # A server that sends endless garbage (no TLS record ever completes).
    noise = socket.socket()
    noise.bind(("127.0.0.1", 0))
    noise.listen(8)
    serve_forever(noise, lambda c: c.sendall(b"\x16\x03\x03\xff\xff" + b"\x00" * 60000))
    r, elapsed = expect_error(["cert", "show", f"127.0.0.1:{noise.getsockname()[1]}", "--timeout", "2"],
                              "TLS handshake with", "server sends a huge bogus record")
    check(elapsed <= 3.0, f"bogus record: within deadline ({elapsed:.2f} s)")

    # A name that does not resolve (.invalid is reserved, RFC 6761: no lookup leaves the host
    # on a resolver that honours it; either way it must fail cleanly).
    expect_error(["cert", "show", "nonexistent.invalid:443", "--timeout", "3"], "nonexistent.invalid",
                 "unresolvable name")
    harness.done()


main()
