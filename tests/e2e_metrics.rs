//! Observability end to end (issue 8): `/metrics` scraped from inside the director namespace
//! before and after known traffic (connections, packets and bytes per service and dest, a burst
//! of frames with a bad IPv4 checksum under its drop reason), the whole exposition checked by a
//! strict text-format parser, and `ipvsadm -Ln --rate` and the rate gauges under a steady load.
//! Needs root; skips with a printed reason without it (CI runs it for real).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Rvsd, TestNet};

const METRICS_PORT: u16 = 19475;
const SVC: &str = "tcp/198.18.0.100:80";

fn config(net: &TestNet) -> (String, std::path::PathBuf) {
    let metrics = format!("127.0.0.1:{METRICS_PORT}");
    common::DirectorConf {
        metrics: Some(&metrics),
        ..common::DirectorConf::new(1)
    }
    .render(net)
}

// ---------------------------------------------------------------------------------------------
// A strict parser of the Prometheus text exposition format 0.0.4.

/// One sample: metric name, sorted labels, value.
type Series = (String, BTreeMap<String, String>);

#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<Series, f64>,
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !s.starts_with("__")
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// `{a="x",b="y"}` -> labels, and the rest of the line after `}`.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in label value".into()),
                Some((_, ch)) => value.push(ch),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} repeated"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

fn parse_exposition(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("exposition must end with a newline".into());
    }
    let mut e = Exposition::default();
    let mut helps = BTreeSet::new();
    let mut families_done = BTreeSet::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let ctx = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut parts = c.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _)
                    if !is_metric_name(name) || !helps.insert(name.to_owned()) =>
                {
                    return Err(ctx("bad or repeated HELP".into()));
                }
                (Some("TYPE"), Some(name), Some(t)) => {
                    if !is_metric_name(name) {
                        return Err(ctx("bad metric name".into()));
                    }
                    if !["counter", "gauge", "untyped", "histogram", "summary"].contains(&t) {
                        return Err(ctx(format!("unknown type {t}")));
                    }
                    if e.types.insert(name.to_owned(), t.to_owned()).is_some() {
                        return Err(ctx("TYPE repeated".into()));
                    }
                    if let Some(prev) = current.replace(name.to_owned()) {
                        families_done.insert(prev);
                    }
                    if families_done.contains(name) {
                        return Err(ctx("family split".into()));
                    }
                }
                _ => {} // a plain comment
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| ctx("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(ctx("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(&ctx)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| ctx("expected a space before the value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(&ctx)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| ctx("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(ctx("trailing fields".into()));
        }
        let family = current
            .as_deref()
            .ok_or_else(|| ctx("sample before any TYPE".into()))?;
        let t = &e.types[family];
        let belongs = name == family
            || (t == "histogram"
                && [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count"),
                ]
                .contains(&name.to_owned()))
            || (t == "summary"
                && [format!("{family}_sum"), format!("{family}_count")].contains(&name.to_owned()));
        if !belongs {
            return Err(ctx(format!("sample outside its family {family}")));
        }
        if t == "counter" && (value.is_nan() || value < 0.0) {
            return Err(ctx("negative or NaN counter".into()));
        }
        if e.samples.insert((name.to_owned(), labels), value).is_some() {
            return Err(ctx("duplicate series".into()));
        }
    }
    Ok(e)
}

impl Exposition {
    /// Sum of the samples of `name` whose labels include all of `want`.
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.samples.keys().any(|(n, _)| n == name)
    }
}

#[test]
fn parser_accepts_valid_and_rejects_invalid_text() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\"} 3\na_total{x=\"2\"} 4 1700000000\n# TYPE g gauge\ng 1.5e3\ng{l=\"\"} NaN\n";
    let e = parse_exposition(ok).unwrap();
    assert_eq!(e.sum("a_total", &[]), 7.0);
    assert_eq!(e.sum("a_total", &[("y", "q\"\\")]), 3.0);
    for bad in [
        "a 1\n",                                     // no TYPE
        "# TYPE a counter\na{x=1} 1\n",              // unquoted
        "# TYPE a counter\na -1\n",                  // negative counter
        "# TYPE a counter\na 1\na 2\n",              // duplicate series
        "# TYPE a counter\nb 1\n",                   // outside its family
        "# TYPE a foo\na 1\n",                       // unknown type
        "# TYPE a counter\na{x=\"1\"}1\n",           // no space
        "# TYPE a counter\na 1",                     // no final newline
        "# TYPE a counter\na{x=\"\\t\"} 1\n",        // bad escape
        "# TYPE a counter\n# TYPE a counter\na 1\n", // TYPE twice
        "# TYPE 1a counter\n1a 1\n",                 // bad name
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted: {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------

fn scrape(net: &TestNet) -> (String, Exposition) {
    let url = format!("http://127.0.0.1:{METRICS_PORT}/metrics");
    let o = net.exec(
        "d",
        &[
            "curl",
            "-s",
            "-S",
            "--max-time",
            "5",
            "-D",
            "/dev/stderr",
            &url,
        ],
    );
    let head = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "scrape failed: {head}");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let text = String::from_utf8(o.stdout).expect("exposition is UTF-8");
    match parse_exposition(&text) {
        Ok(e) => (text, e),
        Err(err) => panic!("invalid exposition: {err}\n{text}"),
    }
}

fn curl_vip(net: &TestNet, rvsd: &Rvsd) -> String {
    let o = net.exec(
        "c",
        &["curl", "-s", "--max-time", "5", "http://198.18.0.100/"],
    );
    assert!(
        o.status.success(),
        "request failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        rvsd.log_text()
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// `ipvsadm -Ln --stats --exact` (or `--rate`) rows: address -> the five numbers.
fn listing_numbers(text: &str) -> BTreeMap<String, Vec<u64>> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches("-> ");
            let mut f = l.split_whitespace();
            let first = f.next()?;
            let addr = if first == "TCP" { f.next()? } else { first };
            let nums: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
            (nums.len() == 5).then(|| (addr.to_owned(), nums))
        })
        .collect()
}

/// Send `count` Ethernet frames carrying IPv4/UDP to the director's DIP with a wrong IPv4 header
/// checksum, from the client namespace through a raw AF_PACKET socket on c0.
fn send_bad_checksum_frames(net: &TestNet, count: u32) {
    let mac = net.exec("d", &["cat", "/sys/class/net/d0/address"]);
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_owned();
    assert_eq!(mac.len(), 17, "d0 MAC: {mac:?}");
    let script = format!(
        r#"
import socket, struct
dst = bytes.fromhex("{mac}".replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("c0", 0))
src = s.getsockname()[4]
payload = b"rvs-bad-checksum"
udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton("198.18.0.2"), socket.inet_aton("198.18.0.1"))
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t > 0xffff:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
good = csum(ip)
bad = ip[:10] + struct.pack("!H", good ^ 0x5a5a) + ip[12:]
frame = dst + src + b"\x08\x00" + bad + udp
for _ in range({count}):
    s.send(frame)
"#
    );
    let o = net.exec("c", &["python3", "-c", &script]);
    assert!(
        o.status.success(),
        "raw sender: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_counts_traffic_drops_and_rates() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up("rvsmet");
    let (conf, socket) = config(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:80", "-s", "wrr"]);
    for (rip, w) in [("198.18.1.11:80", "3"), ("198.18.1.12:80", "1")] {
        rvsd.ipvsadm_ok(&["-a", "-t", "198.18.0.100:80", "-r", rip, "-m", "-w", w]);
    }
    const RS1: &str = "198.18.1.11:80";
    const RS2: &str = "198.18.1.12:80";

    // Anything but GET /metrics is a 404.
    let o = net.exec(
        "d",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{METRICS_PORT}/other"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "404");

    // --- Known traffic: N requests, split 3:1.
    let (_, before) = scrape(&net);
    for family in [
        "rvs_service_connections_total",
        "rvs_dest_active_connections",
        "rvs_port_rx_packets_total",
        "rvs_port_rx_nombuf_total",
        "rvs_worker_busy_ratio",
        "rvs_worker_connection_capacity",
        "rvs_worker_redirects_sent_total",
        "rvs_mempool_in_use",
        "rvs_mempool_available",
        "rvs_neighbour_entries",
        "rvs_neighbour_unresolved_drops_total",
        "rvs_service_cps",
        "rvs_dest_bps",
    ] {
        assert!(before.has(family), "{family} missing");
    }
    const N: u32 = 20;
    for _ in 0..N {
        curl_vip(&net, &rvsd);
    }
    // Let the last FINs and ACKs through and the workers publish.
    let settled = || {
        rvsd.ipvsadm_ok(&["-Ln"])
            .lines()
            .filter(|l| l.contains("Masq"))
            .map(|l| l.split_whitespace().nth(5).unwrap_or("").to_owned())
            .collect::<Vec<_>>()
            == ["15", "5"]
    };
    wait_until("connections to settle", Duration::from_secs(5), settled);
    std::thread::sleep(Duration::from_millis(300));
    let (text, after) = scrape(&net);
    let stats = listing_numbers(&rvsd.ipvsadm_ok(&["-Ln", "--stats", "--exact"]));
    let delta = |name: &str, labels: &[(&str, &str)]| {
        let d = after.sum(name, labels) - before.sum(name, labels);
        assert!(d >= 0.0 && d.fract() == 0.0, "{name} {labels:?}: {d}");
        d as u64
    };
    let svc = [("service", SVC)];
    assert_eq!(delta("rvs_service_connections_total", &svc), u64::from(N));
    for (rip, share) in [(RS1, 15u64), (RS2, 5)] {
        let l = [("service", SVC), ("dest", rip)];
        assert_eq!(delta("rvs_dest_connections_total", &l), share, "{rip}");
        assert_eq!(after.sum("rvs_dest_inactive_connections", &l), share as f64);
        assert_eq!(after.sum("rvs_dest_active_connections", &l), 0.0);
    }
    // Packets and bytes: per dest within what N small HTTP exchanges take, the service the sum
    // of its dests, and every number equal to what ipvsadm --stats --exact lists (one source).
    let mut sums = [0u64; 4];
    for (rip, share) in [(RS1, 15u64), (RS2, 5)] {
        let mut got = Vec::new();
        for (family, dir) in [
            ("rvs_dest_packets_total", "in"),
            ("rvs_dest_packets_total", "out"),
            ("rvs_dest_bytes_total", "in"),
            ("rvs_dest_bytes_total", "out"),
        ] {
            let l = [("service", SVC), ("dest", rip), ("direction", dir)];
            got.push(delta(family, &l));
        }
        let (pin, pout, bin, bout) = (got[0], got[1], got[2], got[3]);
        // A connection: SYN, ACK, request, FIN, ACK at least in; SYN-ACK, response, FIN out.
        assert!(
            (4 * share..=12 * share).contains(&pin),
            "{rip} in packets {pin}"
        );
        assert!(
            (3 * share..=12 * share).contains(&pout),
            "{rip} out packets {pout}"
        );
        assert!(
            (40 * pin..=1500 * pin).contains(&bin),
            "{rip} in bytes {bin}"
        );
        assert!(
            (40 * pout..=1500 * pout).contains(&bout),
            "{rip} out bytes {bout}"
        );
        let listed = &stats[rip];
        assert_eq!(
            listed[0],
            after.sum("rvs_dest_connections_total", &[("dest", rip)]) as u64
        );
        assert_eq!(
            &listed[1..],
            &[
                after.sum(
                    "rvs_dest_packets_total",
                    &[("dest", rip), ("direction", "in")]
                ) as u64,
                after.sum(
                    "rvs_dest_packets_total",
                    &[("dest", rip), ("direction", "out")]
                ) as u64,
                after.sum(
                    "rvs_dest_bytes_total",
                    &[("dest", rip), ("direction", "in")]
                ) as u64,
                after.sum(
                    "rvs_dest_bytes_total",
                    &[("dest", rip), ("direction", "out")]
                ) as u64,
            ],
            "{rip}: metrics and ipvsadm --stats differ\n{text}"
        );
        for (s, g) in sums.iter_mut().zip(&got) {
            *s += g;
        }
    }
    let svc_got = [
        delta(
            "rvs_service_packets_total",
            &[("service", SVC), ("direction", "in")],
        ),
        delta(
            "rvs_service_packets_total",
            &[("service", SVC), ("direction", "out")],
        ),
        delta(
            "rvs_service_bytes_total",
            &[("service", SVC), ("direction", "in")],
        ),
        delta(
            "rvs_service_bytes_total",
            &[("service", SVC), ("direction", "out")],
        ),
    ];
    assert_eq!(svc_got, sums, "service vs sum of dests");
    // The ports saw at least that traffic.
    assert!(delta("rvs_port_rx_packets_total", &[("port", "dp0")]) >= svc_got[0]);
    assert!(delta("rvs_port_rx_packets_total", &[("port", "dp1")]) >= svc_got[1]);

    // --- A malformed burst: exactly K frames with a bad IPv4 header checksum.
    const K: u32 = 37;
    let reason = [("reason", "ipv4_bad_checksum")];
    let (_, before) = scrape(&net);
    send_bad_checksum_frames(&net, K);
    wait_until("the bad-checksum drops", Duration::from_secs(5), || {
        scrape(&net).1.sum("rvs_drops_total", &reason) - before.sum("rvs_drops_total", &reason)
            >= f64::from(K)
    });
    std::thread::sleep(Duration::from_millis(300));
    let (_, after) = scrape(&net);
    assert_eq!(
        after.sum("rvs_drops_total", &reason) - before.sum("rvs_drops_total", &reason),
        f64::from(K)
    );

    // --- Rates: a steady, bounded load of 200 requests paced over 10 s (20/s offered).
    rvsd.ipvsadm_ok(&["-Z"]);
    let rates = listing_numbers(&rvsd.ipvsadm_ok(&["-Ln", "--rate"]));
    assert!(
        rates.values().all(|r| r.iter().all(|&v| v == 0)),
        "{rates:?}"
    );
    const LOAD: u32 = 200;
    const SPACING: Duration = Duration::from_millis(50);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let start = Instant::now();
    let load = {
        let done = done.clone();
        let ns = net.ns("c");
        std::thread::spawn(move || {
            for i in 0..LOAD {
                let at = start + SPACING * i;
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let _ = std::process::Command::new("ip")
                    .args(["netns", "exec", &ns, "curl", "-s", "-o", "/dev/null"])
                    .args(["--max-time", "5", "http://198.18.0.100/"])
                    .status();
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    // Read while the load still runs, 8.5 s in: at least three whole 2 s samples of load
    // behind the estimate, which then holds between (1 - (3/4)^3) = 0.58 of the offered rate
    // and (a sample can only exceed it when requests bunch up after a stall) the highest
    // 2 s rate. The bounds below are wider still: [0.3, 1.6] x the rate the client achieved.
    std::thread::sleep(Duration::from_millis(8500).saturating_sub(start.elapsed()));
    let offered =
        f64::from(done.load(std::sync::atomic::Ordering::Relaxed)) / start.elapsed().as_secs_f64();
    let listing = rvsd.ipvsadm_ok(&["-Ln", "--rate"]);
    let (_, exp) = scrape(&net);
    load.join().unwrap();
    let rates = listing_numbers(&listing);
    eprintln!("offered {offered:.1} connections/s; ipvsadm -Ln --rate:\n{listing}");
    let within = |what: &str, v: f64, expect: f64| {
        assert!(
            v >= 0.3 * expect && v <= 1.6 * expect,
            "{what} = {v}, offered {expect:.1}/s\n{listing}"
        );
    };
    assert!(offered > 5.0, "the load loop only reached {offered:.1}/s");
    within(
        "ipvsadm --rate service CPS",
        rates["198.18.0.100:80"][0] as f64,
        offered,
    );
    within(
        "ipvsadm --rate rs1 CPS",
        rates[RS1][0] as f64,
        offered * 3.0 / 4.0,
    );
    within("rvs_service_cps", exp.sum("rvs_service_cps", &svc), offered);
    within(
        "rvs_dest_cps rs2",
        exp.sum("rvs_dest_cps", &[("dest", RS2)]),
        offered / 4.0,
    );
    for dir in ["in", "out"] {
        let l = [("service", SVC), ("direction", dir)];
        assert!(
            exp.sum("rvs_service_pps", &l) >= 2.0 * 0.3 * offered,
            "pps {dir}"
        );
        assert!(
            exp.sum("rvs_service_bps", &l) >= 40.0 * 0.3 * offered,
            "bps {dir}"
        );
    }
    let r = &rates["198.18.0.100:80"];
    assert!(r[1] > 0 && r[2] > 0 && r[3] > 0 && r[4] > 0, "{listing}");

    // Zeroing restarts the estimators: rates read 0 at once, and stay sane (no spike from the
    // counters' jump back) at the next estimation.
    rvsd.ipvsadm_ok(&["-Z"]);
    let z = listing_numbers(&rvsd.ipvsadm_ok(&["-Ln", "--rate"]));
    assert!(z.values().all(|r| r.iter().all(|&v| v == 0)), "{z:?}");
    std::thread::sleep(Duration::from_millis(2500));
    let z = listing_numbers(&rvsd.ipvsadm_ok(&["-Ln", "--rate"]));
    assert!(
        z.values().all(|r| r[0] <= 100 && r[3] < 10_000_000),
        "spike after -Z: {z:?}"
    );

    let (status, log) = rvsd.stop();
    assert!(status.success(), "rvsd exit {status}:\n{log}");
    assert!(log.contains("all mbufs returned"), "{log}");
    assert!(
        log.contains("metrics=http://127.0.0.1:19475/metrics"),
        "{log}"
    );
    assert!(
        log.contains("from=control socket connection"),
        "control changes not attributed:\n{log}"
    );
    let id = net.id.clone();
    drop(net);
    assert!(common::namespaces_with_prefix(&format!("{id}-")).is_empty());
}
