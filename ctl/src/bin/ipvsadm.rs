//! `ipvsadm`: ipvsadm 1.31's command line against rvsd (see `ctl::ipvsadm`).

use ctl::client::socket_path;
use ctl::ipvsadm::{SocketDaemon, resolve::Resolver, run};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut daemon = SocketDaemon::new(socket_path());
    let resolver = Resolver::system();
    let code = run(
        &args,
        &mut daemon,
        &resolver,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code)
}
