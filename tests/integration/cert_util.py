"""Helpers shared by the test_cert_*.py scripts (imported as cert_util; run alone it
checks itself): what openssl says about a certificate, and a
few certificate makers harness.make_ca_and_leaf does not cover (self-signed RSA/EC/Ed25519,
certificates with chosen dates)."""
import base64
import datetime
import hashlib
import os
import re
import subprocess

import harness


def sh(*args, input=None):
    r = subprocess.run(args, capture_output=True, input=input)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed: {r.stderr.decode(errors='replace')}")
    return r.stdout


def x509(path, *args):
    return sh("openssl", "x509", "-in", path, "-noout", *args).decode()


def openssl_dates(path):
    out = x509(path, "-dates")
    def iso(field):
        text = re.search(rf"^{field}=(.*)$", out, re.M).group(1).strip()
        dt = datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y GMT")
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ"), dt.replace(tzinfo=datetime.timezone.utc)
    return iso("notBefore"), iso("notAfter")


def openssl_view(path):
    """Every value moat computes, as openssl prints it, normalized to moat's spelling."""
    v = {}
    fp = x509(path, "-fingerprint", "-sha256").strip().split("=", 1)[1]
    v["fingerprint_sha256"] = fp.replace(":", "").lower()
    v["serial"] = x509(path, "-serial").strip().split("=", 1)[1].lower()
    v["subject_dn"] = x509(path, "-subject", "-nameopt", "RFC2253").strip().split("=", 1)[1]
    v["issuer_dn"] = x509(path, "-issuer", "-nameopt", "RFC2253").strip().split("=", 1)[1]
    # CNs: -nameopt multiline prints one attribute per line.
    def cns(which):
        out = x509(path, f"-{which}", "-nameopt", "multiline,utf8,-esc_msb")
        return re.findall(r"^\s+commonName\s+= (.*)$", out, re.M)
    v["subject_cns"] = cns("subject")
    v["issuer_cns"] = cns("issuer")
    san = sh("openssl", "x509", "-in", path, "-noout", "-ext", "subjectAltName").decode()
    entries = [e.strip() for e in "".join(san.splitlines()[1:]).split(",") if e.strip()]
    v["dns"] = [e[4:] for e in entries if e.startswith("DNS:")]
    import ipaddress
    v["ip"] = [str(ipaddress.ip_address(e[len("IP Address:"):])) for e in entries if e.startswith("IP Address:")]
    v["ocsp"] = [l.strip() for l in x509(path, "-ocsp_uri").splitlines() if l.strip()]
    text = x509(path, "-text")
    v["ca_issuers"] = re.findall(r"CA Issuers - URI:(\S+)", text)
    v["signature_openssl"] = re.search(r"Signature Algorithm: (\S+)", text).group(1)
    m = re.search(r"Public-Key: \((\d+) bit\)", text)
    v["key_bits"] = int(m.group(1)) if m else None
    m = re.search(r"Exponent: (\d+)", text)
    v["exponent"] = int(m.group(1)) if m else None
    m = re.search(r"NIST CURVE: (\S+)", text)
    v["curve"] = m.group(1) if m else None
    m = re.search(r"Public Key Algorithm: (\S+)", text)
    v["key_algorithm"] = m.group(1)
    pub = sh("openssl", "x509", "-in", path, "-pubkey", "-noout")
    der = sh("openssl", "pkey", "-pubin", "-outform", "der", input=pub)
    digest = sh("openssl", "dgst", "-sha256", "-binary", input=der)
    v["pin"] = base64.b64encode(digest).decode()
    # Cross-check the pipeline with Python's own hash of the same DER.
    assert v["pin"] == base64.b64encode(hashlib.sha256(der).digest()).decode()
    (v["not_before"], _), (v["not_after"], v["not_after_dt"]) = openssl_dates(path)
    return v


def expected_key_description(v):
    alg = v["key_algorithm"]
    if alg == "rsaEncryption":
        return f"RSA {v['key_bits']} bits (e {v['exponent']})"
    if alg == "id-ecPublicKey":
        return f"EC {v['curve']}"
    if alg == "ED25519":
        return "Ed25519"
    raise ValueError(alg)


# OpenSSL long names to the JCA names vendor pages use.
JCA_NAMES = {
    "sha256WithRSAEncryption": "SHA256withRSA",
    "sha384WithRSAEncryption": "SHA384withRSA",
    "ecdsa-with-SHA256": "SHA256withECDSA",
    "ecdsa-with-SHA384": "SHA384withECDSA",
    "ED25519": "Ed25519",
}


def days_left(not_after_dt, now):
    return int((not_after_dt - now).total_seconds() // 86400)


def self_signed(directory, name, key_args, digest="-sha256", cn=None, san="DNS:selfsigned.test"):
    key = os.path.join(directory, f"{name}.key")
    crt = os.path.join(directory, f"{name}.crt")
    args = ["openssl", "req", "-x509", *key_args, "-nodes", "-keyout", key, "-out", crt,
            "-days", "90", "-subj", f"/CN={cn or name + '.test'}/O=Moat Test, Inc./C=FR",
            "-addext", f"subjectAltName={san}",
            "-addext", "authorityInfoAccess=caIssuers;URI:http://aia.example.test/i.crt,OCSP;URI:http://ocsp.example.test/x"]
    if digest:
        args.insert(3, digest)
    sh(*args)
    return {"key": key, "crt": crt}


def dated_leaf(directory, ca, name, startdate, enddate, dns=("localhost",)):
    """A leaf signed by `ca` with explicit dates (YYYYMMDDHHMMSSZ), via `openssl ca`."""
    work = os.path.join(directory, f"{name}-ca")
    os.makedirs(work, exist_ok=True)
    open(os.path.join(work, "index.txt"), "w").close()
    with open(os.path.join(work, "serial"), "w") as f:
        f.write("1000\n")
    cnf = os.path.join(work, "ca.cnf")
    with open(cnf, "w") as f:
        f.write(f"""[ca]
default_ca = d
[d]
database = {work}/index.txt
new_certs_dir = {work}
serial = {work}/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
""")
    key = os.path.join(directory, f"{name}.key")
    csr = os.path.join(directory, f"{name}.csr")
    crt = os.path.join(directory, f"{name}.crt")
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{d}" for d in dns) + "\n")
    sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    sh("openssl", "req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={dns[0]}")
    sh("openssl", "ca", "-batch", "-config", cnf, "-cert", ca["crt"], "-keyfile", ca["key"],
       "-in", csr, "-out", crt, "-startdate", startdate, "-enddate", enddate, "-extfile", ext,
       "-notext")
    return {"key": key, "crt": crt}


def write_policy(path, hosts, pins, name="testpolicy", ports=(443,)):
    host_list = ", ".join(f'"{h}"' for h in hosts)
    pin_list = ", ".join(f'"{p}"' for p in pins)
    port_list = ", ".join(str(p) for p in ports)
    with open(path, "w") as f:
        f.write(f"""moat: policy/v1
metadata: {{publisher: Moat tests, name: {name}, title: Test policy, classification: public, revision: 1}}
flows:
  - {{id: platform, name: Platform, description: Client to platform, customer_network: true}}
services:
  - id: web
    name: Web
    flow: platform
    hosts: [{host_list}]
    ports: [{port_list}]
    purpose: Tests
""" + (f"    pins: [{pin_list}]\n" if pins else ""))
    return path


if __name__ == "__main__":
    # Run as a script (CTest: integration.cert_util): checks that the reference values this module
    # reads from openssl agree with Python's own computations, so the other tests' oracle is sound.
    import ssl
    d = harness.tempdir()
    for key in ("ec", "rsa2048"):
        paths = harness.make_ca_and_leaf(d, name=f"u-{key}", key=key, ca=None)
        view = openssl_view(paths["crt"])
        der = ssl.PEM_cert_to_DER_cert(open(paths["crt"]).read())
        harness.check_eq(view["fingerprint_sha256"], hashlib.sha256(der).hexdigest(),
                         f"{key}: openssl fingerprint equals sha256 of the DER")
        harness.check_eq(view["dns"], ["localhost"], f"{key}: SAN DNS read")
        harness.check_eq(view["ip"], ["127.0.0.1"], f"{key}: SAN IP read")
        harness.check_eq(view["ocsp"], ["http://ocsp.example.test"], f"{key}: OCSP read")
        harness.check_eq(view["ca_issuers"], ["http://ca.example.test/ca.crt"], f"{key}: AIA read")
        harness.check(len(base64.b64decode(view["pin"])) == 32, f"{key}: pin is 32 bytes of base64")
    harness.done()
