//! kprobe-multi backend: one BPF link per program (skb position), attached to every function's
//! address at once, so thousands of functions attach and detach in a fraction of a second.
//!
//! aya 0.14 can neither load a program with `expected_attach_type = BPF_TRACE_KPROBE_MULTI` nor
//! create such a link. This module does those two steps itself: aya loads the object (creating the
//! maps, the read-only globals included); aya-obj parses the same bytes and relocates the program
//! against aya's map fds; then `BPF_PROG_LOAD` and `BPF_LINK_CREATE` by hand.

use std::{
    collections::{BTreeMap, HashSet},
    ffi::CString,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use aya::{maps::Map, Ebpf};

use super::{Attached, HookNames, Selection};

#[derive(Debug, thiserror::Error)]
pub enum KprobeMultiError {
    #[error("parsing the eBPF object: {0}")]
    Parse(String),
    #[error("relocating {0}")]
    Relocate(String),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("the kernel verifier rejected {program}: {error}: {verdict}")]
    Load {
        program: &'static str,
        error: std::io::Error,
        verdict: String,
    },
    #[error("creating the kprobe-multi link for {program} ({count} functions) failed: {error}")]
    Link {
        program: &'static str,
        count: usize,
        error: std::io::Error,
    },
}

impl KprobeMultiError {
    /// True when the kernel lacks kprobe-multi altogether (as opposed to refusing our program).
    pub fn unsupported(&self) -> bool {
        let code = match self {
            Self::Load { error, .. } | Self::Link { error, .. } => error.raw_os_error(),
            _ => None,
        };
        matches!(
            code,
            Some(libc::EOPNOTSUPP | ENOTSUPP | libc::EINVAL | libc::ENOSYS)
        )
    }
}

/// `ENOTSUPP`, the kernel-internal code some BPF paths return to user space.
const ENOTSUPP: i32 = 524;

const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_TRACE_KPROBE_MULTI: u32 = 42;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

pub fn attach(
    ebpf: &Ebpf,
    object: &[u8],
    selection: &Selection,
) -> Result<Attached, KprobeMultiError> {
    // Group the addresses by program: one link each.
    let mut by_program: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    for t in &selection.targets {
        by_program.entry(t.program).or_default().push(t.address);
    }
    let programs: HashSet<&'static str> = by_program.keys().copied().collect();
    let started = std::time::Instant::now();
    let instructions = relocated_programs(ebpf, object, &programs)?;
    let loaded = by_program
        .keys()
        .map(|program| Ok((*program, load(program, &instructions[program])?)))
        .collect::<Result<Vec<_>, KprobeMultiError>>()?;
    let verified = started.elapsed();
    let mut links = Vec::with_capacity(by_program.len());
    for ((program, prog), addresses) in loaded.iter().zip(by_program.values()) {
        let link = link_create(prog, addresses).map_err(|error| KprobeMultiError::Link {
            program,
            count: addresses.len(),
            error,
        })?;
        links.push(link);
    }
    log::info!(
        "kprobe-multi: {} programs relocated and verified in {:.1} ms, {} functions linked in {:.1} ms",
        loaded.len(),
        verified.as_secs_f64() * 1e3,
        selection.targets.len(),
        (started.elapsed() - verified).as_secs_f64() * 1e3
    );
    let hooks = HookNames::by_address(
        selection
            .targets
            .iter()
            .map(|t| (t.address, t.name.clone()))
            .collect(),
    );
    // The links hold the programs; their fds stay open only so that /proc/PID/fdinfo (and
    // `bpftool prog show`) attribute the programs and their run statistics to this process.
    links.extend(loaded.into_iter().map(|(_, prog)| prog));
    Ok(Attached { hooks, links })
}

/// Instructions of each wanted program with its callees linked in and map references pointing
/// at the maps aya created.
fn relocated_programs(
    ebpf: &Ebpf,
    object: &[u8],
    wanted: &HashSet<&'static str>,
) -> Result<BTreeMap<&'static str, Vec<u8>>, KprobeMultiError> {
    let mut obj =
        aya_obj::Object::parse(object).map_err(|e| KprobeMultiError::Parse(e.to_string()))?;
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    let fds: BTreeMap<&str, RawFd> = ebpf
        .maps()
        .filter_map(|(name, map)| Some((name, map_fd(map)?)))
        .collect();
    // Every map any function references must be given, .rodata included.
    let maps: Vec<(String, RawFd, aya_obj::Map)> = obj
        .maps
        .iter()
        .filter_map(|(name, map)| Some((name.clone(), *fds.get(name.as_str())?, map.clone())))
        .collect();
    obj.relocate_maps(
        maps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)),
        &text_sections,
    )
    .map_err(|e| KprobeMultiError::Relocate(format!("maps: {e}")))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| KprobeMultiError::Relocate(format!("calls: {e}")))?;
    let mut out = BTreeMap::new();
    for &name in wanted {
        let program = obj
            .programs
            .get(name)
            .ok_or(KprobeMultiError::MissingProgram(name))?;
        let function = obj
            .functions
            .get(&program.function_key())
            .ok_or(KprobeMultiError::MissingProgram(name))?;
        let bytes: Vec<u8> = function
            .instructions
            .iter()
            // SAFETY: bpf_insn is a plain 8-byte #[repr(C)] struct.
            .flat_map(|insn| unsafe {
                std::mem::transmute::<aya_obj::generated::bpf_insn, [u8; 8]>(*insn)
            })
            .collect();
        out.insert(name, bytes);
    }
    Ok(out)
}

fn map_fd(map: &Map) -> Option<RawFd> {
    let data = match map {
        Map::Array(m)
        | Map::PerCpuArray(m)
        | Map::RingBuf(m)
        | Map::HashMap(m)
        | Map::PerCpuHashMap(m) => m,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`; the tail stays zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    tail: [u64; 8],
}

fn load(program: &'static str, insns: &[u8]) -> Result<OwnedFd, KprobeMultiError> {
    let license = CString::new("GPL").unwrap();
    let mut name = [0u8; 16];
    // Kernel program names are 15 bytes at most.
    for (dst, src) in name.iter_mut().zip(program.bytes().take(15)) {
        *dst = src;
    }
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_KPROBE,
            insn_cnt: (insns.len() / 8) as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            expected_attach_type: BPF_TRACE_KPROBE_MULTI,
            ..Default::default()
        };
        if let Some(log) = log {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    match attempt(None) {
        Ok(fd) => Ok(fd),
        Err(error) => {
            // Again with the verifier's log, to say why in one line.
            let mut log = vec![0u8; 1 << 20];
            let _ = attempt(Some(&mut log));
            let text =
                String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)])
                    .into_owned();
            log::debug!("verifier log of {program}:\n{text}");
            let verdict = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_owned();
            Err(KprobeMultiError::Load {
                program,
                error,
                verdict,
            })
        }
    }
}

/// `union bpf_attr` for BPF_LINK_CREATE with `kprobe_multi`.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    multi_flags: u32,
    cnt: u32,
    syms: u64,
    addrs: u64,
    cookies: u64,
}

fn link_create(prog: &OwnedFd, addresses: &[u64]) -> std::io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_TRACE_KPROBE_MULTI,
        cnt: addresses.len() as u32,
        addrs: addresses.as_ptr() as u64,
        ..Default::default()
    };
    bpf(BPF_LINK_CREATE, &mut attr)
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a fully initialised bpf_attr prefix of the size we pass.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
