//! Programs of the object, linked for loading by hand: aya loads the object (creating every
//! map, the read-only globals included); aya-obj parses the same bytes and points each map
//! reference of the wanted programs at the map aya created, then links their callees in.

use std::{
    collections::{BTreeMap, HashSet},
    os::fd::{AsFd, AsRawFd, OwnedFd, RawFd},
};

use aya::{maps::Map, Ebpf};
use aya_obj::generated::bpf_insn;

use super::sys::{self, ProgBtf};

#[derive(Debug, thiserror::Error)]
pub enum RelocateError {
    #[error("parsing the eBPF object: {0}")]
    Parse(String),
    #[error("relocating {0}")]
    Relocate(String),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(String),
}

/// Programs of the object, relocated, with the object's BTF loaded in the kernel for them.
pub struct Relocated<'n> {
    programs: BTreeMap<&'n str, Program>,
    /// `None` when this kernel takes no BTF (or refused the object's): the programs then load
    /// without it, only less readable in bpftool.
    btf: Option<OwnedFd>,
}

struct Program {
    insns: Vec<bpf_insn>,
    func_info: Vec<u8>,
    line_info: Vec<u8>,
}

impl Relocated<'_> {
    /// Program `name`'s instructions (it was asked for).
    pub fn insns(&self, name: &str) -> &[bpf_insn] {
        &self.programs[name].insns
    }

    /// Program `name`'s BTF records, for `BPF_PROG_LOAD`.
    pub fn btf(&self, name: &str) -> Option<ProgBtf<'_>> {
        let program = &self.programs[name];
        let fd = self.btf.as_ref()?.as_fd();
        Some(ProgBtf {
            fd,
            func_info: &program.func_info,
            line_info: &program.line_info,
        })
    }
}

/// Each program in `wanted`, ready for `BPF_PROG_LOAD`.
pub fn relocated_programs<'n>(
    ebpf: &Ebpf,
    object: &[u8],
    wanted: &[&'n str],
) -> Result<Relocated<'n>, RelocateError> {
    let mut obj =
        aya_obj::Object::parse(object).map_err(|e| RelocateError::Parse(e.to_string()))?;
    // aya fixes the object's BTF up (section sizes, variable offsets) and strips what this
    // kernel does not know before loading it; the same here, for the programs loaded by hand.
    let btf = match aya::features().btf() {
        Some(features) => match obj.fixup_and_sanitize_btf(features) {
            Ok(Some(btf)) => sys::btf_load(&btf.to_bytes())
                .inspect_err(|e| log::debug!("the object's BTF was not loaded: {e}"))
                .ok(),
            Ok(None) => None,
            Err(e) => {
                log::debug!("the object's BTF cannot be fixed up: {e}");
                None
            }
        },
        None => None,
    };
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    let fds: BTreeMap<&str, RawFd> = ebpf.maps().map(|(name, map)| (name, map_fd(map))).collect();
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
    .map_err(|e| RelocateError::Relocate(format!("maps: {e}")))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| RelocateError::Relocate(format!("calls: {e}")))?;
    let mut out = BTreeMap::new();
    for &name in wanted {
        let missing = || RelocateError::MissingProgram(name.to_owned());
        let program = obj.programs.get(name).ok_or_else(missing)?;
        let function = obj
            .functions
            .get(&program.function_key())
            .ok_or_else(missing)?;
        out.insert(
            name,
            Program {
                insns: function.instructions.clone(),
                func_info: function.func_info.func_info_bytes(),
                line_info: function.line_info.line_info_bytes(),
            },
        );
    }
    Ok(Relocated { programs: out, btf })
}

/// The fd of any map aya created (the match is exhaustive: a new map kind fails to compile here
/// instead of failing relocation at run time).
pub fn map_fd(map: &Map) -> RawFd {
    let data = match map {
        Map::Array(m)
        | Map::ArrayOfMaps(m)
        | Map::BloomFilter(m)
        | Map::CgroupArray(m)
        | Map::CgroupStorage(m)
        | Map::CgrpStorage(m)
        | Map::CpuMap(m)
        | Map::DevMap(m)
        | Map::DevMapHash(m)
        | Map::HashMap(m)
        | Map::HashOfMaps(m)
        | Map::InodeStorage(m)
        | Map::LpmTrie(m)
        | Map::LruHashMap(m)
        | Map::PerCpuArray(m)
        | Map::PerCpuCgroupStorage(m)
        | Map::PerCpuHashMap(m)
        | Map::PerCpuLruHashMap(m)
        | Map::PerfEventArray(m)
        | Map::ProgramArray(m)
        | Map::Queue(m)
        | Map::ReusePortSockArray(m)
        | Map::RingBuf(m)
        | Map::SockHash(m)
        | Map::SockMap(m)
        | Map::SkStorage(m)
        | Map::Stack(m)
        | Map::StackTraceMap(m)
        | Map::Unsupported(m)
        | Map::XskMap(m) => m,
    };
    data.fd().as_fd().as_raw_fd()
}
