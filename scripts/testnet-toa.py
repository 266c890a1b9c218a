#!/usr/bin/env python3
"""A FULLNAT real server's view of TOA (stdlib only): capture TCP segments to PORT on IFACE
with an AF_PACKET socket and append, for every one carrying the TOA option (kind 254, length 8:
client port then IPv4 address), a line "SRC:SPORT CLIENT_IP:CLIENT_PORT FLAGS" to OUT.

  testnet-toa.py IFACE PORT OUT
"""
import socket
import struct
import sys


def toa(options):
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options):
            return None
        length = options[i + 1]
        if length < 2:
            return None
        if kind == 254 and length == 8:
            port = struct.unpack("!H", options[i + 2:i + 4])[0]
            return "%s:%d" % (socket.inet_ntoa(options[i + 4:i + 8]), port)
        i += length
    return None


def main(iface, port, out):
    port = int(port)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((iface, 0))
    with open(out, "a", buffering=1) as f:
        while True:
            frame = s.recv(65535)
            ip = frame[14:]
            if len(ip) < 20 or ip[9] != 6:
                continue
            ihl = (ip[0] & 0x0F) * 4
            tcp = ip[ihl:]
            if len(tcp) < 20 or struct.unpack("!H", tcp[2:4])[0] != port:
                continue
            thl = (tcp[12] >> 4) * 4
            seen = toa(tcp[20:thl])
            if seen:
                src = "%s:%d" % (socket.inet_ntoa(ip[12:16]), struct.unpack("!H", tcp[0:2])[0])
                f.write("%s %s 0x%02x\n" % (src, seen, tcp[13]))


if __name__ == "__main__":
    main(*sys.argv[1:])
