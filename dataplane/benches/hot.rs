//! criterion micro-benchmarks of the dataplane's hot functions (issue 7): header parse, checksum
//! update, the NAT rewrite, connection-table lookup and insert, and every implemented
//! scheduler's pick and table build (`update`; for `mh` that is the Maglev table build).
//! `cargo bench -p dataplane --bench hot`; the whole-path numbers come from `rvs-bench`.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dataplane::conn::{ConnKey, ConnState, ConnTable, NewConn};
use dataplane::packet::HeapBuf;
use dataplane::sched::{self, SchedFlags, SchedInput};
use dataplane::service::{
    DestConfig, DestId, ForwardMethod, Protocol, ServiceConfig, ServiceId, ServiceKey, ServiceTable,
};
use dataplane::time::Instant;
use dataplane::wire::{checksum, ethernet, ipv4, tcp};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);

/// A 60-byte Ethernet/IPv4/TCP ACK from `client:port` to VIP:80 with correct checksums.
fn frame(client: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xd0]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xfe]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..24].copy_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6]);
    f[26..30].copy_from_slice(&client.octets());
    f[30..34].copy_from_slice(&VIP.octets());
    f[34..36].copy_from_slice(&port.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x10;
    f[48..50].copy_from_slice(&[0xff, 0xff]);
    let ip_c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip_c.to_be_bytes());
    let l4 = checksum::l4_checksum_v4(client, VIP, 6, &f[34..54]);
    f[50..52].copy_from_slice(&l4.to_be_bytes());
    f
}

fn key(i: u64) -> ConnKey {
    ConnKey::new(
        6,
        Ipv4Addr::from(0x0a00_0000u32 + (i >> 15) as u32),
        1024 + (i & 0x7fff) as u16,
        VIP,
        80,
    )
}

fn new_conn(i: u64) -> NewConn {
    let k = key(i);
    NewConn {
        in_key: k,
        out_key: ConnKey::new(6, RIP, 80, k.src, k.sport),
        service: ServiceId(0),
        dest: DestId(0),
        method: ForwardMethod::Masq,
        state: ConnState::initial(6).expect("tcp"),
        deadline: Instant::from_secs(100),
        template: false,
    }
}

fn parse(c: &mut Criterion) {
    let f = frame(Ipv4Addr::new(10, 0, 0, 1), 1234);
    c.bench_function("parse eth+ipv4+tcp, verify ip checksum", |b| {
        b.iter(|| {
            let f = black_box(&f[..]);
            let eth = ethernet::Frame::new_checked(f).expect("eth");
            let ip = ipv4::Packet::new_checked(&f[ethernet::HEADER_LEN..]).expect("ip");
            let t = tcp::Packet::new_checked(ip.payload()).expect("tcp");
            (
                eth.ethertype(),
                ip.verify_checksum(),
                ip.src_addr(),
                ip.dst_addr(),
                t.src_port(),
                t.dst_port(),
                t.flags(),
            )
        })
    });
    // The worker's parse-once classifier (`dataplane::parse::parse`) on the same IPv4 frame: the
    // IPv4 fast path, which IPv6 support must not slow down.
    let mac = dataplane::wire::MacAddr([2, 0, 0, 0, 0, 0xd0]);
    c.bench_function("parse::parse eth+ipv4+tcp (worker classifier)", |b| {
        b.iter(|| {
            dataplane::parse::parse(
                black_box(&f[..]),
                mac,
                dataplane::parse::RxChecksum::default(),
            )
        })
    });
    c.bench_function("tcp checksum verify (full, 20 B)", |b| {
        let ip = ipv4::Packet::new_checked(&f[ethernet::HEADER_LEN..]).expect("ip");
        let t = tcp::Packet::new_checked(ip.payload()).expect("tcp");
        b.iter(|| black_box(&t).verify_checksum(ip.src_addr(), ip.dst_addr()))
    });
}

fn checksums(c: &mut Criterion) {
    c.bench_function("checksum update_addr + update_u16", |b| {
        b.iter(|| {
            let s = checksum::update_addr(black_box(0x1234), VIP, RIP);
            checksum::update_u16(s, black_box(80), black_box(8080))
        })
    });
    let f = frame(Ipv4Addr::new(10, 0, 0, 1), 1234);
    c.bench_function(
        "xmit::nat::to_dest (DNAT rewrite, incremental checksums)",
        |b| {
            let mut buf = HeapBuf::from_bytes(&f);
            let mut flip = false;
            b.iter(|| {
                flip = !flip;
                let (a, p) = if flip { (RIP, 8080) } else { (VIP, 80) };
                dataplane::xmit::nat::to_dest(black_box(&mut buf), a, p)
            })
        },
    );
}

fn conn_table(c: &mut Criterion) {
    for n in [1_000u64, 1_000_000] {
        let mut t = ConnTable::new(n as usize + 1, 7).expect("table");
        for i in 0..n {
            t.insert(new_conn(i)).expect("insert");
        }
        let mut x = 1u64;
        c.bench_function(&format!("conn lookup hit, {n} conns, random"), |b| {
            b.iter(|| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                t.lookup(black_box(&key((x >> 20) % n)))
            })
        });
        c.bench_function(&format!("conn lookup miss, {n} conns"), |b| {
            b.iter(|| {
                x = x.wrapping_add(1);
                t.lookup(black_box(&key(n + (x & 0xffff))))
            })
        });
        let mut next = n;
        c.bench_function(&format!("conn insert + remove, {n} conns"), |b| {
            b.iter(|| {
                let id = t.insert(new_conn(next)).expect("room for one");
                next += 1;
                t.remove(id)
            })
        });
    }
}

fn schedulers(c: &mut Criterion) {
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport: 80,
    };
    for name in sched::IMPLEMENTED {
        let mut st = ServiceTable::new(1);
        st.add_service(ServiceConfig::new(key, name))
            .expect("service");
        for i in 0..16u8 {
            let mut d = DestConfig::new(Ipv4Addr::new(198, 18, 1, 11 + i), 80, ForwardMethod::Masq);
            d.weight = 1 + u32::from(i % 4);
            st.add_dest(&key, d).expect("dest");
        }
        let snap = st.snapshot();
        let svc = snap.lookup(6, VIP, 80).expect("service in snapshot");
        let dests = svc.dests();
        let mut s = sched::new(name, SchedFlags::NONE).expect("implemented");
        s.update(dests);
        let mut i = 0u64;
        c.bench_function(&format!("sched {name} pick, 16 dests"), |b| {
            b.iter(|| {
                i += 1;
                let k = self::key(i);
                let input = SchedInput {
                    proto: 6,
                    client: k.src.into(),
                    client_port: k.sport,
                    vip: VIP.into(),
                    vport: 80,
                    now: Instant::from_secs(1_000),
                    worker: 0,
                };
                s.schedule(black_box(dests), &input)
            })
        });
        c.bench_function(
            &format!("sched {name} update (table build), 16 dests"),
            |b| {
                b.iter_batched(
                    || sched::new(name, SchedFlags::NONE).expect("implemented"),
                    |mut s| {
                        s.update(black_box(dests));
                        s
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
}

/// Access-list lookups (`worker::admit`): a service with no lists, and lists of 1000 entries
/// of mixed prefix lengths, probed with addresses inside and outside them.
fn access_lists(c: &mut Criterion) {
    use dataplane::service::{AccessLists, ListKind, Prefix};
    let empty = AccessLists::default();
    c.bench_function("acl check, no lists", |b| {
        b.iter(|| black_box(empty.check(black_box(VIP))))
    });
    let mut lists = AccessLists::default();
    let mut x: u32 = 0x2545_f491;
    for i in 0..1000u32 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let len = 16 + (i % 17) as u8;
        let net = x & (u32::MAX << (32 - u32::from(len)));
        let p = Prefix::new(Ipv4Addr::from(net), len).expect("masked");
        let kind = if i % 2 == 0 {
            ListKind::Deny
        } else {
            ListKind::Allow
        };
        let _ = lists.add(kind, p);
    }
    let probes: Vec<Ipv4Addr> = (0..1024u32)
        .map(|i| Ipv4Addr::from(i.wrapping_mul(0x9e37_79b9)))
        .collect();
    let mut i = 0;
    c.bench_function("acl check, 500 deny + 500 allow entries, 17 lengths", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(lists.check(black_box(probes[i])))
        })
    });
}

/// An Ethernet/IPv6/TCP ACK from 2001:2::2:`port` to 2001:2::100:80, with `ext` 8-byte
/// destination-options headers before TCP.
fn frame6(port: u16, ext: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xd0]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xfe]);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&((8 * ext + 20) as u16).to_be_bytes());
    f[20] = if ext > 0 { 60 } else { 6 };
    f[21] = 64;
    f[22..38].copy_from_slice(&"2001:2::2".parse::<Ipv6Addr>().unwrap().octets());
    f[38..54].copy_from_slice(&"2001:2::100".parse::<Ipv6Addr>().unwrap().octets());
    for i in 0..ext {
        f.extend_from_slice(&[if i + 1 == ext { 6 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&port.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x10;
    f.extend_from_slice(&t);
    f
}

/// The IPv6 building blocks (issue 14): the flow parse and the steering hashes, beside the IPv4
/// client hash they mirror.
fn ipv6(c: &mut Criterion) {
    let policy = dataplane::wire::ipv6::ExtPolicy::default();
    for ext in [0usize, 2] {
        let f = frame6(1234, ext);
        assert!(dataplane::parse6::parse6(&f, &policy).is_ok());
        c.bench_function(
            &format!("parse6 eth+ipv6+tcp, {ext} extension headers"),
            |b| b.iter(|| dataplane::parse6::parse6(black_box(&f[..]), &policy)),
        );
    }
    let s = dataplane::steer::Steering::new(4);
    let (c4, c6) = (
        Ipv4Addr::new(198, 18, 0, 2),
        "2001:2::2".parse::<Ipv6Addr>().unwrap(),
    );
    c.bench_function("steer client_hash (ipv4, 6 B)", |b| {
        b.iter(|| s.client_hash(black_box(c4), black_box(40000)))
    });
    c.bench_function("steer client_hash6 (ipv6, 18 B)", |b| {
        b.iter(|| s.client_hash6(black_box(c6), black_box(40000)))
    });
    let v6 = "2001:2::100".parse::<Ipv6Addr>().unwrap();
    c.bench_function("steer tuple_hash6 (ipv6, 36 B)", |b| {
        b.iter(|| s.tuple_hash6(black_box(c6), 40000, black_box(v6), 80))
    });
}

criterion_group!(
    hot,
    parse,
    checksums,
    conn_table,
    schedulers,
    access_lists,
    ipv6
);
criterion_main!(hot);
