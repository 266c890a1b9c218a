#!/usr/bin/env python3
"""Independent vectors for the IPv6 keys of rvs's hashing schedulers (dataplane/src/sched).

Computed here from IPVS's definitions, without rvs's code: an IPv6 address is folded into 32 bits
as IPVS does (`addr->ip6[0] ^ addr->ip6[1] ^ addr->ip6[2] ^ addr->ip6[3]`, then `ntohl`: the
XOR of the four big-endian words), then hashed as for IPv4:

- sh  (ip_vs_sh.c):    (offset + hash_32(port + fold, 8)) & 255
- dh  (ip_vs_dh.c):    hash_32(fold, 8)
- lblc, lblcr:         hash_32(fold, 10)    (IP_VS_LBLC_TAB_BITS = IP_VS_LBLCR_TAB_BITS = 10)
- mh  (ip_vs_mh.c):    hsiphash(u32 offset + port + fold, key) with IPVS's two fixed keys

hash_32 is include/linux/hash.h's (multiply by 0x61C88647, keep the top bits); hsiphash of a u32
on a 64-bit kernel is SipHash-1-3 with 64-bit key words over the value's 4 little-endian bytes,
truncated to 32 bits. This script's SipHash is checked against the SipHash paper's vectors (as
SipHash-2-4) before use. Regenerate the Rust file the tests include with:

    python3 scripts/ipvs-v6-hash-vectors.py > dataplane/src/sched/vectors_v6.rs
"""
import ipaddress
import random
import struct

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & M64


def siphash(c, d, k0, k1, msg):
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def rnd():
        v[0] = (v[0] + v[1]) & M64; v[1] = rotl(v[1], 13) ^ v[0]; v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & M64; v[3] = rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & M64; v[3] = rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & M64; v[1] = rotl(v[1], 17) ^ v[2]; v[2] = rotl(v[2], 32)

    full = len(msg) - len(msg) % 8
    for i in range(0, full, 8):
        m = struct.unpack("<Q", msg[i:i + 8])[0]
        v[3] ^= m
        for _ in range(c):
            rnd()
        v[0] ^= m
    b = (len(msg) & 0xFF) << 56
    for i, byte in enumerate(msg[full:]):
        b |= byte << (8 * i)
    v[3] ^= b
    for _ in range(c):
        rnd()
    v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(d):
        rnd()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


# The SipHash paper's 64-bit vectors (key 00..0f, messages 00.., lengths 0..5).
K0 = struct.unpack("<Q", bytes(range(8)))[0]
K1 = struct.unpack("<Q", bytes(range(8, 16)))[0]
for n, want in enumerate([0x726FDB47DD0E0E31, 0x74F839C593DC67FD, 0x0D6C8009D9A94F5A,
                          0x85676696D7FB7E2D, 0xCF2794E0277187B7, 0x18765564CD99A68D]):
    assert siphash(2, 4, K0, K1, bytes(range(n))) == want, n


def hsiphash_u32(key, value):
    return siphash(1, 3, key, key, struct.pack("<I", value & M32)) & M32


def hash_32(value, bits):
    return ((value * 0x61C88647) & M32) >> (32 - bits)


def fold(addr):
    w = struct.unpack(">4I", ipaddress.IPv6Address(addr).packed)
    return w[0] ^ w[1] ^ w[2] ^ w[3]


MH_KEY1 = 2654435761
MH_KEY2 = 2654446892

FIXED = [
    ("2001:2::2", 40000, 0),
    ("2001:2::2", 0, 0),
    ("2001:2::100", 80, 3),
    ("::", 0, 0),
    ("::1", 65535, 255),
    ("::ffff:198.18.0.2", 1024, 17),
    ("fe80::5054:ff:fe12:3456", 443, 200),
    ("ff02::1:ff00:1", 53, 1),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 128),
    # Words that cancel in the fold: the same key as ::.
    ("1:2:3:4:1:2:3:4", 0, 0),
]

rng = random.Random(14)
cases = list(FIXED)
for _ in range(40):
    addr = str(ipaddress.IPv6Address(rng.getrandbits(128)))
    cases.append((addr, rng.getrandbits(16), rng.randrange(256)))

print("//! IPv6 scheduler-key vectors written by `scripts/ipvs-v6-hash-vectors.py` (Python only, from")
print("//! IPVS's definitions, its SipHash checked against the paper's vectors): an independent oracle")
print("//! for the `*6` key functions of sh, dh, mh, lblc and lblcr. Regenerate with")
print("//! `python3 scripts/ipvs-v6-hash-vectors.py > dataplane/src/sched/vectors_v6.rs`.")
print()
print("/// One address, port and probe offset, and what IPVS computes from them.")
print("pub struct V6Vector {")
print("    pub addr: &'static str,")
print("    pub port: u16,")
print("    pub offset: u32,")
print("    /// The four 32-bit words XORed.")
print("    pub fold: u32,")
print("    /// `ip_vs_sh_hashkey(AF_INET6, addr, port, 0)` and with `offset`.")
print("    pub sh: usize,")
print("    pub sh_offset: usize,")
print("    /// `ip_vs_dh_hashkey(AF_INET6, addr)`.")
print("    pub dh: usize,")
print("    /// `ip_vs_lblc_hashkey` / `ip_vs_lblcr_hashkey` for AF_INET6.")
print("    pub lbl: usize,")
print("    /// `ip_vs_mh_hashkey(AF_INET6, addr, port, hash1, offset)` and with `hash2`, offset 0.")
print("    pub mh1: u32,")
print("    pub mh2: u32,")
print("}")
print()
print(f"pub const V6_VECTORS: [V6Vector; {len(cases)}] = [")
for addr, port, offset in cases:
    f = fold(addr)
    sh = hash_32((port + f) & M32, 8) & 255
    sh_off = (offset + hash_32((port + f) & M32, 8)) & 255
    dh = hash_32(f, 8)
    lbl = hash_32(f, 10)
    mh1 = hsiphash_u32(MH_KEY1, offset + port + f)
    mh2 = hsiphash_u32(MH_KEY2, port + f)
    print("    V6Vector {")
    print(f'        addr: "{addr}",')
    print(f"        port: {port},")
    print(f"        offset: {offset},")
    print(f"        fold: 0x{f:08x},")
    print(f"        sh: {sh},")
    print(f"        sh_offset: {sh_off},")
    print(f"        dh: {dh},")
    print(f"        lbl: {lbl},")
    print(f"        mh1: 0x{mh1:08x},")
    print(f"        mh2: 0x{mh2:08x},")
    print("    },")
print("];")
