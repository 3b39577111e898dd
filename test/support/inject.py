#!/usr/bin/env python3
# Sends prepared IPv4 packets from a test namespace through a raw socket (IP_HDRINCL), so the
# end-to-end tests can put forged, replayed and garbage packets on the WAN with any source
# address. Node has no raw sockets; Python's standard library does, and it is on every machine
# that builds the native addon (node-gyp needs it).
#
#   inject.py FILE [--seconds S]
# FILE holds packets as [2-byte big-endian length][IPv4 packet]... . Without --seconds every
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
        packets.append((pkt, socket.inet_ntoa(pkt[16:20])))
    if not packets:
        print("inject.py: no packets in " + args[0], file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = failed = 0
    start = time.monotonic()
    if seconds is None:
        for pkt, dst in packets:
            try:
                sock.sendto(pkt, (dst, 0))
                sent += 1
            except OSError:
                failed += 1
    else:
        end = start + seconds
        while time.monotonic() < end:
            for pkt, dst in packets:
                try:
                    sock.sendto(pkt, (dst, 0))
                    sent += 1
                except OSError:  # ENOBUFS when the queue is full: counted, not fatal
                    failed += 1
    print(json.dumps({"sent": sent, "failed": failed, "seconds": round(time.monotonic() - start, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
