//! Loading the embedded kernel programs: aya for what it can do ([`load`]: the object, its maps
//! and read-only globals), and by hand what aya 0.14 cannot ([`sys`]: program loads with other
//! attach types, links, raw tracepoints with cookies, test runs — all on aya-obj's generated
//! `bpf_attr`; [`relocate`]: a program's instructions linked against aya's maps). [`verifier`]
//! turns a rejection into one line, wherever it came from.

pub mod relocate;
pub mod sys;
pub mod verifier;

use aya::{Ebpf, EbpfLoader};
use pwru_rs_common::{contract, Config, Offsets};

/// The kernel programs, built by build.rs with Debian's rustc + bpf-linker (empty when built with
/// `PWRU_RS_SKIP_EBPF_BUILD`).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pwru-rs.bpf.o"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("this pwru-rs was built with PWRU_RS_SKIP_EBPF_BUILD set: it has no kernel programs (rebuild without it)")]
    NoPrograms,
    #[error("loading the eBPF object failed: {0}")]
    Object(#[from] aya::EbpfError),
}

/// A value shared with the kernel programs as the bytes they see (aya keeps its own such helper
/// crate-private).
pub fn bytes_of<T: aya::Pod>(value: &T) -> &[u8] {
    // SAFETY: a Pod type has no padding: all its bytes are initialised.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The embedded kernel object.
pub fn embedded_object() -> Result<&'static [u8], LoadError> {
    if EBPF_OBJECT.is_empty() {
        return Err(LoadError::NoPrograms);
    }
    Ok(EBPF_OBJECT)
}

/// Loads `object` (the embedded one, patched) with this kernel's offsets and the filters, and
/// the maps sized as `map_sizes` says (name, max entries).
pub fn load(
    object: &[u8],
    offsets: &Offsets,
    config: &Config,
    map_sizes: &[(&str, u32)],
) -> Result<Ebpf, LoadError> {
    raise_memlock_limit();
    let mut loader = EbpfLoader::new();
    // The programs carry no CO-RE relocations (offsets come in as globals), so aya need not
    // parse the kernel's BTF a second time.
    loader
        .btf(None)
        .override_global(contract::OFFSETS_GLOBAL, offsets, true)
        .override_global(contract::CONFIG_GLOBAL, config, true);
    for &(map, entries) in map_sizes {
        loader.map_max_entries(map, entries);
    }
    Ok(loader.load(object)?)
}

/// A program of the eBPF object that could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("the eBPF object has no program {0}")]
    Missing(&'static str),
    /// What the kernel said, verifier verdict included.
    #[error("{0}")]
    Load(String),
}

/// Loads (verifies) program `name` the first time it is needed and returns its fd.
/// `load` converts it to its type and loads it: aya 0.14 has no type-independent load.
pub fn program_fd(
    ebpf: &mut Ebpf,
    name: &'static str,
    load: impl FnOnce(&mut aya::programs::Program) -> Result<(), aya::programs::ProgramError>,
) -> Result<i32, ProgramError> {
    use std::os::fd::{AsFd, AsRawFd};
    let described = |e| ProgramError::Load(verifier::describe_aya_error(name, &e));
    let program = ebpf.program_mut(name).ok_or(ProgramError::Missing(name))?;
    if program.fd().is_err() {
        load(program).map_err(described)?;
    }
    Ok(program.fd().map_err(described)?.as_fd().as_raw_fd())
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones to the cgroup. Failing to
/// raise it (no CAP_SYS_RESOURCE, e.g. in some sandboxes) is harmless on the latter.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::debug!(
            "setrlimit(RLIMIT_MEMLOCK): {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests;
