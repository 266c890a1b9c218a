//! Every sample configuration in `conf/` is loaded, with its rules file, as `rvsd
//! --check-config` loads it, so none of them rots; and the README's configuration example
//! parses. No EAL, no root: these run everywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use rvs::check::{Summary, check_config};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What each sample holds: (file, ports, workers, services, real servers).
const SAMPLES: &[(&str, usize, usize, usize, usize)] = &[
    ("conf/nat.toml", 2, 2, 2, 4),
    ("conf/dr.toml", 1, 2, 1, 2),
    ("conf/tun.toml", 2, 2, 1, 2),
    ("conf/fullnat.toml", 2, 4, 1, 2),
    ("conf/demo.toml", 2, 1, 0, 0),
    ("conf/rvsd.toml", 1, 1, 0, 0),
    ("conf/director-bgp.toml", 1, 1, 0, 0),
];

#[test]
fn every_sample_loads_with_its_rules() {
    // The rules paths in the samples are relative to the working directory, as rvsd resolves
    // them; cargo runs integration tests from the package root, which is what they assume.
    std::env::set_current_dir(root()).unwrap();
    for &(file, ports, workers, services, dests) in SAMPLES {
        let summary = check_config(Path::new(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            summary,
            Summary {
                ports,
                workers,
                services,
                dests
            },
            "{file}"
        );
    }
}

/// A new sample in `conf/` must be added to [`SAMPLES`] (and so be loaded).
#[test]
fn no_sample_is_left_out() {
    let mut found: Vec<String> = std::fs::read_dir(root().join("conf"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .map(|n| format!("conf/{n}"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = SAMPLES.iter().map(|s| s.0.to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed);
    // One sample per forwarding method, each using that method in its rules.
    for (method, flag) in [
        ("nat", " -m "),
        ("dr", " -g "),
        ("tun", " -i "),
        ("fullnat", " -b "),
    ] {
        let rules = std::fs::read_to_string(root().join(format!("conf/{method}.rules"))).unwrap();
        let dests: Vec<&str> = rules.lines().filter(|l| l.starts_with("-a ")).collect();
        assert!(!dests.is_empty(), "{method}.rules has no real server");
        assert!(
            dests.iter().all(|l| l.contains(flag)),
            "every real server of {method}.rules uses {flag:?}"
        );
    }
    let fullnat = std::fs::read_to_string(root().join("conf/fullnat.rules")).unwrap();
    assert!(
        fullnat.lines().any(|l| l.starts_with("-P ")),
        "the FULLNAT sample has local addresses"
    );
}

/// The checker refuses what rvsd would refuse at start, naming the file, the key and the line.
#[test]
fn a_bad_rules_file_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("rvs-sample-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("bad.rules");
    let conf = dir.join("rvsd.toml");
    let text = std::fs::read_to_string(root().join("conf/fullnat.toml"))
        .unwrap()
        .replace("conf/fullnat.rules", rules.to_str().unwrap());
    std::fs::write(&conf, text).unwrap();
    std::fs::write(
        &rules,
        "-A -t 198.18.0.100:80 -s wlc\n-A -t 198.18.0.100:80 -s rr\n",
    )
    .unwrap();
    let e = check_config(&conf).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: ipvs.rules: ", conf.display())),
        "{e}"
    );
    assert!(e.contains("Service already exists"), "{e}");
    assert!(e.contains("line 2"), "{e}");

    std::fs::write(&rules, "-A -t 198.18.0.300:80\n").unwrap();
    let e = check_config(&conf).unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");

    std::fs::remove_file(&rules).unwrap();
    let e = check_config(&conf).unwrap_err().to_string();
    assert!(e.contains("cannot read"), "{e}");

    std::fs::write(&conf, "[[port]]\nname = \"dp0\"\n").unwrap();
    let e = check_config(&conf).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: port[0]", conf.display())),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `rvsd --check-config FILE` through the binary: exit 0 and a summary, or exit 2 and the
/// reason; no EAL is started (this runs unprivileged, with no hugepages and no NIC).
#[test]
fn rvsd_check_config_command() {
    let rvsd = env!("CARGO_BIN_EXE_rvsd");
    let o = Command::new(rvsd)
        .current_dir(root())
        .args(["--check-config", "conf/fullnat.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "conf/fullnat.toml: ok (2 ports, 4 workers, 1 service, 2 real servers)\n"
    );
    // EAL would log to stderr; nothing is printed there.
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = Command::new(rvsd)
        .current_dir(root())
        .args(["--check-config", "conf/does-not-exist.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .starts_with("rvsd: conf/does-not-exist.toml: cannot read: "),
        "{o:?}"
    );
    // `--check` checks the `--config` file the same way.
    let o = Command::new(rvsd)
        .current_dir(root())
        .args(["--config", "conf/nat.toml", "--check"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("conf/nat.toml: ok ("));
}

/// The configuration example in the README's "The configuration file" section is valid.
#[test]
fn readme_configuration_example_parses() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split_once("## The configuration file")
        .expect("README has a configuration section")
        .1;
    let block = section
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a toml block")
        .0;
    let conf = rvs::config::parse(Path::new("README.md"), block)
        .unwrap_or_else(|e| panic!("README example: {e}"));
    let rules = conf.rules.expect("the example names a rules file");
    assert!(
        root().join(&rules).is_file(),
        "the README example names {}, which does not exist",
        rules.display()
    );
}

/// rvsd.toml(5) documents every section and key the samples and the README example use.
#[test]
fn manual_page_documents_every_key_in_use() {
    let man = std::fs::read_to_string(root().join("docs/man/rvsd.toml.5")).unwrap();
    let key_lines: Vec<&str> = man
        .lines()
        .filter(|l| l.starts_with(".B ") || l.starts_with(".BR "))
        .collect();
    let documented = |key: &str| {
        key_lines
            .iter()
            .any(|l| l.split([' ', ',', '"']).any(|w| w == key))
            || man.contains(&format!("\\fB{key}\\fR"))
    };
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let readme_example = readme
        .split_once("## The configuration file")
        .and_then(|(_, s)| s.split_once("```toml\n"))
        .and_then(|(_, s)| s.split_once("```"))
        .unwrap()
        .0
        .to_owned();
    let mut texts = vec![("README.md".to_owned(), readme_example)];
    for &(file, ..) in SAMPLES {
        texts.push((
            file.to_owned(),
            std::fs::read_to_string(root().join(file)).unwrap(),
        ));
    }
    let mut missing = Vec::new();
    for (file, text) in texts {
        let value: toml::Table = text.parse().unwrap_or_else(|e| panic!("{file}: {e}"));
        for (section, body) in &value {
            let heading = match body {
                toml::Value::Array(_) => format!("\"[[{section}]]\""),
                _ => format!("\"[{section}]\""),
            };
            if !man.contains(&heading) {
                missing.push(format!("{file}: section {heading}"));
            }
            let tables: Vec<&toml::Table> = match body {
                toml::Value::Array(a) => a.iter().filter_map(|v| v.as_table()).collect(),
                toml::Value::Table(t) => vec![t],
                _ => vec![],
            };
            for t in tables {
                for (key, v) in t {
                    if let toml::Value::Table(sub) = v {
                        // [ipvs.timeouts]: its own section, keyed by state names.
                        if !man.contains(&format!("\"[{section}.{key}]\"")) {
                            missing.push(format!("{file}: section [{section}.{key}]"));
                        }
                        for state in sub.keys() {
                            if !documented(state) {
                                missing.push(format!("{file}: {section}.{key}.{state}"));
                            }
                        }
                    } else if !documented(key) {
                        missing.push(format!("{file}: {section}.{key}"));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/man/rvsd.toml.5: {missing:?}"
    );
}
