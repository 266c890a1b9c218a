//! The repository stands on its own: its documentation is complete where the code depends on it,
//! its links resolve, and no file refers to a document that lives outside the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Tracked files (git ls-files); without git, every file under the root but `target/` and
/// `.git/`.
fn tracked_files() -> Vec<PathBuf> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root())
        .args(["ls-files", "-z"])
        .output();
    if let Ok(out) = out {
        if out.status.success() && !out.stdout.is_empty() {
            return out
                .stdout
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
                .collect();
        }
    }
    fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            let path = e.path();
            let rel = rel.join(&name);
            if path.is_dir() {
                walk(&path, &rel, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), Path::new(""), &mut out);
    out
}

/// The names of documents outside the repository that files used to point to. Built from
/// pieces so that this file does not name them itself.
fn outside_names() -> Vec<String> {
    vec![
        ["..", "/shared"].concat(),
        ["DESIGN", ".md"].concat(),
        ["STYLE", ".md"].concat(),
        ["reference/", "ipvs.md"].concat(),
    ]
}

/// Lines of tracked text files that name a document outside the repository.
fn outside_references() -> Vec<String> {
    let names = outside_names();
    let mut hits = Vec::new();
    for rel in tracked_files() {
        let Ok(text) = std::fs::read_to_string(root().join(&rel)) else {
            continue; // binary or unreadable: cannot hold a reference a reader would follow
        };
        for (n, line) in text.lines().enumerate() {
            if names.iter().any(|name| line.contains(name.as_str())) {
                hits.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

/// The detector itself works: a line naming one of the outside documents is found.
#[test]
fn outside_names_are_detected() {
    let names = outside_names();
    let line = format!("see {} section 4", names[1]);
    assert!(names.iter().any(|n| line.contains(n.as_str())));
    assert!(
        !names
            .iter()
            .any(|n| "docs/architecture.md".contains(n.as_str()))
    );
}

/// No tracked file refers to a document outside the repository: everything a reader needs is in
/// `docs/`.
#[test]
fn no_reference_outside_the_repository() {
    let hits = outside_references();
    assert!(
        hits.is_empty(),
        "{} line(s) refer to documents outside the repository; point them at docs/ instead:\n{}",
        hits.len(),
        hits.join("\n")
    );
}

/// The troubleshooting table of the operations guide covers every drop reason the dataplane
/// counts, and names no reason that does not exist.
#[test]
fn operations_guide_lists_every_drop_reason() {
    let text = read("docs/operations.md");
    let section = text
        .split_once("## Troubleshooting by drop reason")
        .expect("docs/operations.md has a \"Troubleshooting by drop reason\" section")
        .1;
    // Up to the next section.
    let section = section.split("\n## ").next().unwrap_or(section);
    let documented: BTreeSet<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(label, _)| label))
        .collect();
    let actual: BTreeSet<&str> = dataplane::drop::DropReason::ALL
        .iter()
        .map(|r| r.label())
        .collect();
    let missing: Vec<_> = actual.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&actual).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/operations.md drop table: missing {missing:?}, not drop reasons {unknown:?}"
    );
}

/// GitHub's anchor for a heading: lower case, spaces to '-', punctuation other than '-' and '_'
/// dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// Relative links of the README and of `docs/*.md` name files that exist, and their `#anchor`s
/// headings that exist.
#[test]
fn markdown_links_resolve() {
    let mut files = vec![PathBuf::from("README.md")];
    for e in std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .flatten()
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(PathBuf::from("docs").join(e.file_name()));
        }
    }
    assert!(files.len() >= 5, "README and the four guides: {files:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for rel in &files {
        let text = read(rel.to_str().unwrap());
        let dir = rel.parent().unwrap_or(Path::new(""));
        for (_, rest) in text.match_indices("](").map(|(i, _)| text.split_at(i + 2)) {
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target, None),
            };
            let path = if file.is_empty() {
                rel.clone()
            } else {
                dir.join(file)
            };
            let Ok(linked) = std::fs::read_to_string(root().join(&path)) else {
                broken.push(format!(
                    "{}: {target}: no file {}",
                    rel.display(),
                    path.display()
                ));
                continue;
            };
            if let Some(a) = anchor {
                if !anchors(&linked).contains(a) {
                    broken.push(format!("{}: {target}: no heading #{a}", rel.display()));
                }
            }
        }
    }
    assert!(checked > 0, "no links found: the link scanner is broken");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug(" 5. Tuning"), "5-tuning");
    assert_eq!(
        slug(" Troubleshooting by drop reason"),
        "troubleshooting-by-drop-reason"
    );
    assert_eq!(slug(" 1. From LVS (Linux IPVS)"), "1-from-lvs-linux-ipvs");
}
