//! The kernel's own cost of running BPF on a tracepoint: a program that returns at once
//! (`r0 = 0; exit`), attached to the same raw tracepoints as pwru-rs. What traffic loses with it
//! is the floor any tracer on those hooks pays (the tracepoint's static call, the BPF dispatch's
//! RCU and migration guards), apart from what the tracer's program does.

use std::{
    ffi::CString,
    os::fd::{FromRawFd, OwnedFd, RawFd},
};

use anyhow::Context;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;

/// `mov64 r0, 0` and `exit`.
static PROGRAM: [u64; 2] = [u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]), 0x95];

/// The program, attached to each named raw tracepoint while this lives.
pub struct NoopPrograms {
    _links: Vec<OwnedFd>,
    _program: OwnedFd,
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<OwnedFd> {
    // SAFETY: attr is a zero-filled bpf_attr of 128 bytes, larger than either command reads.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new file descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

impl NoopPrograms {
    pub fn attach<S: AsRef<str>>(tracepoints: &[S]) -> anyhow::Result<Self> {
        anyhow::ensure!(!tracepoints.is_empty(), "no tracepoints to attach to");
        let license = c"GPL";
        let mut attr = [0u64; 16];
        // prog_type, insn_cnt | insns | license
        attr[0] = u64::from(BPF_PROG_TYPE_RAW_TRACEPOINT) | (PROGRAM.len() as u64) << 32;
        attr[1] = PROGRAM.as_ptr() as u64;
        attr[2] = license.as_ptr() as u64;
        let program = bpf(BPF_PROG_LOAD, &mut attr).context("loading the no-op program")?;
        let mut links = Vec::new();
        for name in tracepoints {
            let name = name.as_ref();
            let c_name = CString::new(name)?;
            let mut attr = [0u64; 16];
            // name | prog_fd
            attr[0] = c_name.as_ptr() as u64;
            attr[1] = std::os::fd::AsRawFd::as_raw_fd(&program) as u64;
            links.push(
                bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
                    .with_context(|| format!("attaching the no-op program to {name}"))?,
            );
        }
        Ok(Self {
            _links: links,
            _program: program,
        })
    }
}
