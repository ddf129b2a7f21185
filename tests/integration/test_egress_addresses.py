"""moat egress and addresses: IP literals in every spelling a resolver takes are refused (none is
in the policy, and the decision sees the address, not the spelling), and names the policy allows
but that resolve to private, loopback, link-local, metadata, CGNAT or unspecified addresses are
refused after resolution unless `allow_private` lists the address. Nothing reaches the origin."""
from harness import check, check_eq, done
from egress_fixture import (Egress, check_alive, check_all_records_parse, client_hello,
                            stop_and_check, wait_closed, wait_until)

gw = Egress()
raw = gw.raw_origin()
gw.write_policy("salestim.yaml", "salestim", [
    {"id": "web-app", "hosts": ["*.salestim.io"], "ports": [raw.port],
     "purpose": "SalesTim main web application"}])
resolve = {
    "raw.salestim.io": "127.0.0.1",
    "meta.salestim.io": "169.254.169.254",
    "intra.salestim.io": "10.0.0.1",
    "lan.salestim.io": "192.168.1.10",
    "corp.salestim.io": "172.16.5.5",
    "cgnat.salestim.io": "100.64.0.1",
    "zero.salestim.io": "0.0.0.0",
    "loop2.salestim.io": "127.0.0.2",
    "six.salestim.io": "::1",
    "mapped.salestim.io": "::ffff:10.0.0.1",
    "mapmeta.salestim.io": "::ffff:169.254.169.254",
    "ula.salestim.io": "fd00::1",
    "v6ll.salestim.io": "fe80::1",
    "unspec6.salestim.io": "::",
    "mixed.salestim.io": ["10.0.0.1", "127.0.0.1"],
}
gw.write_config(["salestim.yaml"], resolve=resolve, allow_private=["127.0.0.1/32"])
gw.start()

# A control: the allowed loopback origin is reachable.
s, reply = gw.connect(f"raw.salestim.io:{raw.port}")
check(reply is not None and reply.status == 200, "control: raw.salestim.io (127.0.0.1, allow_private) 200",
      repr(reply))
s.close()
gw.wait_record(host="raw.salestim.io")
wait_until(lambda: len(raw.snapshot()) == 1, 5)
raw.wait_all_closed()
connections_before = len(raw.snapshot())

# ---- 8. IP literals ------------------------------------------------------------------------
literals = {
    "127.0.0.1": "127.0.0.1",
    "2130706433": "127.0.0.1",
    "0x7f.0.0.1": "127.0.0.1",
    "0177.0.0.1": "127.0.0.1",
    "127.1": "127.0.0.1",
    "0x7f000001": "127.0.0.1",
    "127.0.0.1.": "127.0.0.1",
    "0": "0.0.0.0",
    "[::ffff:127.0.0.1]": None,
    "[0:0:0:0:0:ffff:7f00:1]": None,
    "[::1]": "::1",
    "[::]": "::",
    "169.254.169.254": "169.254.169.254",
}
for literal, normalized in literals.items():
    s, reply = gw.connect(f"{literal}:{raw.port}")
    port = s.getsockname()[1]
    check(reply is not None and reply.status == 403, f"CONNECT {literal}: 403", repr(reply))
    s.close()
    rec = gw.wait_record(client_port=port) or {}
    check_eq(rec.get("decision"), "deny", f"CONNECT {literal}: audit deny")
    if normalized:
        check_eq(rec.get("host"), normalized, f"CONNECT {literal}: audit host is the address")
    check_eq(rec.get("upstream"), "", f"CONNECT {literal}: no upstream")

# ---- 8. Names the policy allows that resolve to private addresses ---------------------------
private = ["meta", "intra", "lan", "corp", "cgnat", "zero", "loop2", "six", "mapped", "mapmeta",
           "ula", "v6ll", "unspec6"]
for label in private:
    host = f"{label}.salestim.io"
    s, reply = gw.connect(f"{host}:{raw.port}")
    port = s.getsockname()[1]
    ok = reply is not None and reply.status == 403
    check(ok, f"{host} -> {resolve[host]}: 403", repr(reply))
    if reply is not None:
        check((reply.header("X-Moat-Reason") or "").startswith("private destination"),
              f"{host}: X-Moat-Reason private destination", repr(reply.headers))
    if reply is not None and reply.status == 200:
        s.sendall(client_hello(sni=host))  # make sure a wrong 200 does not go unnoticed
    s.close()
    rec = gw.wait_record(client_port=port) or {}
    check_eq(rec.get("decision"), "deny", f"{host}: audit deny")
    check((rec.get("reason") or "").startswith("private destination"),
          f"{host}: audit reason private destination", rec)
    check_eq(rec.get("service"), "web-app", f"{host}: audit names the service that allowed the name")

raw.wait_all_closed()
check_eq(len(raw.snapshot()), connections_before, "no refused address opened a connection to the origin")

# A name with one private and one allowed address: the private one is skipped.
s, reply = gw.connect(f"mixed.salestim.io:{raw.port}")
port = s.getsockname()[1]
check(reply is not None and reply.status == 200, "mixed.salestim.io (10.0.0.1, 127.0.0.1): 200 via 127.0.0.1",
      repr(reply))
s.close()
rec = gw.wait_record(client_port=port) or {}
check_eq(rec.get("upstream"), f"127.0.0.1:{raw.port}", "mixed: upstream is the allowed address")

v = gw.metric_value("moat_egress_decisions_total", decision="deny", reason="private_destination")
check_eq(v, float(len(private)), "metrics: private_destination denials counted")
check_all_records_parse(gw)
check_alive(gw)
stop_and_check(gw)
done()
