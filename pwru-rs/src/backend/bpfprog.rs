//! `--filter-trace-tc` / `--filter-trace-xdp`: fentry and fexit on every tc and XDP BPF program
//! loaded when pwru-rs starts (a CNI's dataplane), next to the backend's hooks. Each traced
//! program gets its own pair of pwru-rs programs (the kernel fixes a tracing program's target at
//! load); events name the program by the address its fentry reports, through the hook table.
//! The programs need BPF trampolines, which some kernels refuse (this project's host): then
//! the flags fail with one line, before anything is attached.

use std::os::fd::{AsFd, OwnedFd};

use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_prog_type};
use pwru_rs_common::contract;

use super::{support, Attached};
use crate::{
    btf::KernelBtf,
    loader::{
        relocate::relocated_programs,
        sys::{self, LoadedProgram, ProgLoad},
    },
};

/// Which BPF programs to trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// `sched_cls` and `sched_act`: tc (clsact, tcx) and netkit programs.
    Tc,
    Xdp,
}

impl ProgramKind {
    pub fn flag(self) -> &'static str {
        match self {
            ProgramKind::Tc => "--filter-trace-tc",
            ProgramKind::Xdp => "--filter-trace-xdp",
        }
    }

    pub(super) fn types(self) -> &'static [bpf_prog_type] {
        match self {
            ProgramKind::Tc => &[
                bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS,
                bpf_prog_type::BPF_PROG_TYPE_SCHED_ACT,
            ],
            ProgramKind::Xdp => &[bpf_prog_type::BPF_PROG_TYPE_XDP],
        }
    }

    /// The fentry and fexit programs for this kind.
    fn programs(self) -> [&'static str; 2] {
        match self {
            ProgramKind::Tc => [contract::FENTRY_TC, contract::FEXIT_TC],
            ProgramKind::Xdp => [contract::FENTRY_XDP, contract::FEXIT_XDP],
        }
    }

    fn noun(self) -> &'static str {
        match self {
            ProgramKind::Tc => "tc",
            ProgramKind::Xdp => "XDP",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BpfProgError {
    #[error(
        "{flag}: this kernel refuses BPF trampolines (fentry/fexit), which {what} needs: {error}"
    )]
    NoTrampolines {
        flag: &'static str,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("{flag}: no {noun} BPF program with BTF is loaded (programs loaded after pwru-rs starts are not traced)")]
    NoPrograms {
        flag: &'static str,
        noun: &'static str,
    },
    #[error("{flag}: cannot list the loaded BPF programs: {error}")]
    List {
        flag: &'static str,
        error: std::io::Error,
    },
    #[error("{flag}: no BTF function {function} in vmlinux to try trampolines on")]
    NoProbeFunction {
        flag: &'static str,
        function: &'static str,
    },
    #[error("{0}")]
    Relocate(#[from] crate::loader::relocate::RelocateError),
    #[error("{flag}: {error}")]
    Verifier {
        flag: &'static str,
        error: sys::ProgLoadError,
    },
}

/// A vmlinux function every kernel has, where trampolines are tried.
const PROBE_FUNCTION: &str = "consume_skb";

/// A BPF program traced: what the events and the start-up report name it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedProgram {
    pub kind: ProgramKind,
    pub id: u32,
    /// Its entry function's name from its BTF (the kernel's copy is cut to 15 bytes).
    pub name: String,
    pub address: u64,
}

/// Fails unless this kernel runs BPF trampolines, when `kinds` asks for any: checked at start,
/// before anything is loaded.
pub fn check_trampolines(btf: &KernelBtf, kinds: &[ProgramKind]) -> Result<(), BpfProgError> {
    match kinds.first() {
        Some(first) => require_trampolines(btf, first.flag(), "tracing BPF programs"),
        None => Ok(()),
    }
}

/// Fails unless this kernel runs BPF trampolines, which `flag` needs for `what`.
pub fn require_trampolines(
    btf: &KernelBtf,
    flag: &'static str,
    what: &'static str,
) -> Result<(), BpfProgError> {
    let (probe_id, _) = btf
        .function(PROBE_FUNCTION)
        .ok_or(BpfProgError::NoProbeFunction {
            flag,
            function: PROBE_FUNCTION,
        })?;
    support::trampolines(probe_id.id).map_err(|error| BpfProgError::NoTrampolines {
        flag,
        what,
        error,
    })
}

/// Attaches fentry and fexit to every loaded program of `kinds`; the links join `attached`'s
/// and the programs its hook table. Fails when a kind has no program to trace.
pub fn attach(
    ebpf: &Ebpf,
    object: &[u8],
    kinds: &[ProgramKind],
    attached: &mut Attached,
) -> Result<Vec<TracedProgram>, BpfProgError> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&'static str> = kinds.iter().flat_map(|k| k.programs()).collect();
    let instructions = relocated_programs(ebpf, object, &names)?;
    let mut traced = Vec::new();
    for &kind in kinds {
        let flag = kind.flag();
        let programs = sys::loaded_programs(kind.types())
            .map_err(|error| BpfProgError::List { flag, error })?;
        let before = traced.len();
        let targets: Vec<Target> = programs
            .into_iter()
            .filter_map(|program| {
                let (Some(entry), Some(address)) = (program.entry_type_id, program.address) else {
                    log::info!(
                        "{flag}: program {} ({}) has no BTF or is not JITed: not traced",
                        program.id,
                        program.name
                    );
                    return None;
                };
                let name = full_name(&program, entry);
                Some(Target {
                    program,
                    entry,
                    address,
                    name,
                })
            })
            .collect();
        let [fentry, fexit] = kind.programs();
        // The exit first: an entry seen without its exit would stay tracked.
        let pair = [
            (fexit, bpf_attach_type::BPF_TRACE_FEXIT),
            (fentry, bpf_attach_type::BPF_TRACE_FENTRY),
        ];
        let mut loaded = load_all(&targets, &pair, &instructions).into_iter();
        for target in targets {
            let (id, name) = (target.program.id, &target.name);
            let mut links: Vec<OwnedFd> = Vec::new();
            for _ in pair {
                let prog = match loaded.next().expect("one load per program and hook") {
                    Ok(prog) => prog,
                    Err(error) if error.verifier_rejected() => {
                        return Err(BpfProgError::Verifier { flag, error })
                    }
                    Err(e) => {
                        log::warn!("{flag}: {name} (id {id}) not traced: {e}");
                        continue;
                    }
                };
                match sys::tracing_attach(prog.as_fd()) {
                    // The program's fd kept too: its run statistics (bpf_stats) show in
                    // pwru-rs's fdinfo, as its other programs' do.
                    Ok(link) => links.extend([link, prog]),
                    Err(e) => log::warn!("{flag}: {name} (id {id}) not traced: {e}"),
                }
            }
            if links.len() == 2 * pair.len() {
                log::info!("{flag}: tracing {name} (id {id})");
                attached.links.extend(links);
                traced.push(TracedProgram {
                    kind,
                    id,
                    name: target.name,
                    address: target.address,
                });
            }
        }
        if traced.len() == before {
            return Err(BpfProgError::NoPrograms {
                flag,
                noun: kind.noun(),
            });
        }
    }
    attached
        .hooks
        .add_addresses(traced.iter().map(|p| (p.address, p.name.clone())));
    Ok(traced)
}

/// A program to trace.
struct Target {
    program: LoadedProgram,
    /// Its entry function's BTF id.
    entry: u32,
    address: u64,
    name: String,
}

/// Loads `pair`'s programs for every target, on as many threads as there are CPUs: each load
/// verifies the whole event path again (the kernel fixes a tracing program's target at load),
/// which is most of the start-up time with many programs. Results in target order, then
/// `pair` order.
fn load_all(
    targets: &[Target],
    pair: &[(&'static str, bpf_attach_type); 2],
    instructions: &crate::loader::relocate::Relocated<'static>,
) -> Vec<Result<OwnedFd, sys::ProgLoadError>> {
    let jobs: Vec<(&Target, &'static str, bpf_attach_type)> = targets
        .iter()
        .flat_map(|t| pair.iter().map(move |&(p, a)| (t, p, a)))
        .collect();
    let load = |&(target, pwru_program, attach_type): &(&Target, &'static str, bpf_attach_type)| {
        sys::prog_load(&ProgLoad {
            name: pwru_program,
            prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
            expected_attach_type: Some(attach_type),
            attach_btf_id: target.entry,
            attach_prog_fd: Some(target.program.fd.as_fd()),
            insns: instructions.insns(pwru_program),
            btf: instructions.btf(pwru_program),
        })
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    if workers <= 1 {
        return jobs.iter().map(load).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<OwnedFd, sys::ProgLoadError>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                *results[i].lock().unwrap() = Some(load(job));
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap().expect("every job ran"))
        .collect()
}

/// The program's entry function name from its BTF, else the kernel's short copy.
fn full_name(program: &LoadedProgram, entry_type_id: u32) -> String {
    let from_btf = match sys::btf_data(program.btf_id) {
        Ok(Some(data)) => KernelBtf::program_function_name(&data, entry_type_id),
        Ok(None) => None,
        Err(e) => {
            log::debug!("program {} BTF: {e}", program.id);
            None
        }
    };
    from_btf.unwrap_or_else(|| program.name.clone())
}
