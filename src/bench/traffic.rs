//! The traffic generator: pre-built 64-byte template frames (60 bytes in the mbuf plus the
//! 4-byte FCS a NIC would add) copied into fresh mbufs, with the client address and port patched
//! per flow and both checksums completed from precomputed partial sums. Per packet that is one
//! 60-byte copy, three small stores and two checksum folds: the same cost for every case, and
//! measured on its own ([`crate::bench::Stage::Generate`]).
//!
//! Flow `i` is client `10.0.0.0 + (i >> 15)`, port `1024 + (i & 0x7fff)`: distinct for every
//! `i < 2^39`, so new-connection runs never reuse a tuple. Over IPv6 (74-byte frames, no IP
//! checksum) the same 32 bits are the low half of the client address, under a fixed /96 prefix
//! ([`FrameSpec::client_prefix`], `2001:2::/96` for clients): the same per-packet work.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::wire::MacAddr;
use dataplane::wire::checksum;
use dpdk_bindings::{MbufBatch, Mempool};

/// Bytes of a template frame in the mbuf (64 on the wire with the FCS).
pub const FRAME_LEN: usize = 60;
/// Bytes of an IPv6 template frame in the mbuf (Ethernet, IPv6, TCP; 78 on the wire).
pub const FRAME_LEN6: usize = 74;

const IP_CSUM: usize = 24;
const IP_SRC: usize = 26;
const IP_DST: usize = 30;
const L4_SPORT: usize = 34;
const L4_DPORT: usize = 36;
const TCP_CSUM: usize = 50;
const IP6_SRC: usize = 22;
const IP6_DST: usize = 38;
const L4_6: usize = 54;
const TCP6_CSUM: usize = L4_6 + 16;

/// The client address of flow `i` over IPv6: [`client_of`]'s 32 bits under `prefix`'s /96.
pub fn client6_of(prefix: Ipv6Addr, flow: u64) -> (Ipv6Addr, u16) {
    let (ip, port) = client_of(flow);
    (with_low32(prefix, ip), port)
}

/// `prefix` with its low 32 bits replaced by `low`.
pub fn with_low32(prefix: Ipv6Addr, low: u32) -> Ipv6Addr {
    Ipv6Addr::from((u128::from(prefix) & !0xffff_ffffu128) | u128::from(low))
}

/// The client address and port of flow `i`.
#[inline]
pub fn client_of(flow: u64) -> (u32, u16) {
    (
        0x0a00_0000u32.wrapping_add((flow >> 15) as u32),
        1024 + (flow & 0x7fff) as u16,
    )
}

/// Where the client sits in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIs {
    /// Client to director (the frame's source).
    Src,
    /// Director or server to client (the frame's destination).
    Dst,
}

/// What a template frame carries besides the client side.
#[derive(Debug, Clone, Copy)]
pub struct FrameSpec {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    /// The non-client end of the TCP connection; its family is the frame's.
    pub peer: IpAddr,
    pub peer_port: u16,
    pub client_is: ClientIs,
    pub tcp_flags: u8,
    /// IPv6 frames: the client address's upper 96 bits (its low 32 bits are the flow's or the
    /// endpoint's); unused for IPv4.
    pub client_prefix: Ipv6Addr,
}

/// A frame with its client fields zeroed and the partial checksums over everything else.
#[derive(Debug, Clone)]
pub struct Template {
    frame: [u8; FRAME_LEN6],
    ip_sum: u16,
    l4_sum: u16,
    ip_at: usize,
    port_at: usize,
    /// An IPv6 frame ([`FRAME_LEN6`] bytes, no IP checksum), else IPv4 ([`FRAME_LEN`]).
    v6: bool,
}

impl Template {
    pub fn new(spec: &FrameSpec) -> Template {
        let peer = match spec.peer {
            IpAddr::V4(p) => p,
            IpAddr::V6(p) => return Template::new6(spec, p),
        };
        let mut f = [0u8; FRAME_LEN6];
        f[0..6].copy_from_slice(&spec.eth_dst.0);
        f[6..12].copy_from_slice(&spec.eth_src.0);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        // IPv4: version/IHL, TOS, total length 40, id, DF, TTL 64, TCP.
        f[14..24].copy_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6]);
        let peer = peer.octets();
        let (ip_at, port_at) = match spec.client_is {
            ClientIs::Src => {
                f[IP_DST..IP_DST + 4].copy_from_slice(&peer);
                f[L4_DPORT..L4_DPORT + 2].copy_from_slice(&spec.peer_port.to_be_bytes());
                (IP_SRC, L4_SPORT)
            }
            ClientIs::Dst => {
                f[IP_SRC..IP_SRC + 4].copy_from_slice(&peer);
                f[L4_SPORT..L4_SPORT + 2].copy_from_slice(&spec.peer_port.to_be_bytes());
                (IP_DST, L4_DPORT)
            }
        };
        // TCP: seq, ack, data offset 5, flags, window.
        f[38..42].copy_from_slice(&0x1000_0000u32.to_be_bytes());
        f[42..46].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        f[46] = 0x50;
        f[47] = spec.tcp_flags;
        f[48..50].copy_from_slice(&0xffffu16.to_be_bytes());
        // Partial sums with the client fields and both checksum fields still zero.
        let ip_sum = checksum::sum(&f[14..34]);
        let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        let l4_sum = checksum::add(
            checksum::pseudo_header_v4(src, dst, 6, 20),
            checksum::sum(&f[34..54]),
        );
        Template {
            frame: f,
            ip_sum,
            l4_sum,
            ip_at,
            port_at,
            v6: false,
        }
    }

    /// An IPv6 frame: `client_prefix` (low 32 bits zero) on the client side, `peer` on the
    /// other.
    fn new6(spec: &FrameSpec, peer: Ipv6Addr) -> Template {
        let mut f = [0u8; FRAME_LEN6];
        f[0..6].copy_from_slice(&spec.eth_dst.0);
        f[6..12].copy_from_slice(&spec.eth_src.0);
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        // IPv6: version 6, payload length 20, TCP, hop limit 64.
        f[14..22].copy_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
        let client = with_low32(spec.client_prefix, 0).octets();
        let (src, dst, ip_at, port_at) = match spec.client_is {
            ClientIs::Src => {
                f[L4_6 + 2..L4_6 + 4].copy_from_slice(&spec.peer_port.to_be_bytes());
                (client, peer.octets(), IP6_SRC + 12, L4_6)
            }
            ClientIs::Dst => {
                f[L4_6..L4_6 + 2].copy_from_slice(&spec.peer_port.to_be_bytes());
                (peer.octets(), client, IP6_DST + 12, L4_6 + 2)
            }
        };
        f[IP6_SRC..IP6_SRC + 16].copy_from_slice(&src);
        f[IP6_DST..IP6_DST + 16].copy_from_slice(&dst);
        f[L4_6 + 4..L4_6 + 8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
        f[L4_6 + 8..L4_6 + 12].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        f[L4_6 + 12] = 0x50;
        f[L4_6 + 13] = spec.tcp_flags;
        f[L4_6 + 14..L4_6 + 16].copy_from_slice(&0xffffu16.to_be_bytes());
        let l4_sum = checksum::add(
            checksum::pseudo_header_v6(Ipv6Addr::from(src), Ipv6Addr::from(dst), 6, 20),
            checksum::sum(&f[L4_6..L4_6 + 20]),
        );
        Template {
            frame: f,
            ip_sum: 0,
            l4_sum,
            ip_at,
            port_at,
            v6: true,
        }
    }

    /// Bytes of this template's frames ([`FRAME_LEN`] or [`FRAME_LEN6`]).
    pub fn frame_len(&self) -> usize {
        if self.v6 { FRAME_LEN6 } else { FRAME_LEN }
    }

    /// Whether this is an IPv6 frame.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// Write this template for `flow` into `out` (exactly [`Template::len`] bytes).
    #[inline]
    pub fn write(&self, out: &mut [u8], flow: u64) {
        let (ip, port) = client_of(flow);
        self.write_endpoint(out, ip, port);
    }

    /// Write this template with `ip:port` in the client's place (for FULLNAT replies: the local
    /// address and port the director picked for the connection).
    #[inline]
    pub fn write_endpoint(&self, out: &mut [u8], ip: u32, port: u16) {
        if self.v6 {
            return self.write_endpoint6(out, ip, port);
        }
        out.copy_from_slice(&self.frame[..FRAME_LEN]);
        out[self.ip_at..self.ip_at + 4].copy_from_slice(&ip.to_be_bytes());
        out[self.port_at..self.port_at + 2].copy_from_slice(&port.to_be_bytes());
        let (hi, lo) = ((ip >> 16) as u16, ip as u16);
        let ip_c = !checksum::add(checksum::add(self.ip_sum, hi), lo);
        let l4_c = !checksum::add(checksum::add(checksum::add(self.l4_sum, hi), lo), port);
        out[IP_CSUM..IP_CSUM + 2].copy_from_slice(&ip_c.to_be_bytes());
        out[TCP_CSUM..TCP_CSUM + 2].copy_from_slice(&l4_c.to_be_bytes());
    }

    /// [`Template::write_endpoint`] of an IPv6 frame: `ip` is the client address's low 32 bits.
    #[inline]
    fn write_endpoint6(&self, out: &mut [u8], ip: u32, port: u16) {
        out.copy_from_slice(&self.frame);
        out[self.ip_at..self.ip_at + 4].copy_from_slice(&ip.to_be_bytes());
        out[self.port_at..self.port_at + 2].copy_from_slice(&port.to_be_bytes());
        let (hi, lo) = ((ip >> 16) as u16, ip as u16);
        let l4_c = !checksum::add(checksum::add(checksum::add(self.l4_sum, hi), lo), port);
        out[TCP6_CSUM..TCP6_CSUM + 2].copy_from_slice(&l4_c.to_be_bytes());
    }

    /// The template as a fresh mbuf for `flow`, or `None` when the pool is empty.
    pub fn mbuf(&self, pool: &Mempool, flow: u64) -> Option<dpdk_bindings::Mbuf> {
        let (ip, port) = client_of(flow);
        self.mbuf_endpoint(pool, ip, port)
    }

    /// The template as a fresh mbuf with `ip:port` in the client's place.
    pub fn mbuf_endpoint(&self, pool: &Mempool, ip: u32, port: u16) -> Option<dpdk_bindings::Mbuf> {
        let mut m = pool.alloc()?;
        m.append(self.frame_len()).ok()?;
        self.write_endpoint(m.data_mut(), ip, port);
        Some(m)
    }
}

/// One generated packet's varying part given explicitly: the address and port written in the
/// client's place, and the template to use (8 bytes, streamed from a precomputed sequence).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: u32,
    pub port: u16,
    pub template: u16,
}

/// The endpoint sequence of the flow sequence `idx`: `table[f]` for each flow `f`.
pub fn endpoint_seq(idx: &[u32], table: &[Endpoint]) -> std::sync::Arc<[Endpoint]> {
    idx.iter().map(|&f| table[f as usize]).collect()
}

/// Which flows a burst carries.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Established traffic: flows from a precomputed index sequence (uniform or Zipf), cycled;
    /// flow `i` uses template `i % templates` (one per dest in the reply direction).
    Flows {
        idx: std::sync::Arc<[u32]>,
        pos: usize,
    },
    /// Established traffic to endpoints the director chose (FULLNAT replies to LIP:lport): a
    /// precomputed per-packet sequence, cycled, read in order like `Flows`' indices (no random
    /// table access in the generator).
    Endpoints {
        seq: std::sync::Arc<[Endpoint]>,
        pos: usize,
    },
    /// New connections: packets `3k`, `3k + 1`, `3k + 2` are flow `first + k`'s SYN, ACK and
    /// RST (templates 0, 1, 2): the shortest client-side open and teardown that leaves IPVS's
    /// state machine in CLOSE (a RST in SYN_RECV is ignored by IPVS, as by the kernel).
    NewConns { first: u64, next: u64 },
}

/// Template frames plus the flow pattern: fills bursts of mbufs.
#[derive(Debug, Clone)]
pub struct Gen {
    pub templates: Vec<Template>,
    /// Bytes of every frame (all templates are of one family).
    frame_len: usize,
    pub pattern: Pattern,
    /// Packets generated so far.
    pub packets: u64,
}

impl Gen {
    pub fn new(templates: Vec<Template>, pattern: Pattern) -> Gen {
        assert!(!templates.is_empty());
        let frame_len = templates[0].frame_len();
        assert!(templates.iter().all(|t| t.frame_len() == frame_len));
        Gen {
            frame_len,
            templates,
            pattern,
            packets: 0,
        }
    }

    /// Fill `batch` (which must be empty) with a full burst; false when the pool ran dry.
    #[inline]
    pub fn fill<const N: usize>(&mut self, pool: &Mempool, batch: &mut MbufBatch<N>) -> bool {
        if pool.alloc_bulk(batch, N).is_err() {
            return false;
        }
        let nt = self.templates.len() as u64;
        for m in batch.iter_mut() {
            if m.append(self.frame_len).is_err() {
                continue;
            }
            let (t, flow) = match &mut self.pattern {
                Pattern::Flows { idx, pos } => {
                    let f = u64::from(idx[*pos]);
                    *pos += 1;
                    if *pos == idx.len() {
                        *pos = 0;
                    }
                    ((f % nt) as usize, f)
                }
                Pattern::Endpoints { seq, pos } => {
                    let e = seq[*pos];
                    *pos += 1;
                    if *pos == seq.len() {
                        *pos = 0;
                    }
                    let t = usize::from(e.template) % self.templates.len();
                    self.templates[t].write_endpoint(m.data_mut(), e.ip, e.port);
                    continue;
                }
                Pattern::NewConns { first, next } => {
                    let k = *next;
                    *next += 1;
                    ((k % 3) as usize, *first + k / 3)
                }
            };
            self.templates[t].write(m.data_mut(), flow);
        }
        self.packets += N as u64;
        true
    }
}

/// A small, fast PRNG (xorshift64*), seeded explicitly so every run draws the same flows.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How flows are chosen per packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Uniform,
    /// Zipf over the flows with this exponent (rank 1 = flow 0, the most popular).
    Zipf(f64),
}

impl Dist {
    pub fn name(self) -> String {
        match self {
            Dist::Uniform => "uniform".into(),
            Dist::Zipf(s) => format!("zipf{s}"),
        }
    }
}

/// `len` flow indices in `0..n` drawn from `dist`, scattered by a fixed odd multiplier so that
/// Zipf's popular flows are not the first ones established.
pub fn flow_indices(n: u64, dist: Dist, len: usize, seed: u64) -> std::sync::Arc<[u32]> {
    let mut rng = Rng::new(seed);
    let zipf = match dist {
        Dist::Zipf(s) => Some(Zipf::new(n, s)),
        Dist::Uniform => None,
    };
    (0..len)
        .map(|_| {
            let i = match &zipf {
                Some(z) => (z.sample(&mut rng) - 1).wrapping_mul(0x9e37_79b1) % n,
                None => rng.below(n),
            };
            i as u32
        })
        .collect()
}

/// Zipf sampler over `1..=n` with exponent `s` (rejection-inversion, Hörmann and Derflinger
/// 1996, as in Apache Commons RNG): O(1) per sample without a table of `n` weights.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    sk: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut z = Zipf {
            n: n as f64,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            sk: 0.0,
        };
        z.h_x1 = z.h(1.5) - 1.0;
        z.h_n = z.h(z.n + 0.5);
        z.sk = 2.0 - z.h_inv(z.h(2.5) - (2.0f64).powf(-s));
        z
    }

    fn h(&self, x: f64) -> f64 {
        let lx = x.ln();
        helper2((1.0 - self.s) * lx) * lx
    }

    fn h_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }

    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_n + rng.unit() * (self.h_x1 - self.h_n);
            let x = self.h_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.sk || u >= self.h(k + 0.5) - (-(k.ln() * self.s)).exp() {
                return k as u64;
            }
        }
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(exp(x) - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::{ipv4, ipv6, tcp};

    #[test]
    fn template_checksums_are_complete() {
        for client_is in [ClientIs::Src, ClientIs::Dst] {
            let t = Template::new(&FrameSpec {
                eth_dst: MacAddr([2, 0, 0, 0, 0, 1]),
                eth_src: MacAddr([2, 0, 0, 0, 0, 2]),
                peer: Ipv4Addr::new(198, 18, 0, 100).into(),
                peer_port: 80,
                client_is,
                tcp_flags: 0x10,
                client_prefix: Ipv6Addr::UNSPECIFIED,
            });
            for flow in [0u64, 1, 77_777, 9_999_999, (1 << 39) - 1] {
                let mut f = [0u8; FRAME_LEN];
                t.write(&mut f, flow);
                let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
                assert!(ip.verify_checksum());
                let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
                assert!(seg.verify_checksum(ip.src_addr(), ip.dst_addr()));
                let (cip, cport) = client_of(flow);
                let (a, p) = match client_is {
                    ClientIs::Src => (ip.src_addr(), seg.src_port()),
                    ClientIs::Dst => (ip.dst_addr(), seg.dst_port()),
                };
                assert_eq!((u32::from(a), p), (cip, cport));
            }
        }
    }

    #[test]
    fn endpoint_frames_carry_the_endpoint_with_complete_checksums() {
        let t = Template::new(&FrameSpec {
            eth_dst: MacAddr([2, 0, 0, 0, 0, 1]),
            eth_src: MacAddr([2, 0, 0, 0, 0, 2]),
            peer: Ipv4Addr::new(198, 18, 1, 11).into(),
            peer_port: 80,
            client_is: ClientIs::Dst,
            tcp_flags: 0x10,
            client_prefix: Ipv6Addr::UNSPECIFIED,
        });
        let table = [
            Endpoint {
                ip: u32::from(Ipv4Addr::new(198, 18, 1, 128)),
                port: 1025,
                template: 0,
            },
            Endpoint {
                ip: u32::from(Ipv4Addr::new(198, 18, 1, 191)),
                port: 65535,
                template: 0,
            },
        ];
        let seq = endpoint_seq(&[1, 0, 1], &table);
        assert_eq!(&seq[..], &[table[1], table[0], table[1]]);
        for e in table {
            let mut f = [0u8; FRAME_LEN];
            t.write_endpoint(&mut f, e.ip, e.port);
            let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.verify_checksum());
            let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
            assert!(seg.verify_checksum(ip.src_addr(), ip.dst_addr()));
            assert_eq!((u32::from(ip.dst_addr()), seg.dst_port()), (e.ip, e.port));
            assert_eq!(
                (ip.src_addr(), seg.src_port()),
                (Ipv4Addr::new(198, 18, 1, 11), 80)
            );
        }
    }

    #[test]
    fn ipv6_template_checksums_are_complete() {
        let prefix = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0);
        let peer = Ipv6Addr::new(0x2001, 2, 0, 0xff, 0, 0, 0, 0x100);
        for client_is in [ClientIs::Src, ClientIs::Dst] {
            let t = Template::new(&FrameSpec {
                eth_dst: MacAddr([2, 0, 0, 0, 0, 1]),
                eth_src: MacAddr([2, 0, 0, 0, 0, 2]),
                peer: peer.into(),
                peer_port: 80,
                client_is,
                tcp_flags: 0x10,
                client_prefix: prefix,
            });
            assert_eq!(t.frame_len(), FRAME_LEN6);
            for flow in [0u64, 1, 77_777, 9_999_999, (1 << 39) - 1] {
                let mut f = [0u8; FRAME_LEN6];
                t.write(&mut f, flow);
                assert_eq!(&f[12..14], &[0x86, 0xdd]);
                let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
                let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                assert_eq!(
                    checksum::l4_checksum_v6(src, dst, 6, ip.payload()),
                    0,
                    "flow {flow}"
                );
                let (cip, cport) = client6_of(prefix, flow);
                let (a, p, other) = match client_is {
                    ClientIs::Src => (src, seg.src_port(), dst),
                    ClientIs::Dst => (dst, seg.dst_port(), src),
                };
                assert_eq!((a, p, other), (cip, cport, peer));
            }
        }
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = Zipf::new(1000, 0.99);
        let mut rng = Rng::new(7);
        let mut ones = 0;
        for _ in 0..100_000 {
            let k = z.sample(&mut rng);
            assert!((1..=1000).contains(&k));
            ones += u32::from(k == 1);
        }
        // P(k = 1) = 1 / H(1000, 0.99), about 0.13.
        assert!((10_000..16_000).contains(&ones), "{ones}");
    }
}
