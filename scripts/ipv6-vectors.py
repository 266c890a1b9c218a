#!/usr/bin/env python3
"""Independent IPv6 frames for the tests of dataplane/src/wire and dataplane/src/l3.

Built with `struct` and `socket.inet_pton` only, with its own RFC 1071 checksum over the RFC 8200
pseudo header, so the Rust code under test is checked against bytes it did not produce. Prints
the Rust module the tests include:  python3 scripts/ipv6-vectors.py > \
    dataplane/src/wire/fixtures_v6.rs
"""
import socket
import struct

PEER_MAC = bytes.fromhex("525400123456")
OUR_MAC = bytes.fromhex("020000000001")
PEER = "2001:2::2"
OUR = "2001:2::1"


def a6(s):
    return socket.inet_pton(socket.AF_INET6, s)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = 0
    for (w,) in struct.iter_unpack("!H", data):
        s += w
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def l4sum(src, dst, nh, seg):
    pseudo = a6(src) + a6(dst) + struct.pack("!I3xB", len(seg), nh)
    return csum(pseudo + seg)


def ipv6(src, dst, nh, payload, hop=64):
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, hop) + a6(src) + a6(dst) + payload


def eth(dst, src, payload):
    return dst + src + struct.pack("!H", 0x86DD) + payload


def icmp6(src, dst, typ, code, body):
    m = struct.pack("!BBH", typ, code, 0) + body
    c = l4sum(src, dst, 58, m)
    return m[:2] + struct.pack("!H", c) + m[4:]


def solicited(target):
    b = a6(target)
    return socket.inet_ntop(socket.AF_INET6, a6("ff02::1:ff00:0")[:13] + b[13:])


def echo_request():
    body = struct.pack("!HH", 0x1234, 1) + bytes(range(0x10, 0x48))
    m = icmp6(PEER, OUR, 128, 0, body)
    return eth(OUR_MAC, PEER_MAC, ipv6(PEER, OUR, 58, m))


def neighbour_solicitation():
    dst = solicited(OUR)
    body = b"\0\0\0\0" + a6(OUR) + bytes([1, 1]) + PEER_MAC
    m = icmp6(PEER, dst, 135, 0, body)
    mac = bytes([0x33, 0x33]) + a6(dst)[12:]
    return eth(mac, PEER_MAC, ipv6(PEER, dst, 58, m, hop=255))


def neighbour_advertisement():
    flags = 0x60000000  # S and O
    body = struct.pack("!I", flags) + a6(OUR) + bytes([2, 1]) + OUR_MAC
    m = icmp6(OUR, PEER, 136, 0, body)
    return eth(PEER_MAC, OUR_MAC, ipv6(OUR, PEER, 58, m, hop=255))


def dad_solicitation():
    dst = solicited(OUR)
    body = b"\0\0\0\0" + a6(OUR)
    m = icmp6("::", dst, 135, 0, body)
    mac = bytes([0x33, 0x33]) + a6(dst)[12:]
    return eth(mac, PEER_MAC, ipv6("::", dst, 58, m, hop=255))


def udp_with_ext_headers():
    data = b"hello rvs\n"
    udp = struct.pack("!HHHH", 5353, 53, 8 + len(data), 0) + data
    c = l4sum(PEER, OUR, 17, udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    # Destination options (next UDP): 8 bytes, a PadN option of 4 bytes of padding.
    dopt = bytes([17, 0, 1, 4, 0, 0, 0, 0])
    # Atomic fragment header (offset 0, M clear, RFC 6946), next: destination options.
    frag = struct.pack("!BBHI", 60, 0, 0, 0xCAFEF00D)
    # Hop-by-hop: 8 bytes, Router Alert (type 5, length 2, value 0) and a PadN of 0 data bytes.
    hbh = bytes([44, 0, 5, 2, 0, 0, 1, 0])
    return ipv6(PEER, OUR, 0, hbh + frag + dopt + udp)


def rust(name, doc, b):
    out = ["/// " + line for line in doc.split("\n")]
    out.append("pub const %s: [u8; %d] = [" % (name, len(b)))
    for i in range(0, len(b), 16):
        out.append("    " + " ".join("0x%02x," % x for x in b[i:i + 16]))
    out.append("];")
    return "\n".join(out)


def main():
    print("//! IPv6 frames built by `scripts/ipv6-vectors.py` (Python `struct` and `socket` only, its own")
    print("//! RFC 1071 checksum over the RFC 8200 pseudo header): an independent oracle for the v6 tests.")
    print("//! Regenerate with `python3 scripts/ipv6-vectors.py > dataplane/src/wire/fixtures_v6.rs`.")
    print()
    print(rust("ICMPV6_ECHO", "Ethernet + IPv6 + ICMPv6 echo request 2001:2::2 -> 2001:2::1, id 0x1234, seq 1, 56 data\nbytes 0x10..0x47, hop limit 64.", echo_request()))
    print()
    print(rust("NS", "Ethernet + IPv6 + Neighbour Solicitation from 2001:2::2 (52:54:00:12:34:56) for 2001:2::1, to\nits solicited-node group ff02::1:ff00:1 (33:33:ff:00:00:01), hop limit 255, SLLA option.", neighbour_solicitation()))
    print()
    print(rust("NA", "Ethernet + IPv6 + solicited Neighbour Advertisement (S and O) from 2001:2::1\n(02:00:00:00:00:01) to 2001:2::2, hop limit 255, TLLA option.", neighbour_advertisement()))
    print()
    print(rust("DAD_NS", "Ethernet + IPv6 + duplicate address detection NS from :: for 2001:2::1, to ff02::1:ff00:1,\nno option.", dad_solicitation()))
    print()
    print(rust("IPV6_UDP_EXT", "IPv6 (no Ethernet) 2001:2::2:5353 -> 2001:2::1:53, hop-by-hop (router alert), an atomic\nfragment header (id 0xcafef00d), destination options (PadN), UDP \"hello rvs\\n\".", udp_with_ext_headers()))


main()
