//! Attaching the kernel programs: one module per backend, and the choice between them
//! ([`attach`]: the one asked for, or with `auto` the best this kernel has).

pub mod bpf_helpers;
pub mod bpfprog;
pub mod func_table;
pub mod kprobe;
pub mod kprobe_multi;
pub mod netfilter;
pub mod support;
pub mod tracepoint;
pub mod track;

use std::{collections::HashSet, os::fd::OwnedFd, time::Duration};

use anyhow::bail;

use pwru_rs_common::contract;
use regex::Regex;

use crate::{
    btf::{SkbFunction, SkbTracepoint},
    cli::BackendChoice,
    events::HookTable,
    ksym::{self, Kallsyms, SymbolFiles},
};

/// How the programs are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Tracepoint,
    Kprobe,
    KprobeMulti,
}

impl Backend {
    /// As `--backend` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Tracepoint => "tracepoint",
            Backend::Kprobe => "kprobe",
            Backend::KprobeMulti => "kprobe-multi",
        }
    }

    /// What it attaches to, for messages.
    pub fn hook_noun(self) -> &'static str {
        match self {
            Backend::Tracepoint => "tracepoints",
            Backend::Kprobe | Backend::KprobeMulti => "functions",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the kernel offers to hook, from BTF.
pub struct Hookable<'a> {
    pub functions: &'a [SkbFunction],
    pub tracepoints: &'a [SkbTracepoint],
}

/// What [`attach`] needs besides the loaded object.
pub struct AttachRequest<'a> {
    pub choice: BackendChoice,
    pub hookable: Hookable<'a>,
    pub func_filter: Option<&'a Regex>,
    /// kallsyms and ftrace's function list, read in the background ([`prefetch_symbols`]).
    pub symbol_files: Option<SymbolFiles>,
    /// kprobe backend: probes attached and detached at once.
    pub kprobe_batch: usize,
    /// `--filter-track-skb`: the copy functions to follow clones through (empty: stack
    /// tracking only, which needs just the ends of skb lives).
    pub track_copies: Option<&'a [track::CopyFunction]>,
    /// `--filter-non-skb-funcs` (kprobe backends).
    pub non_skb_funcs: &'a [String],
    /// `--filter-track-bpf-helpers`: what the traced programs call ([`bpf_helpers::calls`]).
    pub helper_calls: &'a [i32],
    /// The kprobe-multi function table's size, as the programs were loaded with
    /// (`Config::func_slot_bits`).
    pub func_slot_bits: u32,
}

/// Starts reading what the kprobe backends need (while BTF parses), when they may be used.
pub fn prefetch_symbols(choice: BackendChoice) -> Option<SymbolFiles> {
    match choice {
        BackendChoice::Tracepoint => None,
        BackendChoice::Kprobe | BackendChoice::KprobeMulti => {
            Some(SymbolFiles::read_in_background())
        }
        BackendChoice::Auto => kprobe::pmu_type().map(|_| SymbolFiles::read_in_background()),
    }
}

/// Attaches with the backend asked for; `auto` probes the kernel: kprobe-multi, else kprobe,
/// else tracepoint, and says why. A program the verifier rejects is an error in every mode,
/// never a reason to fall back.
pub fn attach(
    ebpf: &mut aya::Ebpf,
    object: &[u8],
    request: AttachRequest<'_>,
) -> anyhow::Result<Attached> {
    let track_copies = request.track_copies;
    let mut attached = attach_backend(ebpf, object, request)?;
    if let Some(copies) = track_copies {
        let followed = track::attach(ebpf, object, &mut attached, copies)?;
        if !followed.is_empty() {
            log::info!(
                "--filter-track-skb: clones and copies followed through {}",
                followed.join(", ")
            );
        }
    }
    Ok(attached)
}

fn attach_backend(
    ebpf: &mut aya::Ebpf,
    object: &[u8],
    request: AttachRequest<'_>,
) -> anyhow::Result<Attached> {
    let AttachRequest {
        choice,
        hookable,
        func_filter,
        symbol_files,
        kprobe_batch,
        track_copies: _,
        non_skb_funcs,
        helper_calls,
        func_slot_bits,
    } = request;
    let select = || {
        let files = symbol_files.unwrap_or_else(SymbolFiles::read_in_background);
        select_functions(
            hookable.functions,
            func_filter,
            non_skb_funcs,
            helper_calls,
            files,
        )
    };
    let needs_kprobes = if !non_skb_funcs.is_empty() {
        Some("--filter-non-skb-funcs")
    } else if !helper_calls.is_empty() {
        Some(bpf_helpers::FLAG)
    } else {
        None
    };
    let tracepoint = |ebpf: &mut aya::Ebpf| -> anyhow::Result<Attached> {
        Ok(tracepoint::attach(ebpf, hookable.tracepoints, func_filter)?)
    };
    let kprobe = |ebpf: &mut aya::Ebpf, selection: Selection| -> anyhow::Result<Attached> {
        let attached = kprobe::attach(ebpf, selection, kprobe_batch, true)?;
        log::info!(
            "kprobe: {} functions could not be probed (not traceable, blacklisted or refused)",
            attached.skipped
        );
        Ok(attached)
    };
    let kprobe_multi = |ebpf: &mut aya::Ebpf, selection: &Selection| {
        log::info!(
            "kprobe-multi: {} functions, {} not probeable here",
            selection.targets.len(),
            selection.skipped
        );
        kprobe_multi::attach(ebpf, object, selection, func_slot_bits)
    };
    match choice {
        BackendChoice::Tracepoint if needs_kprobes.is_some() => {
            bail!(
                "{} needs a kprobe backend",
                needs_kprobes.unwrap_or_default()
            )
        }
        BackendChoice::Tracepoint => tracepoint(ebpf),
        BackendChoice::Kprobe => kprobe(ebpf, select()?),
        BackendChoice::KprobeMulti => Ok(kprobe_multi(ebpf, &select()?)?),
        BackendChoice::Auto => {
            if kprobe::pmu_type().is_none() {
                if let Some(flag) = needs_kprobes {
                    bail!("{flag} needs kprobes, which this kernel lacks");
                }
                log::info!("backend: tracepoint (this kernel has no kprobes)");
                return tracepoint(ebpf);
            }
            let selection = select()?;
            match kprobe_multi(ebpf, &selection) {
                Ok(done) => {
                    log::info!("backend: kprobe-multi (supported by this kernel)");
                    Ok(done)
                }
                Err(e) if e.unsupported() => {
                    log::info!("backend: kprobe (kprobe-multi unavailable: {e})");
                    kprobe(ebpf, selection)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Hooks attached by a backend. Dropping it detaches them all.
pub struct Attached {
    pub backend: Backend,
    pub hooks: HookTable,
    /// Candidates that could not be attached here (not traceable, blacklisted, refused).
    pub skipped: usize,
    /// kprobe-multi: how long creating its links took.
    pub link_time: Option<Duration>,
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

    /// [`Self::detach`] on a thread of its own, so that the rest of the teardown (the last
    /// events, the maps) overlaps the kernel's grace periods; join it for the time taken.
    pub fn detach_in_background(
        self,
        workers: usize,
        progress: bool,
    ) -> std::thread::JoinHandle<Duration> {
        std::thread::spawn(move || self.detach(workers, progress))
    }

    /// Detaches everything, closing links from `workers` threads at once: each kprobe's
    /// unregistration waits for an RCU grace period, and concurrent closes share them.
    pub fn detach(self, workers: usize, progress: bool) -> Duration {
        let started = std::time::Instant::now();
        let bar = crate::progress::bar(progress, self.links.len() as u64, "detaching");
        let threads = workers.clamp(1, self.links.len().max(1));
        let links = std::sync::Mutex::new(self.links);
        std::thread::scope(|s| {
            for _ in 0..threads {
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

/// A kernel function to probe, with where its skb (and drop reason) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub name: String,
    pub address: u64,
    pub program: &'static str,
    /// The kernel module it is in (`--kmods`), from kallsyms.
    pub module: Option<String>,
}

impl ProbeTarget {
    /// How events name it: `veth_xmit [veth]` for a module's function, as kallsyms shows it.
    pub fn hook_name(&self) -> String {
        match &self.module {
            Some(m) => format!("{} [{m}]", self.name),
            None => self.name.clone(),
        }
    }
}

/// What the kprobe backends will attach to, and how many candidates the kernel cannot take.
#[derive(Debug, Default)]
pub struct Selection {
    pub targets: Vec<ProbeTarget>,
    /// Not hookable here: not in `available_filter_functions` (inlined, or renamed to
    /// `.constprop`/`.isra` variants), blacklisted, or without an address.
    pub skipped: usize,
}

/// Where an skb's life ends on the kprobe backends: `kfree_skb`, `consume_skb` and the rest all
/// end in it, once the last reference is gone (a clone's too).
pub const LIFE_END_FUNCTION: &str = "kfree_skbmem";

/// The program for `f`, by the position of its skb argument (`pwru-rs-ebpf/src/kprobe.rs`).
fn kprobe_program(f: &SkbFunction) -> Option<&'static str> {
    match (f.name.as_str(), f.skb_arg) {
        // The drop functions whose reason pwru prints.
        ("kfree_skb_reason", 0) => Some(contract::KPROBE_SKB_0_REASON_1),
        ("sk_skb_reason_drop", 1) => Some(contract::KPROBE_SKB_1_REASON_2),
        // The end of an skb's life: its program also ends its tracking.
        (LIFE_END_FUNCTION, 0) => Some(contract::KPROBE_SKB_0_FREE),
        (_, arg) => contract::KPROBE_PROGRAMS.get(usize::from(arg)).copied(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("cannot read /proc/kallsyms: {0}")]
    Kallsyms(std::io::Error),
    #[error("/proc/kallsyms shows no addresses: the kprobe backends need CAP_SYSLOG to read them (kernel.kptr_restrict), or run as root")]
    NoAddresses,
    #[error("no kernel function with an skb argument matches --filter-func {0:?}")]
    NothingMatches(String),
    #[error("none of the {0} matching skb functions can be probed on this kernel")]
    NothingProbeable(usize),
    #[error("--filter-non-skb-funcs: {0} is not a function this kernel can probe")]
    NonSkbFunction(String),
}

/// The skb functions of BTF that match `filter` and this kernel can probe.
pub fn select_functions(
    functions: &[SkbFunction],
    filter: Option<&Regex>,
    non_skb_funcs: &[String],
    helper_calls: &[i32],
    symbol_files: SymbolFiles,
) -> Result<Selection, SelectError> {
    let started = std::time::Instant::now();
    let wanted: HashSet<&str> = functions
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| filter.is_none_or(|re| re.is_match(name)))
        .chain(non_skb_funcs.iter().map(String::as_str))
        .collect();
    let (kallsyms_text, filter_functions) = symbol_files.wait();
    let kallsyms_text = kallsyms_text.map_err(SelectError::Kallsyms)?;
    let helpers = if helper_calls.is_empty() {
        Vec::new()
    } else {
        bpf_helpers::resolve(helper_calls, &kallsyms_text)
    };
    let wanted: HashSet<&str> = wanted
        .into_iter()
        .chain(helpers.iter().map(|(name, _)| name.as_str()))
        .collect();
    let kallsyms = Kallsyms::parse(&kallsyms_text, &wanted);
    if !kallsyms.is_empty() && !kallsyms.has_addresses() {
        return Err(SelectError::NoAddresses);
    }
    let traceable = filter_functions
        .as_deref()
        .map(|text| ksym::parse_available_filter_functions(text, &wanted));
    if traceable.is_none() {
        log::warn!("cannot read available_filter_functions (tracefs): trying every skb function");
    }
    let blacklist = ksym::kprobe_blacklist();
    let mut selection = select(functions, filter, &kallsyms, traceable.as_ref(), &blacklist)?;
    for name in non_skb_funcs {
        let hookable =
            traceable.as_ref().is_none_or(|t| t.contains(name)) && !blacklist.contains(name);
        match kallsyms.address(name).filter(|_| hookable) {
            Some(address) => selection.targets.push(ProbeTarget {
                name: name.clone(),
                address,
                program: contract::KPROBE_NON_SKB,
                module: kallsyms.module(name).map(str::to_owned),
            }),
            None => return Err(SelectError::NonSkbFunction(name.clone())),
        }
    }
    add_helpers(
        &mut selection,
        &helpers,
        &kallsyms,
        traceable.as_ref(),
        &blacklist,
    );
    log::debug!("function selection took {:?}", started.elapsed());
    Ok(selection)
}

/// `--filter-track-bpf-helpers`' functions, each with the helper program, unless it is traced
/// as an skb function already or cannot be probed (said, not fatal: the rest still show).
fn add_helpers(
    selection: &mut Selection,
    helpers: &[(String, u64)],
    kallsyms: &Kallsyms,
    traceable: Option<&HashSet<String>>,
    blacklist: &HashSet<String>,
) {
    let mut named = Vec::new();
    for (name, address) in helpers {
        if selection.targets.iter().any(|t| t.address == *address) {
            log::info!(
                "{}: {name} is traced as an skb function already",
                bpf_helpers::FLAG
            );
            continue;
        }
        if traceable.is_some_and(|t| !t.contains(name)) || blacklist.contains(name) {
            log::info!(
                "{}: {name} cannot be probed here: not traced",
                bpf_helpers::FLAG
            );
            continue;
        }
        named.push(name.as_str());
        selection.targets.push(ProbeTarget {
            name: name.clone(),
            address: *address,
            program: contract::KPROBE_BPF_HELPER,
            module: kallsyms.module(name).map(str::to_owned),
        });
    }
    log::info!(
        "{}: {} functions the traced programs call: {}",
        bpf_helpers::FLAG,
        named.len(),
        named.join(", ")
    );
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
                    module: kallsyms.module(&f.name).map(str::to_owned),
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
                ("ip_rcv", "pwru_kprobe_skb_0"),
                ("kfree_skb_reason", "pwru_kprobe_skb_0_reason_1"),
                ("sk_skb_reason_drop", "pwru_kprobe_skb_1_reason_2"),
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
}
