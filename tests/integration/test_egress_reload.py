"""moat egress reloads: SIGHUP with a valid config applies to new connections while a tunnel
opened before keeps working; SIGHUP with an invalid config is rejected and logged, and the
previous config stays; a change of `resolve:` reaches every worker; SIGUSR1 reopens the audit log
after it was renamed."""
import os
import signal

from harness import check, check_eq, done
from egress_fixture import (Egress, check_alive, check_all_records_parse, connect_socket, https_get,
                            wait_closed, wait_until)

gw = Egress()
origin = gw.tls_origin("reload-origin")
port = origin.port
gw.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [port], "purpose": "SalesTim web app"}])
gw.write_policy("vendor.yaml", "vendor", [
    {"id": "api", "hosts": ["api.vendor.test"], "ports": [port], "purpose": "Vendor API"}])
RESOLVE = {"app.salestim.io": "127.0.0.1", "api.vendor.test": "127.0.0.1"}
gw.write_config(["salestim.yaml", "vendor.yaml"], resolve=RESOLVE)
gw.start()


def status_of(host):
    s, reply = gw.connect(f"{host}:{port}")
    s.close()
    return reply.status if reply is not None else None


def fetch(host):
    """A full request through a new tunnel; returns the response bytes (b"" if refused)."""
    tls, reply, err = gw.tls_through(f"{host}:{port}", host)
    if tls is None:
        return b""
    with tls:
        return https_get(tls, host=host)


def reload_and_wait(expect):
    """SIGHUP, then wait for the log line that says `expect` ("applied" or "rejected")."""
    mark = len(gw.log_text())
    gw.signal(signal.SIGHUP)
    return gw.wait_log(rf"reload: .*{expect}", after=mark)


check(b"reload-origin answer" in fetch("api.vendor.test"), "before reload: api.vendor.test works")

# ---- 11. A tunnel opened before the reload -------------------------------------------------
tunnel, reply, err = gw.tls_through(f"api.vendor.test:{port}", "api.vendor.test")
check(tunnel is not None, "a long-lived tunnel to api.vendor.test is open", f"{reply!r} {err!r}")
tunnel_port = tunnel.getsockname()[1] if tunnel else 0
first = https_get(tunnel, host="api.vendor.test") if tunnel else b""
check(b"reload-origin answer" in first, "the tunnel carries a request", first)

# Valid config without the vendor's policy.
gw.write_config(["salestim.yaml"], resolve=RESOLVE)
check(reload_and_wait("applied"), "SIGHUP with a valid config: log says applied", gw.non_audit_log()[-1500:])
check_eq([status_of("api.vendor.test") for _ in range(4)], [403] * 4,
         "after reload: new connections to the removed host get 403 (every worker)")
check(b"reload-origin answer" in fetch("app.salestim.io"), "after reload: the remaining host works")
second = https_get(tunnel, host="api.vendor.test") if tunnel else b""
check(b"reload-origin answer" in second, "after reload: the old tunnel still carries requests", second)
check_eq(gw.metric_value("moat_egress_reloads_total", result="applied"), 1.0, "metrics: one reload applied")

# Invalid config: rejected, logged with its location, the previous config stays.
with open(gw.config_path, "w") as f:
    f.write(gw.config_text(["salestim.yaml", "vendor.yaml"], resolve=RESOLVE) + "  no_such_key: 1\n")
check(reload_and_wait("rejected"), "SIGHUP with an unknown key: log says rejected", gw.non_audit_log()[-1500:])
check(f"{gw.config_path}:" in gw.non_audit_log() and "no_such_key" in gw.non_audit_log(),
      "the rejection names file:line:column and the key", gw.non_audit_log()[-1500:])
check_eq([status_of("api.vendor.test") for _ in range(4)], [403] * 4,
         "after a rejected reload: the previous config still applies (403)")
check(b"reload-origin answer" in fetch("app.salestim.io"), "after a rejected reload: allowed host works")
third = https_get(tunnel, host="api.vendor.test") if tunnel else b""
check(b"reload-origin answer" in third, "after a rejected reload: the old tunnel still works", third)

for name, text in [("YAML syntax error", "moat: gateway/v1\negress: [unclosed\n"),
                   ("a missing policy file", gw.config_text(["missing.yaml"], resolve=RESOLVE)),
                   ("an empty file", ""),
                   ("a bad policy", None)]:
    if text is None:
        gw.write("broken-policy.yaml", "moat: policy/v1\nmetadata: {name: x}\nservices: 3\n")
        text = gw.config_text(["salestim.yaml", "broken-policy.yaml"], resolve=RESOLVE)
    with open(gw.config_path, "w") as f:
        f.write(text)
    check(reload_and_wait("rejected"), f"SIGHUP with {name}: rejected", gw.non_audit_log()[-800:])
    check_eq(status_of("api.vendor.test"), 403, f"after {name}: previous config still applies")
    check_eq(status_of("app.salestim.io"), 200, f"after {name}: allowed host still allowed")
check_eq(gw.metric_value("moat_egress_reloads_total", result="rejected"), 5.0, "metrics: five reloads rejected")

# Back to both policies, and a new `resolve:` that points app.salestim.io at a private address.
gw.write_config(["salestim.yaml", "vendor.yaml"],
                resolve={"app.salestim.io": "10.0.0.1", "api.vendor.test": "127.0.0.1"})
check(reload_and_wait("applied"), "SIGHUP with both policies again: applied")
check_eq([status_of("api.vendor.test") for _ in range(4)], [200] * 4, "the vendor's host is allowed again")
check_eq([status_of("app.salestim.io") for _ in range(4)], [403] * 4,
         "the new resolve: entry reaches every worker (10.0.0.1 is private: 403)")
fourth = https_get(tunnel, host="api.vendor.test") if tunnel else b""
check(b"reload-origin answer" in fourth, "after three reloads the old tunnel still works", fourth)
if tunnel:
    tunnel.close()
rec = gw.wait_record(client_port=tunnel_port) or {}
check_eq(rec.get("decision"), "allow", "the long tunnel's audit record: allow")
check(rec.get("bytes_up", 0) > 0 and rec.get("bytes_down", 0) > 0, "the long tunnel's bytes counted", rec)
check_eq(rec.get("termination"), "closed", "the long tunnel's record: termination closed")

# ---- 13. SIGUSR1 reopens the audit log -----------------------------------------------------
rotated = gw.audit + ".1"
os.rename(gw.audit, rotated)
mark = len(gw.log_text())
gw.signal(signal.SIGUSR1)
check(gw.wait_log("audit log reopened", after=mark), "SIGUSR1: log says the audit log was reopened")
check(os.path.exists(gw.audit), "SIGUSR1: a new audit file exists")
s, reply = gw.connect(f"api.vendor.test:{port}")
client_port = s.getsockname()[1]
s.close()
rec = gw.wait_record(client_port=client_port)
check(rec is not None, "the next record goes to the new file", gw.records(rotated)[-2:])
check(not any(r.get("client_port") == client_port for r in gw.records(rotated)),
      "the renamed file does not get the next record")
check(any(r.get("client_port") == tunnel_port for r in gw.records(rotated)),
      "the renamed file kept the earlier records")

# A reload that moves the audit log: the records follow it, or the log says it waits for a
# restart (as it does for listener changes); silently writing to the old path is neither.
old_audit = gw.audit
moved_audit = gw.audit = os.path.join(gw.dir, "audit-moved.log")
gw.write_config(["salestim.yaml", "vendor.yaml"], resolve=RESOLVE)
mark = len(gw.log_text())
check(reload_and_wait("applied"), "SIGHUP with a new audit_log path: applied")
s, reply = gw.connect(f"api.vendor.test:{port}")
client_port = s.getsockname()[1]
s.close()
moved = gw.wait_record(client_port=client_port, timeout=3) is not None
warned = any("audit" in l and "warn" in l for l in gw.log_text()[mark:].splitlines())
check(moved or warned, "a new audit_log path is used, or the reload warns that it needs a restart",
      gw.non_audit_log()[mark:])
gw.audit = old_audit

check_all_records_parse(gw)
check_alive(gw)

# ---- SIGTERM with connections open: moat stops, and every connection still gets its record --
# A short drain, so that the open tunnel is ended by moat rather than waited for.
gw.write_config(["salestim.yaml", "vendor.yaml"], resolve=RESOLVE, limits={"drain_timeout": "1s"})
check(reload_and_wait("applied"), "SIGHUP with drain_timeout 1s: applied")
tunnel, reply, err = gw.tls_through(f"api.vendor.test:{port}", "api.vendor.test")
check(tunnel is not None and b"reload-origin answer" in https_get(tunnel, host="api.vendor.test"),
      "a tunnel is open before SIGTERM", f"{reply!r} {err!r}")
tunnel_port = tunnel.getsockname()[1] if tunnel else 0
partial = connect_socket(gw.port)
partial.sendall(b"CONNECT api.vendor")
partial_port = partial.getsockname()[1]
check(wait_until(lambda: gw.metric_value("moat_egress_connections_active") == 2, 5),
      "both connections are open in moat")
check_eq(gw.stop(), 0, "SIGTERM: exit 0")
if tunnel:
    check(wait_closed(tunnel, 2), "SIGTERM: the open tunnel is closed")
    tunnel.close()
partial.close()
final = gw.records() + gw.records(moved_audit)  # wherever the reload above sent them
check(any(r.get("client_port") == tunnel_port for r in final),
      "SIGTERM: the open tunnel's connection has an audit record",
      f"no record with client_port {tunnel_port}")
check(any(r.get("client_port") == partial_port for r in final),
      "SIGTERM: the half-received CONNECT has an audit record",
      f"no record with client_port {partial_port}")
check("Sanitizer" not in gw.log_text(), "no sanitizer report", gw.log_text()[-3000:])
done()
