//! The exception path, runtime side: each port's kernel twin and the thread that moves frames
//! between the workers and the twins (docs/architecture.md, "The kernel side").
//!
//! A twin is a DPDK virtual device whose other end is a network interface of the host's kernel
//! (in rvsd's network namespace): `net_tap` (a TAP interface over `/dev/net/tun`) or
//! `virtio_user` with the vhost-net backend (`/dev/vhost-net`, the faster one, what DPVS uses
//! instead of KNI). Both are made the same way, at start, after the physical port is
//! configured: [`dpdk_bindings::add_vdev`] with the interface name and the port's MAC, one rx
//! and one tx queue, then `ip link set dev NAME address MAC up` and `ip addr replace` for each
//! address of `[port.kernel] addrs` (iproute2's `ip`, run at start and when an owned address
//! changes, see [`twin_addr`]; [`Announcer`] adds and removes VIPs). The interface goes
//! away with the device, also when rvsd is killed (the kernel closes the TAP or vhost file).
//!
//! Frames, and their bounds:
//! - worker -> kernel: the dataplane hands a frame over ([`dataplane::worker::kernel`] says
//!   which); the worker batches it into its own SPSC ring to the kernel thread (`rvs_kx_W`,
//!   [`RING`] mbufs), enqueued once per poll iteration. A full ring frees the frame
//!   (`ring_full`). That is all the worker ever spends on it.
//! - kernel thread: a plain thread (not an EAL lcore, not a worker; it inherits the control
//!   lcore's CPU affinity) that drains those rings at most `dpdk_bindings::BURST` frames per
//!   ring per round, passes each frame through its twin's token buckets ([`Bucket`]: `rate`
//!   frames/s, `burst` deep; control traffic (ARP, BGP on TCP 179, BFD on UDP 3784/3785/4784)
//!   has a bucket of its own so a flood of anything else cannot starve a routing session) and
//!   sends it to the twin (`rate_limit` and `kernel_full` count what is dropped).
//! - kernel -> port: the thread polls each twin and puts what the kernel sent into an SPSC ring
//!   (`rvs_kt_P`) that worker 0 drains into its tx batch of port P, as it drains the tx
//!   handoff rings (a full ring: `egress_full`). The frames go out unchanged.
//!
//! The thread sleeps [`IDLE_SLEEP`] when a round moved nothing, so an idle exception path costs
//! next to nothing; under a flood its work per frame is a ring dequeue, a bucket check and a
//! free or a TAP write, on a thread of its own.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dataplane::l3::addr::PortId;
use dataplane::wire::MacAddr;
use dpdk_bindings::{
    Mbuf, MbufBatch, Mempool, Port, PortConfig, RingConsumer, RingProducer, RxQueue, TxQueue,
};

use crate::config::{KernelConf, Prefix, TwinDriver};

/// Capacity (mbufs) of each worker-to-kernel ring and each kernel-to-port ring.
pub const RING: u32 = 1024;
/// Sleep of the kernel thread after a round that moved nothing.
const IDLE_SLEEP: Duration = Duration::from_micros(100);
/// Descriptors of a twin's queues (a TAP queue holds one mbuf per rx descriptor).
const TWIN_DESC: u16 = 256;

/// Counters of one twin. Written by the kernel thread (and, for `ring_full`, added to by each
/// worker once per tick), read by the control plane.
#[derive(Debug, Default)]
pub struct TwinStats {
    /// Frames (and bytes) sent to the kernel.
    pub to_kernel_packets: AtomicU64,
    pub to_kernel_bytes: AtomicU64,
    /// Frames (and bytes) the kernel sent, queued for the port.
    pub from_kernel_packets: AtomicU64,
    pub from_kernel_bytes: AtomicU64,
    /// Frames for the kernel dropped by the rate limit.
    pub rate_limited: AtomicU64,
    /// Frames for the kernel dropped because a worker's ring to the kernel thread was full.
    pub ring_full: AtomicU64,
    /// Frames for the kernel the twin device would not take.
    pub kernel_full: AtomicU64,
    /// Frames from the kernel dropped because the ring to the port's worker was full.
    pub egress_full: AtomicU64,
}

impl TwinStats {
    /// `(reason, count)` of every drop counter, as `rvs_exception_drops_total` labels them.
    pub fn drops(&self) -> [(&'static str, u64); 4] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("rate_limit", l(&self.rate_limited)),
            ("ring_full", l(&self.ring_full)),
            ("kernel_full", l(&self.kernel_full)),
            ("egress_full", l(&self.egress_full)),
        ]
    }
}

fn add(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// What the control plane lists about a port's twin.
#[derive(Debug, Clone)]
pub struct TwinFacts {
    pub ifname: String,
    pub driver: TwinDriver,
    /// The DPDK device string (`net_tap_rvs0,iface=dp0,mac=...`).
    pub device: String,
    pub addrs: Vec<Prefix>,
    pub rate: u32,
    pub burst: u32,
    /// The twin follows the port's owned addresses (no `addrs` in the configuration).
    pub follows_owned: bool,
    pub stats: Arc<TwinStats>,
}

/// A twin made at start: the device (owned by the main thread for stop/close) and its queues
/// (moved to the kernel thread).
pub struct Twin {
    pub port_index: PortId,
    pub vdev: String,
    pub port: Port,
    pub facts: TwinFacts,
    rxq: RxQueue,
    txq: TxQueue,
    conf: KernelConf,
}

/// Make the twin of port `index` (MAC `mac`) as `conf` says; not started yet.
pub fn create(
    index: usize,
    conf: &KernelConf,
    mac: MacAddr,
    pool: &Mempool,
) -> anyhow::Result<Twin> {
    let port_index = PortId::try_from(index).context("too many ports")?;
    let (vdev, args) = match conf.driver {
        TwinDriver::Tap => (
            format!("net_tap_rvs{index}"),
            format!("iface={},mac={mac}", conf.ifname),
        ),
        TwinDriver::VirtioUser => (
            format!("virtio_user_rvs{index}"),
            format!(
                "path=/dev/vhost-net,iface={},mac={mac},queues=1,queue_size={TWIN_DESC}",
                conf.ifname
            ),
        ),
    };
    let id = dpdk_bindings::add_vdev(&vdev, &args).with_context(|| {
        format!(
            "kernel twin {} of port {index}: creating {vdev} ({args}){}",
            conf.ifname,
            match conf.driver {
                TwinDriver::Tap => " (needs /dev/net/tun and the net_tap PMD)",
                TwinDriver::VirtioUser => " (needs /dev/vhost-net and the virtio_user PMD)",
            }
        )
    })?;
    let pc = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: TWIN_DESC,
        tx_desc: TWIN_DESC,
        promiscuous: false,
        ..PortConfig::default()
    };
    let port = Port::configure(id, &pc, pool)
        .with_context(|| format!("kernel twin {}: configuring {vdev}", conf.ifname))?;
    let rxq = port.rx_queue(0)?;
    let txq = port.tx_queue(0)?;
    Ok(Twin {
        port_index,
        facts: TwinFacts {
            ifname: conf.ifname.clone(),
            driver: conf.driver,
            device: format!("{vdev},{args}"),
            addrs: conf.addrs.clone(),
            rate: conf.rate,
            burst: conf.burst,
            follows_owned: conf.follows_owned,
            stats: Arc::new(TwinStats::default()),
        },
        vdev,
        port,
        rxq,
        txq,
        conf: conf.clone(),
    })
}

impl Twin {
    /// Start the device and set up its kernel interface: the port's MAC, up, the addresses.
    pub fn start(&mut self, mac: MacAddr) -> anyhow::Result<()> {
        self.port
            .start()
            .with_context(|| format!("starting kernel twin {}", self.conf.ifname))?;
        let ifname = self.conf.ifname.as_str();
        let current =
            std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).unwrap_or_default();
        let mac_s = mac.to_string();
        if !current.trim().eq_ignore_ascii_case(&mac_s) {
            ip(&["link", "set", "dev", ifname, "down"])?;
            ip(&["link", "set", "dev", ifname, "address", &mac_s])?;
        }
        ip(&["link", "set", "dev", ifname, "up"])?;
        for a in &self.conf.addrs {
            ip(&["addr", "replace", &a.to_string(), "dev", ifname])?;
        }
        if !self.conf.addrs6.is_empty() {
            enable_ipv6(ifname)?;
        }
        for a in &self.conf.addrs6 {
            twin_addr6(ifname, *a, true)?;
        }
        Ok(())
    }

    /// The thread's end of this twin: its queues, buckets and counters, and the ring to the
    /// port's worker.
    fn io(self, egress: RingProducer) -> (TwinIo, TwinRest) {
        let now = Instant::now();
        let bucket = Bucket::new(self.conf.rate, self.conf.burst, now);
        (
            TwinIo {
                rxq: self.rxq,
                txq: self.txq,
                egress,
                data: bucket.clone(),
                control: bucket,
                out: MbufBatch::new(),
                stats: self.facts.stats.clone(),
            },
            TwinRest {
                vdev: self.vdev,
                port: self.port,
            },
        )
    }
}

/// What the main thread keeps of a twin to stop and remove it.
pub struct TwinRest {
    pub vdev: String,
    pub port: Port,
}

/// Add (`add`) or remove an address of a twin's interface, for an owned address added or
/// removed at run time.
pub fn twin_addr(ifname: &str, prefix: Prefix, add: bool) -> anyhow::Result<()> {
    let a = prefix.to_string();
    if add {
        ip(&["addr", "replace", &a, "dev", ifname])
    } else {
        ip(&["addr", "del", &a, "dev", ifname])
    }
}

/// [`twin_addr`] for an IPv6 address. It is added without duplicate address detection
/// (`nodad`): it is the director's, which rvs answers for and defends on the port.
pub fn twin_addr6(ifname: &str, prefix: crate::config::Prefix6, add: bool) -> anyhow::Result<()> {
    let a = prefix.to_string();
    if add {
        enable_ipv6(ifname)?;
        ip(&["-6", "addr", "replace", &a, "dev", ifname, "nodad"])
    } else {
        ip(&["-6", "addr", "del", &a, "dev", ifname])
    }
}

/// Turn IPv6 on for `ifname` (a host or namespace may have it off by default for new
/// interfaces, and then refuses IPv6 addresses).
fn enable_ipv6(ifname: &str) -> anyhow::Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::read_to_string(&path) {
        Ok(v) if v.trim() == "0" => Ok(()),
        Ok(_) => std::fs::write(&path, "0").with_context(|| format!("turning IPv6 on: {path}")),
        // IPv6 absent from the kernel: `ip` will say so.
        Err(_) => Ok(()),
    }
}

/// Run `ip ARGS` (iproute2) and fail with its message.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2) to set up a kernel twin")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A token bucket: `rate` tokens per second, at most `burst` in store.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Tokens in millionths.
    micro: u64,
    rate: u64,
    cap: u64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: u32, burst: u32, now: Instant) -> Bucket {
        let cap = u64::from(burst.max(1)) * 1_000_000;
        Bucket {
            micro: cap,
            rate: u64::from(rate.max(1)),
            cap,
            last: now,
        }
    }

    /// Take one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last);
        if !dt.is_zero() {
            let add = (dt.as_micros() as u64).saturating_mul(self.rate);
            self.micro = self.micro.saturating_add(add).min(self.cap);
            self.last = now;
        }
        if self.micro >= 1_000_000 {
            self.micro -= 1_000_000;
            true
        } else {
            false
        }
    }
}

/// Control traffic the kernel must keep getting under a flood: ARP, BGP (TCP port 179 either
/// way), BFD (UDP 3784 single hop, 3785 echo, 4784 multihop).
pub fn is_control(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x06]) => true,
        Some([0x08, 0x00]) => {
            let Some(&vihl) = frame.get(14) else {
                return false;
            };
            let l4 = 14 + usize::from(vihl & 0x0f) * 4;
            let port = |o: usize| {
                frame
                    .get(l4 + o..l4 + o + 2)
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
            };
            match frame.get(23) {
                Some(6) => port(0) == 179 || port(2) == 179,
                Some(17) => matches!(port(2), 3784 | 3785 | 4784),
                _ => false,
            }
        }
        _ => false,
    }
}

/// The kernel thread's end of one twin.
struct TwinIo {
    rxq: RxQueue,
    txq: TxQueue,
    egress: RingProducer,
    data: Bucket,
    control: Bucket,
    out: MbufBatch,
    stats: Arc<TwinStats>,
}

impl TwinIo {
    fn send(&mut self) {
        let mut bytes = 0u64;
        let before = self.out.len();
        for _ in 0..2 {
            if self.out.is_empty() {
                break;
            }
            let first: u64 = self.out.iter().map(|m| m.len() as u64).sum();
            self.txq.tx_burst(&mut self.out);
            let rest: u64 = self.out.iter().map(|m| m.len() as u64).sum();
            bytes += first - rest;
        }
        let failed = self.out.len();
        self.out.clear();
        add(&self.stats.to_kernel_packets, (before - failed) as u64);
        add(&self.stats.to_kernel_bytes, bytes);
        add(&self.stats.kernel_full, failed as u64);
    }
}

/// The worker side: a worker's ring to the kernel thread and what it counts. Lives in the
/// worker's `Io`.
pub struct KernelTx {
    /// `twins[p]`: port `p` has a twin.
    twins: Vec<bool>,
    ring: Option<RingProducer>,
    batch: MbufBatch,
    /// Frames freed for a full ring since the last publish, per port.
    full: Vec<u64>,
    stats: Vec<Option<Arc<TwinStats>>>,
}

impl KernelTx {
    /// No twin on any of `ports` ports.
    pub fn none(ports: usize) -> KernelTx {
        KernelTx {
            twins: vec![false; ports],
            ring: None,
            batch: MbufBatch::new(),
            full: vec![0; ports],
            stats: vec![None; ports],
        }
    }

    #[inline]
    pub fn has(&self, port: PortId) -> bool {
        self.twins.get(usize::from(port)).copied().unwrap_or(false)
    }

    /// Queue `m`, received on `port`, for the kernel thread.
    pub fn push(&mut self, port: PortId, mut m: Mbuf) {
        // The mbuf's port field carries the dataplane port index to the kernel thread.
        m.set_port(port);
        if self.batch.is_full() {
            self.flush();
        }
        let _ = self.batch.push(m);
    }

    /// Enqueue the batch; what the ring does not take is freed and counted.
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        if let Some(r) = self.ring.as_mut() {
            r.enqueue_burst(&mut self.batch);
        }
        for m in self.batch.iter() {
            if let Some(c) = self.full.get_mut(usize::from(m.port())) {
                *c += 1;
            }
        }
        self.batch.clear();
    }

    /// Add the counts gathered since the last call to the twins' counters (once per tick).
    pub fn publish(&mut self) {
        for (n, s) in self.full.iter_mut().zip(&self.stats) {
            if let Some(s) = s {
                add(&s.ring_full, std::mem::take(n));
            }
        }
    }
}

/// Everything the kernel thread owns.
pub struct KernelThread {
    twins: Vec<TwinIo>,
    /// `twin_of[p]`: index in `twins` of port `p`'s twin.
    twin_of: Vec<Option<usize>>,
    from_workers: Vec<RingConsumer>,
}

/// Wiring of the exception path, made at start before the workers are launched.
pub struct Wiring {
    /// One per worker, to put into its `Io`.
    pub worker_tx: Vec<KernelTx>,
    /// `(port index, consumer)`: the kernel-to-port rings, drained by worker 0.
    pub egress: Vec<(usize, RingConsumer)>,
    pub thread: KernelThread,
    /// Devices to stop and remove at exit.
    pub rest: Vec<TwinRest>,
}

/// Build the rings between `workers` workers, the kernel thread and `twins` (of `n_ports`
/// ports).
pub fn wire(
    twins: Vec<Twin>,
    n_ports: usize,
    workers: usize,
    socket: i32,
) -> anyhow::Result<Wiring> {
    let mut twin_flags = vec![false; n_ports];
    let mut stats = vec![None; n_ports];
    let mut twin_of = vec![None; n_ports];
    let mut ios = Vec::new();
    let mut egress = Vec::new();
    let mut rest = Vec::new();
    for (k, t) in twins.into_iter().enumerate() {
        let p = usize::from(t.port_index);
        twin_flags[p] = true;
        stats[p] = Some(t.facts.stats.clone());
        twin_of[p] = Some(k);
        let ring = dpdk_bindings::Ring::new(
            &format!("rvs_kt_{p}"),
            RING,
            socket,
            dpdk_bindings::RingMode::SPSC,
        )
        .context("creating a kernel-to-port ring")?;
        let (prod, cons) = ring.split();
        egress.push((p, cons));
        let (io, r) = t.io(prod);
        ios.push(io);
        rest.push(r);
    }
    let mut worker_tx = Vec::new();
    let mut from_workers = Vec::new();
    for w in 0..workers {
        let mut tx = KernelTx::none(n_ports);
        if !ios.is_empty() {
            let ring = dpdk_bindings::Ring::new(
                &format!("rvs_kx_{w}"),
                RING,
                socket,
                dpdk_bindings::RingMode::SPSC,
            )
            .context("creating a worker-to-kernel ring")?;
            let (prod, cons) = ring.split();
            tx.ring = Some(prod);
            tx.twins.clone_from(&twin_flags);
            tx.stats.clone_from(&stats);
            from_workers.push(cons);
        }
        worker_tx.push(tx);
    }
    Ok(Wiring {
        worker_tx,
        egress,
        thread: KernelThread {
            twins: ios,
            twin_of,
            from_workers,
        },
        rest,
    })
}

impl KernelThread {
    /// Whether there is anything to run.
    pub fn is_empty(&self) -> bool {
        self.twins.is_empty()
    }

    /// The thread's loop, until `stop`.
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        let mut batch: MbufBatch = MbufBatch::new();
        while !stop.load(Ordering::Relaxed) {
            let mut moved = 0usize;
            let now = Instant::now();
            // Workers -> kernel, through the buckets.
            for ring in self.from_workers.iter_mut() {
                moved += ring.dequeue_burst(&mut batch);
                for m in batch.drain() {
                    let Some(t) = self
                        .twin_of
                        .get(usize::from(m.port()))
                        .copied()
                        .flatten()
                        .and_then(|k| self.twins.get_mut(k))
                    else {
                        continue; // freed
                    };
                    let bucket = if is_control(m.data()) {
                        &mut t.control
                    } else {
                        &mut t.data
                    };
                    if !bucket.take(now) {
                        add(&t.stats.rate_limited, 1);
                        continue;
                    }
                    if t.out.is_full() {
                        t.send();
                    }
                    let _ = t.out.push(m);
                }
            }
            for t in self.twins.iter_mut() {
                t.send();
                // Kernel -> port.
                let n = t.rxq.rx_burst(&mut batch);
                moved += n;
                if n > 0 {
                    let bytes: u64 = batch.iter().map(|m| m.len() as u64).sum();
                    t.egress.enqueue_burst(&mut batch);
                    let left = batch.len();
                    let left_bytes: u64 = batch.iter().map(|m| m.len() as u64).sum();
                    batch.clear();
                    add(&t.stats.from_kernel_packets, (n - left) as u64);
                    add(&t.stats.from_kernel_bytes, bytes - left_bytes);
                    add(&t.stats.egress_full, left as u64);
                }
            }
            if moved == 0 {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
    }
}

/// Stop and remove the twins' devices (after the kernel thread has ended).
pub fn remove(rest: Vec<TwinRest>) {
    for mut r in rest {
        if let Err(e) = r.port.stop() {
            tracing::warn!(device = %r.vdev, "stop: {e}");
        }
        drop(r.port);
        if let Err(e) = dpdk_bindings::remove_vdev(&r.vdev) {
            tracing::warn!(device = %r.vdev, "remove: {e}");
        }
    }
}

/// VIP announcement (`[port.kernel] announce`): each VIP of an address service is put on the
/// twin as a /32 (an IPv6 VIP as a /128, without duplicate address detection) while it is
/// serviceable (a service on it has a dest with weight > 0) and
/// taken off when it is not, so a routing daemon exporting the interface's /32 routes (bird's
/// `protocol direct`, FRR's `redistribute connected`) announces it exactly then. At a clean
/// stop the VIPs are taken off first (and rvsd forwards on for `withdraw_wait`); when rvsd
/// dies, the twin goes and the VIPs with it.
pub struct Announcer {
    ifname: String,
    /// `[port.kernel] withdraw_wait_ms`.
    pub withdraw_wait: Duration,
    /// Addresses the twin has of its own (never taken off).
    own: BTreeSet<IpAddr>,
    current: BTreeSet<IpAddr>,
}

impl Announcer {
    pub fn new(t: &TwinFacts, withdraw_wait_ms: u32) -> Announcer {
        Announcer {
            ifname: t.ifname.clone(),
            withdraw_wait: Duration::from_millis(u64::from(withdraw_wait_ms)),
            own: t.addrs.iter().map(|a| IpAddr::V4(a.addr)).collect(),
            current: BTreeSet::new(),
        }
    }

    /// The VIPs (both families) serviceable in `snap`.
    pub fn serviceable(snap: &dataplane::service::Snapshot) -> BTreeSet<IpAddr> {
        snap.services()
            .iter()
            .filter(|s| s.dests().iter().any(|d| d.weight() > 0))
            .filter_map(|s| match s.key() {
                dataplane::service::ServiceKey::Addr { vip, .. } => Some(vip),
                dataplane::service::ServiceKey::Fwmark(_) => None,
            })
            .collect()
    }

    /// Whether a VIP is announced now.
    pub fn announces(&self) -> bool {
        !self.current.is_empty()
    }

    /// Make the twin's announced VIPs `wanted` (a change is logged; a failure is logged and
    /// retried at the next call).
    pub fn update(&mut self, wanted: &BTreeSet<IpAddr>) {
        let wanted: BTreeSet<IpAddr> = wanted.difference(&self.own).copied().collect();
        if wanted == self.current {
            return;
        }
        for vip in wanted.difference(&self.current.clone()) {
            let added = match vip {
                IpAddr::V4(_) => {
                    ip(&["addr", "replace", &format!("{vip}/32"), "dev", &self.ifname])
                }
                IpAddr::V6(_) => ip(&[
                    "-6",
                    "addr",
                    "replace",
                    &format!("{vip}/128"),
                    "dev",
                    &self.ifname,
                    "nodad",
                ]),
            };
            match added {
                Ok(()) => {
                    tracing::info!(%vip, twin = %self.ifname, "VIP serviceable: announced");
                    self.current.insert(*vip);
                }
                Err(e) => tracing::warn!(%vip, "announcing: {e:#}"),
            }
        }
        for vip in self.current.clone().difference(&wanted) {
            let len = if vip.is_ipv4() { 32 } else { 128 };
            match ip(&["addr", "del", &format!("{vip}/{len}"), "dev", &self.ifname]) {
                Ok(()) => {
                    tracing::info!(%vip, twin = %self.ifname, "VIP not serviceable: withdrawn");
                    self.current.remove(vip);
                }
                Err(e) => tracing::warn!(%vip, "withdrawing: {e:#}"),
            }
        }
    }
}

/// Addresses of `addrs` as text, for logs and listings.
pub fn addr_list(addrs: &[Prefix]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate_up_to_its_depth() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100, 5, t0);
        assert_eq!((0..10).filter(|_| b.take(t0)).count(), 5);
        // 100/s: one token per 10 ms.
        let t1 = t0 + Duration::from_millis(35);
        assert_eq!((0..10).filter(|_| b.take(t1)).count(), 3);
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!((0..10).filter(|_| b.take(t2)).count(), 5);
    }

    #[test]
    fn control_traffic_is_recognised() {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(is_control(&f));
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[34..36].copy_from_slice(&179u16.to_be_bytes());
        assert!(is_control(&f));
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&22u16.to_be_bytes());
        assert!(!is_control(&f));
        f[23] = 17;
        f[36..38].copy_from_slice(&3784u16.to_be_bytes());
        assert!(is_control(&f));
        f[23] = 1;
        assert!(!is_control(&f));
    }
}
