"""moat scan against servers that are not well-behaved TLS servers: garbage, resets, silence,
nothing listening. Each gives a clear error and exit 2, never a crash or a hang."""
import time

import harness
import scan_targets as st
from harness import check, check_eq

for behaviour, words in (("garbage", "not a TLS answer"), ("reset", "reset"), ("silent", "no answer")):
    server = st.RawServer(behaviour)
    t0 = time.monotonic()
    rc, doc, err = st.scan(server.port, "--timeout", "0.5", "--deadline", "5")
    elapsed = time.monotonic() - t0
    check_eq(rc, 2, f"{behaviour}: exit 2")
    check(doc is not None and doc["grade"] is None and words in (doc["error"] or ""),
          f"{behaviour}: JSON error says '{words}'", (doc or {}).get("error", err))
    check(elapsed < 10, f"{behaviour}: finished in {elapsed:.2f} s")

port = harness.free_port()
rc, doc, err = st.scan(port)
check_eq(rc, 2, "nothing listening: exit 2")
check("cannot connect" in (doc or {}).get("error", ""), "nothing listening: error says cannot connect")

r = harness.moat("scan", "bad host:1")
check_eq(r.returncode, 2, "bad target: exit 2")
r = harness.moat("scan", "scan.test:1", "--fail-under", "Q")
check_eq(r.returncode, 2, "bad --fail-under: exit 2")

harness.done()
