//! Tracepoint backend: the raw tracepoints that carry an skb, found in BTF (`btf_trace_*`).
//!
//! Works on kernels with neither kprobes nor BPF trampolines. The kernel refuses to attach a
//! program that reads more arguments than a tracepoint has, so there is one program per position
//! of the skb argument (plus kfree_skb's with its drop reason); each is verified once and
//! attached to all tracepoints of its kind, with a BPF cookie (Linux ≥ 6.10) saying which hook
//! fired.

use aya::{programs::RawTracePoint, Ebpf};
use pwru_rs_common::contract::{
    RAW_TP_PROGRAMS as PROGRAMS, RAW_TP_SKB_0_FREE, RAW_TP_SKB_0_REASON_2,
    RAW_TP_SKB_0_REASON_2_FREE,
};
use regex::Regex;

use super::{Attached, Backend};
use crate::{
    btf::SkbTracepoint,
    events::HookTable,
    loader::{self, sys, ProgramError},
};

/// Where an skb's life ends on this backend (`kfree_skb` and `consume_skb`, the tracepoints of
/// the usual ways an skb is freed); their programs also end its tracking.
pub const LIFE_END_TRACEPOINTS: [&str; 2] = ["kfree_skb", "consume_skb"];

/// The program serving a tracepoint, if any.
fn program_for(tp: &SkbTracepoint) -> Option<&'static str> {
    match (tp.name.as_str(), tp.skb_arg, tp.reason_arg) {
        ("kfree_skb", 0, Some(2)) => return Some(RAW_TP_SKB_0_REASON_2_FREE),
        ("consume_skb", 0, _) => return Some(RAW_TP_SKB_0_FREE),
        _ => {}
    }
    match (tp.skb_arg, tp.reason_arg) {
        (0, Some(2)) => Some(RAW_TP_SKB_0_REASON_2),
        (n, reason) => {
            if reason.is_some() {
                log::debug!(
                    "tracepoint {}: drop reason at an unexpected position, not shown",
                    tp.name
                );
            }
            PROGRAMS.get(usize::from(n)).copied()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TracepointError {
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error("no skb tracepoint matches --filter-func {0:?}")]
    NothingToAttach(String),
    #[error("attaching to tracepoint {name} failed: {error}{hint}")]
    Attach {
        name: String,
        error: std::io::Error,
        hint: &'static str,
    },
}

/// Loads the program and attaches it to every tracepoint in `tracepoints` whose name matches
/// `filter` (whole name).
pub fn attach(
    ebpf: &mut Ebpf,
    tracepoints: &[SkbTracepoint],
    filter: Option<&Regex>,
) -> Result<Attached, TracepointError> {
    let selected: Vec<&SkbTracepoint> = tracepoints
        .iter()
        .filter(|tp| filter.is_none_or(|re| re.is_match(&tp.name)))
        .collect();
    if selected.is_empty() {
        return Err(TracepointError::NothingToAttach(
            filter.map(|r| r.as_str().to_owned()).unwrap_or_default(),
        ));
    }
    let mut hook_names = Vec::with_capacity(selected.len());
    let mut links = Vec::with_capacity(selected.len());
    for tp in selected {
        let Some(name) = program_for(tp) else {
            log::debug!(
                "tracepoint {}: skb is argument {}, no program for it",
                tp.name,
                tp.skb_arg
            );
            continue;
        };
        let prog_fd = load_program(ebpf, name)?;
        // The cookie is the hook's index in `hook_names`, reported back as `Event::hook`.
        let opened = match crate::fault::attach_failure(hook_names.len()) {
            Some(injected) => Err(injected),
            None => sys::raw_tracepoint_open(&tp.name, prog_fd, hook_names.len() as u64),
        };
        match opened {
            Ok(link) => {
                links.push(link);
                hook_names.push(tp.name.clone());
            }
            // A tracepoint in BTF may be compiled out of this kernel's tracepoint table.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                log::debug!("tracepoint {} not attachable: {e}", tp.name);
            }
            Err(error) => {
                let hint = match error.raw_os_error() {
                    Some(libc::E2BIG) => {
                        " (the tracepoint backend needs BPF cookies on raw tracepoints, Linux 6.10+)"
                    }
                    _ => "",
                };
                return Err(TracepointError::Attach {
                    name: tp.name.clone(),
                    error,
                    hint,
                });
            }
        }
    }
    Ok(Attached {
        backend: Backend::Tracepoint,
        hooks: HookTable::by_cookie(hook_names),
        skipped: 0,
        link_time: None,
        links,
    })
}

/// Loads (verifies) a program the first time it is needed; returns its fd.
pub(super) fn load_program(ebpf: &mut Ebpf, name: &'static str) -> Result<i32, ProgramError> {
    loader::program_fd(ebpf, name, |program| {
        <&mut RawTracePoint>::try_from(program)?.load()
    })
}
