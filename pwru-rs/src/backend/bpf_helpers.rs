//! `--filter-track-bpf-helpers`: the kernel functions that the traced tc and XDP programs call —
//! BPF helpers (`bpf_skb_store_bytes`, `bpf_redirect`), and the map operations helper calls
//! became when the verifier rewrote them (`htab_map_update_elem`, `__htab_map_lookup_elem`) —
//! found in the instructions the kernel runs (after the verifier's rewrites), not by
//! disassembling JITed code. They are probed with their own program, which traces them for the
//! packet of the traced program running on that CPU (the fentry/fexit pair notes it). A map
//! lookup the verifier inlined (array maps) makes no call and shows nothing.

use std::{collections::HashSet, os::fd::AsFd};

use super::bpfprog::ProgramKind;
use crate::{ksym, loader::sys};

pub const FLAG: &str = "--filter-track-bpf-helpers";

/// `BPF_JMP | BPF_CALL`.
const CALL: u8 = 0x85;
/// `src_reg` of a call: a helper (0) or a kfunc (2); 1 is a call inside the program.
const PSEUDO_CALL: u8 = 1;
/// The symbol helper calls are relative to.
const CALL_BASE: &str = "__bpf_call_base";

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("{FLAG} needs --filter-trace-tc or --filter-trace-xdp: it traces the helpers those programs call")]
    NoPrograms,
    #[error("{FLAG}: cannot read the loaded BPF programs: {0}")]
    List(std::io::Error),
    #[error("{FLAG}: the kernel hides the addresses BPF programs call (kernel.kptr_restrict): cannot tell which helpers they use")]
    Hidden,
}

/// The calls the loaded programs of `kinds` make, as offsets from `__bpf_call_base`, each once,
/// sorted. Programs without BTF are left out, as `--filter-trace-tc` leaves them.
pub fn calls(kinds: &[ProgramKind]) -> Result<Vec<i32>, HelperError> {
    if kinds.is_empty() {
        return Err(HelperError::NoPrograms);
    }
    let mut offsets = HashSet::new();
    let mut hidden = false;
    for &kind in kinds {
        for program in sys::loaded_programs(kind.types()).map_err(HelperError::List)? {
            if program.entry_type_id.is_none() {
                continue;
            }
            let insns = match sys::xlated_insns(program.fd.as_fd()) {
                Ok(insns) => insns,
                // Unloaded meanwhile.
                Err(e) => {
                    log::debug!("{FLAG}: program {}: {e}", program.id);
                    continue;
                }
            };
            for (offset, zero) in call_offsets(&insns) {
                hidden |= zero;
                offsets.extend(offset);
            }
        }
    }
    if offsets.is_empty() && hidden {
        return Err(HelperError::Hidden);
    }
    let mut offsets: Vec<i32> = offsets.into_iter().collect();
    offsets.sort_unstable();
    Ok(offsets)
}

/// Each call to a kernel function in `insns`: its offset from `__bpf_call_base`, or `None` and
/// true where the kernel zeroed it.
fn call_offsets(insns: &[u64]) -> impl Iterator<Item = (Option<i32>, bool)> + '_ {
    insns.iter().filter_map(|&raw| {
        let bytes = raw.to_le_bytes();
        let src_reg = bytes[1] >> 4;
        if bytes[0] != CALL || src_reg == PSEUDO_CALL {
            return None;
        }
        let imm = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        Some(if imm == 0 {
            (None, true)
        } else {
            (Some(imm), false)
        })
    })
}

/// The functions at `__bpf_call_base` + each of `calls`, by kallsyms' text: (name, address).
/// An offset that lands on no function start (a tail call, which the kernel shows as a call to
/// helper 12) names nothing.
pub fn resolve(calls: &[i32], kallsyms: &str) -> Vec<(String, u64)> {
    let Some(base) = ksym::function_symbols(kallsyms)
        .find(|s| s.name == CALL_BASE && s.module.is_none())
        .map(|s| s.address)
        .filter(|&a| a != 0)
    else {
        log::warn!("{FLAG}: no {CALL_BASE} in /proc/kallsyms: no helper can be named");
        return Vec::new();
    };
    let wanted: HashSet<u64> = calls
        .iter()
        .map(|&c| base.wrapping_add_signed(i64::from(c)))
        .collect();
    let mut found: Vec<(String, u64)> = Vec::new();
    let mut seen = HashSet::new();
    for symbol in ksym::function_symbols(kallsyms) {
        if wanted.contains(&symbol.address) && seen.insert(symbol.address) {
            found.push((symbol.name.to_owned(), symbol.address));
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u8, src_reg: u8, imm: i32) -> u64 {
        let mut b = [0u8; 8];
        b[0] = code;
        b[1] = src_reg << 4;
        b[4..].copy_from_slice(&imm.to_le_bytes());
        u64::from_le_bytes(b)
    }

    #[test]
    fn helper_and_kfunc_calls_are_found_and_local_calls_are_not() {
        let insns = [
            insn(0xb7, 0, 5),           // r0 = 5
            insn(CALL, 0, -4096),       // a helper
            insn(CALL, 2, 64),          // a kfunc
            insn(CALL, PSEUDO_CALL, 3), // a call inside the program
            insn(CALL, 0, 0),           // a helper whose address the kernel hid
            insn(0x95, 0, 0),           // exit
        ];
        let found: Vec<_> = call_offsets(&insns).collect();
        assert_eq!(
            found,
            [(Some(-4096), false), (Some(64), false), (None, true)]
        );
    }

    #[test]
    fn offsets_resolve_to_function_starts() {
        let kallsyms = "\
ffffffff81200000 T __bpf_call_base
ffffffff811ff000 T bpf_skb_store_bytes
ffffffff81200040 t htab_map_update_elem
ffffffff81200050 d some_data
ffffffffc0001000 t veth_xmit\t[veth]
";
        // 12: a tail call (helper 12), inside __bpf_call_base; 0x50: data, not a function.
        let found = resolve(&[-4096, 64, 12, 0x50], kallsyms);
        assert_eq!(
            found,
            [
                ("bpf_skb_store_bytes".to_owned(), 0xffff_ffff_811f_f000),
                ("htab_map_update_elem".to_owned(), 0xffff_ffff_8120_0040),
            ]
        );
        assert!(resolve(&[64], "0000000000000000 T __bpf_call_base\n").is_empty());
    }
}
