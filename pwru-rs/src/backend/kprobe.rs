//! kprobe backend: one kprobe per function, attached and detached by a pool of threads.
//!
//! Each probe is a perf event of the kprobe PMU with the program attached (as libbpf does);
//! closing the perf event's fd removes the probe. aya 0.14 attaches one probe at a time through
//! `&mut` on the program, so the perf events are made here, from several threads at once.

use std::{
    collections::HashMap,
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{atomic::AtomicUsize, atomic::Ordering, Mutex},
};

use aya::{programs::KProbe, Ebpf};

use super::{Attached, Backend, ProbeTarget, Selection};
use crate::{
    events::HookTable,
    loader::{self, ProgramError},
};

#[derive(Debug, thiserror::Error)]
pub enum KprobeError {
    #[error("this kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe/type): CONFIG_KPROBES is off")]
    NoKprobes,
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error("no function could be probed ({skipped} refused by the kernel); first error: {first}")]
    NothingAttached { skipped: usize, first: String },
}

const KPROBE_PMU_TYPE: &str = "/sys/bus/event_source/devices/kprobe/type";

/// The kprobe PMU's type, if the kernel has kprobes.
pub fn pmu_type() -> Option<u32> {
    std::fs::read_to_string(KPROBE_PMU_TYPE)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Loads the programs `selection` needs, then attaches one kprobe per target, `batch` at a time.
pub fn attach(
    ebpf: &mut Ebpf,
    selection: Selection,
    batch: usize,
    progress: bool,
) -> Result<Attached, KprobeError> {
    let pmu = pmu_type().ok_or(KprobeError::NoKprobes)?;
    // One fd per probe: thousands, past the usual soft limit of 1024.
    raise_open_files_limit(selection.targets.len() as u64 + 256);
    let mut prog_fds = HashMap::new();
    for target in &selection.targets {
        if !prog_fds.contains_key(target.program) {
            prog_fds.insert(target.program, load_program(ebpf, target.program)?);
        }
    }

    let bar = crate::progress::bar(
        progress,
        selection.targets.len() as u64,
        "attaching kprobes",
    );
    let next = AtomicUsize::new(0);
    let attached = Mutex::new(Vec::with_capacity(selection.targets.len()));
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..batch.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(target) = selection.targets.get(i) else {
                    break;
                };
                let opened = match crate::fault::attach_failure(i) {
                    Some(injected) => Err(injected),
                    None => open_kprobe(pmu, target, prog_fds[target.program], false),
                };
                match opened {
                    Ok(fd) => attached.lock().unwrap().push((target, fd)),
                    Err(e) => {
                        // The kernel creates perf kprobe events for CAP_SYS_ADMIN only.
                        let hint = if e.raw_os_error() == Some(libc::EACCES) {
                            " (plain kprobes need CAP_SYS_ADMIN: run as root; kprobe-multi, where the kernel has it, needs only CAP_BPF, CAP_PERFMON and CAP_SYSLOG)"
                        } else {
                            ""
                        };
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("{}: {e}{hint}", target.name))
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();

    let attached = attached.into_inner().unwrap();
    let failed = failed.into_inner().unwrap();
    for f in &failed {
        log::debug!("kprobe not attached: {f}");
    }
    if attached.is_empty() {
        return Err(KprobeError::NothingAttached {
            skipped: selection.skipped + failed.len(),
            first: failed.first().cloned().unwrap_or_default(),
        });
    }
    let hooks = HookTable::by_address(
        attached
            .iter()
            .map(|(t, _)| (t.address, t.hook_name()))
            .collect(),
    );
    let links = attached.into_iter().map(|(_, fd)| fd).collect();
    Ok(Attached {
        backend: Backend::Kprobe,
        hooks,
        skipped: selection.skipped + failed.len(),
        link_time: None,
        links,
    })
}

/// Raises RLIMIT_NOFILE's soft limit towards `wanted` (up to the hard limit).
fn raise_open_files_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with valid structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= wanted {
            return;
        }
        limit.rlim_cur = wanted.min(limit.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur < wanted {
            log::warn!(
                "can only open {} files; some kprobes may fail with EMFILE",
                limit.rlim_cur
            );
        }
    }
}

/// Loads (verifies) a program the first time it is needed; returns its fd.
pub(super) fn load_program(ebpf: &mut Ebpf, name: &'static str) -> Result<i32, ProgramError> {
    loader::program_fd(ebpf, name, |program| {
        <&mut KProbe>::try_from(program)?.load()
    })
}

/// `struct perf_event_attr` up to `config2` (PERF_ATTR_SIZE_VER1); the rest stays zero.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    /// kprobe PMU: pointer to the function name.
    config1: u64,
    /// kprobe PMU: offset into the function.
    config2: u64,
}

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// The kprobe PMU's `config` bit that makes a probe a return probe (its `format/retprobe`,
/// `config:0` on every kernel so far).
fn retprobe_config() -> u64 {
    std::fs::read_to_string("/sys/bus/event_source/devices/kprobe/format/retprobe")
        .ok()
        .and_then(|f| f.trim().strip_prefix("config:")?.parse::<u32>().ok())
        .map_or(1, |bit| 1 << bit)
}

/// A kprobe at `target`'s entry (or, with `retprobe`, its return) running `prog_fd`; closing
/// the fd removes it.
pub(super) fn open_kprobe(
    pmu: u32,
    target: &ProbeTarget,
    prog_fd: i32,
    retprobe: bool,
) -> std::io::Result<OwnedFd> {
    let name = CString::new(target.name.as_str()).map_err(std::io::Error::other)?;
    let attr = PerfEventAttr {
        type_: pmu,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: if retprobe { retprobe_config() } else { 0 },
        config1: name.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: valid attr; pid -1 / cpu 0 is how kprobe perf events are opened (system-wide).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1,
            0,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    for (request, arg) in [
        (PERF_EVENT_IOC_SET_BPF, prog_fd as libc::c_ulong),
        (PERF_EVENT_IOC_ENABLE, 0),
    ] {
        // SAFETY: ioctls on our perf event fd.
        if unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(fd)
}
