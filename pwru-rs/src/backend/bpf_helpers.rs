//! `--filter-track-bpf-helpers`: the kernel functions that the traced tc and XDP programs call —
//! BPF helpers (`bpf_skb_store_bytes`, `bpf_redirect`), and the map operations helper calls
//! became when the verifier rewrote them (`htab_map_update_elem`, `__htab_map_lookup_elem`) —
//! found in the instructions the kernel runs (after the verifier's rewrites), not by
//! disassembling JITed code. They are probed with their own program, which traces them for the
//! packet of the traced program running on that CPU (the fentry/fexit pair notes it). A map
//! lookup the verifier inlined (array maps) makes no call and shows nothing.

use std::{collections::HashSet, os::fd::AsFd};

use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_prog_type};
use pwru_rs_common::contract;

use super::{bpfprog::ProgramKind, Attached};
use crate::{
    btf::KernelBtf,
    ksym,
    loader::{
        relocate::relocated_programs,
        sys::{self, ProgLoad},
    },
};

pub const FLAG: &str = "--filter-track-bpf-helpers";
pub const MAP_FLAG: &str = "--output-bpfmap";

/// `BPF_JMP | BPF_CALL`.
const CALL: u8 = 0x85;
/// `src_reg` of a call: a helper (0) or a kfunc (2); 1 is a call inside the program.
const PSEUDO_CALL: u8 = 1;
/// The symbol helper calls are relative to.
const CALL_BASE: &str = "__bpf_call_base";

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error(
        "{0} needs --filter-trace-tc or --filter-trace-xdp: it traces what those programs call"
    )]
    NoPrograms(&'static str),
    #[error("{FLAG}: cannot read the loaded BPF programs: {0}")]
    List(std::io::Error),
    #[error("{FLAG}: the kernel hides the addresses BPF programs call (kernel.kptr_restrict): cannot tell which helpers they use")]
    Hidden,
}

/// The calls the loaded programs of `kinds` make, as offsets from `__bpf_call_base`, each once,
/// sorted. Programs without BTF are left out, as `--filter-trace-tc` leaves them.
pub fn calls(kinds: &[ProgramKind]) -> Result<Vec<i32>, HelperError> {
    if kinds.is_empty() {
        return Err(HelperError::NoPrograms(FLAG));
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

/// Where `__bpf_call_base` is, by kallsyms' text (`None` when addresses are hidden).
pub fn call_base(kallsyms: &str) -> Option<u64> {
    ksym::function_symbols(kallsyms)
        .find(|s| s.name == CALL_BASE && s.module.is_none())
        .map(|s| s.address)
        .filter(|&a| a != 0)
}

/// The offsets of `calls` that are not calls of `ops`.
pub fn without_map_ops(calls: &[i32], ops: &[MapOp], kallsyms: &str) -> Vec<i32> {
    let Some(base) = call_base(kallsyms) else {
        return calls.to_vec();
    };
    calls
        .iter()
        .copied()
        .filter(|&c| {
            let at = base.wrapping_add_signed(i64::from(c));
            !ops.iter().any(|op| op.address == at)
        })
        .collect()
}

/// The functions at `__bpf_call_base` + each of `calls`, by kallsyms' text: (name, address).
/// An offset that lands on no function start (a tail call, which the kernel shows as a call to
/// helper 12) names nothing.
pub fn resolve(calls: &[i32], kallsyms: &str) -> Vec<(String, u64)> {
    let Some(base) = call_base(kallsyms) else {
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

/// What the verifier inlines a hash map's lookup to (`htab_map_gen_lookup`): a call of this,
/// which returns the map's element (a `void *`), then the value's offset in it added.
const HTAB_LOOKUP_ELEM: &str = "__htab_map_lookup_elem";

/// A map operation the traced programs call, for `--output-bpfmap`: fexit on it shows the map,
/// the key and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOp {
    pub name: String,
    pub address: u64,
    /// Its vmlinux BTF id (the fexit's target).
    pub btf_id: u32,
    /// The fexit program for its operation (`contract::FEXIT_BPF_MAP_*`).
    pub program: &'static str,
}

/// The fexit program for `name`, by what its name says it does and its number of parameters
/// (`map_lookup_elem(map, key)`, `map_update_elem(map, key, value, flags)`,
/// `map_delete_elem(map, key)`): `None` for other functions.
pub fn map_op_program(name: &str, params: usize) -> Option<&'static str> {
    match (name, params) {
        (HTAB_LOOKUP_ELEM, 2) => Some(contract::FEXIT_BPF_MAP_LOOKUP_ELEM),
        (n, 2) if n.ends_with("_lookup_elem") => Some(contract::FEXIT_BPF_MAP_LOOKUP),
        (n, 4) if n.ends_with("_update_elem") => Some(contract::FEXIT_BPF_MAP_UPDATE),
        (n, 2) if n.ends_with("_delete_elem") => Some(contract::FEXIT_BPF_MAP_DELETE),
        _ => None,
    }
}

/// Of `functions` (the resolved calls), the map operations with a vmlinux BTF function
/// (module maps' operations are left to the helpers' probes).
pub fn map_ops(functions: &[(String, u64)], btf: &KernelBtf) -> Vec<MapOp> {
    functions
        .iter()
        .filter_map(|(name, address)| {
            let (id, params) = btf.function(name)?;
            let program = map_op_program(name, params)?;
            (id.obj == 0).then(|| MapOp {
                name: name.clone(),
                address: *address,
                btf_id: id.id,
                program,
            })
        })
        .collect()
}

/// Loads and attaches the fexit program of each of `ops` (a load each: the kernel fixes a
/// tracing program's target at load); the links join `attached`'s and the functions its hook
/// table. A function the kernel refuses is said and left out; a verifier rejection is an error.
pub fn attach_map_ops(
    ebpf: &Ebpf,
    object: &[u8],
    ops: &[MapOp],
    attached: &mut Attached,
) -> anyhow::Result<Vec<String>> {
    let programs = [
        contract::FEXIT_BPF_MAP_LOOKUP,
        contract::FEXIT_BPF_MAP_LOOKUP_ELEM,
        contract::FEXIT_BPF_MAP_UPDATE,
        contract::FEXIT_BPF_MAP_DELETE,
    ];
    let instructions = relocated_programs(ebpf, object, &programs)?;
    note_own_maps(ebpf)?;
    let mut traced = Vec::new();
    for op in ops {
        let prog = match sys::prog_load(&ProgLoad {
            name: op.program,
            prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
            expected_attach_type: Some(bpf_attach_type::BPF_TRACE_FEXIT),
            attach_btf_id: op.btf_id,
            attach_prog_fd: None,
            insns: instructions.insns(op.program),
            btf: instructions.btf(op.program),
        }) {
            Ok(prog) => prog,
            Err(e) if e.verifier_rejected() => {
                return Err(anyhow::Error::new(e).context(format!("{MAP_FLAG}: {}", op.name)))
            }
            Err(e) => {
                log::warn!("{MAP_FLAG}: {} not traced: {e}", op.name);
                continue;
            }
        };
        match sys::tracing_attach(prog.as_fd()) {
            Ok(link) => {
                attached.links.extend([link, prog]);
                traced.push(op.name.clone());
            }
            Err(e) => log::warn!("{MAP_FLAG}: {} not traced: {e}", op.name),
        }
    }
    attached.hooks.add_addresses(
        ops.iter()
            .filter(|op| traced.contains(&op.name))
            .map(|op| (op.address, op.name.clone())),
    );
    Ok(traced)
}

/// Writes the ids of pwru-rs's maps where the map programs look (`contract::OWN_MAPS_MAP`):
/// its own programs use hash maps too, sometimes inside a traced program, and those accesses
/// are not the dataplane's.
fn note_own_maps(ebpf: &Ebpf) -> anyhow::Result<()> {
    use crate::loader::relocate::map_fd;
    let own = ebpf
        .map(contract::OWN_MAPS_MAP)
        .map(map_fd)
        .ok_or_else(|| anyhow::anyhow!("the eBPF object has no map {}", contract::OWN_MAPS_MAP))?;
    let ids: Vec<u32> = ebpf
        .maps()
        .filter_map(|(_, map)| sys::map_id(map_fd(map)).ok())
        .collect();
    if ids.len() > contract::MAX_OWN_MAPS as usize {
        log::warn!(
            "{MAP_FLAG}: {} maps of pwru-rs's, {} told apart from the dataplane's",
            ids.len(),
            contract::MAX_OWN_MAPS
        );
    }
    for (i, id) in ids.iter().take(contract::MAX_OWN_MAPS as usize).enumerate() {
        sys::map_update(own, &(i as u32).to_ne_bytes(), &id.to_ne_bytes())?;
    }
    Ok(())
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
    fn map_operations_by_name_and_parameters() {
        use contract::*;
        for (name, params, program) in [
            ("htab_map_update_elem", 4, Some(FEXIT_BPF_MAP_UPDATE)),
            ("htab_map_delete_elem", 2, Some(FEXIT_BPF_MAP_DELETE)),
            ("htab_percpu_map_lookup_elem", 2, Some(FEXIT_BPF_MAP_LOOKUP)),
            // The inlined hash lookup's call returns the element, not the value.
            ("__htab_map_lookup_elem", 2, Some(FEXIT_BPF_MAP_LOOKUP_ELEM)),
            ("htab_map_update_elem", 2, None),
            ("bpf_skb_load_bytes", 4, None),
            ("sock_map_delete_elem_sys", 2, None),
        ] {
            assert_eq!(map_op_program(name, params), program, "{name}");
        }
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
