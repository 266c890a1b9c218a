#!/usr/bin/env python3
"""A TUN-mode real server's decapsulator in user space (stdlib only; the kernel here has no ipip
or ip6_tunnel module): read IPv4-in-IPv4 packets (protocol 4) and IPv6-in-IPv6 packets (next
header 41) from raw sockets and write the inner packet to a tun device that holds the VIPs, so
the kernel receives it as if it had arrived directly.

  testnet-ipip.py TUNDEV [6]      with "6", IPv6-in-IPv6 is taken as well (dual-stack RS)

An IPv4 raw socket hands over the outer IPv4 header with the payload; an IPv6 raw socket hands
over the payload only (the outer IPv6 header is not included), which is the inner packet.
"""
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main(dev, v6=""):
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    socks = [raw4]
    if v6 == "6":
        socks.append(socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41))
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select(socks, [], [])
        for s in readable:
            pkt = s.recv(65535)
            if s is raw4:
                ihl = (pkt[0] & 0x0F) * 4
                inner = pkt[ihl:]
                if len(inner) >= 20 and inner[0] >> 4 == 4:
                    os.write(tun, inner)
            elif len(pkt) >= 40 and pkt[0] >> 4 == 6:
                os.write(tun, pkt)


if __name__ == "__main__":
    main(*sys.argv[1:])
