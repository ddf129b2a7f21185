"""moat scan against modern loopback servers: TLS 1.2/1.3 ECDSA with HSTS (nginx, A+), the same
without HSTS (s_server, A), TLS 1.3 only; text output; --fail-under; timing."""
import time

import harness
import scan_targets as st
from harness import check, check_eq

d = harness.tempdir()
pki = harness.make_ca_and_leaf(d, dns=("scan.test",))
ca = pki["ca"]["crt"]

# Modern, no HSTS (s_server -www cannot send headers): A.
port = st.s_server(pki, chain=ca)
t0 = time.monotonic()
rc, doc, err = st.scan(port, ca=ca)
elapsed = time.monotonic() - t0
check_eq(rc, 0, "modern: exit 0")
check(doc is not None and doc["schema"] == "moat.scan/v1", "modern: JSON schema moat.scan/v1", err)
check_eq(st.supported(doc), ["TLS 1.2", "TLS 1.3"], "modern: TLS 1.2 and 1.3 only")
check("TLS_AES_128_GCM_SHA256" in st.suites(doc, "TLS 1.3"), "modern: TLS 1.3 suites enumerated")
check("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" in st.suites(doc, "TLS 1.2"), "modern: ECDSA GCM suite")
check(not any("_RSA_" in s for s in st.suites(doc, "TLS 1.2")), "modern: no RSA-authenticated suite with an EC key")
check_eq(doc["grade"]["grade"], "A", "modern without HSTS: grade A")
check("hsts_missing" in st.finding_ids(doc), "modern: hsts_missing finding")
check(doc["certificate"]["trusted"] and doc["certificate"]["name_matches"], "modern: trusted, name matches")
check_eq(doc["certificate"]["chain"][0]["key"]["description"], "EC P-256", "modern: key in the cert table")
check("x25519" in [g["name"] for g in doc["groups"]], "modern: x25519 group")
check_eq(doc["secure_renegotiation"], True, "modern: secure renegotiation")
check_eq(doc["compression"], False, "modern: no compression")
check_eq(doc["fallback_scsv"], True, "modern: TLS_FALLBACK_SCSV honoured")
check(elapsed < 5, f"modern: scan took {elapsed:.2f} s (moat says {doc['seconds']:.3f} s)")
check(doc["seconds"] < 0.5, f"modern: scan under 0.5 s ({doc['seconds']:.3f} s)")

rc, _, _ = st.scan(port, "--fail-under", "A+", ca=ca)
check_eq(rc, 1, "--fail-under A+ on an A: exit 1")
rc, _, _ = st.scan(port, "--fail-under", "B", ca=ca)
check_eq(rc, 0, "--fail-under B on an A: exit 0")
r = harness.moat("scan", f"scan.test:{port}", "--connect", "127.0.0.1", "--ca", ca)
check(r.returncode == 0 and "Grade: A" in r.stdout and "\x1b[" not in r.stdout,
      "text report without colour when not a TTY", r.stdout + r.stderr)

# nginx with HSTS two years: A+.
nport = st.nginx_server(d, pki, hsts=True, chain=ca)
if nport:
    rc, doc, err = st.scan(nport, ca=ca)
    check_eq(rc, 0, "nginx HSTS: exit 0")
    check_eq(doc["http"]["hsts"]["max_age"], 63072000, "nginx HSTS: max-age parsed")
    check_eq(doc["grade"]["grade"], "A+", "nginx HSTS: grade A+")
    tls12 = next(p for p in doc["protocols"] if p["version"] == "TLS 1.2")
    check_eq(tls12["server_order"], True, "nginx: server order (ssl_prefer_server_ciphers)")
else:
    print("skip nginx: not installed")

# TLS 1.3 only.
port13 = st.s_server(pki, extra=["-tls1_3"], chain=ca)
rc, doc, err = st.scan(port13, ca=ca)
check_eq(st.supported(doc), ["TLS 1.3"], "TLS 1.3 only: protocols")
check_eq(doc["grade"]["grade"], "A", "TLS 1.3 only: grade A")
check_eq(doc["fallback_scsv"], None, "TLS 1.3 only: fallback SCSV not applicable")

harness.done()
