//! Loading the embedded kernel programs with this kernel's offsets and the user's filters.

use aya::{Ebpf, EbpfLoader};
use pwru_rs_common::{Config, Offsets};

/// The kernel programs, built by build.rs with Debian's rustc + bpf-linker.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pwru-rs.bpf.o"));

/// Names shared with `pwru-rs-ebpf`.
pub const EVENTS_MAP: &str = "EVENTS";
pub const LOST_MAP: &str = "LOST";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the eBPF object failed: {0}")]
    Object(#[from] aya::EbpfError),
}

/// Loads `object` (the embedded one, possibly with a pcap filter injected).
pub fn load(
    object: &[u8],
    offsets: &Offsets,
    config: &Config,
    ringbuf_size: u32,
) -> Result<Ebpf, LoadError> {
    raise_memlock_limit();
    let ebpf = EbpfLoader::new()
        // The programs carry no CO-RE relocations (offsets come in as globals), so aya need not
        // parse the kernel's BTF a second time.
        .btf(None)
        .override_global("OFFSETS", offsets, true)
        .override_global("CONFIG", config, true)
        .map_max_entries(EVENTS_MAP, ringbuf_size)
        .load(object)?;
    Ok(ebpf)
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

/// Formats a program load failure as one line, keeping the verifier's verdict (its last line).
pub fn describe_program_error(prog: &str, err: &aya::programs::ProgramError) -> String {
    match err {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            log::debug!("verifier log of {prog}:\n{log}");
            let verdict = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            format!("the kernel verifier rejected {prog}: {io_error}: {verdict}")
        }
        other => format!("loading {prog} failed: {other}"),
    }
}
