"""moat edge audited from outside, as a customer or an auditor would: testssl.sh against the running
edge reports no protocol below TLS 1.2, no weak cipher and HSTS present; `moat scan` grades it A+;
`moat cert verify` against the live edge passes the policy that pins its key (and fails one that
pins another key)."""
import json
import os
import shutil
import subprocess
import sys

import harness
from harness import check, check_eq, done, moat
from edge_fixture import Edge

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
check(TESTSSL is not None, "testssl.sh is installed (scripts/install-deps.sh)")
if TESTSSL is None:
    done()

# An audit opens hundreds of handshakes from one address: the per-client handshake budget
# (20/s) and bans would rightly cut it off, so this edge trusts its auditor.
edge = Edge(http_listener=False, limits="    handshakes_per_second_per_client: 0\n"
                                        "    ban_after_trips: 0\n")
port = edge.https_port
host = "app.example.test"

# ---- testssl.sh: protocols, every cipher per protocol, HTTP headers --------------------------
out = os.path.join(edge.dir, "testssl.json")
r = harness.run(["timeout", "150", TESTSSL, "--quiet", "--warnings", "off", "--color", "0",
                 "-n", "none", "--ip", "127.0.0.1", "--openssl", shutil.which("openssl"),
                 "--connect-timeout", "5", "--openssl-timeout", "5", "-p", "-E", "-h",
                 "--jsonfile", out, f"{host}:{port}"], timeout=160)
check(r.returncode == 0 and os.path.exists(out), f"testssl.sh ran (rc {r.returncode})",
      r.stdout[-2000:] + r.stderr[-1000:])
findings = json.load(open(out)) if os.path.exists(out) else []
by_id = {f["id"]: f["finding"] for f in findings}

for fid in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    check(by_id.get(fid, "").startswith("not offered"), f"testssl.sh: {fid} not offered",
          by_id.get(fid, "(missing)"))
for fid in ("TLS1_2", "TLS1_3"):
    check(by_id.get(fid, "").startswith("offered"), f"testssl.sh: {fid} offered", by_id.get(fid, "(missing)"))

suites = {fid: text for fid, text in by_id.items() if fid.startswith("cipher-") and "_x" in fid}
check(len(suites) > 0, "testssl.sh listed the accepted suites", str(list(by_id)[:40]))
weak = []
for fid, text in suites.items():
    proto = fid[len("cipher-"):].rsplit("_x", 1)[0]
    if proto not in ("tls1_2", "tls1_3"):
        weak.append(f"{fid}: {text} (protocol)")
    elif proto == "tls1_2" and not ("ECDHE" in text and ("GCM" in text or "CHACHA20" in text)):
        weak.append(f"{fid}: {text} (TLS 1.2 suite without ECDHE+AEAD)")
check(not weak, "testssl.sh: every accepted suite is TLS 1.2 ECDHE+AEAD or TLS 1.3", "\n".join(weak))
for fid in ("RC4", "3DES_IDEA", "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
            "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_OBSOLETED"):
    if fid in by_id:
        check(by_id[fid].startswith("not offered") or "not vulnerable" in by_id[fid],
              f"testssl.sh: {fid} not offered", by_id[fid])
hsts = by_id.get("HSTS_time", "")
check("63072000" in hsts or "730 days" in hsts, "testssl.sh: HSTS present, max-age two years", hsts or str(
    {k: v for k, v in by_id.items() if "HSTS" in k}))
check("includeSubDomains" in by_id.get("HSTS_subdomains", "") or "includes subdomains" in by_id.get(
    "HSTS_subdomains", ""), "testssl.sh: HSTS includeSubDomains", by_id.get("HSTS_subdomains", "(missing)"))

# ---- moat scan grades its own edge ------------------------------------------------------------
r = moat("scan", f"{host}:{port}", "--connect", "127.0.0.1", "--ca", edge.ca, "--json", timeout=60)
doc = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
check(bool(doc), "moat scan printed its JSON report", r.stdout[-1500:] + r.stderr[-1500:])
grade = (doc.get("grade") or {}).get("grade")
check_eq(grade, "A+", "moat scan grades the edge A+")
supported = [p["version"] for p in doc.get("protocols", []) if p.get("supported")]
check_eq(supported, ["TLS 1.2", "TLS 1.3"], "moat scan: only TLS 1.2 and 1.3 supported")

# ---- moat cert verify against the running edge and the policy ---------------------------------
pin = moat("cert", "pin", edge.certs[0]["chain"]).stdout.strip()
check(len(pin) == 44, "the edge certificate's pin", pin)


def policy(path, pins):
    with open(path, "w") as f:
        f.write("moat: policy/v1\n"
                "metadata: {publisher: test, name: edge-audit, revision: 1}\n"
                "services:\n"
                "  - id: app\n"
                "    name: App\n"
                f"    hosts: [{host}]\n"
                "    ports: [443]\n"
                "    purpose: the platform's front door\n"
                f"    pins: [\"{pins}\"]\n")
    return path


good = policy(os.path.join(edge.dir, "good.yaml"), pin)
other_pin = moat("cert", "pin", edge.certs[1]["chain"]).stdout.strip()
bad = policy(os.path.join(edge.dir, "bad.yaml"), other_pin)
r = moat("cert", "verify", f"{host}:{port}", "--connect", "127.0.0.1", "--policy", good, "--min-days", "7")
check(r.returncode == 0, "moat cert verify: the live edge passes the policy pinning its key",
      r.stdout + r.stderr)
r = moat("cert", "verify", f"{host}:{port}", "--connect", "127.0.0.1", "--policy", bad)
check(r.returncode == 1 and "FAIL" in r.stdout, "moat cert verify: a policy pinning another key fails",
      r.stdout + r.stderr)

done()
