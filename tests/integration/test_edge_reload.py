"""moat edge: SIGHUP under load. While clients keep requesting (one keep-alive connection and
two clients opening a new TLS connection per request), the certificate is rotated four times and
an invalid config is offered once. Asserts: zero failed requests; the keep-alive connection is
never dropped; each rotation reaches new connections (their certificate changes) and the
rejected config changes nothing."""
import hashlib
import os
import shutil
import signal
import socket
import ssl
import threading
import time

from harness import check, check_eq, done, make_ca_and_leaf
from edge_fixture import Edge, read_response, wait_until

edge = Edge(
    http_listener=False,
    limits="    requests_per_second_per_client: 0\n"
           "    handshakes_per_second_per_client: 0\n"
           "    ban_after_trips: 0\n")
host = "app.example.test"
live = edge.certs[0]  # the files the config names; rotations overwrite them in place
ca = {"crt": edge.ca, "key": os.path.join(edge.dir, "ca.key")}


def presented_fingerprint():
    """SHA-256 of the leaf a new connection gets."""
    ctx = ssl.create_default_context(cafile=edge.ca)
    with socket.create_connection(("127.0.0.1", edge.https_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(pem_path):
    der = ssl.PEM_cert_to_DER_cert(open(pem_path).read().split("-----END CERTIFICATE-----")[0]
                                   + "-----END CERTIFICATE-----\n")
    return hashlib.sha256(der).hexdigest()


stop = threading.Event()
lock = threading.Lock()
stats = {"ok": 0, "failed": 0, "errors": [], "keepalive_ok": 0}


def record(ok, what=""):
    with lock:
        if ok:
            stats["ok"] += 1
        else:
            stats["failed"] += 1
            if len(stats["errors"]) < 5:
                stats["errors"].append(what)


def keepalive_client():
    ctx = ssl.create_default_context(cafile=edge.ca)
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", edge.https_port), timeout=10),
                           server_hostname=host)
    n = 0
    while not stop.is_set() and n < 20000:
        n += 1
        try:
            sock.sendall(f"GET /ka/{n} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            r = read_response(sock)
        except OSError as e:
            r = None
            record(False, f"keep-alive request {n}: {e}")
            break
        ok = r is not None and r[0] == 200 and f"/ka/{n}".encode() in r[2]
        record(ok, f"keep-alive request {n}: {r and r[0]}")
        if ok:
            with lock:
                stats["keepalive_ok"] += 1
        if not ok:
            break
    sock.close()


def new_connection_client(tag):
    ctx = ssl.create_default_context(cafile=edge.ca)
    n = 0
    while not stop.is_set() and n < 5000:
        n += 1
        try:
            with socket.create_connection(("127.0.0.1", edge.https_port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname=host) as s:
                    s.sendall(f"GET /{tag}/{n} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                    r = read_response(s)
            record(r is not None and r[0] == 200, f"{tag} request {n}: {r and r[0]}")
        except (OSError, ssl.SSLError) as e:
            record(False, f"{tag} request {n}: {e}")


threads = [threading.Thread(target=keepalive_client)] + \
          [threading.Thread(target=new_connection_client, args=(f"new{i}",)) for i in range(2)]
for t in threads:
    t.start()
check(wait_until(lambda: stats["ok"] >= 50, timeout=20), "load is flowing before the first reload")

before = presented_fingerprint()
for rotation in range(4):
    # A new key and certificate for the same names, written over the files the config names
    # (as a renewal job does), then SIGHUP.
    fresh = make_ca_and_leaf(edge.dir, name=f"rotated{rotation}", dns=(host, f"*.{host}"),
                             ips=("127.0.0.1",), ca=ca)
    for src, dst in ((fresh["chain"], live["chain"]), (fresh["key"], live["key"])):
        shutil.copyfile(src, dst + ".new")
        os.replace(dst + ".new", dst)
    want = file_fingerprint(live["chain"])
    applied = edge.metric("moat_edge_reloads_total", '{result="applied"}')
    edge.process.send_signal(signal.SIGHUP)
    check(wait_until(lambda: edge.metric("moat_edge_reloads_total", '{result="applied"}') > applied),
          f"rotation {rotation + 1}: reload applied")
    got = presented_fingerprint()
    check(got == want and got != before, f"rotation {rotation + 1}: new connections get the new certificate")
    before = got
    ok_now, ka_now = stats["ok"], stats["keepalive_ok"]
    check(wait_until(lambda: stats["ok"] >= ok_now + 50 and stats["keepalive_ok"] >= ka_now + 10,
                     timeout=20),
          f"rotation {rotation + 1}: requests keep being served, on the old keep-alive connection too")

# An invalid config (a certificate file that does not exist) is refused; nothing changes.
config_text = open(edge.config).read()
with open(edge.config, "w") as f:
    f.write(config_text.replace(live["chain"], live["chain"] + ".missing"))
rejected = edge.metric("moat_edge_reloads_total", '{result="rejected"}')
edge.process.send_signal(signal.SIGHUP)
check(wait_until(lambda: edge.metric("moat_edge_reloads_total", '{result="rejected"}') > rejected),
      "an invalid config is rejected")
check_eq(presented_fingerprint(), before, "after the rejected reload the certificate is unchanged")
with open(edge.config, "w") as f:
    f.write(config_text)
ok_now = stats["ok"]
check(wait_until(lambda: stats["ok"] >= ok_now + 20, timeout=20), "requests keep being served after it")

stop.set()
for t in threads:
    t.join(timeout=30)
check(stats["ok"] >= 270, f"{stats['ok']} requests served during the reloads "
      f"({stats['keepalive_ok']} on the one keep-alive connection opened before them)")
check_eq(stats["failed"], 0, "zero failed requests across 4 rotations and 1 rejected config")
if stats["errors"]:
    print("     first failures:", stats["errors"])
check(edge.process.poll() is None, "the edge is still running")
done()
