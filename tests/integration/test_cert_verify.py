"""moat cert verify: pins (any certificate of the chain), RFC 6125 names, dates, --min-days,
--allow-unpinned, host selection (--host, --sni, HOST), against files, openssl s_server and
nginx on 127.0.0.1."""
import json
import os
import subprocess

import harness
from harness import check, check_eq, moat
import cert_util as cu


def verify(*args):
    return moat("cert", "verify", *args, timeout=30)


def expect(r, code, what, *fragments):
    ok = check_eq(r.returncode, code, f"{what}: exit {code}")
    for f in fragments:
        ok = check(f in r.stdout + r.stderr, f"{what}: says {f!r}", r.stdout + r.stderr) and ok
    return ok


def start_nginx(d, chain, key):
    port = harness.free_port()
    prefix = os.path.join(d, "nginx")
    os.makedirs(prefix, exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {prefix}/access.log;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {chain};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
""")
    p = harness.start(["nginx", "-p", prefix, "-c", conf, "-e", f"{prefix}/error.log", "-g", "daemon off;"])
    harness.wait_for_port(port, process=p)
    return p, port


def main():
    d = harness.tempdir()
    leaf = harness.make_ca_and_leaf(d, name="leaf", key="ec", dns=("localhost", "*.example.test"))
    ca = leaf["ca"]
    leaf_pin = cu.openssl_view(leaf["crt"])["pin"]
    ca_pin = cu.openssl_view(ca["crt"])["pin"]
    other = cu.self_signed(d, "other", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    other_pin = cu.openssl_view(other["crt"])["pin"]

    by_ca = cu.write_policy(os.path.join(d, "ca-pin.yaml"), ["*.example.test", "localhost"], [other_pin, ca_pin])
    by_leaf = cu.write_policy(os.path.join(d, "leaf-pin.yaml"), ["localhost"], [leaf_pin])
    wrong = cu.write_policy(os.path.join(d, "wrong-pin.yaml"), ["*.example.test", "localhost"], [other_pin])
    unpinned = cu.write_policy(os.path.join(d, "unpinned.yaml"), ["localhost"], [])
    elsewhere = cu.write_policy(os.path.join(d, "elsewhere.yaml"), ["*.elsewhere.test"], [ca_pin], name="elsewhere")
    by_ip = cu.write_policy(os.path.join(d, "ip.yaml"), ["127.0.0.1"], [leaf_pin], name="byip")

    # Files.
    r = verify(leaf["chain"], "--policy", by_ca, "--host", "localhost")
    expect(r, 0, "file chain, CA pinned", "ok   pin", "certificate 2 (CN=moat test CA)", "result: ok")
    check_eq([l.split()[0] for l in r.stdout.splitlines()[1:6]], ["ok"] * 5, "five checks printed, all ok")
    expect(verify(leaf["crt"], "--policy", by_ca, "--host", "localhost"), 1,
           "leaf alone, only the CA pinned", "FAIL pin", leaf_pin)
    expect(verify(leaf["crt"], "--policy", by_leaf, "--host", "localhost"), 0, "leaf pinned", "certificate 1 (leaf")
    expect(verify(leaf["chain"], "--policy", wrong, "--host", "localhost"), 1,
           "no presented pin listed", "FAIL pin", "result: FAIL, 1 of 5 checks failed: pin")
    expect(verify(leaf["chain"], "--policy", unpinned, "--host", "localhost"), 1,
           "service without pins", "FAIL pin", "lists no pins")
    expect(verify(leaf["chain"], "--policy", unpinned, "--host", "localhost", "--allow-unpinned"), 0,
           "service without pins, --allow-unpinned", "ok   pin", "--allow-unpinned")
    expect(verify(leaf["chain"], "--policy", by_ca, "--host", "api.example.test"), 0,
           "wildcard covers one label", "by *.example.test")
    expect(verify(leaf["chain"], "--policy", by_ca, "--host", "API.Example.Test."), 0,
           "host case and trailing dot ignored", "ok   name")
    expect(verify(leaf["chain"], "--policy", by_ca, "--host", "a.b.example.test"), 1,
           "wildcard does not cover two labels", "FAIL name", "does not cover a.b.example.test")
    expect(verify(leaf["chain"], "--policy", by_ca, "--host", "example.test"), 1,
           "wildcard does not cover the parent", "FAIL name", "FAIL policy")
    expect(verify(leaf["chain"], "--policy", by_ca, "--host", "other.test"), 1,
           "host in no policy", "FAIL policy", "no service of the 1 policy matches other.test")
    expect(verify(leaf["chain"], "--policy", elsewhere, "--policy", by_ca, "--host", "localhost"), 0,
           "two policies, the second matches", "of policy testpolicy")
    expect(verify(leaf["chain"], "--policy", by_ca, "--host", "localhost", "--min-days", "20"), 0,
           "--min-days below days left", "at least 20 required")
    expect(verify(leaf["chain"], "--policy", by_ca, "--host", "localhost", "--min-days", "31"), 1,
           "--min-days above days left", "FAIL days-left", "at least 31 required")
    r = verify(leaf["chain"], "--policy", by_ca, "--host", "localhost", "--format", "json")
    check_eq(r.returncode, 0, "json: exit 0")
    doc = json.loads(r.stdout)
    check_eq((doc["schema"], doc["host"], doc["passed"], [c["name"] for c in doc["checks"]]),
             ("moat.cert.verify/v1", "localhost", True, ["policy", "pin", "name", "validity", "days-left"]),
             "json: schema, host, result, checks")
    check_eq(doc["presented_pins"], [leaf_pin, ca_pin], "json: presented pins")

    # Dates: expired and not yet valid.
    old = cu.dated_leaf(d, ca, "old", "20200101000000Z", "20200201000000Z")
    r = verify(old["crt"], "--policy", by_ca, "--host", "localhost", "--allow-unpinned")
    expect(r, 1, "expired", "FAIL validity", "expired on 2020-02-01T00:00:00Z", "FAIL days-left")
    future = cu.dated_leaf(d, ca, "future", "20990101000000Z", "20991231000000Z")
    expect(verify(future["crt"], "--policy", by_ca, "--host", "localhost"), 1,
           "not yet valid", "FAIL validity", "not valid before 2099-01-01T00:00:00Z")
    r = moat("cert", "show", old["crt"], "--format", "json")
    c = json.loads(r.stdout)["certificates"][0]["validity"]
    check(c["status"] == "expired" and c["days_left"] < -365, "show: expired status and negative days", c)

    # Usage errors.
    expect(verify(leaf["chain"], "--policy", by_ca), 2, "file without --host", "needs --host")
    expect(verify(leaf["chain"], "--host", "localhost"), 2, "no --policy", "--policy")
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("moat: policy/v1\nmetadata: [\n")
    expect(verify(leaf["chain"], "--policy", bad, "--host", "localhost"), 2, "broken policy",
           f"{bad}:", "the policies above have errors")
    expect(verify(leaf["chain"], "--policy", os.path.join(d, "missing.yaml"), "--host", "localhost"), 2,
           "missing policy", "missing.yaml")
    expect(verify(leaf["chain"], "--policy", by_ca, "--host", "bad host"), 2, "invalid --host", "invalid host")

    # Live: openssl s_server sends leaf + CA.
    _, port = harness.openssl_server(leaf["crt"], leaf["key"], chain=ca["crt"])
    target = f"localhost:{port}"
    expect(verify(target, "--connect", "127.0.0.1", "--policy", by_ca), 0,
           "s_server: host from HOST:PORT", f"verify localhost at 127.0.0.1:{port} (SNI localhost)", "result: ok")
    expect(verify(f"127.0.0.1:{port}", "--sni", "api.example.test", "--policy", by_ca), 0,
           "s_server: host from --sni", "verify api.example.test", "by *.example.test")
    expect(verify(f"127.0.0.1:{port}", "--sni", "localhost", "--host", "x.example.test", "--policy", by_ca), 0,
           "s_server: --host wins over --sni", "verify x.example.test")
    expect(verify(f"127.0.0.1:{port}", "--sni", "wrong.other.test", "--policy", by_ca), 1,
           "s_server: wrong SNI fails on name and policy", "FAIL name", "FAIL policy")
    expect(verify(f"127.0.0.1:{port}", "--policy", by_ip), 0,
           "s_server: IP host matched by IP SAN", "by 127.0.0.1", "ok   name")
    expect(verify(target, "--connect", "127.0.0.1", "--policy", wrong), 1, "s_server: wrong pin", "FAIL pin")

    # nginx on loopback, leaf + CA in ssl_certificate.
    _, nport = start_nginx(d, leaf["chain"], leaf["key"])
    expect(verify(f"localhost:{nport}", "--connect", "127.0.0.1", "--policy", by_ca, "--min-days", "1"), 0,
           "nginx: verify", "result: ok, all 5 checks passed")
    r = moat("cert", "show", f"localhost:{nport}", "--connect", "127.0.0.1", "--chain", "--format", "json")
    check_eq(r.returncode, 0, "nginx: show exit 0")
    doc = json.loads(r.stdout)
    check_eq([c["fingerprint_sha256"] for c in doc["certificates"]],
             [cu.openssl_view(leaf["crt"])["fingerprint_sha256"], cu.openssl_view(ca["crt"])["fingerprint_sha256"]],
             "nginx: chain fingerprints as openssl computes them")
    expect(verify(f"localhost:{nport}", "--connect", "127.0.0.1", "--policy", wrong), 1, "nginx: wrong pin", "FAIL pin")
    harness.done()


main()
