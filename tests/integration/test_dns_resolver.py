#!/usr/bin/env python3
"""The resolver against a real DNS server on loopback: tests/integration/dns_server.py serves a
zone (with per-name misbehaviour) and tests/tools/resolve_tool drives core::net::Resolver.

resolve_tool is found through RESOLVE_TOOL, else next to MOAT_BIN (both live in the build
directory's top level).
"""
import json
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, check_eq  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.environ.get("RESOLVE_TOOL") or os.path.join(os.path.dirname(os.path.abspath(harness.MOAT)),
                                                      "resolve_tool")

ZONE = {
    "www.test": {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"], "ttl": 300},
    "alias.test": {"CNAME": "www.test", "ttl": 60},
    "short.test": {"A": ["192.0.2.20"], "ttl": 1},
    "v4only.test": {"A": ["192.0.2.40"], "ttl": 300},
    "slow.test": {"mode": "slow"},
    "fail.test": {"mode": "servfail"},
    "refused.test": {"mode": "refused"},
    "spoofid.test": {"mode": "wrong-id-first", "A": ["192.0.2.30"], "AAAA": ["2001:db8::30"]},
    "spoofsrc.test": {"mode": "wrong-source-first", "A": ["192.0.2.31"]},
    "big.test": {"mode": "truncated", "A": ["192.0.2.51", "192.0.2.52", "192.0.2.53"]},
    "bignotcp.test": {"mode": "truncated-no-tcp", "A": ["192.0.2.61", "192.0.2.62"]},
    "unrelated.test": {"mode": "unrelated", "A": ["192.0.2.70"]},
    "coalesce.test": {"mode": "delay", "delay_ms": 300, "A": ["192.0.2.80"]},
}


def dns_probe(port, timeout=0.2):
    """Sends one A query for ready.test; True when the server answers (readiness check)."""
    query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    query += b"\x05ready\x04test\x00" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(query, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            return False
        return data[:2] == b"\x12\x34"


def start_server(work):
    zone_path = os.path.join(work, "zone.json")
    log_path = os.path.join(work, "queries.log")
    with open(zone_path, "w") as f:
        json.dump(ZONE, f)
    p = harness.start([sys.executable, os.path.join(HERE, "dns_server.py"), "--zone", zone_path,
                       "--log", log_path, "--negative-ttl", "120"],
                      stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # "PORT n" once both sockets are bound
    if not line.startswith("PORT "):
        raise RuntimeError(f"dns_server.py did not start: {line!r}")
    port = int(line.split()[1])
    deadline = time.monotonic() + 10
    while not dns_probe(port):  # readiness: it answers a query (the probe waits 0.2 s itself)
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("dns_server.py does not answer")
    return p, port, log_path


def queries(log_path, name, qtype="A", transport="udp"):
    if not os.path.exists(log_path):
        return 0
    with open(log_path) as f:
        return sum(1 for line in f if line.split() == [transport, qtype, name])


def resolve(port, *names, extra=(), timeout=30):
    """Runs resolve_tool; returns (results by (name, round) -> list, counters, seconds taken)."""
    args = [TOOL, "--nameserver", f"127.0.0.1:{port}", *extra, *names]
    start = time.monotonic()
    r = harness.run(args, timeout=timeout)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {r.returncode}: {r.stderr}")
    results, counters = {}, None
    for line in r.stdout.splitlines():
        record = json.loads(line)
        if "counters" in record:
            counters = record["counters"]
        else:
            results.setdefault((record["name"], record["round"]), []).append(record)
    return results, counters, elapsed


def one(results, name, rnd):
    got = results.get((name, rnd), [])
    return got[0] if got else {}


def main():
    if not os.path.exists(TOOL):
        check(False, f"resolve_tool exists at {TOOL}", "build the resolve_tool target")
        harness.done()
    work = harness.tempdir()
    _server, port, log = start_server(work)

    # Addresses from both families, then the cache within the TTL.
    res, counters, _ = resolve(port, "www.test")
    first, second = one(res, "www.test", 1), one(res, "www.test", 2)
    check_eq(first.get("addresses"), ["192.0.2.10", "2001:db8::10"], "www.test: A then AAAA")
    check_eq((first.get("source"), first.get("ttl")), ("dns", 300), "www.test: from DNS, TTL 300")
    check_eq(second.get("source"), "cache", "www.test: second lookup from the cache")
    check(0 < second.get("ttl", 0) <= 300, "www.test: cached TTL counts down", second)
    check_eq((queries(log, "www.test", "A"), queries(log, "www.test", "AAAA")), (1, 1),
             "www.test: one A and one AAAA query in all")

    # CNAME chain: the final name's addresses, TTL the minimum over the chain.
    res, _, _ = resolve(port, "alias.test")
    a = one(res, "alias.test", 1)
    check_eq((a.get("addresses"), a.get("ttl")), (["192.0.2.10", "2001:db8::10"], 60),
             "alias.test: CNAME followed, TTL min(60, 300)")

    # TTL 1: cached at once, asked again after it expired. The tool waits 1.5 s between the
    # rounds: that wait IS the thing under test (a 1 s TTL running out), not a readiness sleep.
    res, _, _ = resolve(port, "short.test", extra=["--min-ttl", "0", "--repeat-after-ms", "1500"])
    check_eq([one(res, "short.test", r).get("source") for r in (1, 2, 3)], ["dns", "cache", "dns"],
             "short.test: DNS, cache within the TTL, DNS again after it")
    check_eq(queries(log, "short.test", "A"), 2, "short.test: the server was asked twice")
    check_eq(one(res, "short.test", 3).get("addresses"), ["192.0.2.20"], "short.test: address")

    # The minimum TTL clamp keeps a 1 s record for 5 s.
    res, _, _ = resolve(port, "short.test", extra=["--repeat-after-ms", "1200"])
    check_eq(one(res, "short.test", 3).get("source"), "cache", "short.test: min_ttl 5 s clamp")

    # NXDOMAIN, negative-cached.
    res, counters, _ = resolve(port, "nope.test")
    check_eq(one(res, "nope.test", 1).get("error"), "dns_nxdomain", "nope.test: NXDOMAIN")
    check_eq(one(res, "nope.test", 2).get("error"), "dns_nxdomain", "nope.test: again")
    check_eq(counters["cache_hits"], 1, "nope.test: the second answer is the negative cache")
    check_eq(queries(log, "nope.test", "A"), 1, "nope.test: asked once")

    # Only an A record: success with IPv4 alone (AAAA is NODATA).
    res, _, _ = resolve(port, "v4only.test")
    check_eq(one(res, "v4only.test", 1).get("addresses"), ["192.0.2.40"], "v4only.test: A only")

    # A server that never answers: dns_timeout within timeout * attempts plus a margin.
    res, counters, elapsed = resolve(port, "slow.test",
                                     extra=["--timeout-ms", "300", "--attempts", "2"])
    check_eq(one(res, "slow.test", 1).get("error"), "dns_timeout", "slow.test: dns_timeout")
    # The tool looks up twice (round 2 finds no cache entry: failures are not cached), each
    # lookup 2 attempts x 300 ms, plus process start: about 1.2 s, well under 3.5 s.
    check(1.1 < elapsed < 3.5, f"slow.test: bounded time ({elapsed:.2f} s for two lookups)")
    check_eq(queries(log, "slow.test", "A"), 4, "slow.test: 2 attempts per lookup, 2 lookups")
    check(counters["timeouts"] >= 4, "slow.test: timeouts counted", counters)

    res, _, _ = resolve(port, "fail.test", "refused.test", extra=["--timeout-ms", "300"])
    check_eq(one(res, "fail.test", 1).get("error"), "dns_servfail", "fail.test: dns_servfail")
    check_eq(one(res, "refused.test", 1).get("error"), "dns_refused", "refused.test: dns_refused")
    check_eq(queries(log, "refused.test", "A"), 2, "refused.test: not retried (once per lookup)")

    # A response with the wrong id (carrying a poison address) is ignored; the right one wins.
    res, counters, _ = resolve(port, "spoofid.test")
    check_eq(one(res, "spoofid.test", 1).get("addresses"), ["192.0.2.30", "2001:db8::30"],
             "spoofid.test: wrong-id response ignored")
    check(counters["responses_ignored"] >= 2, "spoofid.test: ignored responses counted", counters)
    # From another port: dropped (by the connected socket, and checked again in the resolver).
    res, _, _ = resolve(port, "spoofsrc.test")
    check_eq(one(res, "spoofsrc.test", 1).get("addresses"), ["192.0.2.31"],
             "spoofsrc.test: response from another port ignored")

    # Records for other names in the answer are not used.
    res, _, _ = resolve(port, "unrelated.test")
    check_eq(one(res, "unrelated.test", 1).get("addresses"), ["192.0.2.70"],
             "unrelated.test: bank.test record ignored")

    # TC=1: retried over TCP for the full answer; without TCP, the truncated answer's address.
    res, counters, _ = resolve(port, "big.test")
    check_eq(one(res, "big.test", 1).get("addresses"), ["192.0.2.51", "192.0.2.52", "192.0.2.53"],
             "big.test: full answer over TCP")
    check(queries(log, "big.test", "A", "tcp") == 1 and counters["tcp_queries"] >= 1,
          "big.test: one TCP query", counters)
    res, _, _ = resolve(port, "bignotcp.test", extra=["--timeout-ms", "500"])
    check_eq(one(res, "bignotcp.test", 1).get("addresses"), ["192.0.2.61"],
             "bignotcp.test: TCP failed, truncated answer's address used")

    # Five concurrent lookups of one name: one query per family, four waiters.
    res, counters, _ = resolve(port, "coalesce.test", extra=["--concurrent", "5"])
    firsts = res.get(("coalesce.test", 1), [])
    check(len(firsts) == 5 and all(r.get("addresses") == ["192.0.2.80"] for r in firsts),
          "coalesce.test: five results", firsts)
    check_eq((counters["queries_sent"], counters["coalesced"]), (2, 4),
             "coalesce.test: one A and one AAAA query, four coalesced")

    # A dead nameserver first: its ICMP port unreachable moves on to the live one at once.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    start = time.monotonic()
    r = harness.run([TOOL, "--nameserver", f"127.0.0.1:{dead}", "--nameserver",
                     f"127.0.0.1:{port}", "--timeout-ms", "2000", "v4only.test"], timeout=30)
    elapsed = time.monotonic() - start
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    check_eq(lines[0].get("addresses") if lines else None, ["192.0.2.40"],
             "failover: a dead first nameserver, answer from the second")
    check(elapsed < 1.5, f"failover without waiting for the 2 s timeout ({elapsed:.2f} s)")
    only_dead = harness.run([TOOL, "--nameserver", f"127.0.0.1:{dead}", "--timeout-ms", "2000",
                             "v4only.test"], timeout=30)
    lines = [json.loads(line) for line in only_dead.stdout.splitlines()]
    check_eq(lines[0].get("error") if lines else None, "dns_unreachable",
             "a dead nameserver: dns_unreachable, not a timeout")

    # Overrides and the hosts file come first and never reach DNS.
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        f.write("# comment\n127.0.0.1 localhost\n::1 localhost ip6-localhost\n"
                "192.0.2.99 www.test  # shadows DNS\nfe80::1%lo bad.test\n")
    res, counters, _ = resolve(port, "localhost", "www.test", "over.test",
                               extra=["--hosts-file", hosts, "--override",
                                      "over.test=192.0.2.98", "--override", "www.test=192.0.2.97"])
    check_eq((one(res, "localhost", 1).get("addresses"), one(res, "localhost", 1).get("source")),
             (["127.0.0.1", "::1"], "hosts"), "localhost from the hosts file, both families")
    check_eq((one(res, "www.test", 1).get("addresses"), one(res, "www.test", 1).get("source")),
             (["192.0.2.97"], "override"), "an override wins over the hosts file and DNS")
    check_eq(one(res, "over.test", 2).get("source"), "override", "overrides never expire")
    check_eq(counters["queries_sent"], 0, "static answers send no query")

    harness.done()


if __name__ == "__main__":
    main()
