"""moat scan against weak loopback servers: TLS 1.0/1.1 (B), RSA key exchange offered, a
1024-bit RSA key (B), an expired certificate (T), a self-signed one (T), a wrong name (M)."""
import harness
import scan_targets as st
from harness import check, check_eq

d = harness.tempdir()
pki = harness.make_ca_and_leaf(d, dns=("scan.test",))
ca = pki["ca"]["crt"]
weak = ["-cipher", "DEFAULT@SECLEVEL=0", "-min_protocol", "TLSv1"]

port = st.s_server(pki, extra=weak, chain=ca)
rc, doc, err = st.scan(port, ca=ca)
check_eq(st.supported(doc), ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"], "tls10: protocols")
check_eq(doc["grade"]["grade"], "B", "tls10: grade B")
check("tls10_tls11" in [c["rule"] for c in doc["grade"]["caps"]], "tls10: cap reason tls10_tls11")
check({"protocol_tls10", "protocol_tls11"} <= st.finding_ids(doc), "tls10: findings")
check(len(st.suites(doc, "TLS 1.0")) > 0, "tls10: TLS 1.0 suites enumerated")

rsa = harness.make_ca_and_leaf(d, name="rsa", key="rsa2048", dns=("scan.test",), ca=pki["ca"])
port = st.s_server(rsa, extra=["-cipher", "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:AES256-GCM-SHA384"], chain=ca)
rc, doc, err = st.scan(port, ca=ca)
check("TLS_RSA_WITH_AES_128_CBC_SHA" in st.suites(doc, "TLS 1.2"), "rsa kx: suite found")
check("kx_rsa" in st.finding_ids(doc), "rsa kx: kx_rsa finding")
check_eq(doc["grade"]["grade"], "A", "rsa kx offered but not negotiated by a modern client: A")

r1024 = harness.make_ca_and_leaf(d, name="r1024", key="rsa1024", dns=("scan.test",), ca=pki["ca"])
port = st.s_server(r1024, extra=["-cipher", "DEFAULT@SECLEVEL=0"], chain=ca)
rc, doc, err = st.scan(port, ca=ca)
check_eq(doc["grade"]["grade"], "B", "rsa1024: grade B")
check("key_lt_2048" in [c["rule"] for c in doc["grade"]["caps"]], "rsa1024: cap key_lt_2048")
check("certificate_key_small" in st.finding_ids(doc), "rsa1024: finding")

expired = st.expired_leaf(d, pki["ca"])
port = st.s_server(expired, chain=ca)
rc, doc, err = st.scan(port, ca=ca)
check_eq(doc["grade"]["grade"], "T", "expired: grade T")
check_eq(doc["grade"]["grade_trust_ignored"], "A", "expired: A if trust ignored")
check("certificate_expired" in st.finding_ids(doc), "expired: finding")
rc, doc, err = st.scan(port, "--fail-under", "B", ca=ca)
check_eq(rc, 1, "expired: --fail-under B exits 1")

selfsigned = st.self_signed(d, "self")
port = st.s_server(selfsigned)
rc, doc, err = st.scan(port, ca=ca)
check_eq(doc["grade"]["grade"], "T", "self-signed: grade T")
check({"certificate_untrusted", "certificate_self_signed"} <= st.finding_ids(doc), "self-signed: findings")

other = harness.make_ca_and_leaf(d, name="other", dns=("other.test",), ips=(), ca=pki["ca"])
port = st.s_server(other, chain=ca)
rc, doc, err = st.scan(port, ca=ca)
check_eq(doc["grade"]["grade"], "M", "wrong name: grade M")
check("certificate_name_mismatch" in st.finding_ids(doc), "wrong name: finding")

harness.done()
