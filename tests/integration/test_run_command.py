"""moat run: picks the mode from the gateway config's section."""
import os

from harness import SOURCE_DIR, check, done, moat, tempdir

tmp = tempdir()
EXAMPLE_EGRESS = os.path.join(SOURCE_DIR, "examples", "egress.yaml")
POLICY = os.path.join(SOURCE_DIR, "examples", "salestim.yaml")

r = moat("run", "--config", EXAMPLE_EGRESS, "--check")
check(r.returncode == 0 and "egress config ok" in r.stdout, "run --check on an egress config checks egress",
      r.stdout + r.stderr)

both = os.path.join(tmp, "both.yaml")
with open(both, "w") as f:
    f.write(f"moat: gateway/v1\negress:\n  policies: [{POLICY}]\nedge:\n  listen_https: [127.0.0.1:0]\n")
r = moat("run", "--config", both, "--check")
check(r.returncode == 2 and "run them as two processes" in r.stderr, "a config with both sections is refused",
      r.stdout + r.stderr)

r = moat("run", "--config", POLICY, "--check")
check(r.returncode == 1 and "neither an egress: nor an edge: section" in r.stderr,
      "a policy is not a gateway config", r.stderr)

r = moat("run", "--config", os.path.join(tmp, "missing.yaml"), "--check")
check(r.returncode == 2, "a missing config is a usage error", r.stderr)
done()
