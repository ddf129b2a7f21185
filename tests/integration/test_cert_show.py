"""moat cert show / pin: every value compared with what openssl prints for the same certificate,
for files (PEM, DER, chains) and live servers (openssl s_server on 127.0.0.1)."""
import datetime
import json
import os
import subprocess

import harness
from harness import check, check_eq, moat
import cert_util as cu


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def show_json(*args):
    before = now_utc()
    r = moat("cert", "show", *args, "--format", "json")
    after = now_utc()
    if not check_eq(r.returncode, 0, f"show {' '.join(args)} exits 0"):
        print(r.stderr)
        return None, before, after
    return json.loads(r.stdout), before, after


def compare(cert, path, label, before, after):
    """One certificate of moat's JSON against openssl's view of `path`."""
    v = cu.openssl_view(path)
    check_eq(cert["fingerprint_sha256"], v["fingerprint_sha256"], f"{label}: fingerprint")
    check_eq(cert["pin_sha256"], v["pin"], f"{label}: SPKI pin")
    check_eq(cert["serial"], v["serial"], f"{label}: serial")
    check_eq(cert["subject"]["dn"], v["subject_dn"], f"{label}: subject DN")
    check_eq(cert["issuer"]["dn"], v["issuer_dn"], f"{label}: issuer DN")
    check_eq(cert["common_names"], v["subject_cns"], f"{label}: common names")
    check_eq(cert["issuer"]["cn"], v["issuer_cns"][-1], f"{label}: issuer CN")
    expected_domain = v["subject_cns"][-1] if v["subject_cns"] else (v["dns"] or [None])[0]
    check_eq(cert["domain"], expected_domain, f"{label}: domain")
    check_eq(cert["alternative_names"]["dns"], v["dns"], f"{label}: SAN DNS")
    check_eq(cert["alternative_names"]["ip"], v["ip"], f"{label}: SAN IP")
    check_eq(cert["aia"]["ocsp"], v["ocsp"], f"{label}: OCSP URL")
    check_eq(cert["aia"]["ca_issuers"], v["ca_issuers"], f"{label}: AIA issuer URL")
    check_eq(cert["signature_algorithm"]["openssl"], v["signature_openssl"],
             f"{label}: signature algorithm (OpenSSL name)")
    check_eq(cert["signature_algorithm"]["name"], cu.JCA_NAMES[v["signature_openssl"]],
             f"{label}: signature algorithm (page name)")
    check_eq(cert["key"]["description"], cu.expected_key_description(v), f"{label}: key")
    if v["key_bits"]:
        check_eq(cert["key"]["bits"], v["key_bits"], f"{label}: key bits")
    check_eq(cert["key"]["exponent"], v["exponent"], f"{label}: RSA exponent")
    check_eq(cert["validity"]["not_before"], v["not_before"], f"{label}: not before")
    check_eq(cert["validity"]["not_after"], v["not_after"], f"{label}: not after")
    days = cert["validity"]["days_left"]
    check(days in (cu.days_left(v["not_after_dt"], before), cu.days_left(v["not_after_dt"], after)),
          f"{label}: days left", f"moat: {days}, python: {cu.days_left(v['not_after_dt'], before)}")
    check_eq(cert["validity"]["status"], "valid", f"{label}: status")
    return v


def table_rows(markdown):
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and line != "| Key | Value |":
            key, value = [c.strip() for c in line.strip().strip("|").split(" | ", 1)]
            rows[key] = value
    return rows


def check_markdown(path, label):
    """The page's two-column table, each row against openssl."""
    r = moat("cert", "show", path, "--format", "markdown")
    check_eq(r.returncode, 0, f"{label}: markdown exits 0")
    check(r.stdout.startswith("| Key | Value |\n|-----|-------|\n"), f"{label}: markdown header as on the page")
    rows = table_rows(r.stdout)
    v = cu.openssl_view(path)
    def words(items):  # the page's spelling: space-separated; moat writes "(none)" for nothing
        return " ".join(items) or "(none)"
    check_eq(rows.get("Fingerprint"), "SHA256: " + v["fingerprint_sha256"], f"{label}: markdown fingerprint")
    check_eq(rows.get("Pin SHA256"), v["pin"], f"{label}: markdown pin")
    check_eq(rows.get("Serial Number"), v["serial"], f"{label}: markdown serial")
    check_eq(rows.get("Common names"), words(v["subject_cns"]), f"{label}: markdown common names")
    check_eq(rows.get("Alternative names"), words(v["dns"] + v["ip"]), f"{label}: markdown alternative names")
    check_eq(rows.get("Key"), cu.expected_key_description(v), f"{label}: markdown key")
    check_eq(rows.get("Issuer"), v["issuer_cns"][-1], f"{label}: markdown issuer")
    check_eq(rows.get("AIA"), words(v["ca_issuers"]), f"{label}: markdown AIA")
    check_eq(rows.get("OCSP"), words(v["ocsp"]), f"{label}: markdown OCSP")
    check_eq(rows.get("Signature algorithm"), cu.JCA_NAMES[v["signature_openssl"]], f"{label}: markdown signature")
    check_eq(rows.get("Valid until"), v["not_after"], f"{label}: markdown valid until")
    # Text: the same rows, aligned.
    t = moat("cert", "show", path)
    check_eq(t.returncode, 0, f"{label}: text exits 0")
    check(f"  Pin SHA256           {v['pin']}\n" in t.stdout, f"{label}: text pin row", t.stdout)
    check(f"  Fingerprint          SHA256: {v['fingerprint_sha256']}\n" in t.stdout, f"{label}: text fingerprint row", t.stdout)


def main():
    d = harness.tempdir()
    ec = harness.make_ca_and_leaf(d, name="ec", key="ec", dns=("localhost", "*.example.test"))
    ca = ec["ca"]
    certs = {
        "leaf EC P-256": ec["crt"],
        "leaf RSA 2048": harness.make_ca_and_leaf(d, name="rsa", key="rsa2048", ca=ca)["crt"],
        "leaf RSA 4096": harness.make_ca_and_leaf(d, name="rsa4k", key="rsa4096", ca=ca,
                                                 ips=("127.0.0.1", "::1"))["crt"],
        "self-signed RSA 2048 SHA256withRSA": cu.self_signed(d, "ssrsa", ["-newkey", "rsa:2048"])["crt"],
        "self-signed P-384 SHA384withECDSA": cu.self_signed(
            d, "ssp384", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"], digest="-sha384")["crt"],
        "self-signed Ed25519": cu.self_signed(d, "ssed", ["-newkey", "ed25519"], digest=None,
                                              san="DNS:a.example.test,DNS:b.example.test,IP:192.0.2.7")["crt"],
        "CA": ca["crt"],
    }
    for label, path in certs.items():
        doc, before, after = show_json(path)
        if doc is None:
            continue
        check_eq(doc["schema"], "moat.cert/v1", f"{label}: schema")
        check_eq(doc["source"], {"kind": "file", "path": path}, f"{label}: source")
        check_eq(doc["chain_length"], 1, f"{label}: chain length")
        compare(doc["certificates"][0], path, label, before, after)
        check_markdown(path, label)

    # DER gives the same values as PEM.
    der = os.path.join(d, "ec.der")
    cu.sh("openssl", "x509", "-in", ec["crt"], "-outform", "der", "-out", der)
    doc_der, _, _ = show_json(der)
    doc_pem, _, _ = show_json(ec["crt"])
    for key in ("fingerprint_sha256", "pin_sha256", "serial", "subject", "alternative_names", "key"):
        check_eq(doc_der["certificates"][0][key], doc_pem["certificates"][0][key], f"DER equals PEM: {key}")

    # A chain file: --chain reports each certificate; without it only the leaf.
    doc, before, after = show_json(ec["chain"], "--chain")
    check_eq(doc["chain_length"], 2, "chain: length 2")
    check_eq(len(doc["certificates"]), 2, "chain: two certificates reported")
    compare(doc["certificates"][0], ec["crt"], "chain[0]", before, after)
    compare(doc["certificates"][1], ca["crt"], "chain[1]", before, after)
    check_eq(doc["certificates"][1]["is_ca"], True, "chain[1] is a CA")
    check_eq(doc["certificates"][1]["self_signed"], True, "chain[1] is self-signed")
    doc, _, _ = show_json(ec["chain"])
    check_eq(len(doc["certificates"]), 1, "chain without --chain: leaf only")
    md = moat("cert", "show", ec["chain"], "--chain", "--format", "markdown").stdout
    check_eq(md.count("| Key | Value |"), 2, "markdown --chain: one table per certificate")
    check("### Certificate 2 (chain): CN=moat test CA" in md, "markdown --chain: headings", md)

    # pin: the leaf's pin alone; --chain: one line per certificate with the subject.
    r = moat("cert", "pin", ec["chain"])
    check_eq(r.stdout, cu.openssl_view(ec["crt"])["pin"] + "\n", "pin prints the leaf pin alone")
    r = moat("cert", "pin", ec["chain"], "--chain")
    check_eq(r.stdout.splitlines(), [
        cu.openssl_view(ec["crt"])["pin"] + " CN=localhost",
        cu.openssl_view(ca["crt"])["pin"] + " CN=moat test CA",
    ], "pin --chain: pin and subject per line")

    # Live: openssl s_server with the leaf and the CA as chain, TLS 1.3 and TLS 1.2.
    for extra, proto in (((), "TLSv1.3"), (("-tls1_2",), "TLSv1.2")):
        _, port = harness.openssl_server(ec["crt"], ec["key"], chain=ca["crt"], extra=extra)
        doc, before, after = show_json(f"localhost:{port}", "--connect", "127.0.0.1", "--sni", "localhost",
                                       "--chain", "--timeout", "5")
        if doc is None:
            continue
        src = doc["source"]
        check_eq((src["kind"], src["host"], src["port"], src["sni"], src["peer"], src["protocol"]),
                 ("tls", "localhost", port, "localhost", f"127.0.0.1:{port}", proto), f"live {proto}: source")
        check(bool(src["cipher"]), f"live {proto}: cipher reported")
        check_eq(doc["chain_length"], 2, f"live {proto}: chain as sent (leaf + CA)")
        compare(doc["certificates"][0], ec["crt"], f"live {proto} leaf", before, after)
        compare(doc["certificates"][1], ca["crt"], f"live {proto} chain[1]", before, after)
        r = moat("cert", "pin", f"127.0.0.1:{port}")
        check_eq(r.stdout, cu.openssl_view(ec["crt"])["pin"] + "\n", f"live {proto}: pin over 127.0.0.1 (no SNI)")
        # A wrong SNI still shows what the server presented.
        r = moat("cert", "show", f"127.0.0.1:{port}", "--sni", "wrong.example.test")
        check_eq(r.returncode, 0, f"live {proto}: wrong SNI still shows the certificate")
        check("SNI wrong.example.test" in r.stdout and "Domain               localhost" in r.stdout,
              f"live {proto}: wrong SNI output", r.stdout)

    # --help on every level.
    for args in (("cert", "--help"), ("cert", "show", "--help"), ("cert", "pin", "--help"),
                 ("cert", "verify", "--help")):
        r = moat(*args)
        check(r.returncode == 0 and "--" in r.stdout, f"moat {' '.join(args)} works")
    harness.done()


main()
