"""moat scan's SSL 2.0, Heartbleed and CCS injection checks. No server here can have these flaws
(OpenSSL 3 has no SSL 2.0 and no heartbeat; CCS injection was fixed in 1.0.1h), so the positive
cases are Python fakes (scan_targets.FakeTlsServer) that answer exactly what a flawed server
answers; the negative cases are real servers (openssl s_server, nginx) and fakes that answer
like patched ones."""
import time

import harness
import scan_targets as st
from harness import check, check_eq

d = harness.tempdir()
pki = harness.make_ca_and_leaf(d, dns=("scan.test",))
ca = pki["ca"]["crt"]
der = st.der_certificate(d)


def protocol(doc, version):
    return next(p for p in doc["protocols"] if p["version"] == version)


def caps(doc):
    return {c["rule"] for c in doc["grade"]["caps"]}


# Real servers: nothing to find, and SSL 2.0 listed first, not supported.
targets = [("s_server", st.s_server(pki, extra=["-cipher", "DEFAULT@SECLEVEL=0", "-min_protocol", "TLSv1"], chain=ca))]
nport = st.nginx_server(d, pki, hsts=True, chain=ca)
if nport:
    targets.append(("nginx", nport))
for name, port in targets:
    rc, doc, err = st.scan(port, ca=ca)
    check(doc is not None and doc["error"] is None, f"{name}: scanned", err)
    check_eq(doc["protocols"][0]["version"], "SSL 2.0", f"{name}: SSL 2.0 listed first")
    check_eq(protocol(doc, "SSL 2.0")["supported"], False, f"{name}: SSL 2.0 not supported")
    check(protocol(doc, "SSL 2.0")["detail"], f"{name}: SSL 2.0 refusal explained ({protocol(doc, 'SSL 2.0')['detail']})")
    check_eq(doc["heartbeat"], False, f"{name}: no heartbeat extension")
    check_eq(doc["heartbleed"]["vulnerable"], False, f"{name}: not vulnerable to Heartbleed")
    check_eq(doc["ccs_injection"]["vulnerable"], False,
             f"{name}: not vulnerable to CCS injection ({doc['ccs_injection']['detail']})")
    check(not {"protocol_ssl20", "heartbleed", "ccs_injection"} & st.finding_ids(doc), f"{name}: no such findings")
    check(doc["seconds"] < 0.5, f"{name}: scan under 0.5 s ({doc['seconds']:.3f} s)")

# A patched fake: TLS 1.2 only, TLS alert to SSL 2.0, unexpected_message to an early CCS.
fake = st.FakeTlsServer(der)
rc, doc, err = st.scan(fake.port)
check(doc is not None and doc["error"] is None, "patched fake: scanned", err)
check_eq(st.supported(doc), ["TLS 1.2"], "patched fake: TLS 1.2 only")
check_eq(protocol(doc, "TLS 1.2")["server_order"], True, "patched fake: server order")
check_eq(st.suites(doc, "TLS 1.2"), ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"],
         "patched fake: suites in the server's order")
check_eq(protocol(doc, "SSL 2.0")["supported"], False, "patched fake: a TLS alert is not SSL 2.0 support")
check("alert protocol_version" in protocol(doc, "SSL 2.0")["detail"], "patched fake: SSL 2.0 detail names the alert",
      protocol(doc, "SSL 2.0")["detail"])
check_eq(doc["ccs_injection"]["vulnerable"], False, "patched fake: not vulnerable to CCS injection")
check("unexpected_message" in doc["ccs_injection"]["detail"], "patched fake: CCS detail names the alert",
      doc["ccs_injection"]["detail"])
check_eq(doc["heartbeat"], False, "patched fake: no heartbeat")
check(fake.seen["sslv2_hellos"] == 1 and fake.seen["ccs"] == 1, f"patched fake: one SSLv2 hello, one CCS ({fake.seen})")

# SSL 2.0 answered with a canned SERVER-HELLO: supported, its cipher kinds, F.
fake = st.FakeTlsServer(der, "sslv2")
rc, doc, err = st.scan(fake.port)
check_eq(protocol(doc, "SSL 2.0")["supported"], True, "sslv2 fake: SSL 2.0 supported")
check_eq([s["name"] for s in protocol(doc, "SSL 2.0")["cipher_suites"]],
         ["SSL_CK_DES_192_EDE3_CBC_WITH_MD5", "SSL_CK_RC4_128_WITH_MD5", "SSL_CK_RC4_128_EXPORT40_WITH_MD5"],
         "sslv2 fake: cipher kinds from the SERVER-HELLO")
check_eq(doc["grade"]["grade"], "F", "sslv2 fake: grade F")
check("ssl2" in caps(doc), "sslv2 fake: cap ssl2")
check("protocol_ssl20" in st.finding_ids(doc), "sslv2 fake: finding protocol_ssl20")
r = harness.moat("scan", f"127.0.0.1:{fake.port}")
check("SSL_CK_DES_192_EDE3_CBC_WITH_MD5" in r.stdout and "SSL 2.0" in r.stdout, "sslv2 fake: text report lists the kinds",
      r.stdout)

# Heartbleed: the over-read is echoed.
fake = st.FakeTlsServer(der, "heartbleed")
rc, doc, err = st.scan(fake.port)
check_eq(doc["heartbeat"], True, "heartbleed fake: heartbeat extension")
check_eq(doc["heartbleed"]["vulnerable"], True, f"heartbleed fake: vulnerable ({doc['heartbleed']['detail']})")
check({"heartbeat_extension", "heartbleed"} <= st.finding_ids(doc), "heartbleed fake: findings")
check_eq(doc["grade"]["grade"], "F", "heartbleed fake: grade F")
check("heartbleed" in caps(doc), "heartbleed fake: cap heartbleed")
check_eq(fake.seen["heartbeats"], 1, "heartbleed fake: one heartbeat request")

# Heartbeat echoed, bad request discarded (a patched OpenSSL 1.0.1g+): not vulnerable, after the
# quiet wait.
fake = st.FakeTlsServer(der, "heartbeat")
t0 = time.monotonic()
rc, doc, err = st.scan(fake.port)
check_eq(doc["heartbeat"], True, "heartbeat fake: heartbeat extension")
check_eq(doc["heartbleed"]["vulnerable"], False, f"heartbeat fake: not vulnerable ({doc['heartbleed']['detail']})")
check("heartbeat_extension" in st.finding_ids(doc) and "heartbleed" not in st.finding_ids(doc), "heartbeat fake: findings")
check(time.monotonic() - t0 < 5, "heartbeat fake: bounded wait")

# CCS injection: the early CCS taken, the next one fails to decrypt.
fake = st.FakeTlsServer(der, "ccs")
rc, doc, err = st.scan(fake.port)
check_eq(doc["ccs_injection"]["vulnerable"], True, f"ccs fake: vulnerable ({doc['ccs_injection']['detail']})")
check("decryption_failed" in doc["ccs_injection"]["detail"], "ccs fake: detail names decryption_failed")
check("ccs_injection" in st.finding_ids(doc), "ccs fake: finding")
check_eq(doc["grade"]["grade"], "F", "ccs fake: grade F")
check_eq(fake.seen["ccs"], 2, "ccs fake: two ChangeCipherSpec records")

harness.done()
