//! Patching the eBPF object before aya loads it: every run-time generated piece of kernel code
//! (the pcap filter today; BTF expressions next) goes in through [`patch`].
//!
//! The kernel programs call stubs (`pwru_rs_common::contract::STUBS`), each alone in its own ELF
//! section. aya 0.14 has no hook to change a program's instructions, so the section's bytes are
//! replaced here (object's ELF builder) and the stub symbol's size updated; aya-obj then links
//! the new body into every program that calls it. A stub without an injection keeps its body
//! (the programs then never call it: a load-time constant says so).
//!
//! Each stub section also gets its own load address (`sh_addr`, and the symbol's value with it).
//! aya-obj 0.3 remembers the functions it has linked into a program by address alone, and every
//! text section starts at 0: without distinct addresses a call to one stub can be linked to the
//! other, or to whatever sits at offset 0 of `.text`.
//!
//! Constraints injected code must meet (`crate::asm` guarantees them): no relocations, and no
//! `ld_imm64`, so the stub's old BTF line-info records (kept by aya-obj) never point into the
//! middle of an instruction.

mod fold;

use std::collections::HashMap;

use object::build::elf::{Builder, SectionData, SectionId};
use pwru_rs_common::contract::{self, Stub, STUBS};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("the eBPF object cannot be rewritten: {0}")]
    Elf(#[from] object::build::Error),
    #[error("the eBPF object has no section {0}")]
    MissingSection(&'static str),
    #[error("the eBPF object has no symbol {0}")]
    MissingSymbol(&'static str),
    #[error("{0} is not a stub of the eBPF object")]
    UnknownStub(&'static str),
    #[error("the eBPF object has no map definition {0}")]
    MissingMap(&'static str),
    #[error("the eBPF object's global {symbol} has {object} bytes, not {given}")]
    GlobalSize {
        symbol: &'static str,
        object: u64,
        given: usize,
    },
}

/// The value a read-only global of the object will hold once loaded (what aya writes into it):
/// the programs' loads of its fields become immediates (see `fold`).
pub struct Constant {
    pub symbol: &'static str,
    pub bytes: Vec<u8>,
}

impl Constant {
    pub fn of<T: aya::Pod>(symbol: &'static str, value: &T) -> Self {
        Self {
            symbol,
            bytes: crate::loader::bytes_of(value).to_vec(),
        }
    }
}

/// New code for one stub: eBPF instructions as bytes.
pub struct Injection {
    pub stub: Stub,
    pub code: Vec<u8>,
}

/// A new value size for a map the object defines (legacy `bpf_map_def` in section `maps`, as
/// aya-ebpf writes them): aya 0.14 can change a map's `max_entries` at load, not its value size.
pub struct MapValueSize {
    pub map: &'static str,
    pub bytes: u32,
}

/// Everything to change in the object before load.
#[derive(Default)]
pub struct Patches {
    pub injections: Vec<Injection>,
    pub map_value_sizes: Vec<MapValueSize>,
    /// The vmlinux BTF id of the kfunc `bpf_rdonly_cast` when the programs may call it: each
    /// call to `contract::RDONLY_CAST_CALL` becomes its call; without, `r0 = r1` (the programs
    /// then never reach it: `Config::cast_btf_id` is 0).
    pub rdonly_cast: Option<u32>,
    /// The read-only globals' values, for their loads to become immediates; empty: loads stay.
    pub constants: Vec<Constant>,
}

/// `call imm` of a helper: BPF_JMP | BPF_CALL, no registers, no offset.
const CALL: u8 = 0x85;
/// `src_reg` of a kfunc call (BPF_PSEUDO_KFUNC_CALL), in the registers byte's high nibble.
const KFUNC_CALL_SRC: u8 = 2 << 4;
/// `r0 = r1`: BPF_ALU64 | BPF_MOV | BPF_X, dst r0, src r1.
const MOV_R0_R1: [u8; 8] = [0xbf, 1 << 4, 0, 0, 0, 0, 0, 0];

/// The programs' call of `bpf_rdonly_cast` before [`patch`].
const RDONLY_CAST_PLACEHOLDER: [u8; 8] = {
    let n = contract::RDONLY_CAST_CALL.to_le_bytes();
    [CALL, 0, 0, 0, n[0], n[1], n[2], n[3]]
};

/// Rewrites every placeholder call of `bpf_rdonly_cast` in `code` (see [`Patches::rdonly_cast`]);
/// returns how many there were.
fn patch_rdonly_cast(code: &mut [u8], func_id: Option<u32>) -> usize {
    let mut patched = 0;
    for insn in code.chunks_exact_mut(8) {
        if insn != RDONLY_CAST_PLACEHOLDER {
            continue;
        }
        match func_id {
            Some(id) => {
                insn[1] = KFUNC_CALL_SRC;
                insn[4..].copy_from_slice(&id.to_le_bytes());
            }
            None => insn.copy_from_slice(&MOV_R0_R1),
        }
        patched += 1;
    }
    patched
}

/// `bpf_map_def.value_size`: after `type` and `key_size`.
const MAP_DEF_VALUE_SIZE_AT: usize = 8;

/// Where stub `i` of `STUBS` is placed: apart from `.text` (at 0) and from each other.
fn stub_address(i: usize) -> u64 {
    (i as u64 + 1) << 28
}

/// Returns a copy of the ELF `object` with the injected stubs' bodies replaced, 8-byte aligned for
/// aya. Every stub gets its own address, injected or not (see the module comment).
pub fn patch(object: &[u8], patches: &Patches) -> Result<AlignedBytes, PatchError> {
    let injections = &patches.injections;
    if let Some(i) = injections.iter().find(|i| !STUBS.contains(&i.stub)) {
        return Err(PatchError::UnknownStub(i.stub.symbol));
    }
    let mut builder = Builder::read(object)?;
    for (i, stub) in STUBS.iter().enumerate() {
        let code = injections
            .iter()
            .find(|inj| inj.stub == *stub)
            .map(|inj| &inj.code);
        let address = stub_address(i);
        let section = builder
            .sections
            .iter_mut()
            .find(|s| &*s.name == stub.section.as_bytes())
            .ok_or(PatchError::MissingSection(stub.section))?;
        if let Some(code) = code {
            section.data = SectionData::Data(code.clone().into());
            section.sh_size = code.len() as u64;
        }
        section.sh_addr = address;
        let (section_id, size) = (section.id(), section.sh_size);
        let symbol = builder
            .symbols
            .iter_mut()
            .find(|s| &*s.name == stub.symbol.as_bytes() && s.section == Some(section_id))
            .ok_or(PatchError::MissingSymbol(stub.symbol))?;
        symbol.st_size = size;
        symbol.st_value = address;
    }
    for section in builder
        .sections
        .iter_mut()
        .filter(|s| s.sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0)
    {
        if let SectionData::Data(data) = &mut section.data {
            if data
                .chunks_exact(8)
                .any(|insn| insn == RDONLY_CAST_PLACEHOLDER)
            {
                patch_rdonly_cast(data.to_mut(), patches.rdonly_cast);
            }
        }
    }
    if !patches.constants.is_empty() {
        let folded = fold_constants(&mut builder, &patches.constants)?;
        log::debug!("load-time constants: {folded} loads became immediates");
    }
    for m in &patches.map_value_sizes {
        let symbol = builder
            .symbols
            .iter()
            .find(|s| &*s.name == m.map.as_bytes())
            .ok_or(PatchError::MissingMap(m.map))?;
        let (section_id, at) = (symbol.section, symbol.st_value as usize);
        let section = builder
            .sections
            .iter_mut()
            .find(|s| Some(s.id()) == section_id && &*s.name == b"maps")
            .ok_or(PatchError::MissingMap(m.map))?;
        let SectionData::Data(data) = &mut section.data else {
            return Err(PatchError::MissingMap(m.map));
        };
        let field = at + MAP_DEF_VALUE_SIZE_AT;
        let bytes = data
            .to_mut()
            .get_mut(field..field + 4)
            .ok_or(PatchError::MissingMap(m.map))?;
        bytes.copy_from_slice(&m.bytes.to_le_bytes());
    }
    Ok(AlignedBytes::new(&crate::elf_write::write(builder)?))
}

/// Where `ld_imm64`s point: instruction index -> (section, address there).
type Pointers = HashMap<usize, (SectionId, i64)>;

/// Turns the loads of the `constants`' fields in every code section into immediates; returns
/// how many.
fn fold_constants(builder: &mut Builder, constants: &[Constant]) -> Result<usize, PatchError> {
    // Each global: its section, where it starts there, its value.
    let mut globals = Vec::new();
    for c in constants {
        let symbol = builder
            .symbols
            .iter()
            .find(|s| &*s.name == c.symbol.as_bytes())
            .ok_or(PatchError::MissingSymbol(c.symbol))?;
        if symbol.st_size != c.bytes.len() as u64 {
            return Err(PatchError::GlobalSize {
                symbol: c.symbol,
                object: symbol.st_size,
                given: c.bytes.len(),
            });
        }
        let section = symbol.section.ok_or(PatchError::MissingSymbol(c.symbol))?;
        globals.push((section, symbol.st_value as i64, &c.bytes[..]));
    }
    // Per code section, the `ld_imm64`s that relocations point into the globals' sections:
    // instruction index -> (section, address there before the instruction's own offset).
    let mut pointers: Vec<(SectionId, Pointers)> = Vec::new();
    for section in builder.sections.iter() {
        let (SectionData::Relocation(relocations), Some(code)) =
            (&section.data, section.sh_info_section)
        else {
            continue;
        };
        for r in relocations {
            let Some(symbol) = r.symbol.map(|id| builder.symbols.get(id)) else {
                continue;
            };
            let Some(target) = symbol.section.filter(|s| globals.iter().any(|g| g.0 == *s)) else {
                continue;
            };
            let at = match pointers.iter().position(|(s, _)| *s == code) {
                Some(at) => at,
                None => {
                    pointers.push((code, HashMap::new()));
                    pointers.len() - 1
                }
            };
            pointers[at]
                .1
                .insert(r.r_offset as usize / 8, (target, symbol.st_value as i64));
        }
    }
    let value = |section: SectionId, at: i64, size: usize| {
        let (_, start, bytes) = globals.iter().find(|(s, start, bytes)| {
            *s == section && at >= *start && at + size as i64 <= *start + bytes.len() as i64
        })?;
        let from = (at - start) as usize;
        let mut v = [0u8; 8];
        v[..size].copy_from_slice(&bytes[from..from + size]);
        Some(u64::from_le_bytes(v))
    };
    let mut folded = 0;
    for (code, at) in pointers {
        let section = builder.sections.get_mut(code);
        if section.sh_flags & u64::from(object::elf::SHF_EXECINSTR) == 0 {
            continue;
        }
        let SectionData::Data(data) = &mut section.data else {
            continue;
        };
        let data = data.to_mut();
        // The instruction's own offset: the implicit addend of a REL relocation.
        let at: Pointers = at
            .into_iter()
            .filter_map(|(i, (s, base))| {
                let imm = data.get(i * 8 + 4..i * 8 + 8)?;
                Some((
                    i,
                    (
                        s,
                        base + i64::from(i32::from_le_bytes(imm.try_into().ok()?)),
                    ),
                ))
            })
            .collect();
        folded += fold::fold(data, |i| at.get(&i).copied(), value);
    }
    Ok(folded)
}

/// Bytes in 8-byte aligned storage: object's ELF reader (inside aya) wants aligned headers.
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: u64 storage of at least bytes.len() bytes, viewed as bytes.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8)
        };
        dst[..bytes.len()].copy_from_slice(bytes);
        Self {
            words,
            len: bytes.len(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes of the u64 storage were initialised in `new`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `r1 = 7`, the placeholder call, `exit`, the placeholder again.
    fn code() -> Vec<u8> {
        let mut code = vec![0xb7, 0x01, 0, 0, 7, 0, 0, 0];
        code.extend(RDONLY_CAST_PLACEHOLDER);
        code.extend([0x95, 0, 0, 0, 0, 0, 0, 0]);
        code.extend(RDONLY_CAST_PLACEHOLDER);
        code
    }

    #[test]
    fn placeholder_calls_become_the_kfunc_call() {
        let mut code = code();
        assert_eq!(patch_rdonly_cast(&mut code, Some(0x1234)), 2);
        let kfunc_call = [0x85, 0x20, 0, 0, 0x34, 0x12, 0, 0];
        assert_eq!(&code[8..16], kfunc_call);
        assert_eq!(&code[24..32], kfunc_call);
        // The rest untouched.
        assert_eq!(&code[..8], &self::code()[..8]);
        assert_eq!(&code[16..24], &self::code()[16..24]);
    }

    #[test]
    fn without_the_kfunc_they_become_a_move() {
        let mut code = code();
        assert_eq!(patch_rdonly_cast(&mut code, None), 2);
        assert_eq!(&code[8..16], MOV_R0_R1);
        assert_eq!(&code[24..32], MOV_R0_R1);
    }

    #[test]
    fn the_embedded_programs_call_it_and_keep_no_placeholder() {
        let Ok(object) = crate::loader::embedded_object() else {
            return; // built without kernel programs
        };
        let patched = patch(object, &Patches::default()).unwrap();
        let count = |bytes: &[u8]| {
            // Instruction-aligned in every section: sections start 8-aligned in the file.
            bytes
                .chunks_exact(8)
                .filter(|insn| *insn == RDONLY_CAST_PLACEHOLDER)
                .count()
        };
        assert!(
            count(object) > 0,
            "the programs read no kernel memory directly"
        );
        assert_eq!(count(patched.as_bytes()), 0);
    }

    /// The embedded programs' reads of their configuration and of the struct offsets become
    /// immediates holding the globals' values.
    #[test]
    fn the_embedded_programs_loads_of_the_globals_become_immediates() {
        use pwru_rs_common::{Config, Offsets};
        let mut config: Config = unsafe { std::mem::zeroed() };
        config.filters = 0x1234_5678;
        let offsets: Offsets = unsafe { std::mem::zeroed() };
        let constants = || {
            vec![
                Constant::of(contract::CONFIG_GLOBAL, &config),
                Constant::of(contract::OFFSETS_GLOBAL, &offsets),
            ]
        };
        let mut builder = Builder::read(crate::loader::embedded_object().unwrap()).unwrap();
        let folded = fold_constants(&mut builder, &constants()).unwrap();
        assert!(folded > 1000, "only {folded} loads folded");
        // `cfg!(filters)` is the first field: `w dst = 0x12345678` in the code now.
        let patched = patch(
            crate::loader::embedded_object().unwrap(),
            &Patches {
                constants: constants(),
                ..Default::default()
            },
        )
        .unwrap();
        let elf = object::read::File::parse(patched.as_bytes()).unwrap();
        use object::{Object, ObjectSection};
        let code = elf
            .section_by_name("kprobe")
            .unwrap()
            .data()
            .unwrap()
            .to_vec();
        let moves = code
            .chunks_exact(8)
            .filter(|i| i[0] == 0xb4 && i[4..] == 0x1234_5678u32.to_le_bytes())
            .count();
        assert!(moves > 10, "{moves} moves of the filters' value");
        // A global whose size differs from the object's is refused.
        let wrong = [Constant {
            symbol: contract::CONFIG_GLOBAL,
            bytes: vec![0; 3],
        }];
        assert!(matches!(
            fold_constants(&mut builder, &wrong),
            Err(PatchError::GlobalSize { given: 3, .. })
        ));
    }
}
