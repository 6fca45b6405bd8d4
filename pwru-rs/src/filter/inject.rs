//! Putting translated filter code into the eBPF object before aya loads it.
//!
//! The kernel programs call two stubs, `pwru_filter_l2` and `pwru_filter_l3`, each alone in its own
//! ELF section (`.text.filter_l2`, `.text.filter_l3`). aya 0.14 has no hook to change a program's
//! instructions, so the section's bytes are replaced here (object's ELF builder) and the stub
//! symbol's size updated; aya-obj then links the new body into every program that calls it.
//!
//! Each stub section also gets its own load address (`sh_addr`, and the symbol's value with it).
//! aya-obj 0.3 remembers the functions it has linked into a program by address alone, and every
//! text section starts at 0: without distinct addresses a call to one stub can be linked to the
//! other, or to whatever sits at offset 0 of `.text`.
//!
//! Constraints the generated code meets (see `ebpf`): no relocations, and no `ld_imm64`, so the
//! stub's old BTF line-info records (kept by aya-obj) never point into the middle of an instruction.

use object::build::elf::{Builder, SectionData};

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("the eBPF object cannot be rewritten: {0}")]
    Elf(#[from] object::build::Error),
    #[error("the eBPF object has no section {0}")]
    MissingSection(&'static str),
    #[error("the eBPF object has no symbol {0}")]
    MissingSymbol(&'static str),
}

/// One stub: its section, its symbol, the address to give it, and optionally its new body.
pub struct Replacement<'a> {
    pub section: &'static str,
    pub symbol: &'static str,
    pub address: u64,
    pub code: Option<&'a [u8]>,
}

/// Returns a copy of the ELF `object` with each stub's body replaced, 8-byte aligned for aya.
pub fn replace_functions(
    object: &[u8],
    replacements: &[Replacement<'_>],
) -> Result<AlignedBytes, InjectError> {
    let mut builder = Builder::read(object)?;
    for r in replacements {
        let section = builder
            .sections
            .iter_mut()
            .find(|s| &*s.name == r.section.as_bytes())
            .ok_or(InjectError::MissingSection(r.section))?;
        if let Some(code) = r.code {
            section.data = SectionData::Data(code.to_vec().into());
            section.sh_size = code.len() as u64;
        }
        section.sh_addr = r.address;
        let (section_id, size) = (section.id(), section.sh_size);
        let symbol = builder
            .symbols
            .iter_mut()
            .find(|s| &*s.name == r.symbol.as_bytes() && s.section == Some(section_id))
            .ok_or(InjectError::MissingSymbol(r.symbol))?;
        symbol.st_size = size;
        symbol.st_value = r.address;
    }
    // LLVM keeps section names in .strtab; the writer wants a .shstrtab of its own.
    if !builder
        .sections
        .iter()
        .any(|s| matches!(s.data, SectionData::SectionString))
    {
        let shstrtab = builder.sections.add();
        shstrtab.name = (&b".shstrtab"[..]).into();
        shstrtab.sh_type = object::elf::SHT_STRTAB;
        shstrtab.sh_addralign = 1;
        shstrtab.data = SectionData::SectionString;
    }
    let mut out = Vec::new();
    builder.write(&mut out)?;
    Ok(AlignedBytes::new(&out))
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
