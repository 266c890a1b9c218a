//! ipvsadm's option table and a tokenizer with popt's rules.
//!
//! What popt does and this reproduces: short options cluster (`-Ln`); a short option's argument
//! is the rest of its cluster (`-p360`, a leading `=` dropped) or else the next word; a required
//! argument takes the next word even if it starts with `-`; an optional argument (`-p`) takes the
//! next word only when it does not start with `-`; long options are matched exactly (no
//! abbreviations) and take `--opt=value` or `--opt value`; words that are not options are kept as
//! leftover arguments and parsing goes on; `--` ends the options. An error names the whole argv
//! word it happened in (`poptBadOption`).

/// What an option does: one tag per entry of ipvsadm 1.31's popt table, plus DPVS extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    AddService,
    EditService,
    DelService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DelServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    TcpService,
    UdpService,
    SctpService,
    FwmarkService,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    FullNat,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    Syncid,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Synproxy,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
    AddLaddr,
    DelLaddr,
    GetLaddr,
    Laddr,
    Ifname,
    AddBlklst,
    DelBlklst,
    GetBlklst,
    AddWhtlst,
    DelWhtlst,
    GetWhtlst,
    Blklst,
    Whtlst,
    ConnLimit,
    ConnRate,
    SrcRate,
    SrcPrefix,
    ProxyProtocol,
    Toa,
    Uoa,
}

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    Required,
    Optional,
}

/// One option table entry.
#[derive(Debug, Clone, Copy)]
pub struct OptDef {
    pub long: &'static str,
    pub short: Option<char>,
    pub arg: Arg,
    pub tag: Tag,
}

const fn def(long: &'static str, short: Option<char>, arg: Arg, tag: Tag) -> OptDef {
    OptDef {
        long,
        short,
        arg,
        tag,
    }
}

/// The option table (ipvsadm 1.31 order, then DPVS's local-address options).
pub const OPTIONS: &[OptDef] = &[
    def("add-service", Some('A'), Arg::None, Tag::AddService),
    def("edit-service", Some('E'), Arg::None, Tag::EditService),
    def("delete-service", Some('D'), Arg::None, Tag::DelService),
    def("clear", Some('C'), Arg::None, Tag::Clear),
    def("list", Some('L'), Arg::None, Tag::List),
    def("list", Some('l'), Arg::None, Tag::List),
    def("zero", Some('Z'), Arg::None, Tag::Zero),
    def("add-server", Some('a'), Arg::None, Tag::AddServer),
    def("edit-server", Some('e'), Arg::None, Tag::EditServer),
    def("delete-server", Some('d'), Arg::None, Tag::DelServer),
    def("set", None, Arg::None, Tag::Set),
    def("help", Some('h'), Arg::None, Tag::Help),
    def("version", Some('v'), Arg::None, Tag::Version),
    def("restore", Some('R'), Arg::None, Tag::Restore),
    def("save", Some('S'), Arg::None, Tag::Save),
    def("start-daemon", None, Arg::Required, Tag::StartDaemon),
    def("stop-daemon", None, Arg::Required, Tag::StopDaemon),
    def("tcp-service", Some('t'), Arg::Required, Tag::TcpService),
    def("udp-service", Some('u'), Arg::Required, Tag::UdpService),
    def("sctp-service", None, Arg::Required, Tag::SctpService),
    def(
        "fwmark-service",
        Some('f'),
        Arg::Required,
        Tag::FwmarkService,
    ),
    def("scheduler", Some('s'), Arg::Required, Tag::Scheduler),
    def("persistent", Some('p'), Arg::Optional, Tag::Persistent),
    def("netmask", Some('M'), Arg::Required, Tag::Netmask),
    def("real-server", Some('r'), Arg::Required, Tag::RealServer),
    def("masquerading", Some('m'), Arg::None, Tag::Masquerading),
    def("ipip", Some('i'), Arg::None, Tag::Ipip),
    def("gatewaying", Some('g'), Arg::None, Tag::Gatewaying),
    def("weight", Some('w'), Arg::Required, Tag::Weight),
    def("u-threshold", Some('x'), Arg::Required, Tag::UThreshold),
    def("l-threshold", Some('y'), Arg::Required, Tag::LThreshold),
    def("numeric", Some('n'), Arg::None, Tag::Numeric),
    def("connection", Some('c'), Arg::None, Tag::Connection),
    def("mcast-interface", None, Arg::Required, Tag::McastInterface),
    def("syncid", None, Arg::Required, Tag::Syncid),
    def("timeout", None, Arg::None, Tag::Timeout),
    def("daemon", None, Arg::None, Tag::Daemon),
    def("stats", None, Arg::None, Tag::Stats),
    def("rate", None, Arg::None, Tag::Rate),
    def("thresholds", None, Arg::None, Tag::Thresholds),
    def("persistent-conn", None, Arg::None, Tag::PersistentConn),
    def("nosort", None, Arg::None, Tag::NoSort),
    def("sort", None, Arg::None, Tag::Sort),
    def("exact", Some('X'), Arg::None, Tag::Exact),
    def("ipv6", Some('6'), Arg::None, Tag::Ipv6),
    def("ops", Some('o'), Arg::None, Tag::Ops),
    def("synproxy", Some('j'), Arg::Required, Tag::Synproxy),
    def("pe", None, Arg::Required, Tag::Pe),
    def("sched-flags", Some('b'), Arg::Required, Tag::SchedFlags),
    def("mcast-group", None, Arg::Required, Tag::McastGroup),
    def("mcast-port", None, Arg::Required, Tag::McastPort),
    def("mcast-ttl", None, Arg::Required, Tag::McastTtl),
    def("sync-maxlen", None, Arg::Required, Tag::SyncMaxlen),
    def("tun-info", None, Arg::None, Tag::TunInfo),
    def("tun-type", None, Arg::Required, Tag::TunType),
    def("tun-port", None, Arg::Required, Tag::TunPort),
    def("tun-nocsum", None, Arg::None, Tag::TunNoCsum),
    def("tun-csum", None, Arg::None, Tag::TunCsum),
    def("tun-remcsum", None, Arg::None, Tag::TunRemCsum),
    // DPVS extensions.
    def("fullnat", None, Arg::None, Tag::FullNat),
    def("add-laddr", Some('P'), Arg::None, Tag::AddLaddr),
    def("del-laddr", Some('Q'), Arg::None, Tag::DelLaddr),
    def("get-laddr", Some('G'), Arg::None, Tag::GetLaddr),
    def("laddr", Some('z'), Arg::Required, Tag::Laddr),
    def("ifname", Some('F'), Arg::Required, Tag::Ifname),
    // DPVS's access lists (blacklist = deny, whitelist = allow).
    def("add-blklst", Some('U'), Arg::None, Tag::AddBlklst),
    def("del-blklst", Some('V'), Arg::None, Tag::DelBlklst),
    def("get-blklst", Some('B'), Arg::None, Tag::GetBlklst),
    def("add-whtlst", Some('O'), Arg::None, Tag::AddWhtlst),
    def("del-whtlst", Some('Y'), Arg::None, Tag::DelWhtlst),
    def("get-whtlst", Some('W'), Arg::None, Tag::GetWhtlst),
    def("blklst", Some('k'), Arg::Required, Tag::Blklst),
    def("whtlst", Some('2'), Arg::Required, Tag::Whtlst),
    // rvs's admission limits on -A/-E.
    def("conn-limit", None, Arg::Required, Tag::ConnLimit),
    def("conn-rate", None, Arg::Required, Tag::ConnRate),
    def("src-rate", None, Arg::Required, Tag::SrcRate),
    def("src-prefix", None, Arg::Required, Tag::SrcPrefix),
    // How FULLNAT dests learn the client's address: DPVS's PROXY protocol, rvs's TOA and UOA.
    def("proxy-protocol", None, Arg::Required, Tag::ProxyProtocol),
    def("toa", None, Arg::Required, Tag::Toa),
    def("uoa", None, Arg::Required, Tag::Uoa),
];

/// DPVS's `-b` on `-a`/`-e`: FULLNAT, no argument (upstream's `-b flags` elsewhere).
const FULLNAT_SHORT: OptDef = def("fullnat", Some('b'), Arg::None, Tag::FullNat);

/// popt's error classes, with `poptStrerror`'s texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoptErrorKind {
    BadOption,
    NoArg,
    UnwantedArg,
}

impl PoptErrorKind {
    pub fn text(self) -> &'static str {
        match self {
            PoptErrorKind::BadOption => "unknown option",
            PoptErrorKind::NoArg => "missing argument",
            PoptErrorKind::UnwantedArg => "option does not take an argument",
        }
    }
}

/// A popt error: the argv word (`poptBadOption`) and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoptError {
    pub word: String,
    pub kind: PoptErrorKind,
}

/// One option occurrence: its tag, its argument, and the argv word it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub tag: Tag,
    pub arg: Option<String>,
    pub word: String,
}

/// popt-style iterator over an argv (without argv[0]).
#[derive(Debug)]
pub struct Popt<'a> {
    args: &'a [String],
    next: usize,
    /// Rest of a short-option cluster and the word it belongs to.
    cluster: Option<(String, String)>,
    leftovers: Vec<String>,
    rest_are_args: bool,
    fullnat_b: bool,
}

impl<'a> Popt<'a> {
    pub fn new(args: &'a [String]) -> Self {
        Popt {
            args,
            next: 0,
            cluster: None,
            leftovers: Vec::new(),
            rest_are_args: false,
            fullnat_b: false,
        }
    }

    /// From now on `-b` is DPVS's FULLNAT switch (set once the command is `-a` or `-e`).
    pub fn set_fullnat_b(&mut self, on: bool) {
        self.fullnat_b = on;
    }

    /// Leftover (non-option) words, in order; complete once `next_opt` returned `None`.
    pub fn leftovers(&self) -> &[String] {
        &self.leftovers
    }

    fn find_short(&self, c: char) -> Option<OptDef> {
        if c == 'b' && self.fullnat_b {
            return Some(FULLNAT_SHORT);
        }
        OPTIONS.iter().find(|o| o.short == Some(c)).copied()
    }

    /// The next option, `None` when the words are exhausted.
    pub fn next_opt(&mut self) -> Option<Result<Occurrence, PoptError>> {
        loop {
            if let Some((rest, word)) = self.cluster.take() {
                return Some(self.short_option(rest, word));
            }
            let word = self.args.get(self.next)?.clone();
            self.next += 1;
            if self.rest_are_args || !word.starts_with('-') || word == "-" {
                self.leftovers.push(word);
                continue;
            }
            if word == "--" {
                self.rest_are_args = true;
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                return Some(self.long_option(long, &word));
            }
            return Some(self.short_option(word[1..].to_owned(), word));
        }
    }

    fn bad(word: &str, kind: PoptErrorKind) -> PoptError {
        PoptError {
            word: word.to_owned(),
            kind,
        }
    }

    fn long_option(&mut self, long: &str, word: &str) -> Result<Occurrence, PoptError> {
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (long, None),
        };
        let opt = OPTIONS
            .iter()
            .find(|o| o.long == name)
            .copied()
            .ok_or_else(|| Self::bad(word, PoptErrorKind::BadOption))?;
        let arg = match (opt.arg, inline) {
            (Arg::None, Some(_)) => return Err(Self::bad(word, PoptErrorKind::UnwantedArg)),
            (Arg::None, None) => None,
            (_, Some(v)) => Some(v),
            (kind, None) => self.following_arg(kind, word)?,
        };
        Ok(Occurrence {
            tag: opt.tag,
            arg,
            word: word.to_owned(),
        })
    }

    fn short_option(&mut self, cluster: String, word: String) -> Result<Occurrence, PoptError> {
        let mut chars = cluster.chars();
        let c = chars.next().unwrap_or('-');
        let rest: String = chars.collect();
        let opt = self
            .find_short(c)
            .ok_or_else(|| Self::bad(&word, PoptErrorKind::BadOption))?;
        let arg = if opt.arg == Arg::None {
            if !rest.is_empty() {
                self.cluster = Some((rest, word.clone()));
            }
            None
        } else if !rest.is_empty() {
            Some(rest.strip_prefix('=').unwrap_or(&rest).to_owned())
        } else {
            self.following_arg(opt.arg, &word)?
        };
        Ok(Occurrence {
            tag: opt.tag,
            arg,
            word,
        })
    }

    fn following_arg(&mut self, kind: Arg, word: &str) -> Result<Option<String>, PoptError> {
        match self.args.get(self.next) {
            None if kind == Arg::Optional => Ok(None),
            None => Err(Self::bad(word, PoptErrorKind::NoArg)),
            Some(next) if kind == Arg::Optional && next.starts_with('-') => Ok(None),
            Some(next) => {
                self.next += 1;
                Ok(Some(next.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn all(args: &[String]) -> (Vec<(Tag, Option<String>)>, Vec<String>) {
        let mut p = Popt::new(args);
        let mut out = Vec::new();
        while let Some(r) = p.next_opt() {
            let o = r.unwrap();
            out.push((o.tag, o.arg));
        }
        (out, p.leftovers().to_vec())
    }

    #[test]
    fn clusters_and_arguments() {
        let (o, _) = all(&words("-Ln"));
        assert_eq!(o, vec![(Tag::List, None), (Tag::Numeric, None)]);
        let (o, _) = all(&words("-At1.2.3.4:80 -p360 -s=rr"));
        assert_eq!(
            o,
            vec![
                (Tag::AddService, None),
                (Tag::TcpService, Some("1.2.3.4:80".into())),
                (Tag::Persistent, Some("360".into())),
                (Tag::Scheduler, Some("rr".into())),
            ]
        );
    }

    #[test]
    fn optional_argument_only_when_next_is_not_an_option() {
        let (o, _) = all(&words("-p -M 255.0.0.0"));
        assert_eq!(o[0], (Tag::Persistent, None));
        let (o, _) = all(&words("-p 60"));
        assert_eq!(o[0], (Tag::Persistent, Some("60".into())));
        let (o, _) = all(&words("--persistent"));
        assert_eq!(o[0], (Tag::Persistent, None));
        let (o, _) = all(&words("--persistent=5"));
        assert_eq!(o[0], (Tag::Persistent, Some("5".into())));
    }

    #[test]
    fn required_argument_takes_dash_words() {
        let (o, _) = all(&words("-w -5"));
        assert_eq!(o[0], (Tag::Weight, Some("-5".into())));
    }

    #[test]
    fn leftovers_and_double_dash() {
        let (o, l) = all(&words("--set 1 2 -n -- -3"));
        assert_eq!(o, vec![(Tag::Set, None), (Tag::Numeric, None)]);
        assert_eq!(l, words("1 2 -3"));
    }

    #[test]
    fn errors_name_the_word() {
        let a = words("-Lq");
        let mut p = Popt::new(&a);
        assert_eq!(p.next_opt().unwrap().unwrap().tag, Tag::List);
        let e = p.next_opt().unwrap().unwrap_err();
        assert_eq!((e.word.as_str(), e.kind), ("-Lq", PoptErrorKind::BadOption));
        let a = words("-t");
        let e = Popt::new(&a).next_opt().unwrap().unwrap_err();
        assert_eq!(e.kind, PoptErrorKind::NoArg);
        let a = words("--numeric=1");
        let e = Popt::new(&a).next_opt().unwrap().unwrap_err();
        assert_eq!(e.kind, PoptErrorKind::UnwantedArg);
        let a = words("--lis");
        let e = Popt::new(&a).next_opt().unwrap().unwrap_err();
        assert_eq!(e.kind, PoptErrorKind::BadOption);
    }

    #[test]
    fn b_depends_on_the_command() {
        let a = words("-b -w 2");
        let mut p = Popt::new(&a);
        p.set_fullnat_b(true);
        assert_eq!(p.next_opt().unwrap().unwrap().tag, Tag::FullNat);
        let (o, _) = all(&words("-b sh-port"));
        assert_eq!(o[0], (Tag::SchedFlags, Some("sh-port".into())));
    }
}
