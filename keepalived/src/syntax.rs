//! keepalived's file syntax, as keepalived 2.x reads it: words separated by blanks, `"quoted
//! strings"` as one word, comments from `#` or `!` to the end of the line, `{` and `}` as words
//! of their own (also when written against another word), and `include GLOB` lines spliced in
//! where they stand (relative patterns are taken from the including file's directory; a pattern
//! that matches nothing includes nothing, as keepalived). The result is a tree of [`Node`]s: a
//! statement's words and, when a `{` follows, its block. Every node keeps the file and line it
//! came from, so every later error can name them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a statement was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<PathBuf>,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A configuration error: the file, the line and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{loc}: {reason}")]
pub struct ConfigError {
    pub loc: Loc,
    pub reason: String,
}

impl ConfigError {
    pub fn new(loc: &Loc, reason: impl Into<String>) -> Self {
        ConfigError {
            loc: loc.clone(),
            reason: reason.into(),
        }
    }
}

/// One statement: its words (the keyword first) and its block, if it opened one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub words: Vec<String>,
    pub loc: Loc,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The words after the keyword.
    pub fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or(&[])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    EndOfLine,
}

/// Nested includes deeper than this are refused (a file including itself would never end).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Read `path` and everything it includes into a tree.
pub fn parse_file(path: &Path) -> Result<Vec<Node>, ConfigError> {
    let mut toks = Vec::new();
    let top = Loc {
        file: Arc::new(path.to_owned()),
        line: 0,
    };
    read_into(path, &top, 0, &mut toks)?;
    build(&toks)
}

/// Parse text as if read from `name` (tests, and files already in memory); `include` lines are
/// resolved relative to `name`'s directory.
pub fn parse_str(name: &Path, text: &str) -> Result<Vec<Node>, ConfigError> {
    let mut toks = Vec::new();
    lex_into(name, text, 0, &mut toks)?;
    build(&toks)
}

fn read_into(
    path: &Path,
    from: &Loc,
    depth: usize,
    toks: &mut Vec<(Tok, Loc)>,
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if from.line == 0 {
            ConfigError::new(from, format!("cannot read: {e}"))
        } else {
            ConfigError::new(
                from,
                format!("cannot read included {}: {e}", path.display()),
            )
        }
    })?;
    lex_into(path, &text, depth, toks)
}

fn lex_into(
    path: &Path,
    text: &str,
    depth: usize,
    toks: &mut Vec<(Tok, Loc)>,
) -> Result<(), ConfigError> {
    let file = Arc::new(path.to_owned());
    for (i, line) in text.lines().enumerate() {
        let loc = Loc {
            file: file.clone(),
            line: i + 1,
        };
        let words = split_line(line, &loc)?;
        if matches!(words.first(), Some(Tok::Word(w)) if w == "include") {
            let pattern = match words.get(1) {
                Some(Tok::Word(p)) if words.len() == 2 => p.clone(),
                _ => {
                    return Err(ConfigError::new(
                        &loc,
                        "include takes one file name or pattern",
                    ));
                }
            };
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(ConfigError::new(
                    &loc,
                    format!(
                        "includes nested deeper than {MAX_INCLUDE_DEPTH} (does a file include itself?)"
                    ),
                ));
            }
            for f in expand_include(path, &pattern, &loc)? {
                read_into(&f, &loc, depth + 1, toks)?;
            }
            continue;
        }
        toks.extend(words.into_iter().map(|t| (t, loc.clone())));
        toks.push((Tok::EndOfLine, loc));
    }
    Ok(())
}

/// The files an `include` names, sorted as glob(3) sorts them.
fn expand_include(from: &Path, pattern: &str, loc: &Loc) -> Result<Vec<PathBuf>, ConfigError> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        from.parent().unwrap_or(Path::new(".")).join(pattern)
    };
    let full = full.to_string_lossy().into_owned();
    let paths = glob::glob(&full)
        .map_err(|e| ConfigError::new(loc, format!("bad include pattern {pattern:?}: {e}")))?;
    let mut out = Vec::new();
    for p in paths {
        let p = p.map_err(|e| ConfigError::new(loc, format!("include {pattern:?}: {e}")))?;
        if p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        tracing::warn!("{loc}: include {pattern:?} matches no file");
    }
    Ok(out)
}

fn split_line(line: &str, loc: &Loc) -> Result<Vec<Tok>, ConfigError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Tok>| {
        if !word.is_empty() {
            out.push(Tok::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '{' => {
                flush(&mut word, &mut out);
                out.push(Tok::Open);
            }
            '}' => {
                flush(&mut word, &mut out);
                out.push(Tok::Close);
            }
            '"' => {
                let mut quoted = String::new();
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    quoted.push(q);
                }
                if !closed {
                    return Err(ConfigError::new(loc, "unterminated quoted string"));
                }
                word.push_str(&quoted);
                if word.is_empty() {
                    out.push(Tok::Word(String::new()));
                }
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    Ok(out)
}

fn build(toks: &[(Tok, Loc)]) -> Result<Vec<Node>, ConfigError> {
    let mut pos = 0;
    let nodes = block(toks, &mut pos, None)?;
    Ok(nodes)
}

/// Statements until the `}` closing the block opened at `opened` (or the end, at top level).
fn block(
    toks: &[(Tok, Loc)],
    pos: &mut usize,
    opened: Option<&Loc>,
) -> Result<Vec<Node>, ConfigError> {
    let mut nodes = Vec::new();
    loop {
        let Some((tok, loc)) = toks.get(*pos) else {
            return match opened {
                Some(o) => Err(ConfigError::new(
                    o,
                    "block opened here is never closed (missing '}')",
                )),
                None => Ok(nodes),
            };
        };
        match tok {
            Tok::EndOfLine => *pos += 1,
            Tok::Close => {
                *pos += 1;
                return match opened {
                    Some(_) => Ok(nodes),
                    None => Err(ConfigError::new(loc, "extra '}' (no block is open)")),
                };
            }
            Tok::Open => {
                return Err(ConfigError::new(loc, "'{' without a keyword before it"));
            }
            Tok::Word(_) => {
                let start = loc.clone();
                let mut words = Vec::new();
                while let Some((Tok::Word(w), _)) = toks.get(*pos) {
                    words.push(w.clone());
                    *pos += 1;
                }
                // A block may open on the statement's line or on the next one.
                let mut look = *pos;
                while matches!(toks.get(look), Some((Tok::EndOfLine, _))) {
                    look += 1;
                }
                let sub = if matches!(toks.get(look), Some((Tok::Open, _))) {
                    *pos = look + 1;
                    Some(block(toks, pos, Some(&start))?)
                } else {
                    None
                };
                nodes.push(Node {
                    words,
                    loc: start,
                    block: sub,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Node>, ConfigError> {
        parse_str(Path::new("/etc/keepalived/k.conf"), text)
    }

    #[test]
    fn words_quotes_comments_and_braces() {
        let t = parse(
            "! head comment\nvirtual_server 198.18.0.100 80 { # trailing\n  notify_up \"/bin/echo up now\" ! c\n  TCP_CHECK {connect_timeout 3}\n}\n",
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        let vs = &t[0];
        assert_eq!(vs.words, ["virtual_server", "198.18.0.100", "80"]);
        assert_eq!(vs.loc.line, 2);
        let b = vs.block.as_ref().unwrap();
        assert_eq!(b[0].words, ["notify_up", "/bin/echo up now"]);
        assert_eq!(b[1].keyword(), "TCP_CHECK");
        assert_eq!(b[1].loc.line, 4);
        assert_eq!(
            b[1].block.as_ref().unwrap()[0].words,
            ["connect_timeout", "3"]
        );
    }

    #[test]
    fn block_may_open_on_the_next_line() {
        let t = parse("virtual_server fwmark 1\n{\n delay_loop 3\n}\n").unwrap();
        assert_eq!(t[0].block.as_ref().unwrap()[0].words, ["delay_loop", "3"]);
    }

    #[test]
    fn unbalanced_braces_name_the_line() {
        let e = parse("a {\n b 1\n").unwrap_err();
        assert_eq!(e.loc.line, 1);
        assert!(e.reason.contains("never closed"), "{e}");
        let e = parse("a {\n}\n}\n").unwrap_err();
        assert_eq!((e.loc.line, e.reason.contains("extra '}'")), (3, true));
        let e = parse("x \"open\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/keepalived/k.conf:1: unterminated")
        );
    }
}
