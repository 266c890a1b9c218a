//! Ethernet ports: [`Port`] (the device, owned by the control thread) and the per-queue
//! handles [`RxQueue`] / [`TxQueue`] that workers own.
//!
//! Devices come from EAL arguments: `--vdev net_ring0`, `--vdev net_pcap0,rx_pcap=IN,tx_pcap=OUT`,
//! `--vdev net_af_packet0,iface=veth0`, or `-a 0000:01:00.0` for PCI; find their port id with
//! [`port_id_by_name`] (the vdev name, e.g. `"net_ring0"`, or the PCI address).
//!
//! Lifecycle: [`Port::configure`] -> take queue handles with [`Port::rx_queue`] /
//! [`Port::tx_queue`] and move each to the lcore that polls it -> [`Port::start`] -> ... ->
//! stop the workers and drop their queue handles -> [`Port::stop`] / drop the `Port` (stop +
//! close). The device stays open while any handle (port or queue) is alive.
//!
//! Threading: DPDK's ethdev control functions are not thread-safe, so `Port` is `Send` but not
//! `Sync` and changes state through `&mut self`. Each queue may be polled by one thread at a
//! time; a queue handle is handed out once (until dropped), is `Send` and polls through
//! `&mut self`, so that holds by construction.
//!
//! net_pcap: packets are written to `tx_pcap` as they are sent (the PMD flushes the pcap dumper
//! after every tx burst) and the file is closed on [`Port::stop`]/close; read it after stopping
//! (or dropping) the port to be sure it is complete. `rx_pcap` is read once: at end of file
//! `rx_burst` returns 0 for ever (pass `infinite_rx=1` to replay it instead).

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::afpacket::KernelRings;
use crate::batch::MbufBatch;
use crate::eal::{self, EalToken, SOCKET_ID_ANY};
use crate::error::DpdkError;
use crate::mempool::Mempool;
use crate::sys;

/// `RTE_ETH_RX_OFFLOAD_RSS_HASH`: deliver the RSS hash in the mbuf.
const RX_OFFLOAD_RSS_HASH: u64 = 1 << 19;

/// RSS hash-field bits (`RTE_ETH_RSS_*`) for [`RssConfig::hash_fields`].
pub mod rss {
    /// IPv4 addresses.
    pub const IPV4: u64 = 1 << 2;
    /// Fragmented IPv4.
    pub const FRAG_IPV4: u64 = 1 << 3;
    /// IPv4 + TCP ports.
    pub const NONFRAG_IPV4_TCP: u64 = 1 << 4;
    /// IPv4 + UDP ports.
    pub const NONFRAG_IPV4_UDP: u64 = 1 << 5;
    /// Other IPv4.
    pub const NONFRAG_IPV4_OTHER: u64 = 1 << 7;
    /// Hash on the layer-3 source only.
    pub const L3_SRC_ONLY: u64 = 1 << 63;
    /// Hash on the layer-3 destination only.
    pub const L3_DST_ONLY: u64 = 1 << 62;
    /// Hash on the layer-4 source only.
    pub const L4_SRC_ONLY: u64 = 1 << 61;
    /// Hash on the layer-4 destination only.
    pub const L4_DST_ONLY: u64 = 1 << 60;
}

/// One bit per ethdev port id: which ports have a live `Port`, so one device never gets two.
static OWNED: [AtomicBool; sys::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; sys::RTE_MAX_ETHPORTS as usize];

/// The port id of a device by its name (vdev name such as `"net_ring0"` or PCI address).
pub fn port_id_by_name(name: &str) -> Result<u16, DpdkError> {
    const OP: &str = "rte_eth_dev_get_port_by_name";
    let _token = eal::token(OP)?;
    let cname = CString::new(name)
        .map_err(|_| DpdkError::new(OP, libc::EINVAL, format!("{name:?} contains NUL")))?;
    let mut id = 0u16;
    // SAFETY: EAL initialised; valid C string and a valid out-pointer for the call's duration.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    if ret < 0 {
        return Err(DpdkError::new(
            OP,
            ret.saturating_abs(),
            format!("no ethdev named {name:?} (create it with --vdev or -a in the EAL args)"),
        ));
    }
    Ok(id)
}

/// What a device can do, from `rte_eth_dev_info_get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// PMD name, e.g. `"net_ring"`.
    pub driver_name: String,
    /// Most rx queues the device supports.
    pub max_rx_queues: u16,
    /// Most tx queues the device supports.
    pub max_tx_queues: u16,
    /// RSS hash fields the device supports (0: no RSS).
    pub rss_offloads: u64,
    /// RSS redirection table size (0: no RSS).
    pub reta_size: u16,
    /// RSS key size in bytes (0: unknown or no RSS).
    pub hash_key_size: u8,
    /// Smallest MTU accepted.
    pub min_mtu: u16,
    /// Largest MTU accepted.
    pub max_mtu: u16,
    /// The kernel interface behind the device, where there is one (af_packet, tap); 0 if none.
    pub if_index: u32,
}

/// Device capabilities of `port_id` (before or after configuring it).
pub fn port_info(port_id: u16) -> Result<PortInfo, DpdkError> {
    let _token = eal::token("rte_eth_dev_info_get")?;
    raw_info(port_id).map(|raw| PortInfo::from_raw(&raw))
}

fn raw_info(port_id: u16) -> Result<sys::rte_eth_dev_info, DpdkError> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: EAL initialised (callers hold a token); `info` is a valid out-pointer; an invalid
    // port id is reported as -ENODEV, not UB.
    let ret = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
    DpdkError::check("rte_eth_dev_info_get", ret)?;
    Ok(info)
}

impl PortInfo {
    fn from_raw(raw: &sys::rte_eth_dev_info) -> Self {
        let driver_name = if raw.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: non-null driver_name points to the PMD's static NUL-terminated name.
            unsafe { CStr::from_ptr(raw.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        PortInfo {
            driver_name,
            max_rx_queues: raw.max_rx_queues,
            max_tx_queues: raw.max_tx_queues,
            rss_offloads: raw.flow_type_rss_offloads,
            reta_size: raw.reta_size,
            hash_key_size: raw.hash_key_size,
            min_mtu: raw.min_mtu,
            max_mtu: raw.max_mtu,
            if_index: raw.if_index,
        }
    }
}

/// RSS request for [`PortConfig::rss`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RssConfig {
    /// Toeplitz key; empty for the driver's default key. Must match the device's key size.
    pub key: Vec<u8>,
    /// `rss::*` bits; masked by what the device supports.
    pub hash_fields: u64,
}

/// How to set up a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of rx queues (at least 1).
    pub rx_queues: u16,
    /// Number of tx queues (at least 1).
    pub tx_queues: u16,
    /// Descriptors per rx queue (clamped to the device limits).
    pub rx_desc: u16,
    /// Descriptors per tx queue (clamped to the device limits).
    pub tx_desc: u16,
    /// MTU to set; `None` keeps the default (1500).
    pub mtu: Option<u16>,
    /// Receive frames for any destination MAC.
    pub promiscuous: bool,
    /// RSS, applied only if the device reports RSS support (see [`Port::rss_hash_fields`]).
    pub rss: Option<RssConfig>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            promiscuous: true,
            rss: None,
        }
    }
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s; 0 when none or unknown.
    pub speed_mbps: u32,
}

/// Basic device counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because no rx descriptor was free (queues too slow). For
    /// an af_packet port this includes the drops of the PMD's kernel rings (the sockets'
    /// `PACKET_STATISTICS`), which DPDK 22.11's PMD does not report.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Receive mbuf allocation failures (mempool too small).
    pub rx_nombuf: u64,
}

/// State shared by a port and its queue handles; the device is closed when the last goes.
#[derive(Debug)]
struct Shared {
    id: u16,
    rx_taken: Box<[AtomicBool]>,
    tx_taken: Box<[AtomicBool]>,
    rss_hash_fields: Option<u64>,
    rx_desc: u16,
    tx_desc: u16,
    socket: i32,
    /// Started and not stopped since (so drop does not stop twice).
    started: AtomicBool,
    /// The kernel receive rings of an af_packet port, whose drops count as `imissed`.
    kernel_rings: Option<KernelRings>,
    /// Keeps the rx mbufs' pool alive while the device may hold mbufs from it.
    _pool: Mempool,
    _token: Arc<EalToken>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: last handle of a port we configured: no queue is polled any more. stop on a
        // stopped port is harmless; close releases the device and its rx mbufs (to `_pool`,
        // still alive) before the pool handle drops.
        unsafe {
            if self.started.load(Ordering::Acquire) {
                sys::rte_eth_dev_stop(self.id);
            }
            sys::rte_eth_dev_close(self.id);
        }
        OWNED[usize::from(self.id)].store(false, Ordering::Release);
    }
}

/// A configured ethdev port. See the module docs for the lifecycle and threading rules.
#[derive(Debug)]
pub struct Port {
    shared: Arc<Shared>,
    _not_sync: PhantomData<Cell<()>>,
}

/// Clears a port's ownership bit if configuration fails half-way.
struct OwnedGuard(Option<u16>);

impl Drop for OwnedGuard {
    fn drop(&mut self) {
        if let Some(id) = self.0 {
            OWNED[usize::from(id)].store(false, Ordering::Release);
        }
    }
}

impl Port {
    /// Configure device `port_id` with `config`, receiving into mbufs from `pool`: device
    /// configuration, rx/tx queue setup (descriptor counts clamped to the device's limits),
    /// promiscuous mode, MTU and RSS (only if the device reports RSS support). Does not start it.
    pub fn configure(port_id: u16, config: &PortConfig, pool: &Mempool) -> Result<Port, DpdkError> {
        const OP: &str = "rte_eth_dev_configure";
        let token = eal::token(OP)?;
        let owned = OWNED.get(usize::from(port_id)).ok_or_else(|| {
            DpdkError::new(OP, libc::ENODEV, format!("port id {port_id} out of range"))
        })?;
        if owned.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::new(
                OP,
                libc::EBUSY,
                format!("port {port_id} is already configured by another Port"),
            ));
        }
        let guard = OwnedGuard(Some(port_id));

        let info = raw_info(port_id)?;
        for (what, asked, max) in [
            ("rx", config.rx_queues, info.max_rx_queues),
            ("tx", config.tx_queues, info.max_tx_queues),
        ] {
            if asked == 0 || asked > max {
                return Err(DpdkError::new(
                    OP,
                    libc::EINVAL,
                    format!(
                        "port {port_id}: {asked} {what} queues asked, device supports 1..={max}"
                    ),
                ));
            }
        }

        let mut conf = sys::rte_eth_conf::default();
        if let Some(mtu) = config.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        let mut rss_hash_fields = None;
        let mut rss_key = Vec::new();
        if let Some(rss) = &config.rss {
            let fields = rss.hash_fields & info.flow_type_rss_offloads;
            if fields != 0 {
                rss_key.clone_from(&rss.key);
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = if rss_key.is_empty() {
                    std::ptr::null_mut()
                } else {
                    rss_key.as_mut_ptr()
                };
                conf.rx_adv_conf.rss_conf.rss_key_len =
                    u8::try_from(rss_key.len()).map_err(|_| {
                        DpdkError::new(OP, libc::EINVAL, "RSS key longer than 255 bytes")
                    })?;
                conf.rx_adv_conf.rss_conf.rss_hf = fields;
                if info.rx_offload_capa & RX_OFFLOAD_RSS_HASH != 0 {
                    conf.rxmode.offloads |= RX_OFFLOAD_RSS_HASH;
                }
                rss_hash_fields = Some(fields);
            }
        }
        // SAFETY: EAL initialised; `conf` is a fully initialised rte_eth_conf and the RSS key
        // it points to (`rss_key`) outlives the call (DPDK copies it).
        let ret = unsafe {
            sys::rte_eth_dev_configure(port_id, config.rx_queues, config.tx_queues, &conf)
        };
        DpdkError::check(OP, ret)?;

        let (mut rx_desc, mut tx_desc) = (config.rx_desc, config.tx_desc);
        // SAFETY: configured port; both out-pointers are valid for the call.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc) };
        DpdkError::check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;

        // SAFETY: plain query on a valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = if socket < 0 { SOCKET_ID_ANY } else { socket };
        // DPDK takes the socket as unsigned; SOCKET_ID_ANY (-1) becomes its u32 pattern as in C.
        let socket_arg = socket as u32;
        for q in 0..config.rx_queues {
            // SAFETY: configured port, q < rx_queues; NULL rxconf = device defaults; the pool
            // outlives the queue (kept in `Shared`).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    rx_desc,
                    socket_arg,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            DpdkError::check("rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..config.tx_queues {
            // SAFETY: configured port, q < tx_queues; NULL txconf = device defaults.
            let ret = unsafe {
                sys::rte_eth_tx_queue_setup(port_id, q, tx_desc, socket_arg, std::ptr::null())
            };
            DpdkError::check("rte_eth_tx_queue_setup", ret)?;
        }
        if config.promiscuous {
            // SAFETY: plain control call on a configured port.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(port_id) };
            if ret < 0 && ret != -libc::ENOTSUP {
                return Err(DpdkError::from_errno("rte_eth_promiscuous_enable", ret));
            }
        }

        let taken = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect();
        let kernel_rings = if PortInfo::from_raw(&info).driver_name == "net_af_packet" {
            let rings = KernelRings::find(info.if_index);
            match &rings {
                Some(r) => tracing::debug!(
                    port = port_id,
                    sockets = r.sockets(),
                    "af_packet: counting kernel ring drops as rx missed"
                ),
                None => tracing::warn!(
                    port = port_id,
                    "af_packet: the PMD's packet sockets were not found; kernel ring drops \
                     cannot be counted"
                ),
            }
            rings
        } else {
            None
        };
        let shared = Shared {
            id: port_id,
            rx_taken: taken(config.rx_queues),
            tx_taken: taken(config.tx_queues),
            rss_hash_fields,
            rx_desc,
            tx_desc,
            socket,
            started: AtomicBool::new(false),
            kernel_rings,
            _pool: pool.clone(),
            _token: token,
        };
        let mut guard = guard;
        guard.0 = None; // `Shared::drop` clears the ownership bit from now on
        Ok(Port {
            shared: Arc::new(shared),
            _not_sync: PhantomData,
        })
    }

    /// The ethdev port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// Number of rx queues configured.
    pub fn rx_queues(&self) -> u16 {
        queue_count(&self.shared.rx_taken)
    }

    /// Number of tx queues configured.
    pub fn tx_queues(&self) -> u16 {
        queue_count(&self.shared.tx_taken)
    }

    /// Rx descriptors per queue after clamping to the device limits.
    pub fn rx_desc(&self) -> u16 {
        self.shared.rx_desc
    }

    /// Tx descriptors per queue after clamping to the device limits.
    pub fn tx_desc(&self) -> u16 {
        self.shared.tx_desc
    }

    /// NUMA socket of the device, or [`SOCKET_ID_ANY`].
    pub fn socket_id(&self) -> i32 {
        self.shared.socket
    }

    /// The RSS hash fields in effect (requested & supported), `None` when RSS is off.
    pub fn rss_hash_fields(&self) -> Option<u64> {
        self.shared.rss_hash_fields
    }

    /// Start the device (`rte_eth_dev_start`).
    pub fn start(&mut self) -> Result<(), DpdkError> {
        // SAFETY: configured port with all queues set up; `&mut self` on the owning thread
        // serialises control calls.
        let ret = unsafe { sys::rte_eth_dev_start(self.shared.id) };
        DpdkError::check("rte_eth_dev_start", ret)?;
        self.shared.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stop the device (`rte_eth_dev_stop`). Refused with `EBUSY` while a queue handle is
    /// alive: stop the workers and drop their queues first.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        const OP: &str = "rte_eth_dev_stop";
        if self.any_queue_taken() {
            return Err(DpdkError::new(
                OP,
                libc::EBUSY,
                format!(
                    "port {} still has queue handles in use: drop them before stopping",
                    self.shared.id
                ),
            ));
        }
        // SAFETY: configured port, no queue handle exists so nothing polls it concurrently.
        let ret = unsafe { sys::rte_eth_dev_stop(self.shared.id) };
        DpdkError::check(OP, ret)?;
        self.shared.started.store(false, Ordering::Release);
        Ok(())
    }

    fn any_queue_taken(&self) -> bool {
        self.shared
            .rx_taken
            .iter()
            .chain(self.shared.tx_taken.iter())
            .any(|t| t.load(Ordering::Acquire))
    }

    /// Device capabilities.
    pub fn info(&self) -> Result<PortInfo, DpdkError> {
        raw_info(self.shared.id).map(|raw| PortInfo::from_raw(&raw))
    }

    /// The port's MAC address.
    pub fn mac_addr(&self) -> Result<[u8; 6], DpdkError> {
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: valid port, valid out-pointer.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.shared.id, &mut mac) };
        DpdkError::check("rte_eth_macaddr_get", ret)?;
        Ok(mac.addr_bytes)
    }

    /// The current MTU.
    pub fn mtu(&self) -> Result<u16, DpdkError> {
        let mut mtu = 0u16;
        // SAFETY: valid port, valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_mtu(self.shared.id, &mut mtu) };
        DpdkError::check("rte_eth_dev_get_mtu", ret)?;
        Ok(mtu)
    }

    /// Link state without waiting for auto-negotiation.
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let (mut speed, mut up) = (0u32, 0i32);
        // SAFETY: valid port, valid out-pointers to locals.
        let ret = unsafe { sys::rvs_eth_link_nowait(self.shared.id, &mut speed, &mut up) };
        DpdkError::check("rte_eth_link_get_nowait", ret)?;
        Ok(LinkStatus {
            up: up != 0,
            speed_mbps: if speed == u32::MAX { 0 } else { speed },
        })
    }

    /// Device counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port, valid out-pointer.
        let ret = unsafe { sys::rte_eth_stats_get(self.shared.id, &mut s) };
        DpdkError::check("rte_eth_stats_get", ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed
                + self
                    .shared
                    .kernel_rings
                    .as_ref()
                    .map_or(0, KernelRings::drops),
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The exclusive handle for rx queue `queue`, to move to the lcore that polls it.
    /// `EBUSY` if a handle for it is already alive.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, DpdkError> {
        take(&self.shared, &self.shared.rx_taken, queue, "rx").map(|queue| RxQueue {
            shared: Arc::clone(&self.shared),
            queue,
            _not_sync: PhantomData,
        })
    }

    /// The exclusive handle for tx queue `queue`, to move to the lcore that uses it.
    /// `EBUSY` if a handle for it is already alive.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue, DpdkError> {
        take(&self.shared, &self.shared.tx_taken, queue, "tx").map(|queue| TxQueue {
            shared: Arc::clone(&self.shared),
            queue,
            _not_sync: PhantomData,
        })
    }

    /// Receive into the spare slots of `batch` from `queue`, for single-threaded use without
    /// queue handles. Returns the number received. `EBUSY` if a handle for the queue is alive.
    pub fn rx_burst<const N: usize>(
        &mut self,
        queue: u16,
        batch: &mut MbufBatch<N>,
    ) -> Result<usize, DpdkError> {
        check_free(&self.shared.rx_taken, queue, "rx")?;
        // SAFETY: configured queue, not handed out (checked) and `&mut self` on a !Sync port:
        // no other thread polls it.
        Ok(unsafe { rx_burst_raw(self.shared.id, queue, batch) })
    }

    /// Send from the front of `batch` on `queue`; unsent packets stay in `batch`. Returns the
    /// number sent. `EBUSY` if a handle for the queue is alive.
    pub fn tx_burst<const N: usize>(
        &mut self,
        queue: u16,
        batch: &mut MbufBatch<N>,
    ) -> Result<usize, DpdkError> {
        check_free(&self.shared.tx_taken, queue, "tx")?;
        // SAFETY: as in rx_burst.
        Ok(unsafe { tx_burst_raw(self.shared.id, queue, batch) })
    }
}

fn queue_count(flags: &[AtomicBool]) -> u16 {
    u16::try_from(flags.len()).unwrap_or(u16::MAX)
}

fn check_free(flags: &[AtomicBool], queue: u16, what: &str) -> Result<(), DpdkError> {
    match flags.get(usize::from(queue)) {
        None => Err(DpdkError::new(
            "burst",
            libc::EINVAL,
            format!(
                "{what} queue {queue} does not exist ({} configured)",
                flags.len()
            ),
        )),
        Some(t) if t.load(Ordering::Acquire) => Err(DpdkError::new(
            "burst",
            libc::EBUSY,
            format!("{what} queue {queue} is owned by a queue handle"),
        )),
        Some(_) => Ok(()),
    }
}

fn take(shared: &Shared, flags: &[AtomicBool], queue: u16, what: &str) -> Result<u16, DpdkError> {
    let flag = flags.get(usize::from(queue)).ok_or_else(|| {
        DpdkError::new(
            "take queue",
            libc::EINVAL,
            format!(
                "port {}: {what} queue {queue} does not exist ({} configured)",
                shared.id,
                flags.len()
            ),
        )
    })?;
    if flag.swap(true, Ordering::AcqRel) {
        return Err(DpdkError::new(
            "take queue",
            libc::EBUSY,
            format!(
                "port {}: {what} queue {queue} is already handed out",
                shared.id
            ),
        ));
    }
    Ok(queue)
}

/// # Safety
/// `queue` must be a set-up rx queue of configured port `port` that no other thread polls.
unsafe fn rx_burst_raw<const N: usize>(port: u16, queue: u16, batch: &mut MbufBatch<N>) -> usize {
    let (slots, spare) = batch.spare_raw();
    // SAFETY: caller guarantees exclusive use of a valid queue; `slots` has `spare` writable
    // slots. The PMD writes that many or fewer freshly received mbufs, each owned by us
    // (refcnt 1, from the port's pool, which the port keeps alive).
    let n = usize::from(unsafe { sys::rvs_eth_rx_burst(port, queue, slots, spare) });
    // SAFETY: the PMD filled exactly `n <= spare` slots with owned mbufs.
    unsafe { batch.commit_filled(n) };
    n
}

/// # Safety
/// `queue` must be a set-up tx queue of configured port `port` that no other thread uses.
unsafe fn tx_burst_raw<const N: usize>(port: u16, queue: u16, batch: &mut MbufBatch<N>) -> usize {
    let count = batch.len_u16();
    // SAFETY: caller guarantees exclusive use of a valid queue; the first `count` slots hold
    // owned mbufs. The PMD takes ownership of the first `n` returned and leaves the rest.
    let n = usize::from(unsafe { sys::rvs_eth_tx_burst(port, queue, batch.as_raw_mut(), count) });
    // SAFETY: the first `n <= len` mbufs now belong to the PMD.
    unsafe { batch.commit_taken(n) };
    n
}

/// Exclusive handle to one rx queue: `Send`, so it can move to the worker lcore that polls it.
#[derive(Debug)]
pub struct RxQueue {
    shared: Arc<Shared>,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Receive into the spare slots of `batch`; returns how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, batch: &mut MbufBatch<N>) -> usize {
        // SAFETY: the queue was set up by `Port::configure` and this handle is its only user
        // (handed out once, polled through &mut self, !Sync).
        unsafe { rx_burst_raw(self.shared.id, self.queue, batch) }
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.shared.id
    }

    /// The queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.shared.rx_taken[usize::from(self.queue)].store(false, Ordering::Release);
    }
}

/// Exclusive handle to one tx queue: `Send`, so it can move to the worker lcore that uses it.
#[derive(Debug)]
pub struct TxQueue {
    shared: Arc<Shared>,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// Send from the front of `batch`; returns how many the device took. The rest stay in
    /// `batch` (retry, or drop them).
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, batch: &mut MbufBatch<N>) -> usize {
        // SAFETY: as in RxQueue::rx_burst.
        unsafe { tx_burst_raw(self.shared.id, self.queue, batch) }
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.shared.id
    }

    /// The queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.shared.tx_taken[usize::from(self.queue)].store(false, Ordering::Release);
    }
}

/// Create the virtual device `name` (e.g. `"net_tap_rvs0"`, `"virtio_user_rvs0"`: the name
/// starts with the driver's name or alias) with driver arguments `args`
/// (`"iface=dp0,mac=02:00:00:00:00:01"`) after EAL initialisation (`rte_eal_hotplug_add` on
/// the vdev bus), and return its ethdev port id. Control-thread only, as every ethdev control
/// call. The device is released with [`remove_vdev`] once its [`Port`] is gone (closing the
/// port releases the ethdev; the bus device stays until removed).
pub fn add_vdev(name: &str, args: &str) -> Result<u16, DpdkError> {
    const OP: &str = "rte_eal_hotplug_add";
    let _token = eal::token(OP)?;
    let bus = c"vdev";
    let cname = CString::new(name)
        .map_err(|_| DpdkError::new(OP, libc::EINVAL, format!("{name:?} contains NUL")))?;
    let cargs = CString::new(args)
        .map_err(|_| DpdkError::new(OP, libc::EINVAL, format!("{args:?} contains NUL")))?;
    // SAFETY: EAL initialised (token held); three valid NUL-terminated strings that DPDK copies
    // during the call.
    let ret = unsafe { sys::rte_eal_hotplug_add(bus.as_ptr(), cname.as_ptr(), cargs.as_ptr()) };
    if ret < 0 {
        return Err(DpdkError::new(
            OP,
            ret.saturating_abs(),
            format!(
                "cannot create {name} ({args}): {} (see the PMD's messages above)",
                crate::error::strerror(ret.saturating_abs())
            ),
        ));
    }
    port_id_by_name(name)
}

/// Remove a virtual device made by [`add_vdev`] (`rte_eal_hotplug_remove`). Call it after the
/// device's [`Port`] and queue handles are dropped.
pub fn remove_vdev(name: &str) -> Result<(), DpdkError> {
    const OP: &str = "rte_eal_hotplug_remove";
    let _token = eal::token(OP)?;
    let bus = c"vdev";
    let cname = CString::new(name)
        .map_err(|_| DpdkError::new(OP, libc::EINVAL, format!("{name:?} contains NUL")))?;
    // SAFETY: EAL initialised; valid C strings for the call's duration.
    let ret = unsafe { sys::rte_eal_hotplug_remove(bus.as_ptr(), cname.as_ptr()) };
    DpdkError::check(OP, ret).map(|_| ())
}
