//! Writing an ELF file read with object's builder, shared by `crate::object` (the patched eBPF
//! object) and build.rs (the object stripped of its DWARF), which includes this file.

use object::build::elf::{Builder, SectionData};

/// `builder` written out. LLVM and bpf-linker keep section names in `.strtab`; the writer wants
/// a `.shstrtab` of its own, so one is added when the file has none.
pub fn write(mut builder: Builder<'_>) -> Result<Vec<u8>, object::build::Error> {
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
    Ok(out)
}
