//! `--filter-track-skb`'s own hooks, attached after the backend's: fexit on the functions that
//! clone or copy an skb (a copy of a tracked skb is tracked too, with its parent), and the ends
//! of an skb's life that `--filter-func` left out (there the backend's programs end the
//! tracking themselves, after their event).
//!
//! fexit (and fentry + fexit on functions that replace `*pskb`) needs BPF trampolines; a
//! kernel without them gets kprobe + kretprobe pairs on the copy functions, and one with neither
//! (this project's host) tracks by address only, and says so once.

use std::{
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_prog_type};
use pwru_rs_common::contract;

use super::{kprobe, tracepoint, Attached, Backend, ProbeTarget, LIFE_END_FUNCTION};
use crate::{
    btf::KernelBtf,
    loader::{
        relocate::relocated_programs,
        sys::{self, ProgLoad},
    },
};

/// Functions that return a new skb made from their first argument, and that may be hooked.
const COPY_FUNCTIONS: [&str; 5] = [
    "skb_clone",
    "skb_copy",
    "skb_realloc_headroom",
    "skb_copy_expand",
    "__pskb_copy_fclone",
];

/// A copy function to hook: its BTF id and the fexit program for its number of arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFunction {
    pub name: &'static str,
    pub btf_id: u32,
    pub program: &'static str,
    /// The fentry program paired with the fexit one, if any.
    pub entry: Option<&'static str>,
    /// The module the function is in (its id is in that module's BTF), or vmlinux.
    pub module: Option<&'static str>,
}

/// Functions that may replace `*pskb` by a copy, the position of `pskb`, and their module:
/// the XDP paths that cannot run on an skb in place (veth's on 6.12: `skb_pp_cow_data`; on some
/// older kernels veth's own `veth_convert_skb_to_xdp_buff`).
const PSKB_FUNCTIONS: [(&str, usize, Option<&str>); 2] = [
    ("skb_pp_cow_data", 1, None),
    ("veth_convert_skb_to_xdp_buff", 2, Some("veth")),
];

/// The copy functions of this kernel's BTF that pwru-rs has a program for: vmlinux's, and
/// modules' (their split BTF read on top of `vmlinux`) when the module is loaded.
pub fn copy_functions(btf: &KernelBtf, vmlinux: &Path) -> Vec<CopyFunction> {
    let mut found = copy_functions_in(btf);
    if found.is_empty() {
        log::warn!("--filter-track-skb: no skb copy function in BTF: clones are not followed");
    }
    for (name, pskb_arg, module) in PSKB_FUNCTIONS {
        let in_module;
        let (btf, obj) = match module {
            None => (btf, 0),
            Some(module) => {
                let path = Path::new("/sys/kernel/btf").join(module);
                if !path.exists() {
                    log::debug!("{module} not loaded: {name} is not followed");
                    continue;
                }
                match KernelBtf::from_files(vmlinux, &[path]) {
                    Ok(b) => in_module = b,
                    Err(e) => {
                        log::debug!("{module} BTF: {e}");
                        continue;
                    }
                }
                (&in_module, 1)
            }
        };
        match btf.function(name) {
            Some((id, params)) if id.obj == obj && params > pskb_arg => found.push(CopyFunction {
                name,
                btf_id: id.id,
                program: contract::FEXIT_PSKB[pskb_arg - 1],
                entry: Some(contract::FENTRY_PSKB[pskb_arg - 1]),
                module,
            }),
            _ => log::debug!("no {name} here"),
        }
    }
    found
}

fn copy_functions_in(btf: &KernelBtf) -> Vec<CopyFunction> {
    COPY_FUNCTIONS
        .iter()
        .filter_map(|&name| {
            let (id, params) = btf.function(name)?;
            let program = match params {
                2 => contract::FEXIT_COPY_OF_2,
                4 => contract::FEXIT_COPY_OF_4,
                _ => {
                    log::debug!("{name} has {params} parameters here: not followed");
                    return None;
                }
            };
            (id.obj == 0).then_some(CopyFunction {
                name,
                btf_id: id.id,
                program,
                entry: None,
                module: None,
            })
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("--filter-track-skb: {0}")]
    Program(#[from] crate::loader::ProgramError),
    #[error("--filter-track-skb: {0}")]
    Relocate(#[from] crate::loader::relocate::RelocateError),
    #[error("--filter-track-skb: {0}")]
    Verifier(sys::ProgLoadError),
    #[error("--filter-track-skb: cannot hook {what} to end the tracking of freed skbs: {error}")]
    LifeEnd { what: String, error: std::io::Error },
}

/// Attaches the tracking's hooks; their links join `attached`'s. Returns the copy functions
/// followed.
pub fn attach(
    ebpf: &mut Ebpf,
    object: &[u8],
    attached: &mut Attached,
    copies: &[CopyFunction],
) -> Result<Vec<&'static str>, TrackError> {
    let mut links = life_end_hooks(ebpf, attached)?;
    let (copy_links, followed) = match copy_hooks(ebpf, object, copies)? {
        Some(hooked) => hooked,
        None => match kprobe::pmu_type() {
            Some(pmu) => copy_hooks_by_kretprobe(ebpf, pmu, copies)?,
            None => {
                log::warn!("--filter-track-skb: this kernel has neither BPF trampolines (fexit) nor kprobes: clones and copies are not followed, skbs are tracked by address only");
                (Vec::new(), Vec::new())
            }
        },
    };
    links.extend(copy_links);
    attached.links.extend(links);
    Ok(followed)
}

/// Where `--filter-func` left out the end of an skb's life, a program there that only forgets.
fn life_end_hooks(ebpf: &mut Ebpf, attached: &Attached) -> Result<Vec<OwnedFd>, TrackError> {
    let mut links = Vec::new();
    match attached.backend {
        Backend::Tracepoint => {
            for name in tracepoint::LIFE_END_TRACEPOINTS {
                if attached.hooks.contains(name) {
                    continue;
                }
                let prog = tracepoint::load_program(ebpf, contract::RAW_TP_UNTRACK_0)?;
                links.push(sys::raw_tracepoint_open(name, prog, 0).map_err(|error| {
                    TrackError::LifeEnd {
                        what: format!("tracepoint {name}"),
                        error,
                    }
                })?);
            }
        }
        Backend::Kprobe | Backend::KprobeMulti => {
            if !attached.hooks.contains(LIFE_END_FUNCTION) {
                let lost = |error| TrackError::LifeEnd {
                    what: LIFE_END_FUNCTION.to_owned(),
                    error,
                };
                let pmu = kprobe::pmu_type()
                    .ok_or_else(|| lost(std::io::Error::from_raw_os_error(libc::ENOSYS)))?;
                let prog = kprobe::load_program(ebpf, contract::KPROBE_UNTRACK_0)?;
                let target = ProbeTarget {
                    name: LIFE_END_FUNCTION.to_owned(),
                    // A kprobe by name: the address is not needed.
                    address: 0,
                    program: contract::KPROBE_UNTRACK_0,
                    module: None,
                };
                links.push(kprobe::open_kprobe(pmu, &target, prog, false).map_err(lost)?);
            }
        }
    }
    Ok(links)
}

/// Links, and the copy functions they follow.
type Hooked = (Vec<OwnedFd>, Vec<&'static str>);

/// Set in the environment, fexit is not tried (tests of the kretprobe fallback on kernels that
/// have both).
const NO_FEXIT_ENV: &str = "PWRU_RS_TEST_NO_FEXIT";

/// fexit on each copy function; `None` when the kernel refuses tracing programs (no BPF
/// trampolines). A verifier rejection is an error.
fn copy_hooks(
    ebpf: &Ebpf,
    object: &[u8],
    copies: &[CopyFunction],
) -> Result<Option<Hooked>, TrackError> {
    let (mut links, mut followed) = (Vec::new(), Vec::new());
    if copies.is_empty() {
        return Ok(Some((links, followed)));
    }
    if std::env::var_os(NO_FEXIT_ENV).is_some() {
        log::info!("--filter-track-skb: {NO_FEXIT_ENV} set: fexit not tried");
        return Ok(None);
    }
    let programs: Vec<&'static str> = [contract::FEXIT_COPY_OF_2, contract::FEXIT_COPY_OF_4]
        .into_iter()
        .chain(contract::FENTRY_PSKB)
        .chain(contract::FEXIT_PSKB)
        .collect();
    let instructions = relocated_programs(ebpf, object, &programs)?;
    for copy in copies {
        let module_btf = match copy.module.map(sys::module_btf_fd).transpose() {
            Ok(fd) => fd.flatten(),
            Err(e) => {
                log::warn!("--filter-track-skb: {}: module BTF: {e}", copy.name);
                continue;
            }
        };
        if copy.module.is_some() && module_btf.is_none() {
            log::warn!(
                "--filter-track-skb: {}: its module's BTF is gone",
                copy.name
            );
            continue;
        }
        let load = |program: &'static str, attach_type| {
            sys::prog_load(&ProgLoad {
                name: program,
                prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
                expected_attach_type: Some(attach_type),
                attach_btf_id: copy.btf_id,
                attach_prog_fd: module_btf.as_ref().map(|fd| fd.as_fd()),
                insns: instructions.insns(program),
                btf: instructions.btf(program),
            })
        };
        let mut programs = vec![(copy.program, bpf_attach_type::BPF_TRACE_FEXIT)];
        if let Some(entry) = copy.entry {
            programs.push((entry, bpf_attach_type::BPF_TRACE_FENTRY));
        }
        let mut loaded = Vec::new();
        for (program, attach_type) in programs {
            match load(program, attach_type) {
                Ok(prog) => loaded.push(prog),
                Err(e) if e.verifier_rejected() => return Err(TrackError::Verifier(e)),
                Err(e) if followed.is_empty() && links.is_empty() => {
                    log::info!(
                        "--filter-track-skb: this kernel refuses fexit programs ({})",
                        e.error
                    );
                    return Ok(None);
                }
                Err(e) => {
                    log::warn!("--filter-track-skb: {program} on {}: {e}", copy.name);
                    break;
                }
            }
        }
        if loaded.len() != 1 + usize::from(copy.entry.is_some()) {
            continue;
        }
        // The exit program first: an entry seen without its exit would stay in the map.
        let attached: std::io::Result<Vec<OwnedFd>> = loaded
            .iter()
            .map(|prog| sys::tracing_attach(prog.as_fd()))
            .collect();
        match attached {
            Ok(new) => {
                links.extend(new);
                followed.push(copy.name);
            }
            Err(e) => log::warn!("--filter-track-skb: fexit on {} refused: {e}", copy.name),
        }
    }
    Ok(Some((links, followed)))
}

/// Without trampolines: a kprobe at each copy function's entry and a kretprobe at its return,
/// paired by the entry's stack pointer (`pwru-rs-ebpf/src/track.rs`).
fn copy_hooks_by_kretprobe(
    ebpf: &mut Ebpf,
    pmu: u32,
    copies: &[CopyFunction],
) -> Result<Hooked, TrackError> {
    let entry = kprobe::load_program(ebpf, contract::KPROBE_COPY_ENTRY)?;
    let exit = kprobe::load_program(ebpf, contract::KRETPROBE_COPY)?;
    let (mut links, mut followed) = (Vec::new(), Vec::new());
    for copy in copies.iter().filter(|c| c.entry.is_none()) {
        let target = ProbeTarget {
            name: copy.name.to_owned(),
            address: 0,
            program: contract::KPROBE_COPY_ENTRY,
            module: None,
        };
        // The return probe first: an entry seen without its return would only age out.
        let pair = kprobe::open_kprobe(pmu, &target, exit, true)
            .and_then(|ret| Ok([ret, kprobe::open_kprobe(pmu, &target, entry, false)?]));
        match pair {
            Ok(pair) => {
                links.extend(pair);
                followed.push(copy.name);
            }
            Err(e) => log::warn!(
                "--filter-track-skb: kretprobe on {} refused: {e}",
                copy.name
            ),
        }
    }
    if !followed.is_empty() {
        log::info!("--filter-track-skb: no fexit here: clones and copies followed by kretprobes");
    }
    Ok((links, followed))
}
