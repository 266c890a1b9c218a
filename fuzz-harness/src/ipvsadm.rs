//! ipvsadm's command line parser.

use ctl::ipvsadm::parse::parse;
use ctl::ipvsadm::resolve::Resolver;

const HOSTS: &str = "198.18.0.100 vip\n198.18.1.11 rs1\n";
const SERVICES: &str = "http 80/tcp\ndomain 53/udp\ndomain 53/tcp\n";

/// Split `data` into arguments at NUL bytes (an argv cannot hold one) and parse them as one
/// ipvsadm invocation, both as a command line and as a line of `-R` input.
pub fn cmdline(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut args = vec!["ipvsadm".to_owned()];
    args.extend(text.split('\0').map(str::to_owned));
    let resolver = Resolver::from_texts(HOSTS, SERVICES);
    for reading_stdin in [false, true] {
        let _ = parse(&args, &resolver, reading_stdin);
    }
}
