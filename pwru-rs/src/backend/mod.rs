//! Attaching the kernel programs: one module per backend.

pub mod kprobe;
pub mod kprobe_multi;
pub mod tracepoint;

use std::{collections::HashSet, os::fd::OwnedFd, time::Duration};

use regex::Regex;

use crate::{
    btf::SkbFunction,
    ksym::{self, Kallsyms, SymbolFiles},
};

/// How `Event::hook` names the hook that fired.
#[derive(Debug, Clone)]
pub enum HookNames {
    /// An index into this table (tracepoint backend: the BPF cookie).
    ByIndex(Vec<String>),
    /// The probed function's address (kprobe backends), sorted by address.
    ByAddress(Vec<(u64, String)>),
}

/// `bpf_get_func_ip` may point a few bytes past the symbol (e.g. after an `endbr64`).
const MAX_IP_OFFSET: u64 = 16;

impl HookNames {
    pub fn by_address(mut functions: Vec<(u64, String)>) -> Self {
        functions.sort_unstable();
        Self::ByAddress(functions)
    }

    pub fn name(&self, hook: u64) -> Option<&str> {
        match self {
            Self::ByIndex(names) => names.get(hook as usize).map(String::as_str),
            Self::ByAddress(functions) => {
                let at = functions
                    .partition_point(|(addr, _)| *addr <= hook)
                    .checked_sub(1)?;
                let (addr, name) = &functions[at];
                (hook - addr <= MAX_IP_OFFSET).then_some(name.as_str())
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::ByIndex(n) => n.len(),
            Self::ByAddress(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Hooks attached by a backend. Dropping it detaches them all.
pub struct Attached {
    pub hooks: HookNames,
    /// Kernel links or perf events; closing the fd detaches.
    links: Vec<OwnedFd>,
}

impl Attached {
    /// Number of attached functions or tracepoints.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Detaches everything, closing links from `workers` threads at once: each kprobe's
    /// unregistration waits for an RCU grace period, and concurrent closes share them.
    pub fn detach(self, workers: usize, progress: bool) -> Duration {
        let started = std::time::Instant::now();
        let bar = crate::progress::bar(progress, self.links.len() as u64, "detaching");
        let links = std::sync::Mutex::new(self.links);
        std::thread::scope(|s| {
            for _ in 0..workers.max(1) {
                s.spawn(|| loop {
                    let Some(link) = links.lock().unwrap().pop() else {
                        break;
                    };
                    drop(link);
                    bar.inc(1);
                });
            }
        });
        bar.finish_and_clear();
        started.elapsed()
    }
}

/// A kernel program of the eBPF object that could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("the eBPF object has no program {0}")]
    Missing(&'static str),
    /// What the kernel said, verifier log included (`loader::describe_program_error`).
    #[error("{0}")]
    Load(String),
}

/// Loads (verifies) program `name` the first time a backend needs it and returns its fd.
/// `load` converts it to its type and loads it: aya 0.14 has no type-independent load.
fn program_fd(
    ebpf: &mut aya::Ebpf,
    name: &'static str,
    load: impl FnOnce(&mut aya::programs::Program) -> Result<(), aya::programs::ProgramError>,
) -> Result<i32, ProgramError> {
    use std::os::fd::{AsFd, AsRawFd};
    let described = |e| ProgramError::Load(crate::loader::describe_program_error(name, &e));
    let program = ebpf.program_mut(name).ok_or(ProgramError::Missing(name))?;
    if program.fd().is_err() {
        load(program).map_err(described)?;
    }
    Ok(program.fd().map_err(described)?.as_fd().as_raw_fd())
}

/// A kernel function to probe, with where its skb (and drop reason) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub name: String,
    pub address: u64,
    pub program: &'static str,
}

/// What the kprobe backends will attach to, and how many candidates the kernel cannot take.
#[derive(Debug, Default)]
pub struct Selection {
    pub targets: Vec<ProbeTarget>,
    /// Not hookable here: not in `available_filter_functions` (inlined, or renamed to
    /// `.constprop`/`.isra` variants), blacklisted, or without an address.
    pub skipped: usize,
}

/// Programs by zero-based skb argument (named from 1 in `pwru-rs-ebpf/src/kprobe.rs`).
const KPROBE_PROGRAMS: [&str; 5] = [
    "pwru_kprobe_skb_1",
    "pwru_kprobe_skb_2",
    "pwru_kprobe_skb_3",
    "pwru_kprobe_skb_4",
    "pwru_kprobe_skb_5",
];

fn kprobe_program(f: &SkbFunction) -> Option<&'static str> {
    match (f.name.as_str(), f.skb_arg) {
        // The drop functions whose reason pwru prints.
        ("kfree_skb_reason", 0) => Some("pwru_kprobe_skb_1_reason_2"),
        ("sk_skb_reason_drop", 1) => Some("pwru_kprobe_skb_2_reason_3"),
        _ => KPROBE_PROGRAMS.get(usize::from(f.skb_arg)).copied(),
    }
}

/// All programs a kprobe backend may use.
pub fn kprobe_programs() -> impl Iterator<Item = &'static str> {
    KPROBE_PROGRAMS
        .into_iter()
        .chain(["pwru_kprobe_skb_1_reason_2", "pwru_kprobe_skb_2_reason_3"])
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("cannot read /proc/kallsyms: {0}")]
    Kallsyms(std::io::Error),
    #[error("/proc/kallsyms shows no addresses (kernel.kptr_restrict?); run as root")]
    NoAddresses,
    #[error("no kernel function with an skb argument matches --filter-func {0:?}")]
    NothingMatches(String),
    #[error("none of the {0} matching skb functions can be probed on this kernel")]
    NothingProbeable(usize),
}

/// The skb functions of BTF that match `filter` and this kernel can probe.
pub fn select_functions(
    functions: &[SkbFunction],
    filter: Option<&Regex>,
    symbol_files: SymbolFiles,
) -> Result<Selection, SelectError> {
    let started = std::time::Instant::now();
    let wanted: HashSet<&str> = functions
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| filter.is_none_or(|re| re.is_match(name)))
        .collect();
    let (kallsyms, filter_functions) = symbol_files.wait();
    let kallsyms = Kallsyms::parse(&kallsyms.map_err(SelectError::Kallsyms)?, &wanted);
    if !kallsyms.is_empty() && !kallsyms.has_addresses() {
        return Err(SelectError::NoAddresses);
    }
    let traceable = filter_functions
        .as_deref()
        .map(|text| ksym::parse_available_filter_functions(text, &wanted));
    if traceable.is_none() {
        log::warn!("cannot read available_filter_functions (tracefs): trying every skb function");
    }
    let selection = select(
        functions,
        filter,
        &kallsyms,
        traceable.as_ref(),
        &ksym::kprobe_blacklist(),
    );
    log::debug!("function selection took {:?}", started.elapsed());
    selection
}

fn select(
    functions: &[SkbFunction],
    filter: Option<&Regex>,
    kallsyms: &Kallsyms,
    traceable: Option<&HashSet<String>>,
    blacklist: &HashSet<String>,
) -> Result<Selection, SelectError> {
    let mut selection = Selection::default();
    let mut matching = 0;
    let mut seen_addresses = HashSet::new();
    for f in functions {
        if filter.is_some_and(|re| !re.is_match(&f.name)) {
            continue;
        }
        matching += 1;
        let hookable =
            traceable.is_none_or(|t| t.contains(&f.name)) && !blacklist.contains(&f.name);
        let target = kprobe_program(f)
            .zip(kallsyms.address(&f.name))
            .filter(|_| hookable);
        match target {
            Some((program, address)) if seen_addresses.insert(address) => {
                selection.targets.push(ProbeTarget {
                    name: f.name.clone(),
                    address,
                    program,
                })
            }
            Some(_) => {} // an alias of a function already selected
            None => selection.skipped += 1,
        }
    }
    if matching == 0 {
        return Err(SelectError::NothingMatches(
            filter.map(|r| r.as_str().to_owned()).unwrap_or_default(),
        ));
    }
    if selection.targets.is_empty() {
        return Err(SelectError::NothingProbeable(matching));
    }
    Ok(selection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, skb_arg: u8) -> SkbFunction {
        SkbFunction {
            name: name.into(),
            skb_arg,
        }
    }

    #[test]
    fn selects_traceable_functions_with_programs() {
        let names = [
            "ip_rcv",
            "kfree_skb_reason",
            "inlined_one",
            "do_int3_thing",
            "sk_skb_reason_drop",
        ]
        .into();
        let kallsyms = Kallsyms::parse(
            "ffffffff81000100 t ip_rcv\nffffffff81000200 T kfree_skb_reason\nffffffff81000300 t inlined_one\n\
             ffffffff81000400 t do_int3_thing\nffffffff81000500 T sk_skb_reason_drop\n",
            &names,
        );
        let traceable: HashSet<String> = [
            "ip_rcv",
            "kfree_skb_reason",
            "do_int3_thing",
            "sk_skb_reason_drop",
        ]
        .map(String::from)
        .into();
        let blacklist: HashSet<String> = ["do_int3_thing".to_string()].into();
        let functions = [
            f("ip_rcv", 0),
            f("kfree_skb_reason", 0),
            f("inlined_one", 0),
            f("do_int3_thing", 1),
            f("sk_skb_reason_drop", 1),
            f("no_symbol", 2),
        ];
        let s = select(&functions, None, &kallsyms, Some(&traceable), &blacklist).unwrap();
        let got: Vec<_> = s
            .targets
            .iter()
            .map(|t| (t.name.as_str(), t.program))
            .collect();
        assert_eq!(
            got,
            [
                ("ip_rcv", "pwru_kprobe_skb_1"),
                ("kfree_skb_reason", "pwru_kprobe_skb_1_reason_2"),
                ("sk_skb_reason_drop", "pwru_kprobe_skb_2_reason_3"),
            ]
        );
        assert_eq!(s.skipped, 3);

        let re = Regex::new("^(?:ip_.*)$").unwrap();
        let s = select(
            &functions,
            Some(&re),
            &kallsyms,
            Some(&traceable),
            &blacklist,
        )
        .unwrap();
        assert_eq!(s.targets.len(), 1);
        let re = Regex::new("^(?:nope)$").unwrap();
        assert!(matches!(
            select(
                &functions,
                Some(&re),
                &kallsyms,
                Some(&traceable),
                &blacklist
            ),
            Err(SelectError::NothingMatches(_))
        ));
    }

    #[test]
    fn names_hooks_by_address_with_small_offsets() {
        let hooks = HookNames::by_address(vec![(0x2000, "b".into()), (0x1000, "a".into())]);
        assert_eq!(hooks.name(0x1000), Some("a"));
        assert_eq!(hooks.name(0x1004), Some("a"));
        assert_eq!(hooks.name(0x1100), None);
        assert_eq!(hooks.name(0x0fff), None);
        assert_eq!(hooks.name(0x2000), Some("b"));
        assert_eq!(HookNames::ByIndex(vec!["x".into()]).name(0), Some("x"));
    }
}
