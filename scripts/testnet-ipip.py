#!/usr/bin/env python3
"""A TUN-mode real server's IPIP decapsulator in user space (stdlib only; the kernel here has
no ipip module): read IPIP packets (protocol 4) from a raw socket and write the inner packet to a
tun device that holds the VIP, so the kernel receives it as if it had arrived directly.

  testnet-ipip.py TUNDEV
"""
import fcntl
import os
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main(dev):
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    print("ready", flush=True)
    while True:
        pkt = raw.recv(65535)
        ihl = (pkt[0] & 0x0F) * 4
        inner = pkt[ihl:]
        if len(inner) >= 20 and inner[0] >> 4 == 4:
            os.write(tun, inner)


if __name__ == "__main__":
    main(*sys.argv[1:])
