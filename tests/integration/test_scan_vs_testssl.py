"""moat scan cross-checked against testssl.sh (3.0.8, Debian, system OpenSSL 3) on loopback
servers with known configurations. Compared, per target:
  - the offered protocols and, per protocol, the accepted cipher suites (IANA code points), from
    testssl.sh -p -E; on the server-order target also the order (-P, "cipherorder_*");
  - the weak-suite classes, each derived from that tool's own output: moat's finding ids
    (cipher_null, cipher_anonymous, cipher_export, cipher_rc4, cipher_des, cipher_3des, kx_rsa,
    kx_static_dh) against testssl.sh's per-suite columns of -E (encryption "None", "RC4",
    "DES", "3DES"; key exchange "RSA", "DH/RSA", ...; "_anon_" / "EXPORT" in its IANA name, all
    from testssl.sh's own cipher table), and the smallest DH group (moat's dh_bits, testssl.sh's
    "DH <bits>" column);
  - on the targets marked `vuln` (weak-rsa, tls13-only, nginx-hsts, fake-flawed: one of each
    protocol profile, and the only target where the flaws are present): the vulnerability
    findings of testssl.sh -H -I -R -C -Z: heartbleed, CCS, secure_renego, CRIME_TLS,
    fallback_SCSV against moat's heartbleed, ccs_injection, secure_renegotiation, compression,
    fallback_scsv (secure_client_renego is printed but not compared: moat does not test
    client-initiated renegotiation). The other targets add nothing these four do not cover (the
    same OpenSSL 3 s_server code answers), and -H -I -R -C -Z costs ~25 s a target;
  - on the targets marked `hsts` (weak-rsa and tls13-only: s_server -www, no header;
    nginx-hsts: max-age=63072000): HSTS presence and max-age (testssl.sh -h: "HSTS",
    "HSTS_time"; moat: http.hsts.max_age).
Every difference fails except the documented ones asserted here (`moat_only` suites,
`differences` findings), which docs/scan.md "Differences from testssl.sh" explains:
  - tls13-only, heartbleed and ccs_injection: moat "n/a" (vulnerable null, "not applicable: no
    TLS 1.2 or older"), testssl.sh "not vulnerable". Neither flags the server; both attacks need
    a TLS <= 1.2 handshake the server refuses, and testssl.sh's CCS hello carries no version
    then (its has_server_protocol finds none), so its "not vulnerable" is not a test result;
  - nginx-hsts (TLS 1.2 + 1.3), fallback_scsv: moat "supported", testssl.sh "n/a" ("no
    protocol below TLS 1.2 offered"): testssl.sh 3.0.8's run_tls_fallback_scsv never starts
    from TLS 1.3, moat offers TLS 1.2 + the SCSV to a TLS 1.3 server (RFC 7507, RFC 8446 D.5)
    and gets inappropriate_fallback;
  - fake-flawed, secure_renegotiation: moat "NOT supported", testssl.sh "not tested": it reads
    "Secure Renegotiation IS NOT supported" from `openssl s_client`, which with OpenSSL 3 aborts
    the handshake ("unsafe legacy renegotiation disabled") before printing success, so it
    reports "OpenSSL handshake didn't succeed" (WARN) on exactly the servers it should flag.

Targets 1-5 are OpenSSL 3 s_server (no SSL 3.0, 3DES, RC4, SEED, export suites), 6 is nginx
with HSTS, 7 is scan_targets.FakeTlsServer with Heartbleed, CCS injection, DEFLATE and no
renegotiation_info (the only way to get positive vulnerability findings on loopback).

testssl.sh only ever touches 127.0.0.1: the URI names scan.test (so it sends the same SNI as
moat) but `--ip 127.0.0.1 -n none` pins the address and forbids any DNS lookup; `--phone-out`
is not given (no CRL/OCSP fetch). Skipped (exit 0) when testssl.sh is not installed.

Time: the testssl.sh runs (mostly sleeps and process spawning, ~0.5 core each) go three at a
time, each after moat's scan of the same target (s_server answers one connection at a time);
the testssl.sh wall times printed are therefore under that concurrency. Comparisons and checks
run afterwards, in target order.
"""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import sys
import time

import harness
import scan_targets as st
from harness import check, check_eq

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
if not TESTSSL:
    print("skip: testssl.sh not installed")
    sys.exit(0)
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

SCRIPT_BUDGET = 240  # seconds for the whole script (the brief's bound; CTest allows 300)
PARALLEL = 3  # testssl.sh runs at once


def _overrun(signum, frame):
    raise SystemExit(f"FAIL over {SCRIPT_BUDGET + 30} s: stopped (atexit ends the servers)")


signal.signal(signal.SIGALRM, _overrun)
signal.alarm(SCRIPT_BUDGET + 30)  # hard stop should a child hang past its own timeout
t_script = time.monotonic()

# testssl.sh JSON ids for protocols -> moat's version names.
PROTOCOL_IDS = {"SSLv2": "SSL 2.0", "SSLv3": "SSL 3.0", "TLS1": "TLS 1.0", "TLS1_1": "TLS 1.1",
                "TLS1_2": "TLS 1.2", "TLS1_3": "TLS 1.3"}
# testssl.sh cipher finding ids are "cipher-<proto>_x<hex>"; <proto> as below.
CIPHER_PROTOS = {"ssl2": "SSL 2.0", "ssl3": "SSL 3.0", "tls1": "TLS 1.0", "tls1_1": "TLS 1.1",
                 "tls1_2": "TLS 1.2", "tls1_3": "TLS 1.3"}
VULN_FLAGS = ("-H", "-I", "-R", "-C", "-Z")
# moat's weak-suite finding ids -> the class name used in the comparison.
WEAK_CLASSES = {"cipher_null": "NULL", "cipher_anonymous": "anonymous", "cipher_export": "EXPORT",
                "cipher_rc4": "RC4", "cipher_des": "DES", "cipher_3des": "3DES", "kx_rsa": "RSA kx",
                "kx_static_dh": "static DH"}

d = harness.tempdir()


def run_testssl(port, name, extra):
    """testssl.sh -p -E [extra] (protocols, then every suite per protocol, via its own sockets for
    suites the local OpenSSL lacks) against 127.0.0.1:port. --fast is not used: it makes -E/-e
    use OpenSSL only, which would hide the legacy suites OpenSSL 3 cannot offer. Returns
    (rc, findings list or None, seconds, output tail)."""
    out = os.path.join(d, f"testssl-{name}.json")
    args = ["timeout", "170", TESTSSL, "--quiet", "--warnings", "off", "--color", "0",
            "-n", "none", "--ip", "127.0.0.1", "--openssl", OPENSSL, "--connect-timeout", "5",
            "--openssl-timeout", "5", "-p", "-E", *extra, "--jsonfile", out, f"scan.test:{port}"]
    t0 = time.monotonic()
    r = harness.run(args, timeout=180)
    seconds = time.monotonic() - t0
    findings = json.load(open(out)) if os.path.exists(out) else None
    return r.returncode, findings, seconds, r.stdout[-3000:] + r.stderr[-2000:]


def cipher_line(text):
    """A -E finding, "TLS 1.2   xc030   ECDHE-RSA-AES256-GCM-SHA384   ECDH 256   AESGCM   256
    TLS_ECDHE_...": (kx, encryption, IANA name), testssl.sh's own columns."""
    toks = text.split()
    at = next(i for i, t in enumerate(toks) if re.fullmatch(r"x[0-9a-f]+", t))
    return " ".join(toks[at + 2:-3]), toks[-3], toks[-1]


def testssl_weak(findings):
    """(weak-suite classes, smallest DH group or None) from testssl.sh's -E columns."""
    classes, dh = set(), None
    for f in findings:
        if not (f["id"].startswith("cipher-") and "_x" in f["id"]):
            continue
        kx, enc, iana = cipher_line(f["finding"])
        export = "EXPORT" in iana
        if enc == "None":
            classes.add("NULL")
        if "_anon_" in iana:
            classes.add("anonymous")
        if export:
            classes.add("EXPORT")
        if enc == "RC4":
            classes.add("RC4")
        if enc == "DES" and not export:
            classes.add("DES")
        if enc == "3DES":
            classes.add("3DES")
        if re.fullmatch(r"RSA(\(\d+\))?", kx):
            classes.add("RSA kx")
        if re.fullmatch(r"E?CDH/\S+|DH/\S+", kx):
            classes.add("static DH")
        m = re.fullmatch(r"DH (\d+)", kx)
        if m:
            dh = min(dh or 1 << 30, int(m.group(1)))
    return classes, dh


def testssl_parse(findings):
    """(protocols set, {version: set of int code points}, {id: finding text})."""
    protocols, ciphers, by_id = set(), {}, {}
    for f in findings:
        fid, text = f["id"], f["finding"]
        by_id[fid] = text
        if fid in PROTOCOL_IDS and text.startswith("offered"):
            protocols.add(PROTOCOL_IDS[fid])
        elif fid.startswith("cipher-") and "_x" in fid:
            proto, hexcode = fid[len("cipher-"):].rsplit("_x", 1)
            if proto in CIPHER_PROTOS:
                ciphers.setdefault(CIPHER_PROTOS[proto], set()).add(int(hexcode, 16))
    return protocols, ciphers, by_id


def testssl_vuln(by_id):
    """testssl.sh -H -I -R -C -Z findings, normalised to moat's vocabulary."""
    def verdict(text):
        if text is None:
            return "missing"
        if re.match(r"(likely )?VULNERABLE", text):
            return "VULNERABLE"
        if text.startswith("not vulnerable") or text.startswith("probably not vulnerable"):
            return "not vulnerable"
        if text == "TLS 1.3 only server":
            return "n/a"
        return f"not tested ({text})"

    def protection(text):
        if text is None:
            return "missing"
        if text == "supported":
            return "supported"
        if "NOT supported" in text or text == "VULNERABLE":
            return "NOT supported"
        if text.startswith("no protocol below") or text in ("only TLS 1.3 supported", "TLS 1.3 only server"):
            return "n/a"
        return f"not tested ({text})"

    return {"heartbleed": verdict(by_id.get("heartbleed")),
            "ccs_injection": verdict(by_id.get("CCS")),
            "compression": verdict(by_id.get("CRIME_TLS")),
            "secure_renegotiation": protection(by_id.get("secure_renego")),
            "fallback_scsv": protection(by_id.get("fallback_SCSV"))}


def moat_vuln(doc):
    def verdict(v):
        return "n/a" if v is None else "VULNERABLE" if v else "not vulnerable"

    def protection(v):
        return "n/a" if v is None else "supported" if v else "NOT supported"

    return {"heartbleed": verdict(doc["heartbleed"]["vulnerable"]),
            "ccs_injection": verdict(doc["ccs_injection"]["vulnerable"]),
            "compression": verdict(doc["compression"]),
            "secure_renegotiation": protection(doc["secure_renegotiation"]),
            "fallback_scsv": protection(doc["fallback_scsv"])}


def testssl_hsts(by_id):
    if by_id.get("HSTS") == "not offered":
        return "not offered"
    m = re.search(r"=(\d+) seconds", by_id.get("HSTS_time", ""))
    return f"max-age={m.group(1)}" if m else f"unparsed ({by_id.get('HSTS')}, {by_id.get('HSTS_time')})"


def moat_hsts(doc):
    if not doc["http"]["read"]:
        return f"not read ({doc['http']['error']})"
    h = doc["http"]["hsts"]
    return "not offered" if h is None else f"max-age={h['max_age']}"


# testssl.sh -P: "cipherorder_TLSv1_2" lists the suites in the order the server picks them
# (IANA names with --mapping iana); "cipher_order" says whether the server imposes one.
ORDER_PROTOS = {"SSLv3": "SSL 3.0", "TLSv1": "TLS 1.0", "TLSv1_1": "TLS 1.1", "TLSv1_2": "TLS 1.2",
                "TLSv1_3": "TLS 1.3"}


def testssl_order(findings):
    """(server imposes an order: bool|None, {version: [IANA names in order]})."""
    imposed = None
    orders = {}
    for f in findings:
        if f["id"] == "cipher_order":
            imposed = f["finding"].startswith("server")
        elif f["id"].startswith("cipherorder_") and f["id"][len("cipherorder_"):] in ORDER_PROTOS:
            orders[ORDER_PROTOS[f["id"][len("cipherorder_"):]]] = f["finding"].split()
    return imposed, orders


def names(doc, codes):
    """IANA names (from moat's report where it has them) for printing."""
    known = {int(s["id"], 16): s["name"] for p in (doc or {}).get("protocols", []) for s in p["cipher_suites"]}
    return sorted(known.get(c, f"0x{c:04x}") for c in codes)


class Target:
    def __init__(self, name, port, ca, expect_protocols, moat_only=None, order=False, vuln=False,
                 hsts=False, differences=None, rc=0):
        """`moat_only` maps a version to the suites (code points) moat is documented to find
        and testssl.sh 3.0.8 not; `differences` maps a finding to the documented (moat,
        testssl.sh) pair. Every other difference fails. `rc`: testssl.sh's exit code, 1 where
        one of its checks is documented to fail."""
        self.name, self.port, self.ca = name, port, ca
        self.expect_protocols = expect_protocols
        self.moat_only = moat_only or {}
        self.order, self.vuln, self.hsts = order, vuln, hsts
        self.differences = differences or {}
        self.rc = rc

    def flags(self):
        return ((("-P", "--mapping", "iana") if self.order else ()) + (VULN_FLAGS if self.vuln else ()) +
                (("-h",) if self.hsts else ()))

    def collect(self):
        """Runs in a worker thread: moat scan, then testssl.sh, against the same server."""
        t0 = time.monotonic()
        rc, doc, err = st.scan(self.port, ca=self.ca)
        self.moat_seconds = time.monotonic() - t0
        self.doc, self.moat_err = doc, err
        self.t_rc, self.t_findings, self.t_seconds, self.t_tail = run_testssl(self.port, self.name, self.flags())
        return self


table = []  # (target, finding, moat, testssl.sh, verdict)


def compare_finding(t, finding, m, ts):
    documented = t.differences.get(finding)
    if documented:
        ok = check((m, ts) == documented,
                   f"{t.name}: {finding} differs as documented (moat {documented[0]!r}, testssl.sh {documented[1]!r})",
                   f"moat {m!r}, testssl.sh {ts!r}")
        verdict = "documented difference" if ok else "FAIL"
    else:
        ok = check(m == ts, f"{t.name}: {finding} equal ({m})", f"moat {m!r}, testssl.sh {ts!r}")
        verdict = "equal" if ok else "FAIL"
    table.append((t.name, finding, str(m), str(ts), verdict))


def compare(t):
    name, doc = t.name, t.doc
    print(f"time {name}: moat scan {t.moat_seconds:.3f} s wall ({doc['seconds'] if doc else float('nan'):.3f} s "
          f"self-reported), testssl.sh {t.t_seconds:.1f} s wall ({' '.join(('-p', '-E') + t.flags())})")
    if not check(doc is not None and doc.get("schema") == "moat.scan/v1", f"{name}: moat scan JSON", t.moat_err):
        return
    if not check(t.t_rc == t.rc and t.t_findings is not None and any(f["id"] == "scanTime" for f in t.t_findings),
                 f"{name}: testssl.sh ran to the end (rc {t.t_rc}, expected {t.rc})", t.t_tail):
        return
    m_protos = set(st.supported(doc))
    m_ciphers = {p["version"]: {int(s["id"], 16) for s in p["cipher_suites"]}
                 for p in doc["protocols"] if p["supported"]}
    t_protos, t_ciphers, by_id = testssl_parse(t.t_findings)
    check_eq(m_protos, t.expect_protocols, f"{name}: moat protocols as configured")
    check_eq(m_protos, t_protos, f"{name}: protocols equal (moat vs testssl.sh)")
    table.append((name, "protocols", " ".join(sorted(m_protos)), " ".join(sorted(t_protos)),
                  "equal" if m_protos == t_protos else "FAIL"))
    for version in sorted(m_protos | t_protos):
        m = m_ciphers.get(version, set())
        ts = t_ciphers.get(version, set())
        extra = t.moat_only.get(version, set())
        check(len(m) > 0, f"{name} {version}: moat enumerated {len(m)} suites")
        check(m - ts == extra and not ts - m,
              f"{name} {version}: suites equal{' except documented moat-only ' + str(names(doc, extra)) if extra else ''}"
              f" ({len(m)} moat, {len(ts)} testssl.sh)",
              f"moat only:     {names(doc, m - ts)}\ntestssl only:  {[f'0x{c:04x}' for c in sorted(ts - m)]}"
              f"\ndocumented moat-only: {names(doc, extra)}")
        table.append((name, f"suites {version}", str(len(m)), str(len(ts)),
                      "equal" if m == ts else "documented difference" if m - ts == extra and not ts - m else "FAIL"))
    if t.order:
        imposed, orders = testssl_order(t.t_findings)
        check(imposed is not None, f"{name}: testssl.sh says whether the server has an order")
        for p in doc["protocols"]:
            if not p["supported"] or len(p["cipher_suites"]) < 2:
                continue
            check_eq(p["server_order"], imposed, f"{name} {p['version']}: server order (moat vs testssl.sh)")
            if imposed and p["version"] in orders:
                check_eq([c["name"] for c in p["cipher_suites"]], orders[p["version"]],
                         f"{name} {p['version']}: the server's order (moat vs testssl.sh)")
    # Weak-suite classes and the smallest DH group, each from that tool's own classification.
    m_classes = {WEAK_CLASSES[i] for i in st.finding_ids(doc) if i in WEAK_CLASSES}
    t_classes, t_dh = testssl_weak(t.t_findings)
    compare_finding(t, "weak suite classes", " ".join(sorted(m_classes)) or "none",
                    " ".join(sorted(t_classes)) or "none")
    compare_finding(t, "smallest DH group", doc["dh_bits"], t_dh)
    if t.vuln:
        m_v, t_v = moat_vuln(doc), testssl_vuln(by_id)
        for finding in m_v:
            compare_finding(t, finding, m_v[finding], t_v[finding])
        table.append((name, "client-initiated renegotiation", "not tested",
                      by_id.get("secure_client_renego", "missing"), "testssl.sh only"))
    if t.hsts:
        compare_finding(t, "HSTS", moat_hsts(doc), testssl_hsts(by_id))


pki = harness.make_ca_and_leaf(d, dns=("scan.test",))
ca = pki["ca"]["crt"]
rsa = harness.make_ca_and_leaf(d, name="rsa", key="rsa2048", dns=("scan.test",), ca=pki["ca"])
targets = []

# 1. Modern: ECDSA P-256, OpenSSL 3 defaults (TLS 1.2 + 1.3), as in test_scan_basic.py.
modern = st.s_server(pki, chain=ca)
targets.append(Target("modern", modern, ca, {"TLS 1.2", "TLS 1.3"}))

# 2. Weak, RSA 2048: DEFAULT@SECLEVEL=0, TLS 1.0 .. 1.2 (RSA key exchange, DHE, CBC, CAMELLIA,
#    ARIA, ... in every version that has them). Vulnerabilities (fallback from TLS 1.2 to 1.1)
#    and HSTS (none) too.
weak_rsa = st.s_server(rsa, extra=["-cipher", "DEFAULT@SECLEVEL=0", "-min_protocol", "TLSv1",
                                   "-max_protocol", "TLSv1.2"], chain=ca)
targets.append(Target("weak-rsa", weak_rsa, ca, {"TLS 1.0", "TLS 1.1", "TLS 1.2"}, vuln=True, hsts=True))

# (The ECDSA variant of target 2, test_scan_weak.py's TLS 1.0 .. 1.3 server, also compared equal
#  by hand: 2/2/7/3 suites; left out to keep the runtime down, targets 1 and 2 cover it.)

# 3. Legacy, RSA 2048: every suite this OpenSSL has, anonymous (ADH/AECDH) and NULL included
#    (ALL:COMPLEMENTOFALL:eNULL@SECLEVEL=0), TLS 1.0 .. 1.2. (Debian's OpenSSL 3 has no SSL 3.0,
#    3DES, RC4, SEED or export suites, so no server here can offer them.)
legacy = st.s_server(rsa, extra=["-cipher", "ALL:COMPLEMENTOFALL:eNULL@SECLEVEL=0", "-min_protocol", "TLSv1",
                                 "-max_protocol", "TLSv1.2"], chain=ca)
targets.append(Target("legacy-rsa-anon-null", legacy, ca, {"TLS 1.0", "TLS 1.1", "TLS 1.2"}))

# 4. TLS 1.3 only.
tls13 = st.s_server(pki, extra=["-tls1_3"], chain=ca)
targets.append(Target("tls13-only", tls13, ca, {"TLS 1.3"}, vuln=True, hsts=True,
                      differences={"heartbleed": ("n/a", "not vulnerable"),
                                   "ccs_injection": ("n/a", "not vulnerable")}))

# 5. Server order: RSA 2048, TLS 1.2 + 1.3, -serverpref with a deliberately unsorted list, also
#    compared with testssl.sh -P's "cipherorder_*" (the full order, per protocol).
ordered = st.s_server(rsa, extra=["-serverpref", "-cipher",
                                  "AES128-SHA:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"
                                  "DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA",
                                  "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"],
                      chain=ca)
order_target = Target("server-order", ordered, ca, {"TLS 1.2", "TLS 1.3"}, order=True)
targets.append(order_target)

# 6. nginx, TLS 1.2 + 1.3, ECDSA, HSTS max-age=63072000 (skipped without nginx).
nginx = st.nginx_server(d, pki, chain=ca)
if nginx:
    targets.append(Target("nginx-hsts", nginx, ca, {"TLS 1.2", "TLS 1.3"}, vuln=True, hsts=True,
                          differences={"fallback_scsv": ("supported", "n/a")}))
else:
    print("skip nginx-hsts: nginx not installed")

# 7. The flaws no real server here can have: Heartbleed, CCS injection, DEFLATE, no
#    renegotiation_info (TLS 1.2 only, RSA key exchange; the handshake never completes).
fake = st.FakeTlsServer(st.der_certificate(d), "heartbleed", "ccs", "deflate", "insecure_renegotiation")
targets.append(Target("fake-flawed", fake.port, None, {"TLS 1.2"}, vuln=True,
                      differences={"secure_renegotiation": ("NOT supported",
                                                            "not tested (OpenSSL handshake didn't succeed)")},
                      rc=1))  # testssl.sh exits 1: its OpenSSL cannot connect (no renegotiation_info)

# Longest testssl.sh run first, so the pool's tail is short.
ordered_by_cost = sorted(targets, key=lambda t: t.name != "legacy-rsa-anon-null")
with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
    list(pool.map(Target.collect, ordered_by_cost))

for t in targets:
    compare(t)

doc = order_target.doc
if doc:
    tls12 = next(p for p in doc["protocols"] if p["version"] == "TLS 1.2")
    check_eq([c["name"] for c in tls12["cipher_suites"]],
             ["TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
              "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
              "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"], "server-order: TLS 1.2 in the configured order")

# The flawed fake must be flagged by both (the positive cases of the comparison).
fake_t = targets[-1]
if fake_t.doc:
    check({"heartbleed", "ccs_injection", "compression", "renegotiation_insecure"} <= st.finding_ids(fake_t.doc),
          "fake-flawed: moat's findings flag Heartbleed, CCS injection, compression, insecure renegotiation",
          str(st.finding_ids(fake_t.doc)))

# sslscan on the modern target, timed only (its output uses OpenSSL names; not compared).
sslscan = shutil.which("sslscan")
if sslscan:
    t0 = time.monotonic()
    r = harness.run(["timeout", "120", sslscan, "--no-colour", f"127.0.0.1:{modern}"], timeout=130)
    sslscan_seconds = time.monotonic() - t0
    accepted = sum(1 for line in r.stdout.splitlines() if line.startswith(("Preferred", "Accepted")))
    print(f"time modern: sslscan {sslscan_seconds:.2f} s wall (rc {r.returncode}, {accepted} suites accepted)")
    check(r.returncode == 0 and accepted > 0, "modern: sslscan ran", r.stdout[-2000:] + r.stderr[-1000:])
else:
    sslscan_seconds = None
    print("skip sslscan: not installed")

print("\nfindings, moat vs testssl.sh")
print(f"  {'target':<22} {'finding':<32} {'moat':<34} {'testssl.sh':<48} verdict")
for row in table:
    print(f"  {row[0]:<22} {row[1]:<32} {row[2]:<34} {row[3]:<48} {row[4]}")

total = time.monotonic() - t_script
print(f"\ntimings (wall seconds; testssl.sh {PARALLEL} at a time)   moat scan   (self)   testssl.sh")
for t in targets:
    s = t.doc["seconds"] if t.doc else float("nan")
    print(f"  {t.name:<44} {t.moat_seconds:9.3f} {s:8.3f} {t.t_seconds:12.1f}")
if sslscan_seconds is not None:
    print(f"  sslscan, modern target                       {sslscan_seconds:.2f}")
check(total < SCRIPT_BUDGET, f"whole comparison in {total:.1f} s (< {SCRIPT_BUDGET} s)")

harness.done()
