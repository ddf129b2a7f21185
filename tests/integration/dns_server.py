#!/usr/bin/env python3
"""A tiny authoritative DNS server for tests (Python 3 stdlib only), on 127.0.0.1, UDP and TCP
on the same port. It answers A and AAAA from a JSON zone and misbehaves on request, per name.

    dns_server.py --zone ZONE.json [--port N] [--log FILE] [--negative-ttl S]

ZONE.json maps a name to its data and mode:
    {"www.test":   {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"], "ttl": 300},
     "alias.test": {"CNAME": "www.test", "ttl": 60},
     "slow.test":  {"mode": "slow"}}

Modes (default "normal"):
    normal            the records; NODATA (with SOA) when the type has none
    slow              never answers
    delay             answers after "delay_ms" (default 300) milliseconds
    servfail          RCODE SERVFAIL
    refused           RCODE REFUSED
    wrong-id-first    first a response with the wrong id and a poison address (203.0.113.66),
                      then the right one
    wrong-source-first  the same poison, but from another port first, then the right one
    truncated         UDP: TC=1 with only the first address; TCP: the full answer
    truncated-no-tcp  UDP: TC=1 with only the first address; TCP: closed without an answer
    unrelated         the answer plus an A record for bank.test (a poisoning attempt)
Names not in the zone get NXDOMAIN with the zone's SOA (MINIMUM = --negative-ttl).

Prints "PORT <n>" on stdout once both sockets are bound. With --log, appends one line per query
received: "<udp|tcp> <TYPE> <name>", so tests can count queries.
"""
import argparse
import ipaddress
import json
import socket
import struct
import sys
import threading

TYPE_A, TYPE_CNAME, TYPE_SOA, TYPE_AAAA, TYPE_OPT = 1, 5, 6, 28, 41
TYPE_NAMES = {TYPE_A: "A", TYPE_AAAA: "AAAA"}
POISON_V4 = "203.0.113.66"
POISON_V6 = "2001:db8::66"
SOA_OWNER = "test"


def encode_name(name):
    out = b""
    for label in [l for l in name.rstrip(".").split(".") if l]:
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def read_name(data, pos):
    """Reads an uncompressed name (queries are never compressed)."""
    labels = []
    while True:
        n = data[pos]
        pos += 1
        if n == 0:
            return ".".join(labels), pos
        if n & 0xC0:
            raise ValueError("compressed name in a query")
        labels.append(data[pos:pos + n].decode("ascii"))
        pos += n


def rr(owner, rtype, ttl, rdata):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


class Server:
    def __init__(self, zone, negative_ttl, log_path):
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.negative_ttl = negative_ttl
        self.log_path = log_path
        self.lock = threading.Lock()

    def log(self, transport, qtype, name):
        if not self.log_path:
            return
        with self.lock, open(self.log_path, "a") as f:
            f.write(f"{transport} {TYPE_NAMES.get(qtype, qtype)} {name}\n")

    def soa(self):
        rdata = encode_name("ns." + SOA_OWNER) + encode_name("hostmaster." + SOA_OWNER)
        rdata += struct.pack(">IIIII", 1, 7200, 900, 1209600, self.negative_ttl)
        return rr(encode_name(SOA_OWNER), TYPE_SOA, 300, rdata)

    def address_records(self, owner_bytes, entry, qtype, limit=None):
        key = "A" if qtype == TYPE_A else "AAAA"
        records = []
        for text in entry.get(key, [])[:limit]:
            rdata = ipaddress.ip_address(text).packed
            records.append(rr(owner_bytes, qtype, entry.get("ttl", 300), rdata))
        return records

    def respond(self, query, transport=None, wrong_id=False, poison=False, truncate=False):
        """Returns (response bytes, mode, zone entry); logs the query when `transport` is set."""
        qid, flags = struct.unpack(">HH", query[:4])
        name, pos = read_name(query, 12)
        qtype, _qclass = struct.unpack(">HH", query[pos:pos + 4])
        question = query[12:pos + 4]
        name = name.lower()
        if transport:
            self.log(transport, qtype, name)
        entry = self.zone.get(name)
        mode = entry.get("mode", "normal") if entry else "normal"
        rcode = 0
        answers, authority = [], []
        tc = 0
        if entry is None:
            rcode = 3
            authority.append(self.soa())
        elif mode == "servfail":
            rcode = 2
        elif mode == "refused":
            rcode = 5
        else:
            owner = b"\xc0\x0c"  # pointer to the question name
            current = entry
            hops = 0
            while "CNAME" in current and hops < 16:
                target = current["CNAME"]
                answers.append(rr(owner, TYPE_CNAME, current.get("ttl", 300), encode_name(target)))
                owner = encode_name(target)
                current = self.zone.get(target.lower().rstrip("."), {})
                hops += 1
            limit = None
            if truncate:
                limit, tc = 1, 1
            answers += self.address_records(owner, current, qtype, limit)
            if poison:
                bad = POISON_V4 if qtype == TYPE_A else POISON_V6
                answers = [rr(b"\xc0\x0c", qtype, 86400, ipaddress.ip_address(bad).packed)]
            if mode == "unrelated":
                answers.insert(0, rr(encode_name("bank.test"), TYPE_A, 86400,
                                     ipaddress.ip_address("6.6.6.6").packed))
            if not answers:
                authority.append(self.soa())  # NODATA
        out_flags = 0x8400 | (flags & 0x0100) | 0x0080 | (tc << 9) | rcode  # QR AA RD RA TC
        header = struct.pack(">HHHHHH", qid ^ 0x5A5A if wrong_id else qid, out_flags, 1,
                             len(answers), len(authority), 0)
        return header + question + b"".join(answers) + b"".join(authority), mode, entry

    def serve_udp(self, sock):
        while True:
            data, peer = sock.recvfrom(4096)
            try:
                self.handle_udp(sock, data, peer)
            except (ValueError, IndexError, struct.error) as e:
                print(f"dns_server: bad query from {peer}: {e}", file=sys.stderr)

    def handle_udp(self, sock, data, peer):
        response, mode, entry = self.respond(data, "udp")
        if mode == "slow":
            return
        if mode == "delay":
            delay = (entry or {}).get("delay_ms", 300) / 1000.0
            threading.Timer(delay, lambda: sock.sendto(response, peer)).start()
            return
        if mode in ("wrong-id-first", "wrong-source-first"):
            poison, _, _ = self.respond(data, wrong_id=(mode == "wrong-id-first"),
                                        poison=True)
            if mode == "wrong-source-first":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                    other.bind(("127.0.0.1", 0))
                    other.sendto(poison, peer)
            else:
                sock.sendto(poison, peer)
        if mode in ("truncated", "truncated-no-tcp"):
            response, _, _ = self.respond(data, truncate=True)
        sock.sendto(response, peer)

    def serve_tcp(self, listener):
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=self.handle_tcp, args=(conn,), daemon=True).start()

    def handle_tcp(self, conn):
        with conn:
            try:
                length = struct.unpack(">H", recv_exact(conn, 2))[0]
                query = recv_exact(conn, length)
                response, mode, _ = self.respond(query, "tcp")
                if mode in ("slow", "truncated-no-tcp"):
                    return
                conn.sendall(struct.pack(">H", len(response)) + response)
            except (ConnectionError, ValueError, IndexError, struct.error):
                pass


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def bind_pair(port):
    """UDP and TCP sockets on the same port of 127.0.0.1 (port 0: any free one)."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", port))
        chosen = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", chosen))
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        tcp.listen(64)
        return udp, tcp, chosen
    raise RuntimeError("no port free for both UDP and TCP")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log")
    parser.add_argument("--negative-ttl", type=int, default=60)
    args = parser.parse_args()
    with open(args.zone) as f:
        zone = json.load(f)
    server = Server(zone, args.negative_ttl, args.log)
    udp, tcp, port = bind_pair(args.port)
    threading.Thread(target=server.serve_tcp, args=(tcp,), daemon=True).start()
    print(f"PORT {port}", flush=True)
    server.serve_udp(udp)


if __name__ == "__main__":
    main()
