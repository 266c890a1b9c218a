#!/usr/bin/env python3
"""UDP helpers for the test network (stdlib only, bounded in count and time).

  testnet-udp.py echo NAME ADDR PORT     answer every datagram with b"NAME:" + datagram
  testnet-udp.py client VIP PORT N       send N datagrams, each from a fresh socket (a fresh
                                         source port: a new connection for the director), wait
                                         at most 2 s for each answer; print "NAME COUNT" lines and
                                         "failed COUNT"; exit 1 when any failed
"""
import collections
import socket
import sys


def echo(name, addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    prefix = name.encode() + b":"
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(prefix + data, peer)


def client(vip, port, n):
    hits = collections.Counter()
    failed = 0
    for i in range(int(n)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2.0)
        payload = b"ping %d" % i
        try:
            s.sendto(payload, (vip, int(port)))
            data, _ = s.recvfrom(2048)
            name, _, rest = data.partition(b":")
            if rest != payload:
                failed += 1
            else:
                hits[name.decode()] += 1
        except OSError:
            failed += 1
        finally:
            s.close()
    for name in sorted(hits):
        print(name, hits[name])
    print("failed", failed)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    {"echo": echo, "client": client}[sys.argv[1]](*sys.argv[2:])
