//! `--output-netfilter`: fentry and fexit on `nft_do_chain`, next to the backend's hooks.
//! nftables runs each base chain (iptables-nft's `filter INPUT` is one) through one call of
//! it, whose return value is the chain's verdict; the kernel side reads the chain's table,
//! name, family, hook and priority from its argument. The entry is traced like any hook and
//! its record kept; the exit sends that record again with the verdict (the chain may have freed
//! the skb by then), and a drop inside the chain names it. Nothing is added to the ruleset.
//! Needs BPF trampolines, and nf_tables' code present at start (built in, or loaded).

use std::{
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_prog_type};
use pwru_rs_common::{contract, Offsets};

use super::Attached;
use crate::{
    btf::{BtfError, KernelBtf},
    loader::{
        relocate::{relocated_programs, RelocateError},
        sys::{self, ProgLoad, ProgLoadError},
    },
};

pub const FLAG: &str = "--output-netfilter";
const FUNCTION: &str = "nft_do_chain";
const MODULE: &str = "nf_tables";

#[derive(Debug, thiserror::Error)]
pub enum NetfilterError {
    #[error("{FLAG}: nf_tables is not loaded (no {FUNCTION} in the kernel's BTF): no nftables or iptables-nft rule can see a packet; load the ruleset before starting pwru-rs")]
    NotLoaded,
    #[error("{FLAG}: reading the nf_tables module's BTF: {0}")]
    ModuleBtf(BtfError),
    #[error("{FLAG}: the kernel's BTF lacks a field pwru-rs reads: {0}")]
    Offsets(BtfError),
    #[error("{FLAG}: the nf_tables module's BTF object: {0}")]
    ModuleBtfObject(std::io::Error),
    #[error("{0}")]
    Relocate(#[from] RelocateError),
    #[error("{FLAG}: {0}")]
    Load(ProgLoadError),
    #[error("{FLAG}: fexit on {FUNCTION} refused: {0}")]
    Attach(std::io::Error),
}

/// Where `nft_do_chain` is: its BTF id, in vmlinux's BTF or the nf_tables module's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub btf_id: u32,
    pub in_module: bool,
}

/// Finds `nft_do_chain` and fills in the offsets its program reads; the module's BTF is read
/// on top of `vmlinux` when nf_tables is a module.
pub fn resolve(
    btf: &KernelBtf,
    vmlinux: &Path,
    btf_dir: &Path,
    offsets: Offsets,
) -> Result<(Target, Offsets), NetfilterError> {
    if let Some((id, _)) = btf.function(FUNCTION).filter(|(id, _)| id.obj == 0) {
        let offsets = btf
            .with_netfilter_offsets(offsets)
            .map_err(NetfilterError::Offsets)?;
        let target = Target {
            btf_id: id.id,
            in_module: false,
        };
        return Ok((target, offsets));
    }
    let module = btf_dir.join(MODULE);
    if !module.exists() {
        return Err(NetfilterError::NotLoaded);
    }
    let with_module =
        KernelBtf::from_files(vmlinux, &[module]).map_err(NetfilterError::ModuleBtf)?;
    let (id, _) = with_module
        .function(FUNCTION)
        .filter(|(id, _)| id.obj == 1)
        .ok_or(NetfilterError::NotLoaded)?;
    let offsets = with_module
        .with_netfilter_offsets(offsets)
        .map_err(NetfilterError::Offsets)?;
    let target = Target {
        btf_id: id.id,
        in_module: true,
    };
    Ok((target, offsets))
}

/// Loads and attaches the fexit program; its link (and the program, for its run statistics)
/// join `attached`'s.
pub fn attach(
    ebpf: &Ebpf,
    object: &[u8],
    target: Target,
    attached: &mut Attached,
) -> Result<(), NetfilterError> {
    let programs = [
        // The exit first: an entry seen without its exit would stay kept (until LRU-evicted).
        (
            contract::FEXIT_NFT_DO_CHAIN,
            bpf_attach_type::BPF_TRACE_FEXIT,
        ),
        (
            contract::FENTRY_NFT_DO_CHAIN,
            bpf_attach_type::BPF_TRACE_FENTRY,
        ),
    ];
    let instructions = relocated_programs(ebpf, object, &programs.map(|(name, _)| name))?;
    let module_btf: Option<OwnedFd> = if target.in_module {
        Some(
            sys::module_btf_fd(MODULE)
                .map_err(NetfilterError::ModuleBtfObject)?
                // Unloaded since its BTF was read.
                .ok_or(NetfilterError::NotLoaded)?,
        )
    } else {
        None
    };
    for (name, attach_type) in programs {
        let prog = sys::prog_load(&ProgLoad {
            name,
            prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
            expected_attach_type: Some(attach_type),
            attach_btf_id: target.btf_id,
            attach_prog_fd: module_btf.as_ref().map(|fd| fd.as_fd()),
            insns: instructions.insns(name),
            btf: instructions.btf(name),
        })
        .map_err(NetfilterError::Load)?;
        let link = sys::tracing_attach(prog.as_fd()).map_err(NetfilterError::Attach)?;
        // The program's fd kept too: its run statistics (bpf_stats) show in pwru-rs's fdinfo.
        attached.links.extend([link, prog]);
    }
    log::info!(
        "{FLAG}: fentry and fexit on {FUNCTION}{}",
        if target.in_module { " [nf_tables]" } else { "" }
    );
    Ok(())
}
