//! Programs of the object, linked for loading by hand: aya loads the object (creating every
//! map, the read-only globals included); aya-obj parses the same bytes and points each map
//! reference of the wanted programs at the map aya created, then links their callees in.

use std::{
    collections::{BTreeMap, HashSet},
    os::fd::{AsFd, AsRawFd, RawFd},
};

use aya::{maps::Map, Ebpf};
use aya_obj::generated::bpf_insn;

#[derive(Debug, thiserror::Error)]
pub enum RelocateError {
    #[error("parsing the eBPF object: {0}")]
    Parse(String),
    #[error("relocating {0}")]
    Relocate(String),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(String),
}

/// Instructions of each program in `wanted`, ready for `BPF_PROG_LOAD`.
pub fn relocated_programs<'n>(
    ebpf: &Ebpf,
    object: &[u8],
    wanted: &[&'n str],
) -> Result<BTreeMap<&'n str, Vec<bpf_insn>>, RelocateError> {
    let mut obj =
        aya_obj::Object::parse(object).map_err(|e| RelocateError::Parse(e.to_string()))?;
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
        out.insert(name, function.instructions.clone());
    }
    Ok(out)
}

/// The fd of any map aya created (the match is exhaustive: a new map kind fails to compile here
/// instead of failing relocation at run time).
fn map_fd(map: &Map) -> RawFd {
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
