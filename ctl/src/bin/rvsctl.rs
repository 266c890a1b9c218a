//! `rvsctl`: the DPDK-owned ports' `ip` (see `ctl::rvsctl`).

use ctl::client::socket_path;
use ctl::ipvsadm::SocketDaemon;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut daemon = SocketDaemon::new(socket_path());
    let code = ctl::rvsctl::run(
        &args,
        &mut daemon,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code)
}
