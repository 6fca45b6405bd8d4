//! kprobe-multi backend: one program in one BPF link on every function's address at once (a
//! hash map by address tells it where the skb is), so thousands of functions attach and detach in
//! a fraction of a second: each link costs the kernel grace periods at detach. `--filter-non-skb-funcs`
//! has a second link, of its own program.
//!
//! aya 0.14 can neither load a program with `expected_attach_type = BPF_TRACE_KPROBE_MULTI` nor
//! create such a link: the programs are relocated against aya's maps (`loader::relocate`) and
//! loaded and linked by hand (`loader::sys`).

use std::os::fd::{AsFd, OwnedFd};

use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_prog_type};
use pwru_rs_common::contract;

use super::{Attached, Backend, ProbeTarget, Selection};
use crate::{
    events::HookTable,
    loader::{
        relocate::{relocated_programs, RelocateError},
        sys::{self, ProgLoad, ProgLoadError},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum KprobeMultiError {
    #[error(transparent)]
    Relocate(#[from] RelocateError),
    #[error("{0}")]
    Load(ProgLoadError),
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("writing where the skb is for {count} functions failed: {error}")]
    FuncArgs { count: usize, error: std::io::Error },
    #[error(transparent)]
    FuncTable(#[from] super::func_table::FuncTableError),
    #[error("creating the kprobe-multi link for {program} ({count} functions) failed: {error}")]
    Link {
        program: &'static str,
        count: usize,
        error: std::io::Error,
    },
}

impl KprobeMultiError {
    /// True when the kernel lacks kprobe-multi (no fprobe, or an attach type it does not know),
    /// as opposed to refusing our program: a verifier rejection is never "unsupported".
    pub fn unsupported(&self) -> bool {
        let missing = |e: &std::io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | ENOTSUPP | libc::ENOSYS)
            )
        };
        match self {
            // An unknown expected_attach_type is refused with EINVAL before the verifier runs.
            Self::Load(e) => {
                !e.verifier_rejected()
                    && (missing(&e.error) || e.error.raw_os_error() == Some(libc::EINVAL))
            }
            // The program verified; the link is what this kernel cannot make.
            Self::Link { error, .. } => {
                missing(error) || error.raw_os_error() == Some(libc::EINVAL)
            }
            Self::Relocate(_)
            | Self::MissingMap(_)
            | Self::FuncArgs { .. }
            | Self::FuncTable(_) => false,
        }
    }
}

/// `ENOTSUPP`, the kernel-internal code some BPF paths return to user space.
const ENOTSUPP: i32 = 524;

pub fn attach(
    ebpf: &Ebpf,
    object: &[u8],
    selection: &Selection,
    func_slot_bits: u32,
) -> Result<Attached, KprobeMultiError> {
    // The skb functions in one link; `--filter-non-skb-funcs` and `--filter-track-bpf-helpers`
    // in a link each, of their own program.
    let group_of = |t: &ProbeTarget| match t.program {
        own @ (contract::KPROBE_NON_SKB | contract::KPROBE_BPF_HELPER) => own,
        _ => contract::KPROBE_MULTI,
    };
    let groups: Vec<(&'static str, Vec<&ProbeTarget>)> = [
        contract::KPROBE_MULTI,
        contract::KPROBE_NON_SKB,
        contract::KPROBE_BPF_HELPER,
    ]
    .into_iter()
    .map(|program| {
        let targets: Vec<&ProbeTarget> = selection
            .targets
            .iter()
            .filter(|t| group_of(t) == program)
            .collect();
        (program, targets)
    })
    .filter(|(_, targets)| !targets.is_empty())
    .collect();
    let names: Vec<&'static str> = groups.iter().map(|(name, _)| *name).collect();
    let started = std::time::Instant::now();
    let relocated = relocated_programs(ebpf, object, &names)?;
    let loaded = names
        .iter()
        .map(|&program| {
            sys::prog_load(&ProgLoad {
                name: program,
                prog_type: bpf_prog_type::BPF_PROG_TYPE_KPROBE,
                expected_attach_type: Some(bpf_attach_type::BPF_TRACE_KPROBE_MULTI),
                attach_btf_id: 0,
                attach_prog_fd: None,
                insns: relocated.insns(program),
                btf: relocated.btf(program),
            })
            .map_err(KprobeMultiError::Load)
        })
        .collect::<Result<Vec<OwnedFd>, _>>()?;
    let verified = started.elapsed();
    // Where each function's skb is, for the skb program.
    let func_table_map = ebpf
        .map(contract::FUNC_TABLE_MAP)
        .map(crate::loader::relocate::map_fd)
        .ok_or(KprobeMultiError::MissingMap(contract::FUNC_TABLE_MAP))?;
    let skb_functions: Vec<(u64, u32)> = groups
        .iter()
        .filter(|(program, _)| *program == contract::KPROBE_MULTI)
        .flat_map(|(_, targets)| targets)
        .map(|t| (t.address, func_args(t.program)))
        .collect();
    let table = super::func_table::build(&skb_functions, func_slot_bits)?;
    // Only the slots in use: the rest are zeros already.
    for (i, slot) in table
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != pwru_rs_common::FuncSlot::default())
    {
        let value = crate::loader::bytes_of(slot);
        sys::map_update(func_table_map, &(i as u32).to_ne_bytes(), value).map_err(|error| {
            KprobeMultiError::FuncArgs {
                count: skb_functions.len(),
                error,
            }
        })?;
    }
    let mut links = Vec::with_capacity(2 * groups.len());
    for ((program, targets), prog) in groups.iter().zip(&loaded) {
        let addresses: Vec<u64> = targets.iter().map(|t| t.address).collect();
        let link = match crate::fault::attach_failure(links.len()) {
            Some(injected) => Err(injected),
            None => sys::link_kprobe_multi(prog.as_fd(), &addresses),
        }
        .map_err(|error| KprobeMultiError::Link {
            program,
            count: addresses.len(),
            error,
        })?;
        links.push(link);
    }
    let link_time = started.elapsed() - verified;
    log::info!(
        "kprobe-multi: {} program(s) verified in {:.1} ms, {} functions linked in {:.1} ms",
        loaded.len(),
        verified.as_secs_f64() * 1e3,
        selection.targets.len(),
        link_time.as_secs_f64() * 1e3
    );
    let hooks = HookTable::by_address(
        selection
            .targets
            .iter()
            .map(|t| (t.address, t.hook_name()))
            .collect(),
    );
    // The links hold the programs; their fds stay open only so that /proc/PID/fdinfo (and
    // `bpftool prog show`) attribute the programs and their run statistics to this process.
    Ok(Attached {
        backend: Backend::KprobeMulti,
        hooks,
        skipped: selection.skipped,
        link_time: Some(link_time),
        links: links.into_iter().chain(loaded).collect(),
    })
}

/// Where the skb is for a function the kprobe backend would give to `program`: what
/// [`contract::KPROBE_MULTI`] finds for the function in [`contract::FUNC_TABLE_MAP`].
fn func_args(program: &str) -> u32 {
    use contract::func_args_entry as entry;
    match program {
        contract::KPROBE_SKB_0_REASON_1 => entry(0, Some(1), false),
        contract::KPROBE_SKB_1_REASON_2 => entry(1, Some(2), false),
        contract::KPROBE_SKB_0_FREE => entry(0, None, true),
        // Their own programs, which find the packet by the stack or the running BPF program.
        contract::KPROBE_NON_SKB | contract::KPROBE_BPF_HELPER => 0,
        p => {
            let position = contract::KPROBE_PROGRAMS.iter().position(|&k| k == p);
            entry(position.expect("a kprobe program") as u8, None, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_error(errno: i32, log: &str) -> KprobeMultiError {
        KprobeMultiError::Load(ProgLoadError {
            error: std::io::Error::from_raw_os_error(errno),
            log: log.into(),
            message: String::new(),
        })
    }

    #[test]
    fn a_verifier_rejection_is_not_a_missing_feature() {
        assert!(load_error(libc::EINVAL, "").unsupported());
        assert!(load_error(libc::EOPNOTSUPP, "").unsupported());
        assert!(!load_error(libc::EINVAL, "0: (b7) r0 = 0\ninvalid mem access\n").unsupported());
        assert!(!load_error(libc::EACCES, "").unsupported());
        let link = |errno| KprobeMultiError::Link {
            program: "p",
            count: 1,
            error: std::io::Error::from_raw_os_error(errno),
        };
        assert!(link(libc::EOPNOTSUPP).unsupported());
        assert!(!link(libc::EBUSY).unsupported());
    }
}
