//! IPv6 services end to end through the real `ipvsadm` front end and rvsd's request handler
//! (in process: the parser, the control plane and the formatter, without the socket): add an
//! IPv6 service, IPv6 dests, a NAT64 dest and local addresses of both families, list, save,
//! restore and delete; refused mixes get ipvsadm's texts and exit codes and change nothing.
//! `tests/rvsd_daemon.rs` runs the same commands against a running rvsd.

use std::path::Path;

use ctl::proto::{Reply, Request};
use rvs::control::ControlPlane;
use rvs::control::server::Handler;

const CONFIG: &str = r#"
[dpdk]
cores = "0-1"
[[port]]
name = "dp0"
device = "net_null0"
[[port]]
name = "dp1"
device = "net_null1"
[[addr]]
port = "dp0"
ip = "198.18.0.1/24"
[[addr]]
port = "dp1"
ip = "198.18.1.1/24"
[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"
port = "dp0"
[dataplane]
conn_capacity = 65536
"#;

struct InProcess<'a>(&'a ControlPlane);

impl ctl::ipvsadm::Daemon for InProcess<'_> {
    fn call(&mut self, request: Request) -> Result<Reply, ctl::client::ClientError> {
        Ok(self.0.handle(request))
    }
}

/// Run ipvsadm with `args` (and `stdin`): (exit code, stdout, stderr).
fn ipvsadm_in(plane: &ControlPlane, args: &[&str], stdin: &str) -> (i32, String, String) {
    let argv: Vec<String> = std::iter::once("ipvsadm")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = ctl::ipvsadm::run(
        &argv,
        &mut InProcess(plane),
        &ctl::ipvsadm::resolve::Resolver::default(),
        &mut stdin.as_bytes(),
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn ok(plane: &ControlPlane, args: &[&str]) -> String {
    let (code, out, err) = ipvsadm_in(plane, args, "");
    assert_eq!(code, 0, "ipvsadm {args:?}: {err}");
    out
}

const LISTING: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=65536)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  198.18.0.100:80 wrr\n",
    "  -> 198.18.1.12:80               Route   1      0          0         \n",
    "TCP  [2001:2::100]:0 sh persistent 300 mask 64\n",
    "TCP  [2001:2::100]:80 rr\n",
    "  -> 198.18.1.11:80               FullNat 1      0          0         \n",
    "  -> [2001:2:1::11]:80            Masq    2      0          0         \n",
    "  -> [2001:2:1::12]:80            FullNat 1      0          0         \n",
);

const SAVED: &str = concat!(
    "-A -t 198.18.0.100:80 -s wrr\n",
    "-a -t 198.18.0.100:80 -r 198.18.1.12:80 -g -w 1\n",
    "-A -t [2001:2::100]:0 -s sh -p 300 -M 64\n",
    "-A -t [2001:2::100]:80 -s rr\n",
    "-a -t [2001:2::100]:80 -r 198.18.1.11:80 -b -w 1\n",
    "-a -t [2001:2::100]:80 -r [2001:2:1::11]:80 -m -w 2\n",
    "-a -t [2001:2::100]:80 -r [2001:2:1::12]:80 -b -w 1\n",
);

fn build(plane: &ControlPlane) {
    ok(plane, &["-A", "-t", "198.18.0.100:80", "-s", "wrr"]);
    ok(
        plane,
        &["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.12", "-g"],
    );
    ok(plane, &["-A", "-t", "[2001:2::100]:80", "-s", "rr"]);
    ok(
        plane,
        &[
            "-a",
            "-t",
            "[2001:2::100]:80",
            "-r",
            "[2001:2:1::11]:80",
            "-m",
            "-w",
            "2",
        ],
    );
    ok(
        plane,
        &[
            "-a",
            "-t",
            "[2001:2::100]:80",
            "-r",
            "[2001:2:1::12]:80",
            "-b",
        ],
    );
    ok(
        plane,
        &["-a", "-t", "[2001:2::100]:80", "-r", "198.18.1.11:80", "-b"],
    );
    ok(
        plane,
        &[
            "-A",
            "-t",
            "[2001:2::100]:0",
            "-s",
            "sh",
            "-p",
            "300",
            "-M",
            "64",
        ],
    );
}

#[test]
fn ipv6_services_dests_nat64_and_local_addresses() {
    let conf = rvs::config::parse(Path::new("v6.toml"), CONFIG).unwrap();
    let plane = ControlPlane::new(&conf, 1).unwrap();
    build(&plane);
    assert_eq!(ok(&plane, &["-Ln"]), LISTING);
    assert_eq!(ok(&plane, &["-Sn"]), SAVED);

    // Local addresses of both families in one service's pool (DPVS syntax).
    ok(
        &plane,
        &[
            "-P",
            "-t",
            "[2001:2::100]:80",
            "-z",
            "2001:2:1::1",
            "-F",
            "dp1",
        ],
    );
    ok(
        &plane,
        &[
            "-P",
            "-t",
            "[2001:2::100]:80",
            "-z",
            "198.18.1.201",
            "-F",
            "dp1",
        ],
    );
    let laddrs = ok(&plane, &["-G", "-t", "[2001:2::100]:80"]);
    assert!(laddrs.contains("[2001:2::100]:80"), "{laddrs}");
    assert!(laddrs.contains("2001:2:1::1"), "{laddrs}");
    assert!(laddrs.contains("198.18.1.201"), "{laddrs}");
    let (code, _, err) = ipvsadm_in(
        &plane,
        &[
            "-P",
            "-t",
            "[2001:2::100]:80",
            "-z",
            "2001:2:1::1",
            "-F",
            "dp1",
        ],
        "",
    );
    assert_eq!((code, err.as_str()), (255, "File exists\n"));
    ok(
        &plane,
        &[
            "-Q",
            "-t",
            "[2001:2::100]:80",
            "-z",
            "2001:2:1::1",
            "-F",
            "dp1",
        ],
    );
    let laddrs = ok(&plane, &["-G", "-t", "[2001:2::100]:80"]);
    assert!(!laddrs.contains("2001:2:1::1 "), "{laddrs}");

    // Refused mixes: ipvsadm's own check (exit 2) and rvsd's EAFNOSUPPORT (exit 255); the
    // table is unchanged.
    let refused: &[(&[&str], i32, &str)] = &[
        (
            &["-a", "-t", "[2001:2::100]:80", "-r", "198.18.1.13:80", "-m"],
            2,
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            &[
                "-a",
                "-t",
                "198.18.0.100:80",
                "-r",
                "[2001:2:1::13]:80",
                "-b",
            ],
            2,
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            &["-a", "-t", "[2001:2::100]:80", "-r", "198.18.1.13", "-i"],
            255,
            "Operation not supported with specified address family\n",
        ),
        (
            &[
                "-a",
                "-t",
                "198.18.0.100:80",
                "-r",
                "[2001:2:1::13]:80",
                "-i",
            ],
            255,
            "Operation not supported with specified address family\n",
        ),
        (
            &["-e", "-t", "[2001:2::100]:80", "-r", "198.18.1.11:80", "-m"],
            2,
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            &["-A", "-t", "[2001:2::101]:80", "-p", "-M", "129"],
            2,
            "illegal ipv6 netmask specified\n",
        ),
    ];
    for (args, want_code, msg) in refused {
        let (code, out, err) = ipvsadm_in(&plane, args, "");
        assert_eq!(code, *want_code, "ipvsadm {args:?}: {err}");
        assert_eq!(out, "");
        assert!(err.ends_with(msg), "ipvsadm {args:?}: {err}");
    }
    assert_eq!(ok(&plane, &["-Ln"]), LISTING, "refusals changed nothing");

    // Restore the saved rules into an empty daemon: the same table.
    let fresh = ControlPlane::new(&conf, 1).unwrap();
    let (code, _, err) = ipvsadm_in(&fresh, &["-R"], SAVED);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ok(&fresh, &["-Ln"]), LISTING);
    assert_eq!(ok(&fresh, &["-Sn"]), SAVED);

    // Delete dests of both families, then the service.
    ok(
        &plane,
        &["-d", "-t", "[2001:2::100]:80", "-r", "198.18.1.11:80"],
    );
    ok(
        &plane,
        &["-d", "-t", "[2001:2::100]:80", "-r", "[2001:2:1::11]:80"],
    );
    let one = ok(&plane, &["-Ln", "-t", "[2001:2::100]:80"]);
    assert_eq!(
        one,
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  [2001:2::100]:80 rr\n",
            "  -> [2001:2:1::12]:80            FullNat 1      0          0         \n",
        )
    );
    ok(&plane, &["-D", "-t", "[2001:2::100]:80"]);
    ok(&plane, &["-D", "-t", "[2001:2::100]:0"]);
    assert_eq!(
        ok(&plane, &["-Ln"]),
        concat!(
            "IP Virtual Server version 1.2.1 (size=65536)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.100:80 wrr\n",
            "  -> 198.18.1.12:80               Route   1      0          0         \n",
        )
    );
    // The local addresses went with their service.
    let (code, _, err) = ipvsadm_in(&plane, &["-G", "-t", "[2001:2::100]:80"], "");
    assert_eq!((code, err.as_str()), (1, "No such service\n"));
}
