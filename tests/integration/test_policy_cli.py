"""moat policy check / match as a user runs them: exit codes, exact diagnostics, bad input."""
import glob
import json
import os
import time

from harness import SOURCE_DIR, check, check_eq, done, moat, tempdir

EXAMPLE = os.path.join(SOURCE_DIR, "examples", "salestim.yaml")
TYPO = os.path.join(SOURCE_DIR, "tests", "fixtures", "policy", "salestim-page-typo.yaml")
tmp = tempdir()


def write(name, data, mode="w"):
    path = os.path.join(tmp, name)
    with open(path, mode) as f:
        f.write(data)
    return path


# Every policy in examples/ validates cleanly (gateway configs there are loaded by their own tests).
for path in sorted(glob.glob(os.path.join(SOURCE_DIR, "examples", "*.yaml"))):
    with open(path) as f:
        if "moat: policy/v1" not in f.read():
            continue
    r = moat("policy", "check", "--strict", path)
    check_eq(r.returncode, 0, f"{os.path.basename(path)} is a valid policy without warnings")
    check("0 errors, 0 warnings" in r.stdout, f"{os.path.basename(path)} summary", r.stdout + r.stderr)

# The page's typo: exact location and hint.
r = moat("policy", "check", TYPO)
check_eq(r.returncode, 1, "typo fixture exits 1")
check_eq(r.stderr.splitlines()[0] if r.stderr else "",
         f"{TYPO}:47:36: error: invalid host pattern '*..visualstudio.com': empty label (two dots in a row)",
         "typo fixture: file:line:column and message")
check("hint: did you mean *.visualstudio.com?" in r.stderr, "typo fixture: hint", r.stderr)

# Several files: one bad file fails the run, every problem printed.
r = moat("policy", "check", EXAMPLE, TYPO)
check_eq(r.returncode, 1, "a set with one bad file exits 1")

# Malformed patterns each give a located error.
cases = {
    '"*..x.com"': "empty label",
    '"*."': None,
    '"a*b.com"': None,
    '"x.*"': None,
    '"a..b.com"': "empty label",
    '"' + "a" * 64 + '.com"': "63",
    '"bücher.example"': "xn--bcher-kva",
    '"0x7f.1"': None,
}
for pattern, needle in cases.items():
    path = write("p.yaml", "moat: policy/v1\nmetadata: {publisher: X, name: x, revision: 1}\n"
                 "services:\n  - id: a\n    name: A\n    purpose: P\n    hosts: [" + pattern + "]\n")
    r = moat("policy", "check", path)
    ok = r.returncode == 1 and f"{path}:7:" in r.stderr and (needle is None or needle in r.stderr)
    check(ok, f"pattern {pattern} rejected at line 7", r.stderr)

# Bad input never crashes or hangs: exit 1 (not a policy) or 2 (not readable), with a message.
bad = {
    "empty": (write("empty.yaml", ""), 1, "empty"),
    "garbage": (write("garbage.yaml", bytes(range(256)) * 10, "wb"), 1, "error"),
    "truncated": (write("trunc.yaml", open(EXAMPLE).read()[:700]), 1, "error"),
    "directory": (tmp, 2, "is a directory"),
    "missing": (os.path.join(tmp, "nope.yaml"), 2, "No such file"),
    "bomb": (write("bomb.yaml", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                   "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                   "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                   "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"), 1, "expands to more than"),
}
big = os.path.join(tmp, "big.yaml")
with open(big, "wb") as f:
    f.truncate(100 * 1024 * 1024)  # sparse: costs no disk
bad["100MB"] = (big, 2, "more than the limit")
for name, (path, code, needle) in bad.items():
    start = time.monotonic()
    r = moat("policy", "check", path, timeout=30)
    elapsed = time.monotonic() - start
    check(r.returncode == code and needle in r.stderr and elapsed < 10,
          f"bad input '{name}': exit {code} with '{needle}' in {elapsed:.2f}s",
          f"exit {r.returncode}\n{r.stderr[:500]}")

# --previous: revision must not go backwards.
newer = open(EXAMPLE).read().replace("revision: 1\n  updated", "revision: 5\n  updated").replace(
    "    - revision: 1\n", "    - revision: 5\n")
prev = write("prev.yaml", newer)
r = moat("policy", "check", "--previous", prev, EXAMPLE)
check(r.returncode == 1 and "goes backwards from the previous revision 5" in r.stderr,
      "--previous with a higher revision fails", r.stderr)
r = moat("policy", "check", "--previous", EXAMPLE, prev)
check_eq(r.returncode, 0, "--previous with a lower revision passes")

# match: allowed, denied, port, attacker spellings, JSON, invalid input.
r = moat("policy", "match", EXAMPLE, "app.salestim.io")
check(r.returncode == 0 and "allow app.salestim.io:443" in r.stdout and "service: web-app" in r.stdout
      and "purpose: SalesTim main web application for Microsoft Teams" in r.stdout, "match allowed", r.stdout)
for host, reason in [("salestim.io", "host not in policy"), ("evilsalestim.io", "host not in policy"),
                     ("app.salestim.io:8443", "port not allowed"), ("APP.SalesTim.IO.:80", "port not allowed"),
                     ("0x7f.1", "host not in policy"), ("2130706433:443", "host not in policy"),
                     ("[::ffff:127.0.0.1]:443", "host not in policy")]:
    r = moat("policy", "match", EXAMPLE, host)
    check(r.returncode == 1 and reason in r.stdout, f"match {host}: {reason}", r.stdout + r.stderr)
r = moat("policy", "match", EXAMPLE, "A.B.Intercom.IO.", "--json")
try:
    j = json.loads(r.stdout)
except ValueError:
    j = {}
check(r.returncode == 0 and j.get("service") == "intercom" and j.get("host") == "a.b.intercom.io"
      and j.get("decision") == "allow", "match --json, normalized, any depth", r.stdout)
for bad_destination in ["", "a b", "app.salestim.io:0", "app.salestim.io:65536", "app.salestim.io:-1",
                        "bücher.de", "exa mple.com", "example.123"]:
    r = moat("policy", "match", EXAMPLE, bad_destination)
    check(r.returncode == 2 and "moat: error: invalid destination" in r.stderr,
          f"match '{bad_destination}' is a usage error", r.stdout + r.stderr)
r = moat("policy", "match", TYPO, "app.salestim.io")
check(r.returncode == 2 and "47:36" in r.stderr, "match with an invalid policy exits 2", r.stderr)

# CLI conventions.
for args in [("--help",), ("policy", "--help"), ("policy", "check", "--help"), ("policy", "match", "--help"),
             ("cert", "--help")]:
    r = moat(*args)
    check(r.returncode == 0 and "Usage" in r.stdout, f"moat {' '.join(args)} prints help", r.stderr)
r = moat("--version")
check(r.returncode == 0 and r.stdout.startswith("moat "), "--version")
for args in [(), ("policy",), ("nosuch",), ("policy", "check")]:
    r = moat(*args)
    check(r.returncode == 2 and r.stderr.strip() != "", f"moat {' '.join(args)} is a usage error (2)", r.stderr)

done()
