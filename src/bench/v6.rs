//! The IPv6 cases (issue 14): NAT6, FULLNAT6 and NAT64 connections in the worker's IPv6 table,
//! established traffic in both directions and new-connection rates, measured as the IPv4 cases
//! are (same generator, loop, clock and row).
//!
//! Every case checks what it measures and fails the run instead of reporting a rate:
//! - setup: every SYN, SYN-ACK and ACK is forwarded once, the SYN to a real server of the
//!   method's family (from the client, or from one of the method's local addresses), the
//!   SYN-ACK back to the client from \[VIP6\]:80; the table then holds exactly the flows;
//! - before each measurement: a burst of the very frames measured is taken through the worker
//!   one by one and each output is checked (port, family, addresses, ports);
//! - the measurement: the worker dropped nothing and transmitted exactly one frame per packet
//!   it received.

use std::net::IpAddr;

use anyhow::{Context, Result, bail, ensure};
use dataplane::conn::{ConnState, TcpState, Timeouts};
use dataplane::l3::addr::PortId;
use dataplane::worker::{Io, Worker};
use dpdk_bindings::{MbufBatch, Mempool, rdtsc};

use super::net::{self, Direction, Method6};
use super::report::{self, Report};
use super::rig::{self, Clock, Lane, Sample, Stage};
use super::traffic::{self, Dist, Endpoint, Gen, Pattern, Template};
use super::{ACK, Ctx, DESTS, FLOW_SEQ, Options, RST, SETTLED, SYN, SYN_ACK, Setup, T0};
use super::{nonzero_drops, rss_bytes};
use crate::runtime::mbuf::Packet;

/// IPv4 connection capacity of the workers of the IPv6 cases (they hold none).
const CAPACITY4: usize = 1024;

/// What the worker sent: out of which port, the frame's addresses and TCP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    port: PortId,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
}

/// The addresses and ports of an IPv4 or IPv6 TCP frame (no extension headers).
fn seen(port: PortId, d: &[u8]) -> Option<Seen> {
    let (src, dst, l4): (IpAddr, IpAddr, usize) = match d.get(12..14)? {
        [0x08, 0x00] => {
            let ihl = usize::from(d.get(14)? & 0x0f) * 4;
            if *d.get(23)? != 6 {
                return None;
            }
            let a: [u8; 4] = d.get(26..30)?.try_into().ok()?;
            let b: [u8; 4] = d.get(30..34)?.try_into().ok()?;
            (a.into(), b.into(), 14 + ihl)
        }
        [0x86, 0xdd] => {
            if *d.get(20)? != 6 {
                return None;
            }
            let a: [u8; 16] = d.get(22..38)?.try_into().ok()?;
            let b: [u8; 16] = d.get(38..54)?.try_into().ok()?;
            (a.into(), b.into(), 54)
        }
        _ => return None,
    };
    let p = d.get(l4..l4 + 4)?;
    Some(Seen {
        port,
        src,
        dst,
        sport: u16::from_be_bytes([p[0], p[1]]),
        dport: u16::from_be_bytes([p[2], p[3]]),
    })
}

/// Counts what the worker sends and keeps the last frame's [`Seen`] (`None`: not TCP over IP).
#[derive(Default)]
struct CaptureIo {
    sent: u64,
    last: Option<Seen>,
}

impl Io<Packet> for CaptureIo {
    fn transmit(&mut self, port: PortId, buf: Packet) {
        use dataplane::packet::PacketBuf;
        self.last = seen(port, buf.data());
        self.sent += 1;
    }
    fn alloc(&mut self) -> Option<Packet> {
        None
    }
}

impl CaptureIo {
    /// Run `buf` through the worker; what it sent, which must be exactly one TCP frame.
    fn one(
        &mut self,
        worker: &mut Worker<Packet>,
        now: dataplane::time::Instant,
        port: PortId,
        buf: Packet,
    ) -> Result<Seen> {
        let before = self.sent;
        self.last = None;
        worker.process(now, port, buf, self);
        match (self.sent - before, self.last) {
            (1, Some(s)) => Ok(s),
            (0, _) => bail!("not forwarded: drops {:?}", nonzero_drops(worker)),
            (k, s) => bail!("{k} frames sent for one, the last {s:?}"),
        }
    }
}

/// The low 32 bits of an address (what a template patches).
fn low32(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => u128::from(a) as u32,
    }
}

fn is_client6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if traffic::with_low32(a, 0) == net::CLIENT6_PREFIX)
}

/// Real server index of `ip` under `m`.
fn dest_of(m: &Method6, ip: IpAddr) -> Option<usize> {
    (0..DESTS).find(|&k| m.rip(k) == ip)
}

/// Check one frame the worker sent for a packet of direction `dir` (a client's or a server's
/// packet of an established or new connection of `m`).
fn check_out(m: &Method6, dir: Direction, s: &Seen) -> Result<()> {
    match dir {
        Direction::In => {
            ensure!(
                s.port == 1 && s.dport == net::VPORT && dest_of(m, s.dst).is_some(),
                "{}: a client packet left as {s:?}, not to a real server",
                m.name
            );
            if m.replies_to_laddr() {
                ensure!(
                    (0..net::LADDRS).any(|j| m.laddr(j) == s.src),
                    "{}: a client packet left from {}, not a local address",
                    m.name,
                    s.src
                );
            } else {
                ensure!(
                    is_client6(s.src),
                    "{}: a client packet left from {}, not the client",
                    m.name,
                    s.src
                );
            }
        }
        Direction::Out => ensure!(
            s.port == 0
                && s.src == IpAddr::V6(net::VIP6)
                && s.sport == net::VPORT
                && is_client6(s.dst),
            "{}: a server packet left as {s:?}, not from [VIP6]:80 to a client",
            m.name
        ),
    }
    Ok(())
}

/// Establish flows `0..n` of `m` (SYN, SYN-ACK, ACK), checking every frame the worker sends.
fn establish6(worker: &mut Worker<Packet>, pool: &Mempool, m: &Method6, n: usize) -> Result<Setup> {
    let syn = net::client_template6(SYN);
    let ack = net::client_template6(ACK);
    let synack: Vec<Template> = (0..DESTS)
        .map(|k| net::server_template6(m, k, SYN_ACK))
        .collect();
    let mut io = CaptureIo::default();
    let mut seq: Vec<usize> = Vec::new();
    let mut peers: Vec<Endpoint> = Vec::with_capacity(if m.replies_to_laddr() { n } else { 0 });
    let mbuf = |t: &Template, ip: u32, port: u16| -> Result<Packet> {
        Ok(Packet(
            t.mbuf_endpoint(pool, ip, port)
                .context("mempool empty during setup")?,
        ))
    };
    const CHUNK: usize = 4096;
    let mut dests = vec![0usize; CHUNK];
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        for i in start..end {
            let (cip, cport) = traffic::client_of(i as u64);
            let s = io
                .one(worker, T0, 0, mbuf(&syn, cip, cport)?)
                .with_context(|| format!("{}: setup SYN of flow {i}", m.name))?;
            check_out(m, Direction::In, &s)?;
            let k = dest_of(m, s.dst).context("SYN to an unknown address")?;
            dests[i - start] = k;
            if m.replies_to_laddr() {
                peers.push(Endpoint {
                    ip: low32(s.src),
                    port: s.sport,
                    template: k as u16,
                });
            } else {
                ensure!(
                    (low32(s.src), s.sport) == (cip, cport),
                    "{}: NAT changed the client's address or port: {s:?}",
                    m.name
                );
            }
            if i < DESTS {
                seq.push(k);
            } else if seq[i % DESTS] != k {
                bail!("scheduler sequence not periodic: flow {i} went to dest {k}");
            }
        }
        for i in start..end {
            let (cip, cport) = traffic::client_of(i as u64);
            let t = &synack[dests[i - start]];
            let p = if m.replies_to_laddr() {
                let e = peers[i];
                mbuf(t, e.ip, e.port)?
            } else {
                mbuf(t, cip, cport)?
            };
            let s = io
                .one(worker, T0, 1, p)
                .with_context(|| format!("{}: setup SYN-ACK of flow {i}", m.name))?;
            check_out(m, Direction::Out, &s)?;
            ensure!(
                (low32(s.dst), s.dport) == (cip, cport),
                "{}: SYN-ACK of flow {i} to the wrong client: {s:?}",
                m.name
            );
        }
        for i in start..end {
            let (cip, cport) = traffic::client_of(i as u64);
            io.one(worker, T0, 0, mbuf(&ack, cip, cport)?)
                .with_context(|| format!("{}: setup ACK of flow {i}", m.name))?;
        }
    }
    if worker.drops().total() != 0 || worker.conn_count() != n {
        bail!(
            "{}: setup of {n} connections: {} in table, drops {:?}",
            m.name,
            worker.conn_count(),
            nonzero_drops(worker)
        );
    }
    // As for IPv4: let the wheel re-arm the setup-time deadlines before the measurement.
    for _ in 0..n / 32_768 + 2 {
        worker.on_tick(SETTLED, &mut io);
    }
    if io.sent != 3 * n as u64 || worker.drops().total() != 0 {
        bail!(
            "{}: the worker sent {} frames for {} setup packets, drops {:?}",
            m.name,
            io.sent,
            3 * n,
            nonzero_drops(worker)
        );
    }
    Ok(Setup { seq, peers })
}

/// Take one burst of `g`'s frames (from a copy of it: the measured sequence is not advanced)
/// through the worker one by one at `now` and check every output.
fn check_burst(
    worker: &mut Worker<Packet>,
    pool: &Mempool,
    m: &Method6,
    dir: Direction,
    g: &Gen,
    now: dataplane::time::Instant,
) -> Result<()> {
    let mut g = g.clone();
    let mut batch: MbufBatch = MbufBatch::new();
    ensure!(g.fill(pool, &mut batch), "mempool empty");
    let port = if dir == Direction::In { 0 } else { 1 };
    let mut io = CaptureIo::default();
    let mut r = Ok(());
    for mb in batch.drain() {
        let p = Packet::new(mb).map_err(|_| anyhow::anyhow!("not a frame"))?;
        if r.is_ok() {
            r = io
                .one(worker, now, port, p)
                .and_then(|s| check_out(m, dir, &s));
        }
    }
    r.with_context(|| format!("{} {}: checking the measured frames", m.name, dir.name()))
}

/// The row of a measured IPv6 case, once its sample is checked: nothing dropped, one frame out
/// per packet in.
fn checked_row(
    ctx: &Ctx,
    group: &str,
    case: String,
    s: &Sample,
    worker: &Worker<Packet>,
    drops: u64,
) -> Result<report::Row> {
    let row = ctx.row(group, case, &[*s], drops);
    if s.packets == 0 || row.drops > 0 || s.sent != s.packets {
        bail!(
            "{}: {} packets received, {} forwarded, {} dropped {:?}: not measured",
            row.case,
            s.packets,
            s.sent,
            row.drops,
            nonzero_drops(worker)
        );
    }
    Ok(row)
}

/// `n` established connections of `m` in one worker's IPv6 table, then both directions and
/// both flow distributions measured on them, as [`super::established`] does for IPv4.
pub(super) fn established6(
    ctx: &Ctx,
    lane: &mut Lane,
    m: &Method6,
    n: usize,
    opts: &Options,
    report: &mut Report,
) -> Result<()> {
    let mut services = net::services6(1, "rr", m, DESTS)?;
    let tables = net::tables6(&mut services, m, DESTS)?;
    let rss0 = rss_bytes();
    let mut worker = net::worker_with6(0, 1, CAPACITY4, n, tables);
    let t = std::time::Instant::now();
    let setup = establish6(&mut worker, &ctx.pool, m, n)?;
    if m.kind == net::Kind6::Nat6 {
        // The worker's tables less its (empty) IPv4 one.
        let v4 = dataplane::conn::ConnTable::<dataplane::conn::ConnKey>::new(CAPACITY4, 0)
            .map_or(0, |t| t.memory_bytes());
        report.notes.push(format!(
            "NAT6 {}: {:.0} B per connection in the worker's IPv6 table, RSS +{:.0} B per \
             connection, setup {:.2} s",
            report::si(n as u64),
            worker.conn_table_bytes().saturating_sub(v4) as f64 / n as f64,
            rss_bytes().saturating_sub(rss0) as f64 / n as f64,
            t.elapsed().as_secs_f64()
        ));
    }
    let clock = Clock::Real {
        base: SETTLED,
        t0: rdtsc(),
    };
    for &dir in m.directions {
        for dist in [Dist::Uniform, Dist::Zipf(opts.zipf_s)] {
            let idx = traffic::flow_indices(n as u64, dist, FLOW_SEQ, 2);
            let mut g = match dir {
                Direction::In => Gen::new(
                    vec![net::client_template6(ACK)],
                    Pattern::Flows { idx, pos: 0 },
                ),
                Direction::Out if m.replies_to_laddr() => Gen::new(
                    (0..DESTS)
                        .map(|k| net::server_template6(m, k, ACK))
                        .collect(),
                    Pattern::Endpoints {
                        seq: traffic::endpoint_seq(&idx, &setup.peers),
                        pos: 0,
                    },
                ),
                Direction::Out => Gen::new(
                    setup
                        .seq
                        .iter()
                        .map(|&k| net::server_template6(m, k, ACK))
                        .collect(),
                    Pattern::Flows { idx, pos: 0 },
                ),
            };
            check_burst(&mut worker, &ctx.pool, m, dir, &g, clock.now(0))?;
            let (s, drops, case) = super::measure_established(
                ctx,
                lane,
                &mut worker,
                &mut g,
                clock,
                m.name,
                dir,
                n,
                dist,
            );
            let row = checked_row(ctx, "established", case, &s, &worker, drops)?;
            report.rows.push(row);
        }
    }
    Ok(())
}

/// New IPv6 connections of `m` (rr): SYN, ACK and RST per flow with about `live` connections
/// kept by expiry, as [`super::new_conns`] does for IPv4 NAT.
pub(super) fn new_conns6(
    ctx: &Ctx,
    lane: &mut Lane,
    m: &Method6,
    live: usize,
    report: &mut Report,
) -> Result<()> {
    let mut services = net::services6(1, "rr", m, DESTS)?;
    let tables = net::tables6(&mut services, m, DESTS)?;
    let mut worker = net::worker_with6(0, 1, CAPACITY4, live * 2, tables);
    let close = Timeouts::default().timeout(ConnState::Tcp(TcpState::Close));
    let ns_per_pkt = (close.as_nanos() as u64 / (3 * live as u64)).max(1);
    let templates = vec![
        net::client_template6(SYN),
        net::client_template6(ACK),
        net::client_template6(RST),
    ];
    let mut g = Gen::new(
        templates.clone(),
        Pattern::NewConns {
            first: 1 << 30,
            next: 0,
        },
    );
    let clock = Clock::PerPacket {
        base: T0,
        ns_per_pkt,
    };
    while g.packets < 5 * live as u64 {
        let stage = Stage::Dataplane {
            worker: &mut worker,
            rx_port: 0,
            clock,
        };
        let s = rig::run_stage(lane, &ctx.pool, &mut g, stage, 0, ctx.warm);
        if s.sent != s.packets {
            bail!(
                "{} new conns: warm-up forwarded {} of {} packets, drops {:?}",
                m.name,
                s.sent,
                s.packets,
                nonzero_drops(&worker)
            );
        }
    }
    // New flows of a range the run never reaches, so the measured sequence is not disturbed.
    let probe = Gen::new(
        templates,
        Pattern::NewConns {
            first: 1 << 38,
            next: 0,
        },
    );
    check_burst(
        &mut worker,
        &ctx.pool,
        m,
        Direction::In,
        &probe,
        clock.now(g.packets),
    )?;
    let drops0 = worker.drops().total();
    let stage = Stage::Dataplane {
        worker: &mut worker,
        rx_port: 0,
        clock,
    };
    let s = rig::run_stage(lane, &ctx.pool, &mut g, stage, 0, ctx.cycles);
    let drops = worker.drops().total() - drops0;
    let mut row = checked_row(
        ctx,
        "new conns",
        format!(
            "{} SYN+ACK+RST rr, ~{} live",
            m.name,
            report::si(live as u64)
        ),
        &s,
        &worker,
        drops,
    )?;
    row.conns_per_sec_per_core = Some(row.mpps_per_core * 1e6 / 3.0);
    report.rows.push(row);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::super::rig::Rig;
    use super::*;

    #[test]
    fn seen_reads_both_families() {
        let t4 = net::server_template(1, ACK);
        let mut f = vec![0u8; t4.frame_len()];
        t4.write_endpoint(&mut f, u32::from(net::laddr(3)), 4242);
        let s = seen(1, &f).unwrap();
        assert_eq!(
            s,
            Seen {
                port: 1,
                src: net::rip(1).into(),
                dst: net::laddr(3).into(),
                sport: 80,
                dport: 4242
            }
        );
        let t6 = net::server_template6(&net::fullnat6(), 2, ACK);
        let mut f = vec![0u8; t6.frame_len()];
        t6.write_endpoint(&mut f, low32(net::laddr6(5).into()), 999);
        let s = seen(0, &f).unwrap();
        assert_eq!(
            (s.src, s.dst, s.sport, s.dport),
            (net::rip6(2).into(), net::laddr6(5).into(), 80, 999)
        );
        let c = net::client_template6(SYN);
        let mut f = vec![0u8; c.frame_len()];
        c.write(&mut f, 70_000);
        let s = seen(0, &f).unwrap();
        assert!(is_client6(s.src));
        assert_eq!(s.dst, IpAddr::V6(net::VIP6));
        assert!(!is_client6(Ipv6Addr::LOCALHOST.into()));
    }

    /// The IPv6 cases on real DPDK mbufs at a tiny size: every case forwards every packet it
    /// measures (the cases fail otherwise) and produces its rows. The only test of this crate
    /// that brings up the EAL (once per process); it needs root, as rvs-bench does.
    #[test]
    fn ipv6_cases_forward_every_packet() {
        // The effective uid, second field of /proc's `Uid:` line (no `unsafe` outside
        // dpdk-bindings).
        let euid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
            });
        if euid != Some(0) {
            eprintln!("SKIP ipv6_cases_forward_every_packet: DPDK needs root");
            return;
        }
        let mut rig = Rig::new(1, false).expect("EAL");
        let hz = dpdk_bindings::tsc_hz();
        let ctx = Ctx {
            pool: rig.pool.clone(),
            hz,
            warm: hz / 100,
            cycles: hz / 50,
            gen_cyc: 0.0,
            io_cyc: 1.0,
            mem_mpps: 0.0,
        };
        let mut opts = Options::new(true);
        opts.seconds = 0.02;
        let mut report = Report::new(&opts, hz);
        let mut lane = rig.take_lane(0);
        for m in net::methods6() {
            established6(&ctx, &mut lane, &m, 1000, &opts, &mut report).unwrap();
            new_conns6(&ctx, &mut lane, &m, 2000, &mut report).unwrap();
        }
        rig.put_lane(lane);
        let cases: Vec<&str> = report.rows.iter().map(|r| r.case.as_str()).collect();
        for name in ["NAT6", "FULLNAT6", "NAT64"] {
            for dir in ["in", "out"] {
                for dist in ["uniform", "zipf0.99"] {
                    let c = format!("{name} {dir} 1K conns {dist}");
                    assert!(cases.contains(&c.as_str()), "{c} missing: {cases:?}");
                }
            }
            let c = format!("{name} SYN+ACK+RST rr, ~2K live");
            assert!(cases.contains(&c.as_str()), "{c} missing: {cases:?}");
        }
        assert_eq!(report.rows.len(), 15);
        for r in &report.rows {
            assert!(r.packets > 0 && r.drops == 0, "{r:?}");
        }
    }
}
