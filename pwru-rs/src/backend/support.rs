//! Which backends this kernel supports, for `--version`: each is tried for real with a program
//! that does nothing, attached for an instant, rather than guessed from the kernel version.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use aya_obj::generated::{bpf_attach_type, bpf_insn, bpf_prog_type};

use super::{kprobe, Backend};
use crate::{
    btf::RdonlyCast,
    ksym::Kallsyms,
    loader::sys::{self, ProgLoad},
};

/// A function and a tracepoint every kernel pwru-rs can trace has; the probes attach there.
const PROBE_FUNCTION: &str = "consume_skb";
const PROBE_TRACEPOINT: &str = "consume_skb";

/// Each backend with `Ok` when this kernel takes it, else why not. Needs root.
pub fn probe() -> Vec<(Backend, Result<(), String>)> {
    vec![
        (Backend::KprobeMulti, kprobe_multi()),
        (Backend::Kprobe, kprobe()),
        (Backend::Tracepoint, tracepoint()),
    ]
}

/// `r0 = 0; exit`.
fn return_zero() -> [bpf_insn; 2] {
    let insn = |code: u8| bpf_insn {
        code,
        _bitfield_align_1: [],
        _bitfield_1: bpf_insn::new_bitfield_1(0, 0),
        off: 0,
        imm: 0,
    };
    // BPF_ALU64 | BPF_MOV | BPF_K, then BPF_JMP | BPF_EXIT.
    [insn(0xb7), insn(0x95)]
}

/// Whether programs of the types pwru-rs loads may call the kfunc `bpf_rdonly_cast` and load
/// through its result (the verifier decides per program type and kernel): a program that casts 0
/// and reads a byte there is loaded as a kprobe and as a raw tracepoint.
pub fn rdonly_cast(cast: RdonlyCast) -> bool {
    let insn = |code: u8, dst: u8, src: u8, imm: u32| bpf_insn {
        code,
        _bitfield_align_1: [],
        _bitfield_1: bpf_insn::new_bitfield_1(dst, src),
        off: 0,
        imm: imm as i32,
    };
    let insns = [
        insn(0xb7, 1, 0, 0),              // r1 = 0
        insn(0xb7, 2, 0, cast.struct_id), // r2 = struct_id
        insn(0x85, 0, 2, cast.func_id),   // call bpf_rdonly_cast (BPF_PSEUDO_KFUNC_CALL)
        insn(0x71, 0, 0, 0),              // r0 = *(u8 *)(r0 + 0)
        insn(0xb7, 0, 0, 0),              // r0 = 0
        insn(0x95, 0, 0, 0),              // exit
    ];
    [
        bpf_prog_type::BPF_PROG_TYPE_KPROBE,
        bpf_prog_type::BPF_PROG_TYPE_RAW_TRACEPOINT,
    ]
    .into_iter()
    .all(|prog_type| {
        let loaded = sys::prog_load(&ProgLoad {
            name: "pwru_rs_probe",
            prog_type,
            expected_attach_type: None,
            attach_btf_id: 0,
            attach_prog_fd: None,
            insns: &insns,
            btf: None,
        });
        if let Err(e) = &loaded {
            log::debug!("direct reads: {prog_type:?}: {e}");
        }
        loaded.is_ok()
    })
}

fn load(
    prog_type: bpf_prog_type,
    expected_attach_type: Option<bpf_attach_type>,
) -> Result<OwnedFd, String> {
    load_with_target(prog_type, expected_attach_type, 0).map_err(|e| e.to_string())
}

fn load_with_target(
    prog_type: bpf_prog_type,
    expected_attach_type: Option<bpf_attach_type>,
    attach_btf_id: u32,
) -> std::io::Result<OwnedFd> {
    let insns = return_zero();
    sys::prog_load(&ProgLoad {
        name: "pwru_rs_probe",
        prog_type,
        expected_attach_type,
        attach_btf_id,
        attach_prog_fd: None,
        insns: &insns,
        btf: None,
    })
    .map_err(|e| e.error)
}

/// Whether this kernel runs BPF trampolines (fentry/fexit), tried on vmlinux function
/// `btf_id`: loaded and attached for an instant.
pub fn trampolines(btf_id: u32) -> std::io::Result<()> {
    let prog = load_with_target(
        bpf_prog_type::BPF_PROG_TYPE_TRACING,
        Some(bpf_attach_type::BPF_TRACE_FENTRY),
        btf_id,
    )?;
    sys::tracing_attach(prog.as_fd()).map(drop)
}

fn kprobe() -> Result<(), String> {
    kprobe::pmu_type()
        .map(drop)
        .ok_or_else(|| "no kprobe PMU (CONFIG_KPROBES is off)".into())
}

/// Loads a kprobe-multi program and links it to one function: the attach type alone is not
/// enough, a kernel without fprobe knows it and refuses the link.
fn kprobe_multi() -> Result<(), String> {
    let prog = load(
        bpf_prog_type::BPF_PROG_TYPE_KPROBE,
        Some(bpf_attach_type::BPF_TRACE_KPROBE_MULTI),
    )
    .map_err(|e| format!("kprobe-multi programs refused: {e}"))?;
    let kallsyms = std::fs::read_to_string("/proc/kallsyms")
        .map_err(|e| format!("cannot read /proc/kallsyms: {e}"))?;
    let address = Kallsyms::parse(&kallsyms, &[PROBE_FUNCTION].into())
        .address(PROBE_FUNCTION)
        .filter(|&a| a != 0)
        .ok_or_else(|| format!("no address for {PROBE_FUNCTION} in /proc/kallsyms"))?;
    sys::link_kprobe_multi(prog.as_fd(), &[address])
        .map(drop)
        .map_err(|e| format!("kprobe-multi link refused: {e}"))
}

/// Raw tracepoints with a BPF cookie, which the tracepoint backend needs (Linux 6.10+).
fn tracepoint() -> Result<(), String> {
    let prog = load(bpf_prog_type::BPF_PROG_TYPE_RAW_TRACEPOINT, None)
        .map_err(|e| format!("raw tracepoint programs refused: {e}"))?;
    sys::raw_tracepoint_open(PROBE_TRACEPOINT, prog.as_raw_fd(), 1)
        .map(drop)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::E2BIG) => "no BPF cookies on raw tracepoints (needs Linux 6.10+)".into(),
            _ => format!("raw tracepoint {PROBE_TRACEPOINT} refused: {e}"),
        })
}
