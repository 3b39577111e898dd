#!/usr/bin/env python3
# Sends prepared IPv4 or IPv6 packets from a test namespace through a raw socket (IP_HDRINCL; for
# IPv6, IPPROTO_RAW implies the header is included), so the
# end-to-end tests can put forged, replayed and garbage packets on the WAN with any source
# address. Node has no raw sockets; Python's standard library does, and it is on every machine
# that builds the native addon (node-gyp needs it).
#
#   inject.py FILE [--seconds S]
# FILE holds packets as [2-byte big-endian length][IPv4 or IPv6 packet]... . Without --seconds every
# packet is sent once, in order; with it the list is sent round and round for S seconds, as fast
# as the socket takes them. Prints one JSON line: {"sent": N, "failed": M, "seconds": T}.
import json
import socket
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__ or "usage: inject.py FILE [--seconds S]", file=sys.stderr)
        return 2
    seconds = None
    if "--seconds" in args:
        seconds = float(args[args.index("--seconds") + 1])
    data = open(args[0], "rb").read()
    packets = []
    off = 0
    while off + 2 <= len(data):
        n = int.from_bytes(data[off : off + 2], "big")
        pkt = data[off + 2 : off + 2 + n]
        off += 2 + n
        if pkt[:1] and pkt[0] >> 4 == 6 and len(pkt) >= 40:
            packets.append((pkt, socket.inet_ntop(socket.AF_INET6, pkt[24:40])))
        else:
            packets.append((pkt, socket.inet_ntoa(pkt[16:20])))
    if not packets:
        print("inject.py: no packets in " + args[0], file=sys.stderr)
        return 2
    sock4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock6 = None
    if any(":" in dst for _, dst in packets):
        sock6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = failed = 0
    start = time.monotonic()
    if seconds is None:
        for pkt, dst in packets:
            try:
                (sock6 if ":" in dst else sock4).sendto(pkt, (dst, 0))
                sent += 1
            except OSError:
                failed += 1
    else:
        end = start + seconds
        while time.monotonic() < end:
            for pkt, dst in packets:
                try:
                    (sock6 if ":" in dst else sock4).sendto(pkt, (dst, 0))
                    sent += 1
                except OSError:  # ENOBUFS when the queue is full: counted, not fatal
                    failed += 1
    print(json.dumps({"sent": sent, "failed": failed, "seconds": round(time.monotonic() - start, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
