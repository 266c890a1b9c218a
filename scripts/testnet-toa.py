#!/usr/bin/env python3
"""A FULLNAT real server's view of TOA (stdlib only): capture TCP segments to PORT on IFACE
(IPv4 or IPv6, no extension headers) with an AF_PACKET socket and append, for every one carrying
the TOA option (kind 254; length 8: client port then IPv4 address; length 20: client port then
IPv6 address, the layout for IPv6 clients, also behind NAT64), a line
"SRC:SPORT CLIENT:CLIENT_PORT FLAGS" to OUT, IPv6 addresses in brackets ("[2001:2::2]:PORT").

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
        if kind == 254 and length == 8 and i + 8 <= len(options):
            port = struct.unpack("!H", options[i + 2:i + 4])[0]
            return "%s:%d" % (socket.inet_ntoa(options[i + 4:i + 8]), port)
        if kind == 254 and length == 20 and i + 20 <= len(options):
            port = struct.unpack("!H", options[i + 2:i + 4])[0]
            return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, options[i + 4:i + 20]), port)
        i += length
    return None


def main(iface, port, out):
    port = int(port)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    with open(out, "a", buffering=1) as f:
        while True:
            frame, addr = s.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            ethertype = struct.unpack("!H", frame[12:14])[0]
            ip = frame[14:]
            if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == 6:
                ihl = (ip[0] & 0x0F) * 4
                src_ip = socket.inet_ntoa(ip[12:16])
            elif ethertype == 0x86DD and len(ip) >= 40 and ip[6] == 6:
                ihl = 40
                src_ip = "[%s]" % socket.inet_ntop(socket.AF_INET6, ip[8:24])
            else:
                continue
            tcp = ip[ihl:]
            if len(tcp) < 20 or struct.unpack("!H", tcp[2:4])[0] != port:
                continue
            thl = (tcp[12] >> 4) * 4
            seen = toa(tcp[20:thl])
            if seen:
                src = "%s:%d" % (src_ip, struct.unpack("!H", tcp[0:2])[0])
                f.write("%s %s 0x%02x\n" % (src, seen, tcp[13]))


if __name__ == "__main__":
    main(*sys.argv[1:])
