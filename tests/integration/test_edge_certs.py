"""moat edge: certificate features. An RSA and an ECDSA certificate for the same names served by
client capability (TLS 1.3 signature_algorithms, TLS 1.2 ECDHE-RSA / ECDHE-ECDSA suites), OCSP
stapling from a file (responses made offline with `openssl ocsp -index`), the HTTP/2 limits from
the config (SETTINGS_MAX_CONCURRENT_STREAMS seen by nghttp), the groups in use, and `--check`
errors located at file:line:column for each new validation. A reload with a broken OCSP file keeps
the running staple."""
import datetime
import os
import re
import shutil
import signal
import subprocess

from harness import check, done, free_port, make_ca_and_leaf, moat, start, tempdir, wait_for_port
from edge_fixture import Origin, wait_until

d = tempdir()
origin = Origin()
names = ("app.example.test", "*.app.example.test")
ec = make_ca_and_leaf(d, name="ec", dns=names)
ca = ec["ca"]
rsa = make_ca_and_leaf(d, name="rsa", key="rsa2048", dns=names, ca=ca)
ec2 = make_ca_and_leaf(d, name="ec2", dns=names, ca=ca)  # a second ECDSA one: refused
other = make_ca_and_leaf(d, name="other", dns=("other.example.test",), ca=ca)


def sh(*args, cwd=d):
    r = subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr}")
    return r.stdout


def serial(crt):
    return sh("openssl", "x509", "-in", crt, "-noout", "-serial").strip().split("=")[1]


def index_line(crt, state="V"):
    end = sh("openssl", "x509", "-in", crt, "-noout", "-enddate").strip().split("=")[1]
    # index.txt dates are YYMMDDHHMMSSZ; openssl prints "Dec 28 18:28:46 2026 GMT".
    t = datetime.datetime.strptime(end, "%b %d %H:%M:%S %Y %Z").strftime("%y%m%d%H%M%SZ")
    revoked = t if state == "R" else ""
    return f"{state}\t{t}\t{revoked}\t{serial(crt)}\tunknown\t/CN=app.example.test\n"


def ocsp_response(crt, out, index):
    """An OCSP response for `crt`, signed by the CA, from an index file: no network."""
    with open(index + ".attr", "w") as f:
        f.write("unique_subject = no\n")
    sh("openssl", "ocsp", "-index", index, "-rsigner", ca["crt"], "-rkey", ca["key"],
       "-CA", ca["crt"], "-issuer", ca["crt"], "-cert", crt, "-respout", out, "-ndays", "1",
       "-no_nonce")
    return out


index = os.path.join(d, "index.txt")
with open(index, "w") as f:
    f.write(index_line(ec["crt"]) + index_line(rsa["crt"]))
ec_ocsp = ocsp_response(ec["crt"], os.path.join(d, "ec.ocsp.der"), index)
rsa_ocsp = ocsp_response(rsa["crt"], os.path.join(d, "rsa.ocsp.der"), index)
revoked_index = os.path.join(d, "revoked.txt")
with open(revoked_index, "w") as f:
    f.write(index_line(ec["crt"], "R"))
ec_revoked = ocsp_response(ec["crt"], os.path.join(d, "ec.revoked.der"), revoked_index)

https_port = free_port()
H2_STREAMS = 37


def config_text(certs, limits=f"    h2_max_concurrent_streams: {H2_STREAMS}\n"):
    return ("moat: gateway/v1\n"
            "workers: 2\n"
            "edge:\n"
            f"  listen_https: [127.0.0.1:{https_port}]\n"
            "  certificates:\n" + certs +
            f"  pools: [{{name: app, members: [\"127.0.0.1:{origin.port}\"]}}]\n"
            "  routes: [{pool: app}]\n"
            f"  access_log: {os.path.join(d, 'access.log')}\n"
            + (f"  limits:\n{limits}" if limits else ""))


def cert_line(c, ocsp=None, key=None):
    extra = f", ocsp: {ocsp}" if ocsp else ""
    return f"    - {{cert: {c['chain']}, key: {key or c['key']}{extra}}}\n"


good_certs = (cert_line(ec, ec_ocsp) + cert_line(rsa, rsa_ocsp) + cert_line(other))
config = os.path.join(d, "edge.yaml")
with open(config, "w") as f:
    f.write(config_text(good_certs))

r = moat("edge", "--check", "--config", config)
check(r.returncode == 0 and "3 certificates" in r.stdout, "--check accepts an RSA+ECDSA pair with "
      "OCSP responses", r.stdout + r.stderr)


# ---- --check: each new validation, located -------------------------------------------------------
def check_error(certs, want, what, limits=None, item=None):
    """`moat edge --check` fails with `want` located at the certificate item (`item`: 0-based
    index into the certificates list) or at the limits key."""
    path = os.path.join(d, "bad.yaml")
    text = config_text(certs, limits) if limits is not None else config_text(certs)
    with open(path, "w") as f:
        f.write(text)
    r = moat("edge", "--check", "--config", path)
    out = r.stdout + r.stderr
    lines = text.splitlines()
    if item is not None:
        first = lines.index("  certificates:") + 1
        location = f"{path}:{first + item + 1}:7: "  # 1-based line; the item's '{' is column 7
    else:
        key = limits.strip().split(":")[0]
        n = next(i for i, l in enumerate(lines) if l.strip().startswith(key + ":"))
        col = lines[n].index(":") + 3  # the value, 1-based
        location = f"{path}:{n + 1}:{col}: "
    check(r.returncode == 1 and location in out and want in out,
          f"--check refuses {what}, at {location.split('/')[-1].strip()}", out)


check_error(cert_line(ec) + cert_line(ec2), "are both ECDSA certificates for the same names",
            "two ECDSA certificates for the same names", item=1)
check_error(cert_line(ec, rsa_ocsp), "is for another certificate",
            "an OCSP response for another certificate", item=0)
check_error(cert_line(rsa) + cert_line(ec, ec_revoked), "says the certificate is revoked",
            "an OCSP response that says revoked", item=1)
garbage = os.path.join(d, "garbage.der")
with open(garbage, "wb") as f:
    f.write(b"not an OCSP response\n")
check_error(cert_line(ec, garbage), "is not a DER OCSP response", "a file that is not OCSP", item=0)
leaf_only = dict(ec, chain=ec["crt"])  # no issuer in the chain file
check_error(cert_line(leaf_only, ec_ocsp), "must carry the issuer",
            "an OCSP response without the issuer in the chain", item=0)
check_error(cert_line(ec, key=rsa["key"]), "does not match", "a key of another type", item=0)
check_error(good_certs, "h2_max_concurrent_streams must be between 1 and 10000",
            "h2_max_concurrent_streams: 0", limits="    h2_max_concurrent_streams: 0\n")
check_error(good_certs, "h2_initial_window_size must be between",
            "h2_initial_window_size: 1KiB", limits="    h2_initial_window_size: 1KiB\n")

# ---- the running edge -----------------------------------------------------------------------------
stderr_path = os.path.join(d, "edge.stderr")
stderr = open(stderr_path, "w")
edge = start([os.environ.get("MOAT_BIN", "moat"), "edge", "--config", config], stderr=stderr)
wait_for_port(https_port, process=edge)


def log():
    with open(stderr_path) as f:
        return f.read()


def s_client(*args, servername="app.example.test"):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{https_port}", "-CAfile", ca["crt"],
           "-servername", servername, *args]
    r = subprocess.run(cmd, input=b"Q\n", capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode("latin-1") + r.stderr.decode("latin-1")


def served(out):
    """Which key type the edge served: from the peer's public key size."""
    if "Server public key is 2048 bit" in out:
        return "RSA"
    if "Server public key is 256 bit" in out:
        return "ECDSA"
    return None


def verified(out):
    return "Verify return code: 0 (ok)" in out


for args, want, what in (
        (("-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384"), "RSA",
         "TLS 1.3, RSA-PSS signature algorithms only"),
        (("-tls1_3", "-sigalgs", "ECDSA+SHA256"), "ECDSA", "TLS 1.3, ECDSA signature algorithms"),
        (("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"), "RSA",
         "TLS 1.2, ECDHE-RSA-AES128-GCM-SHA256"),
        (("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"), "ECDSA",
         "TLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256"),
        (("-tls1_3",), "ECDSA", "TLS 1.3, a client that offers both (OpenSSL's order)")):
    rc, out = s_client(*args)
    check(rc == 0 and served(out) == want and verified(out),
          f"{what}: the {want} certificate, verified", out[-1500:])

rc, out = s_client("-tls1_3", servername="x.app.example.test", *("-sigalgs", "rsa_pss_rsae_sha256"))
check(served(out) == "RSA" and verified(out), "the pair also serves its wildcard name (RSA)",
      out[-1200:])
rc, out = s_client("-tls1_3", servername="other.example.test")
check(verified(out) and "CN = other.example.test" in out and "OCSP response: no response sent" not
      in out, "SNI other.example.test still gets its own certificate", out[:1200])


# ---- OCSP stapling ----------------------------------------------------------------------------------
def stapled_serial(out):
    m = re.search(r"Serial Number: ([0-9A-F]+)", out.split("OCSP response:")[1]) \
        if "OCSP response:" in out else None
    return m.group(1) if m else None


for version in ("-tls1_3", "-tls1_2"):
    for sigalgs, crt, kind in (("ECDSA+SHA256", ec["crt"], "ECDSA"),
                               ("rsa_pss_rsae_sha256:RSA+SHA256", rsa["crt"], "RSA")):
        rc, out = s_client(version, "-status", "-sigalgs", sigalgs)
        check("OCSP Response Status: successful" in out and "Cert Status: good" in out
              and stapled_serial(out) == serial(crt) and served(out) == kind,
              f"{version[1:]}: the {kind} certificate comes with its own OCSP response stapled",
              out[:2500])
rc, out = s_client("-tls1_3", "-status", servername="other.example.test")
check("OCSP response: no response sent" in out, "no OCSP file: nothing stapled", out[:1200])
check(re.search(r"OCSP \S+ec\.ocsp\.der for the ECDSA certificate, good, nextUpdate \d{4}-", log())
      is not None, "the start-up log names each OCSP response with its nextUpdate", log())

# ---- groups ------------------------------------------------------------------------------------------
check("TLS groups X25519MLKEM768:X25519:P-256:P-384" in log() or
      "TLS groups X25519:P-256:P-384 (this OpenSSL has no X25519MLKEM768" in log(),
      "the start-up log says which groups are in use", log())

# ---- HTTP/2 limits from the config -------------------------------------------------------------------
if shutil.which("nghttp"):
    r = subprocess.run(["nghttp", "-nv", f"https://127.0.0.1:{https_port}/"], capture_output=True,
                       text=True, timeout=20)
    check(f"[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):{H2_STREAMS}]" in r.stdout,
          f"nghttp sees SETTINGS_MAX_CONCURRENT_STREAMS = {H2_STREAMS} (h2_max_concurrent_streams)",
          r.stdout[:1500] + r.stderr[-500:])
else:
    print("skip nghttp is not installed: SETTINGS_MAX_CONCURRENT_STREAMS not checked")

# ---- reload: a broken OCSP file keeps the running config and its staple ------------------------------
saved = open(rsa_ocsp, "rb").read()
with open(rsa_ocsp, "wb") as f:
    f.write(b"broken")
os.kill(edge.pid, signal.SIGHUP)
rejected = wait_until(lambda: re.search(r"reload: \S+edge\.yaml:\d+:7: ocsp \S+ is not a DER OCSP "
                                        r"response.*the running config stays", log()))
check(rejected, "SIGHUP with a broken OCSP file: refused, the running config stays", log()[-1500:])
rc, out = s_client("-tls1_3", "-status", "-sigalgs", "rsa_pss_rsae_sha256")
check("Cert Status: good" in out and stapled_serial(out) == serial(rsa["crt"]),
      "after the refused reload, the old OCSP response is still stapled", out[:2000])
with open(rsa_ocsp, "wb") as f:
    f.write(saved)
os.kill(edge.pid, signal.SIGHUP)
applied = wait_until(lambda: "edge.yaml applied (" in log())
check(applied, "SIGHUP with the OCSP file restored: applied", log()[-1500:])

done()
