#!/usr/bin/env python3
# UDP datagrams with or without DF, as an application sets them (IP_MTU_DISCOVER), for the path-MTU
# end-to-end test: does a sender with DF hear "fragmentation needed", do datagrams without DF
# arrive whole? Node's dgram cannot set DF; Python's standard library can. IPv6 too (a HOST with
# a colon): "df" is IPV6_MTU_DISCOVER, and "fragmentation needed" is a Packet Too Big.
#
#   udp-probe.py send HOST PORT SIZE COUNT df|nodf [INTERVAL]
#       Sends COUNT datagrams of SIZE bytes (each starts with its number, then a pattern) on a
#       connected socket. Prints {"sent": N, "emsgsize": M, "mtu": PATH_MTU}: M sends refused with
#       EMSGSIZE (the kernel heard "fragmentation needed"), PATH_MTU the socket's IP_MTU at the end.
#   udp-probe.py recv PORT SIZE COUNT SECONDS [BIND]
#       Prints {"event": "listening"}, then, after COUNT good datagrams or SECONDS,
#       {"received": N, "good": G}: G datagrams of SIZE bytes whose content is intact. BIND is
#       0.0.0.0 by default; :: for IPv6.
import errno
import json
import socket
import sys
import time

IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DONT = getattr(socket, "IP_PMTUDISC_DONT", 0)
IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)
IP_MTU = getattr(socket, "IP_MTU", 14)
IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
IPV6_MTU = getattr(socket, "IPV6_MTU", 24)


def payload(n: int, size: int) -> bytes:
    head = n.to_bytes(4, "big")
    body = bytes((n * 7 + i * 13) & 0xFF for i in range(size - 4))
    return head + body


def send(host: str, port: int, size: int, count: int, df: bool, interval: float) -> dict:
    v6 = ":" in host
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    level = socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP
    # The IPv6 options take the same values (IPV6_PMTUDISC_DO 2, IPV6_PMTUDISC_DONT 0).
    s.setsockopt(level, IPV6_MTU_DISCOVER if v6 else IP_MTU_DISCOVER, IP_PMTUDISC_DO if df else IP_PMTUDISC_DONT)
    s.connect((host, port))
    # Made before the first send, so that with INTERVAL 0 the datagrams leave back to back (a
    # stream of small packets, as the gateway's hold is tested with).
    payloads = [payload(n, size) for n in range(count)]
    sent = refused = 0
    for d in payloads:
        try:
            s.send(d)
            sent += 1
        except OSError as e:
            if e.errno != errno.EMSGSIZE:
                raise
            refused += 1
        if interval > 0:
            time.sleep(interval)
    return {"sent": sent, "emsgsize": refused, "mtu": s.getsockopt(level, IPV6_MTU if v6 else IP_MTU)}


def recv(port: int, size: int, count: int, seconds: float, bind: str) -> dict:
    s = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind, port))
    s.settimeout(0.2)
    print(json.dumps({"event": "listening"}), flush=True)
    received = good = 0
    end = time.time() + seconds
    while time.time() < end and good < count:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        received += 1
        if len(d) == size and d == payload(int.from_bytes(d[:4], "big"), size):
            good += 1
    return {"received": received, "good": good}


def main() -> int:
    a = sys.argv[1:]
    if len(a) >= 6 and a[0] == "send":
        out = send(a[1], int(a[2]), int(a[3]), int(a[4]), a[5] == "df", float(a[6]) if len(a) > 6 else 0.3)
    elif len(a) in (5, 6) and a[0] == "recv":
        out = recv(int(a[1]), int(a[2]), int(a[3]), float(a[4]), a[5] if len(a) == 6 else "0.0.0.0")
    else:
        print("usage: udp-probe.py send HOST PORT SIZE COUNT df|nodf [INTERVAL] | recv PORT SIZE COUNT SECONDS [BIND]", file=sys.stderr)
        return 2
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
