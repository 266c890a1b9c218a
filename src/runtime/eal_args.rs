//! The EAL command line rvsd builds from its configuration.

use crate::config::{Validated, is_pci_address};

/// `-l CORES [--no-pci] (-a PCI | --vdev DEV)... EXTRA...` (without the program name, which
/// `dpdk_bindings::Eal::init` adds). With an lcore-to-CPU map in `dpdk.cores` (`0@0,1@1,2@0`),
/// `--lcores L@C,...` replaces `-l`: EAL then runs several lcores (threads) on one CPU, which is
/// how four workers run on a two-CPU machine.
///
/// PCI devices are allow-listed with `-a` (nothing else on the bus is touched); everything else
/// is a vdev. With no PCI port at all, `--no-pci` keeps EAL off the PCI bus. `--no-shconf` is
/// part of the default extra arguments so that several rvsd (and test) processes coexist
/// (`--in-memory` would be the alternative, but EAL refuses it together with `--no-huge`).
pub fn eal_args(conf: &Validated) -> Vec<String> {
    let mut args = Vec::new();
    match &conf.lcore_cpus {
        Some(cpus) => {
            args.push("--lcores".to_owned());
            args.push(
                conf.lcores
                    .iter()
                    .zip(cpus)
                    .map(|(l, c)| format!("{l}@{c}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        None => {
            args.push("-l".to_owned());
            args.push(
                conf.lcores
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    let mut any_pci = false;
    for p in &conf.ports {
        if is_pci_address(&p.device) {
            any_pci = true;
            args.push("-a".to_owned());
        } else {
            args.push("--vdev".to_owned());
        }
        args.push(p.device.clone());
    }
    if !any_pci && !conf.eal_args.iter().any(|a| a == "--no-pci") {
        args.push("--no-pci".to_owned());
    }
    args.extend(conf.eal_args.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn vdevs_and_pci() {
        let text = r#"
[dpdk]
cores = "0-2"
args = ["--no-huge"]
[[port]]
name = "a"
device = "net_af_packet0,iface=d0"
[[port]]
name = "b"
device = "0000:03:00.0"
"#;
        let conf = crate::config::parse(Path::new("x.toml"), text).unwrap();
        assert_eq!(
            eal_args(&conf),
            [
                "-l",
                "0,1,2",
                "--vdev",
                "net_af_packet0,iface=d0",
                "-a",
                "0000:03:00.0",
                "--no-huge"
            ]
        );
        let mapped = text.replace("cores = \"0-2\"", "cores = \"0@0,1-2@1\"");
        let conf = crate::config::parse(Path::new("x.toml"), &mapped).unwrap();
        assert_eq!(eal_args(&conf)[..2], ["--lcores", "0@0,1@1,2@1"]);
        let text = text.replace("0000:03:00.0", "net_null0");
        let conf = crate::config::parse(Path::new("x.toml"), &text).unwrap();
        assert!(eal_args(&conf).contains(&"--no-pci".to_owned()));
    }
}
